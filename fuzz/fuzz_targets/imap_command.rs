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
    let dir = std::env::temp_dir().join(format!("sealpost-fuzz-imap-{}", std::process::id()));
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
    assert!(out.starts_with(b"* OK"), "no greeting");
});
