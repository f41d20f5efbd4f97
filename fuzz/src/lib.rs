//! What the fuzz targets that drive a server share: a runtime and a harness
//! over a real store in a temp folder of their own, made once per process.

use std::future::Future;
use std::path::{Path, PathBuf};

/// A runtime and a harness, made once per process (keep it in a `LazyLock`).
pub struct World<H> {
    runtime: tokio::runtime::Runtime,
    /// The harness the target feeds.
    pub harness: H,
    _dir: PathBuf,
}

impl<H> World<H> {
    /// Makes the runtime and a fresh folder `sealpost-fuzz-{name}-{pid}` in the
    /// temp folder, then the harness with `make` (it runs futures on the runtime
    /// it is given).
    ///
    /// # Panics
    /// If the runtime or the folder can't be made: nothing can be fuzzed then.
    pub fn new(name: &str, make: impl FnOnce(&tokio::runtime::Runtime, &Path) -> H) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = std::env::temp_dir().join(format!("sealpost-fuzz-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp folder");
        let harness = make(&runtime, &dir);
        Self {
            runtime,
            harness,
            _dir: dir,
        }
    }

    /// Runs one input's future to its end.
    pub fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        self.runtime.block_on(future)
    }
}
