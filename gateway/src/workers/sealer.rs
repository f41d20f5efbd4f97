//! The sealer: seals every spooled secure message into the store, and after a
//! crash picks up where it was. One message that cannot be sealed never holds
//! up the others: each attempt is counted before it starts, a failure (an error
//! or a panic) waits longer before the next, and after
//! [`MAX_SEAL_ATTEMPTS`](store::spool::MAX_SEAL_ATTEMPTS) the message is
//! quarantined — kept in the spool as it arrived, sealed; the admin alerted by an
//! error line and the [`QUARANTINED`] count; the sender told, without content.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt as _;
use mail_builder::MessageBuilder;
use mail_builder::headers::raw::Raw;
use store::ids::MessageId;
use store::spool::{MAX_SEAL_ATTEMPTS, Quarantined, SealAttempt};
use store::{Error, Store};

use super::Backoff;
use crate::Wakers;
use crate::notify::NotifyConfig;

/// Messages this process quarantined since it started (the database keeps the
/// lasting count: [`store::Queue::quarantined_spool`]).
pub static QUARANTINED: AtomicU64 = AtomicU64::new(0);

/// How often the sealer looks at the spool when nobody wakes it.
const POLL: Duration = Duration::from_secs(10);

/// Seals every spooled secure message; after a crash it picks up where it was.
pub async fn run_sealer(store: Arc<Store>, wakers: Wakers, config: NotifyConfig) {
    let mut backoff = Backoff::new("sealer");
    loop {
        match seal_due(&store, &wakers, &config).await {
            Ok(()) => {
                backoff.succeed();
                let _ = tokio::time::timeout(POLL, wakers.sealer.notified()).await;
            }
            Err(error) => tokio::time::sleep(backoff.fail(&error)).await,
        }
    }
}

/// One pass over the messages due. An error here means the store is out of
/// reach: the caller backs off.
async fn seal_due(store: &Store, wakers: &Wakers, config: &NotifyConfig) -> Result<(), Error> {
    for id in store.queue().due_spool(50).await? {
        let attempt = match store.queue().begin_seal_attempt(&id).await {
            Ok(SealAttempt::Try(attempt)) => attempt,
            Ok(SealAttempt::GiveUp) => {
                quarantine(store, wakers, config, &id).await?;
                continue;
            }
            Err(Error::NotFound) => continue, // sealed or set aside meanwhile
            Err(error) => return Err(error),
        };
        let outcome = AssertUnwindSafe(store.mail().seal_spooled(&id)).catch_unwind().await;
        let failure = match outcome {
            Ok(Ok(())) => {
                tracing::info!(%id, "message sealed");
                wakers.notifier.notify_one();
                continue;
            }
            Ok(Err(error)) if is_outage(&error) => {
                // Not the message's fault: this attempt does not count.
                let _ = store.queue().refund_seal_attempt(&id).await;
                return Err(error);
            }
            Ok(Err(error)) => error.to_string(),
            // The panic's message is not logged: it may quote the input.
            Err(_) => "the sealer panicked on this message".to_owned(),
        };
        tracing::error!(%id, attempt, max = MAX_SEAL_ATTEMPTS, error = %failure, "cannot seal spooled message");
        if attempt >= MAX_SEAL_ATTEMPTS {
            quarantine(store, wakers, config, &id).await?;
        }
    }
    Ok(())
}

/// Errors that come from the store being out of reach, not from the message.
fn is_outage(error: &Error) -> bool {
    matches!(error, Error::Database(_) | Error::Blob(_) | Error::Io(_))
}

/// Sets the message aside, alerts the admin and tells the sender.
async fn quarantine(store: &Store, wakers: &Wakers, config: &NotifyConfig, id: &MessageId) -> Result<(), Error> {
    let Some(quarantined) = store.queue().quarantine_spooled(id).await? else {
        return Ok(());
    };
    QUARANTINED.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        %id,
        attempts = MAX_SEAL_ATTEMPTS,
        quarantined_total = quarantined.total,
        "message quarantined: it could not be sealed; it stays encrypted in the spool, set aside \
    (see docs/workers.md, \"Quarantined messages\")"
    );
    if !quarantined.mail_from.is_empty() {
        let message = sender_notice(&quarantined, config, store.now());
        store
            .queue()
            .queue_mail(None, "", &quarantined.mail_from, &message)
            .await?;
        wakers.delivery.notify_one();
    }
    Ok(())
}

/// Tells the sender their message was not delivered, without its content
/// (which may be PHI): when it arrived and its reference, nothing else.
fn sender_notice(quarantined: &Quarantined, config: &NotifyConfig, now: i64) -> Vec<u8> {
    let text = format!(
        "A secure message you sent at {received} could not be processed, and was not \
delivered to anyone.\n\nIt is kept encrypted and set aside, and the gateway's administrator has \
been alerted. Please send it again, or ask your IT administrator about reference {id}.\n\n\
The message's content is not included here, to keep it private.\n",
        received = store::clock::format_utc(quarantined.received_at),
        id = quarantined.id,
    );
    let message = MessageBuilder::new()
        .from(("Sealpost", config.from_address.as_str()))
        .to(quarantined.mail_from.as_str())
        .subject("Your secure message could not be delivered")
        .date(now)
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .text_body(text)
        .write_to_vec()
        .unwrap_or_default();
    match &config.dkim {
        Some(dkim) => dkim.sign(&message),
        None => message,
    }
}
