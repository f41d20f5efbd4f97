//! IMAP command handling with arbitrary client bytes: one signed-in session
//! per input (LOGIN and SELECT INBOX first, LOGOUT last) against a real store
//! holding a plain and a nested MIME message. A panic, an abort or a session
//! that does not end within 20 s is a finding.
//!
//! `cargo fuzz run imap_command -s none` (stable Rust, no sanitizer).

#![no_main]

use std::sync::LazyLock;

use gateway::imap::fuzzing::Harness;
use libfuzzer_sys::fuzz_target;
use sealpost_fuzz::World;

static WORLD: LazyLock<World<Harness>> =
    LazyLock::new(|| World::new("imap", |runtime, dir| runtime.block_on(Harness::new(dir))));

fuzz_target!(|data: &[u8]| {
    let out = WORLD.block_on(WORLD.harness.run(data));
    assert!(out.starts_with(b"* OK"), "no greeting");
});
