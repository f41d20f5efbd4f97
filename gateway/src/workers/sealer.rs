//! The sealer: seals every spooled secure message into the store, and after a
//! crash picks up where it was. One message that cannot be sealed never holds
//! up the others: each attempt is counted before it starts, a failure (an error
//! or a panic) waits longer before the next, and after
//! [`MAX_SEAL_ATTEMPTS`](store::spool::MAX_SEAL_ATTEMPTS) the message is
//! quarantined — kept in the spool as it arrived, sealed; the admin alerted by an
//! error line and the [`QUARANTINED`] count; the sender told, without content.
//! A message that can never be sealed (corrupt data, or a sender who may no
//! longer send secure mail: [`store::Error::is_permanent`]) is quarantined at
//! its first failure.
//!
//! Messages are sealed `concurrency` at a time (see [`super::lanes`]), each in
//! its own lane: sealing order does not matter (what a recipient sees is
//! ordered by the notifier, one recipient at a time).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt as _;
use store::claims::Claim;
use store::ids::MessageId;
use store::spool::{MAX_SEAL_ATTEMPTS, Quarantined, SealAttempt};
use store::{Error, Store};

use super::lanes::{Item, LaneConfig, run_lanes};
use crate::Wakers;
use crate::mail::{self, Envelope, MailKind};
use crate::notify::NotifyConfig;

/// Messages this process quarantined since it started (the database keeps the
/// lasting count: [`store::Queue::quarantined_spool`]).
pub static QUARANTINED: AtomicU64 = AtomicU64::new(0);

/// How often the sealer looks at the spool when nobody wakes it.
const POLL: Duration = Duration::from_secs(10);

/// A spooled message claimed for sealing (its attempt counted), in a lane of
/// its own: a busy sender's messages are sealed side by side.
struct Due {
    id: MessageId,
    attempt: SealAttempt,
}

impl Item for Due {
    type Id = MessageId;
    type Lane = MessageId;
    fn id(&self) -> MessageId {
        self.id.clone()
    }
    fn lane(&self) -> MessageId {
        self.id.clone()
    }
}

/// Seals every spooled secure message, `concurrency` at a time; after a crash
/// it picks up where it was.
pub async fn run_sealer(store: Arc<Store>, wakers: Wakers, config: NotifyConfig, concurrency: usize) {
    let lanes = LaneConfig {
        name: "sealer",
        concurrency,
        poll: POLL,
    };
    let fetch = |room: usize| {
        let store = Arc::clone(&store);
        async move {
            let due = store.queue().claim_seals(i64::try_from(room).unwrap_or(64)).await?;
            Ok(due.into_iter().map(|(id, attempt)| Due { id, attempt }).collect())
        }
    };
    let config = Arc::new(config);
    let work = |due: Due| {
        let (store, wakers, config) = (Arc::clone(&store), wakers.clone(), Arc::clone(&config));
        async move {
            if let Err(error) = seal_one(&store, &wakers, &config, &due.id, due.attempt).await {
                tracing::warn!(id = %due.id, %error, "sealing waits: the store is out of reach");
            }
        }
    };
    run_lanes(lanes, Arc::clone(&wakers.sealer), fetch, work).await;
}

/// One claimed attempt at one message (counted by the claim). An error here
/// means the store is out of reach: the attempt is not counted, and the
/// message waits for its next turn.
async fn seal_one(
    store: &Store,
    wakers: &Wakers,
    config: &NotifyConfig,
    id: &MessageId,
    attempt: SealAttempt,
) -> Result<(), Error> {
    let attempt = match attempt {
        SealAttempt::Try(attempt) => attempt,
        SealAttempt::GiveUp => return quarantine(store, wakers, config, id).await,
    };
    // A seal that outlasts the attempt's wait keeps it (`store/src/claims.rs`).
    let (queue, mail) = (store.queue(), store.mail());
    let seal = queue.renewing(Claim::Seal(id), mail.seal_spooled(id));
    let outcome = AssertUnwindSafe(seal).catch_unwind().await;
    let failure = match outcome {
        Ok(Ok(())) => {
            tracing::info!(%id, "message sealed");
            telemetry::metrics().sealed();
            telemetry::latency::sealed(id.as_str());
            wakers.notifier.notify_one();
            return Ok(());
        }
        Ok(Err(error)) if is_outage(&error) => {
            // Not the message's fault: this attempt does not count.
            let _ = store.queue().refund_seal_attempt(id).await;
            return Err(error);
        }
        Ok(Err(error)) if error.is_permanent() => {
            // Corrupt, or refused by a rule (a sender without a practice):
            // every attempt would fail the same way, so none is wasted.
            tracing::error!(%id, attempt, %error, "cannot seal spooled message, and trying again cannot help");
            return quarantine(store, wakers, config, id).await;
        }
        Ok(Err(error)) => error.to_string(),
        // The panic's message is not logged: it may quote the input.
        Err(_) => "the sealer panicked on this message".to_owned(),
    };
    tracing::error!(%id, attempt, max = MAX_SEAL_ATTEMPTS, error = %failure, "cannot seal spooled message");
    if attempt >= MAX_SEAL_ATTEMPTS {
        quarantine(store, wakers, config, id).await?;
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
    if !quarantined.mail_from.is_empty()
        && let Some(message) = sender_notice(&quarantined, config, store.now())
    {
        store
            .queue()
            .queue_mail(None, "", &quarantined.mail_from, &message)
            .await?;
        wakers.delivery.notify_one();
    }
    Ok(())
}

/// Tells the sender their message was not delivered, without its content
/// (which may be PHI): when it arrived and its reference, nothing else (the
/// `quarantined` templates).
fn sender_notice(quarantined: &Quarantined, config: &NotifyConfig, now: i64) -> Option<Vec<u8>> {
    let mail = MailKind::Quarantined(mail::Quarantined {
        received: store::clock::format_utc(quarantined.received_at),
        reference: quarantined.id.to_string(),
    });
    let rendered = mail
        .render()
        .map_err(|error| tracing::error!(%error, "cannot render the quarantine notice"))
        .ok()?;
    let envelope = Envelope {
        from_address: &config.from_address,
        to: &quarantined.mail_from,
        now,
    };
    Some(mail::write(&rendered, envelope, config.dkim.as_deref()))
}
