//! Sends a direct copy (best-method delivery, [`crate::best_method`]): the
//! secure message itself, DKIM-signed like the mail Sealpost writes, to the
//! recipient domain's MX hosts — only over a connection whose certificate is
//! verified. Verification is decided here, at delivery time, on the
//! connection itself: a host is tried only when DANE records proven by DNSSEC
//! pin its certificate, or the domain's policy is `verify` (configured, or
//! MTA-STS `enforce`), and then STARTTLS is required and the handshake fails
//! on a certificate that does not verify — before any mail command.
//!
//! Never downgrade: a domain or host without verified TLS is not tried at
//! all, and a copy that cannot go (no verified host, a failed handshake, a
//! refusal, too large) falls back to a notification and the portal
//! ([`store::Queue::direct_fallback`]). A temporary failure that is not about
//! TLS (a busy or greylisting partner) is retried for `retry_for` seconds
//! first. The log names the delivery and the reason, never an address.

use std::sync::Arc;

use futures::StreamExt as _;
use store::Store;
use store::direct::{DirectBody, Fallback};
use store::direct_copy::DirectCopy;
use store::jobs::{DeliveryOutcome, OutboundItem};

use super::mx::{Mx, TlsPolicy};
use super::{Body, DeliveryConfig, Failure, Pool, Route, SmarthostTls};

/// Pieces the signed copy is written in.
const CHUNK: usize = 64 * 1024;

/// Why a direct copy did not go.
enum NotSent {
    /// No host of the domain could be verified: nothing was sent anywhere.
    NotVerified,
    /// What the last verified host (or DNS) answered.
    Failed(Failure),
}

/// Delivers one direct copy and records how it ended.
pub(super) async fn deliver(
    store: &Store,
    config: &DeliveryConfig,
    item: &OutboundItem,
    copy: &DirectCopy,
) -> Result<(), store::Error> {
    let queue = store.queue();
    let (Route::Mx(mx), Some(policy)) = (&config.route, &config.direct) else {
        return fall_back(store, item, copy, Fallback::Route).await;
    };
    let message = match queue.direct_body(copy, policy.max_size).await? {
        DirectBody::Message(message) => message,
        DirectBody::TooLarge => return fall_back(store, item, copy, Fallback::TooLarge).await,
        DirectBody::Gone => {
            tracing::info!(id = %item.id, "direct copy not sent: the message is gone");
            return queue.direct_gone(item).await;
        }
    };
    if super::check_addresses(item).is_err() {
        return fall_back(store, item, copy, Fallback::Refused).await;
    }
    let signed: Arc<Vec<u8>> = Arc::new(match &config.dkim {
        Some(dkim) => dkim.sign(message.expose()),
        None => message.expose().clone(),
    });
    drop(message);
    let open_body = || {
        let signed = Arc::clone(&signed);
        async move { Ok(chunks(signed)) }
    };
    let sent = send_verified(
        mx,
        &config.pool,
        store.now(),
        &config.hostname,
        &item.mail_from,
        &item.rcpt_to,
        open_body,
    )
    .await;
    match sent {
        Ok(()) => {
            telemetry::metrics().delivery(telemetry::Delivery::Delivered);
            tracing::info!(id = %item.id, "direct copy delivered over verified TLS");
            queue.direct_delivered(item, copy).await
        }
        Err(NotSent::NotVerified) => fall_back(store, item, copy, Fallback::NotVerified).await,
        Err(NotSent::Failed(Failure::Temporary(error))) if is_tls(&error) => {
            fall_back(store, item, copy, Fallback::Tls).await
        }
        Err(NotSent::Failed(Failure::Temporary(error))) if store.now() - item.created_at < policy.retry_for => {
            let summary = store::redact::delivery_error_summary(&error);
            tracing::warn!(id = %item.id, error = %summary, "direct copy deferred");
            let at = store.now() + super::backoff(item.attempts);
            queue.outbound_done(item, &DeliveryOutcome::Retry { error, at }).await
        }
        Err(NotSent::Failed(_)) => fall_back(store, item, copy, Fallback::Refused).await,
    }
}

async fn fall_back(store: &Store, item: &OutboundItem, copy: &DirectCopy, why: Fallback) -> Result<(), store::Error> {
    tracing::info!(id = %item.id, reason = why.as_str(), "direct copy falls back to a notification");
    store.queue().direct_fallback(item, copy, why).await
}

/// A failure of STARTTLS, the handshake or the certificate's verification.
fn is_tls(error: &str) -> bool {
    error.contains("TLS") || error.contains("4.7.5")
}

fn chunks(signed: Arc<Vec<u8>>) -> Body {
    let len = signed.len();
    futures::stream::iter(
        (0..len)
            .step_by(CHUNK)
            .map(move |at| Ok(signed[at..len.min(at + CHUNK)].to_vec())),
    )
    .boxed()
}

/// Sends to the recipient domain's MX hosts in preference order, each only
/// over verified TLS: DANE (DNSSEC-proven TLSA records, for a domain without a
/// configured policy), else the `verify` policy (configured, or MTA-STS
/// `enforce`, whose `mx:` lines also limit the hosts). A host that has neither
/// is skipped; a permanent refusal ends the attempt.
async fn send_verified<F, Fut>(
    mx: &Mx,
    pool: &Pool,
    now: i64,
    helo: &str,
    from: &str,
    to: &str,
    mut open_body: F,
) -> Result<(), NotSent>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Body, Failure>>,
{
    let Some((_, domain)) = to.rsplit_once('@') else {
        return Err(NotSent::Failed(Failure::Permanent("553 5.1.3 no domain".into())));
    };
    let (policy, sts) = mx.policy(domain, now).await;
    let configured = mx.configured(domain).is_some();
    let mut last = NotSent::NotVerified;
    // DANE needs the MX answer itself DNSSEC-validated (RFC 7672 §2.2.1).
    let (hosts, dane) = mx
        .hosts(domain, mx.dane_enabled() && !configured)
        .await
        .map_err(NotSent::Failed)?;
    for host in hosts {
        if let Some(sts) = &sts
            && !sts.allows(&host)
        {
            continue;
        }
        // DANE applies where no policy is configured for the domain; a lookup
        // that cannot be validated is no proof: the host is not verified.
        let tlsa = if !dane {
            None
        } else {
            match mx.tlsa(&host).await {
                Ok(tlsa) => tlsa,
                Err(failure) => {
                    last = NotSent::Failed(failure);
                    continue;
                }
            }
        };
        if tlsa.is_none() && policy != TlsPolicy::Verify {
            continue;
        }
        let addresses = match mx.addresses(&host).await {
            Ok(addresses) => addresses,
            Err(failure) => {
                last = NotSent::Failed(failure);
                continue;
            }
        };
        let mut peer = mx.peer(&host, addresses, TlsPolicy::Verify);
        if let Some(records) = tlsa {
            peer.tls_config = Some(mx.dane_config(&host, records));
        }
        // The copy never leaves on a connection set up any other way.
        if peer.tls != SmarthostTls::StartTls || peer.accept_invalid_certs || peer.tls_config.is_none() {
            continue;
        }
        match pool.send(&peer, helo, from, to, &mut open_body).await {
            Ok(()) => return Ok(()),
            Err(failure @ Failure::Permanent(_)) => return Err(NotSent::Failed(failure)),
            Err(failure) => last = NotSent::Failed(failure),
        }
    }
    Err(last)
}
