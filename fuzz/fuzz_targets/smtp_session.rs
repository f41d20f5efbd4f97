//! The SMTP session with arbitrary client bytes: the command stream on the
//! relay (trusted and untrusted) and submission listeners, and the DATA stream
//! after a fixed envelope, cut into pieces of every size, against a real store
//! (see `gateway::smtp::fuzzing`). A panic, a malformed reply line or a
//! session that does not end within 20 s is a finding.
//!
//! `cargo fuzz run smtp_session -s none` (stable Rust, no sanitizer).

#![no_main]

use std::sync::LazyLock;

use gateway::smtp::fuzzing::{Harness, assert_replies_well_formed};
use libfuzzer_sys::fuzz_target;
use sealpost_fuzz::World;

static WORLD: LazyLock<World<Harness>> =
    LazyLock::new(|| World::new("smtp", |runtime, dir| runtime.block_on(Harness::new(dir))));

fuzz_target!(|data: &[u8]| {
    let out = WORLD.block_on(WORLD.harness.run(data));
    assert_replies_well_formed(&out);
});
