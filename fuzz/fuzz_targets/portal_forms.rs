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

struct World {
    runtime: tokio::runtime::Runtime,
    harness: Harness,
    _dir: std::path::PathBuf,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = std::env::temp_dir().join(format!("sealpost-fuzz-portal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp folder");
    let harness = runtime.block_on(Harness::new(&dir));
    World {
        runtime,
        harness,
        _dir: dir,
    }
});

fuzz_target!(|data: &[u8]| {
    let world = &*WORLD;
    world.runtime.block_on(world.harness.run(data));
});
