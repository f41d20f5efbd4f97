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

/// How often the sweeper lists the whole object store (the first pass always
/// does); the passes in between look only at messages shredded since the last.
pub const FULL_BLOB_SWEEP: Duration = Duration::from_hours(24);

/// Sweeps orphans for ever: the first pass takes every unreferenced blob at once
/// (the spool itself was swept before the server listened), later passes only
/// what is older than [`ORPHAN_GRACE`]. Listing every blob of a large store
/// each hour (on every node) would cost more than it finds: between full
/// passes ([`FULL_BLOB_SWEEP`]) a pass removes only the blobs of messages
/// whose key went since the previous one (a shred whose blob delete was cut
/// short), found from the database.
pub async fn run_sweeper(store: Arc<Store>, interval: Duration) {
    let mut backoff = Backoff::new("orphan sweeper");
    let mut blob_grace = Duration::ZERO;
    let mut last_full: Option<tokio::time::Instant> = None;
    let mut since = store.now();
    loop {
        let full = last_full.is_none_or(|at| at.elapsed() >= FULL_BLOB_SWEEP);
        let swept = async {
            let files = store.queue().sweep_spool(ORPHAN_GRACE).await?;
            let (blobs, next) = store.queue().sweep_shredded_blobs(since).await?;
            let blobs = if full {
                blobs + store.queue().sweep_message_blobs(blob_grace).await?
            } else {
                blobs
            };
            Ok::<_, store::Error>((files, blobs, next))
        }
        .await;
        let wait = match swept {
            Ok((files, blobs, next)) => {
                backoff.succeed();
                blob_grace = ORPHAN_GRACE;
                since = next;
                if full {
                    last_full = Some(tokio::time::Instant::now());
                }
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
