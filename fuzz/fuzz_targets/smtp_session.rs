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
    let dir = std::env::temp_dir().join(format!("sealpost-fuzz-smtp-{}", std::process::id()));
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
    let out = world.runtime.block_on(world.harness.run(data));
    assert_replies_well_formed(&out);
});
