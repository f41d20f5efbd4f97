//! The orphan sweeper: removes what a crash left behind (spool and queue files
//! no row names, blobs of messages never sealed; `store/src/spool_sweep.rs`)
//! once as the server starts and then every `interval`.

use std::sync::Arc;
use std::time::Duration;

use store::Store;

use super::Backoff;

/// How old an unreferenced spool file must be before a running server removes
/// it: far longer than between a spool file's rename and its row's commit, and
/// than an SMTP upload may stall between writes.
pub const ORPHAN_GRACE: Duration = Duration::from_hours(1);

/// Sweeps orphans for ever: the first pass takes every unreferenced blob at once
/// (the spool itself was swept before the server listened), later passes only
/// what is older than [`ORPHAN_GRACE`].
pub async fn run_sweeper(store: Arc<Store>, interval: Duration) {
    let mut backoff = Backoff::new("orphan sweeper");
    let mut blob_grace = Duration::ZERO;
    loop {
        let swept = async {
            let files = store.queue().sweep_spool(ORPHAN_GRACE).await?;
            let blobs = store.queue().sweep_message_blobs(blob_grace).await?;
            Ok::<_, store::Error>((files, blobs))
        }
        .await;
        let wait = match swept {
            Ok((files, blobs)) => {
                backoff.succeed();
                blob_grace = ORPHAN_GRACE;
                if files + blobs > 0 {
                    tracing::info!(files, messages = blobs, "orphaned spool files and blobs removed");
                }
                interval
            }
            Err(error) => backoff
                .fail(&format_args!("sweeping orphans failed: {error}"))
                .min(interval),
        };
        tokio::time::sleep(wait).await;
    }
}
