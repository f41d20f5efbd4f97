//! The portal's form bodies and query strings: arbitrary bytes to every route
//! that deserializes a form or a query, through the real router with and
//! without a signed-in session and a valid CSRF token, against a real store
//! (see `portal::fuzzing`). A panic or a `5xx` answer is a finding.
//!
//! `cargo fuzz run portal_forms -s none` (stable Rust, no sanitizer).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portal::fuzzing::Harness;
use sealpost_fuzz::World;

static WORLD: LazyLock<World<Harness>> =
    LazyLock::new(|| World::new("portal", |runtime, dir| runtime.block_on(Harness::new(dir))));

fuzz_target!(|data: &[u8]| {
    WORLD.block_on(WORLD.harness.run(data));
});
