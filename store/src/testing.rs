//! Helpers for the store's own unit tests: a real store (`SQLite`, blobs on
//! disk) in a temp folder, on a clock the test moves, and the log lines
//! written while a test runs.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::{ManualClock, Store};

/// When every test store starts (Unix seconds).
pub(crate) const START: i64 = 1_800_000_000;

/// A fresh store; keep the folder alive as long as the store.
pub(crate) async fn store() -> (tempfile::TempDir, Arc<Store>, Arc<ManualClock>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let store = Store::open(
        crate::StoreConfig {
            database_url: format!("sqlite://{}", dir.path().join("db.sqlite").display()),
            blobs_url: format!("file://{}", dir.path().join("blobs").display()),
            data_dir: dir.path().join("data"),
            policy: crate::Policy::default(),
        },
        clock.clone(),
    )
    .await
    .unwrap();
    (dir, store, clock)
}

/// Two stores on one `SQLite` file and one blob folder, each with its own data
/// folder (spool, node id) and a copy of the same keys.
pub(crate) async fn two_nodes() -> (tempfile::TempDir, Arc<Store>, Arc<Store>, Arc<ManualClock>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let open = |name: &str| crate::StoreConfig {
        database_url: format!("sqlite://{}", dir.path().join("db.sqlite").display()),
        blobs_url: format!("file://{}", dir.path().join("blobs").display()),
        data_dir: dir.path().join(name),
        policy: crate::Policy::default(),
    };
    let a = Store::open(open("a"), clock.clone()).await.unwrap();
    std::fs::create_dir_all(dir.path().join("b/keys")).unwrap();
    for entry in std::fs::read_dir(dir.path().join("a/keys")).unwrap().flatten() {
        std::fs::copy(entry.path(), dir.path().join("b/keys").join(entry.file_name())).unwrap();
    }
    let b = Store::open(open("b"), clock.clone()).await.unwrap();
    assert_ne!(a.node, b.node, "each data folder names its own node");
    (dir, a, b, clock)
}

/// Spools a message whose head is `head` into a file: padded past what the
/// spool keeps in a database row (`spool_file.rs`), for tests of spool files.
pub(crate) async fn spool_in_file(store: &Store, head: &str) -> crate::spool::Spooled {
    let mut writer = store.queue().spool_writer().await.unwrap();
    writer.write(head.as_bytes()).await.unwrap();
    writer.write(&b"x".repeat(200 * 1024)).await.unwrap();
    writer.write(b"\r\n").await.unwrap();
    let spooled = writer.finish().await.unwrap();
    assert!(
        spooled.folder().is_some(),
        "a message this large is spooled into a file"
    );
    spooled
}

/// Log lines written on this thread while the guard lives (use in a
/// current-thread `tokio::test`).
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub(crate) fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
