//! Background workers that move secure mail along: sealing spooled messages
//! into the store, and shredding messages past their lifetime.

use std::sync::Arc;
use std::time::Duration;

use store::Store;

use crate::Wakers;

/// Seals every spooled secure message; after a crash it picks up where it was.
pub async fn run_sealer(store: Arc<Store>, wakers: Wakers) {
    loop {
        let mut failed = false;
        match store.pending_spool().await {
            Ok(ids) => {
                for id in ids {
                    match store.seal_spooled(&id).await {
                        Ok(()) => {
                            tracing::info!(%id, "message sealed");
                            wakers.notifier.notify_one();
                        }
                        Err(error) => {
                            tracing::error!(%id, %error, "cannot seal spooled message; will retry");
                            failed = true;
                        }
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot read the spool");
                failed = true;
            }
        }
        let wait = if failed {
            Duration::from_secs(30)
        } else {
            Duration::from_secs(10)
        };
        let _ = tokio::time::timeout(wait, wakers.sealer.notified()).await;
    }
}

/// Shreds expired messages every `interval`.
pub async fn run_purger(store: Arc<Store>, interval: Duration) {
    loop {
        match store.purge_expired().await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "expired messages shredded"),
            Err(error) => tracing::error!(%error, "purge failed"),
        }
        tokio::time::sleep(interval).await;
    }
}
