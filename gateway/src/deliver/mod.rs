//! Outbound delivery: sends each queued mail at least once, by the configured
//! route — a Maildir outbox (the default: works with no mail server), a
//! smarthost over SMTP with STARTTLS and optional AUTH, or each recipient
//! domain's MX hosts ([`mx`]), through a [`Pool`] of connections kept open and
//! reused. Temporary failures retry with exponential backoff; a permanent
//! failure, or `give_up_after` of trying (five days), ends in an RFC 3464
//! delivery status notification to the sender that carries no content, and a
//! delivery still trying after `delay_notice_after` tells the sender once.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use store::Store;
use store::claims::Claim;
use store::jobs::{DeliveryOutcome, OutboundItem};
use tokio::io::AsyncWriteExt;

use crate::Wakers;
use crate::strip::MarkerStripper;

mod dane;
mod direct;
mod dnssec;
mod mta_sts;
mod mx;
mod pool;
mod rate;
mod smtp_client;
mod tls;

pub use mx::{Mx, MxSettings, TlsPolicy};
pub use pool::{Pool, PoolSettings};
pub use rate::RateLimits;

/// How a smarthost connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmarthostTls {
    /// STARTTLS, required (the default).
    StartTls,
    /// STARTTLS when the server offers it, else plain (MX delivery).
    Opportunistic,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS: only for a smarthost on the same machine.
    None,
}

/// A relay that delivers our mail onward.
#[derive(Debug, Clone)]
pub struct Smarthost {
    pub host: String,
    pub port: u16,
    pub tls: SmarthostTls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Accept any certificate (tests against a self-signed peer only, and
    /// opportunistic TLS to MX hosts).
    pub accept_invalid_certs: bool,
    /// The addresses to connect to, in order (an MX host's, resolved by us);
    /// empty: `host` resolved by the system.
    pub connect_to: Vec<IpAddr>,
    /// The TLS configuration to verify with instead of the system's roots.
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
}

/// Where outbound mail goes.
#[derive(Debug, Clone)]
pub enum Route {
    /// A Maildir (`new/`, `cur/`, `tmp/`) that people or tests read.
    Outbox(PathBuf),
    Smarthost(Smarthost),
    /// Straight to each recipient domain's MX hosts.
    Mx(Arc<Mx>),
}

/// How long a delivery is tried, and when its sender hears it is late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Seconds after queueing when a temporary failure becomes final.
    pub give_up_after: i64,
    /// Seconds after queueing when a sender is told once that delivery is
    /// late (a "delayed" DSN); `None`: never.
    pub delay_notice_after: Option<i64>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            give_up_after: 5 * 86_400,
            delay_notice_after: Some(4 * 3600),
        }
    }
}

/// The route, the identity used in bounces, and the connections. Clones share
/// the pool, so every worker that delivers with a clone shares its caps.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub route: Route,
    pub from_address: String,
    pub hostname: String,
    /// Signs bounces, when a key is configured.
    pub dkim: Option<Arc<crate::dkim::Dkim>>,
    /// Connections to the smarthost, shared by every delivery in flight.
    pub pool: Arc<Pool>,
    pub retry: RetryPolicy,
    /// Messages a minute by recipient domain (SMTP routes); clones share the count.
    pub rates: RateLimits,
    /// Best-method delivery: how direct copies are sent ([`direct`]).
    pub direct: Option<Arc<crate::best_method::DirectPolicy>>,
}

impl DeliveryConfig {
    /// Who signs and sends delivery status notifications.
    fn reporter(&self) -> crate::dsn::Reporter<'_> {
        crate::dsn::Reporter {
            hostname: &self.hostname,
            from_address: &self.from_address,
            dkim: self.dkim.as_deref(),
        }
    }
}

/// Seconds to wait before attempt `attempts + 1`: 1 min, 2, 4 … at most 4 hours.
fn backoff(attempts: i64) -> i64 {
    (60_i64 << attempts.clamp(0, 8)).min(4 * 3600)
}

/// The remote text may name a recipient: `Debug` only for tests' messages.
#[cfg_attr(test, derive(Debug))]
pub(crate) enum Failure {
    Temporary(String),
    Permanent(String),
}

/// A claimed delivery. Each is its own lane: deliveries run side by side as
/// before (SMTP promises no order between messages), bounded by the pool.
struct Claimed(OutboundItem);

impl crate::workers::lanes::Item for Claimed {
    type Id = String;
    type Lane = String;
    fn id(&self) -> String {
        self.0.id.clone()
    }
    fn lane(&self) -> String {
        self.0.id.clone()
    }
}

/// Runs forever: delivers whatever is due, up to `concurrency` at once (the
/// pools cap the connections to each destination). Deliveries are claimed in batches
/// ([`store::Queue::due_outbound`]) and each runs as its own task (so reading
/// and decrypting bodies spreads over the cores); a free slot is filled at
/// once, not when the whole batch is done. While the store fails it backs off
/// (see [`Backoff`](crate::workers::Backoff)).
pub async fn run_delivery(store: Arc<Store>, config: DeliveryConfig, wakers: Wakers, concurrency: usize) {
    let lanes = crate::workers::lanes::LaneConfig {
        name: "delivery",
        concurrency: concurrency.max(1),
        poll: Duration::from_secs(5),
    };
    let config = Arc::new(config);
    let wake = Arc::clone(&wakers.delivery);
    let fetch = |room: usize| {
        let store = Arc::clone(&store);
        async move {
            let due = store.queue().due_outbound(i64::try_from(room).unwrap_or(64)).await?;
            Ok(due.into_iter().map(Claimed).collect())
        }
    };
    let work = |Claimed(item): Claimed| {
        let (store, config, wakers) = (Arc::clone(&store), Arc::clone(&config), wakers.clone());
        async move {
            // The claim stays until it lapses: the item is tried again then.
            if let Err(error) = deliver_one(&store, &config, &wakers, &item).await {
                tracing::warn!(id = %item.id, %error, "cannot record a delivery's outcome; it is tried again later");
            }
        }
    };
    crate::workers::lanes::run_lanes(lanes, wake, fetch, work).await;
}

/// Delivers one queued item and records the outcome. Safe to call from several
/// tasks at once with clones of one `config` (they share its pool).
pub async fn deliver_one(
    store: &Store,
    config: &DeliveryConfig,
    wakers: &Wakers,
    item: &OutboundItem,
) -> Result<(), store::Error> {
    if !matches!(config.route, Route::Outbox(_))
        && let Err(at) = config.rates.take(&item.rcpt_to, store.now())
    {
        tracing::debug!(id = %item.id, at, "over the destination's rate: postponed");
        return store.queue().postpone_outbound(&item.id, at).await;
    }
    if let Some(copy) = &item.direct {
        return direct::deliver(store, config, item, copy).await;
    }
    // A delivery that outlasts its lease keeps its claim (`store/src/claims.rs`).
    let send = async {
        match &config.route {
            Route::Outbox(dir) => to_outbox(store, dir, item).await,
            Route::Smarthost(host) => to_smarthost(store, &config.pool, host, &config.hostname, item).await,
            Route::Mx(mx) => to_mx(store, &config.pool, mx, &config.hostname, item).await,
        }
    };
    let result = store.queue().renewing(Claim::Delivery(&item.id), send).await;
    let age = store.now() - item.created_at;
    let outcome = match result {
        Ok(()) => DeliveryOutcome::Delivered,
        Err(Failure::Temporary(error)) if age < config.retry.give_up_after => {
            let at = store.now() + backoff(item.attempts);
            if config.retry.delay_notice_after.is_some_and(|after| age >= after)
                && store.queue().claim_delay_notice(&item.id).await?
            {
                let until = item.created_at + config.retry.give_up_after;
                crate::dsn::queue(
                    store,
                    config.reporter(),
                    item,
                    crate::dsn::Action::Delayed { until },
                    &error,
                )
                .await;
                wakers.delivery.notify_one();
            }
            DeliveryOutcome::Retry { at, error }
        }
        Err(Failure::Temporary(error)) => {
            let error = format!("{error} (gave up after {} hours)", config.retry.give_up_after / 3600);
            crate::dsn::queue(store, config.reporter(), item, crate::dsn::Action::Expired, &error).await;
            wakers.delivery.notify_one();
            DeliveryOutcome::Failed { error }
        }
        Err(Failure::Permanent(error)) => {
            crate::dsn::queue(store, config.reporter(), item, crate::dsn::Action::Failed, &error).await;
            wakers.delivery.notify_one();
            DeliveryOutcome::Failed { error }
        }
    };
    telemetry::metrics().delivery(match &outcome {
        DeliveryOutcome::Delivered => telemetry::Delivery::Delivered,
        DeliveryOutcome::Retry { .. } => telemetry::Delivery::Deferred,
        DeliveryOutcome::Failed { .. } => telemetry::Delivery::Bounced,
    });
    if matches!(outcome, DeliveryOutcome::Delivered) {
        telemetry::latency::delivered(&item.id);
    }
    match &outcome {
        DeliveryOutcome::Delivered => tracing::info!(id = %item.id, "delivered"),
        // The remote text often names the recipient: the log gets the codes only.
        DeliveryOutcome::Retry { error, .. } => {
            let error = store::redact::delivery_error_summary(error);
            tracing::warn!(id = %item.id, %error, "delivery deferred");
        }
        DeliveryOutcome::Failed { error } => {
            let error = store::redact::delivery_error_summary(error);
            tracing::warn!(id = %item.id, %error, "delivery failed");
        }
    }
    // If this fails the item stays due: the caller backs off before the next pass.
    store.queue().outbound_done(item, &outcome).await
}

/// The queued message as it streams out, markers stripped where it passes
/// through. A read or authentication error ends the stream with that error, so a
/// damaged queue file is never delivered cut short.
pub(crate) type Body = futures::stream::BoxStream<'static, Result<Vec<u8>, Failure>>;

pub(crate) async fn body_stream(store: &Store, item: &OutboundItem) -> Result<Body, Failure> {
    let unreadable = |e: store::Error| Failure::Temporary(format!("cannot read queued message: {e}"));
    let stream = store.queue().outbound_body(item).await.map_err(unreadable)?;
    let stripper = item.strip_markers.then(MarkerStripper::default);
    let body = futures::stream::try_unfold(Some((stream, stripper)), move |state| async move {
        let Some((mut stream, mut stripper)) = state else {
            return Ok(None);
        };
        let Some(chunk) = stream.next().await else {
            let mut tail = Vec::new();
            if let Some(stripper) = stripper {
                stripper.finish(&mut tail);
            }
            return Ok(Some((tail, None)));
        };
        let chunk = chunk.map_err(unreadable)?;
        let out = match stripper.as_mut() {
            Some(stripper) => {
                let mut out = Vec::with_capacity(chunk.len());
                stripper.push(&chunk, &mut out);
                out
            }
            None => chunk.to_vec(),
        };
        Ok(Some((out, Some((stream, stripper)))))
    });
    Ok(body.boxed())
}

async fn to_outbox(store: &Store, dir: &std::path::Path, item: &OutboundItem) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure::Temporary(format!("outbox: {e}"));
    for sub in ["tmp", "new", "cur"] {
        tokio::fs::create_dir_all(dir.join(sub)).await.map_err(io)?;
    }
    let name = format!("{}.{}.sealpost", store.now(), item.id);
    let tmp = dir.join("tmp").join(&name);
    let mut file = tokio::fs::File::create(&tmp).await.map_err(io)?;
    let envelope = format!(
        "Return-Path: <{}>\r\nDelivered-To: {}\r\n",
        item.mail_from, item.rcpt_to
    );
    file.write_all(envelope.as_bytes()).await.map_err(io)?;
    let mut body = body_stream(store, item).await?;
    while let Some(chunk) = body.next().await {
        file.write_all(&chunk?).await.map_err(io)?;
    }
    file.sync_all().await.map_err(io)?;
    tokio::fs::rename(&tmp, dir.join("new").join(&name)).await.map_err(io)?;
    Ok(())
}

async fn to_smarthost(
    store: &Store,
    pool: &Pool,
    host: &Smarthost,
    hostname: &str,
    item: &OutboundItem,
) -> Result<(), Failure> {
    check_addresses(item)?;
    pool.send(host, hostname, &item.mail_from, &item.rcpt_to, || {
        body_stream(store, item)
    })
    .await
}

async fn to_mx(store: &Store, pool: &Pool, mx: &Mx, hostname: &str, item: &OutboundItem) -> Result<(), Failure> {
    check_addresses(item)?;
    // The client's errors name a "smarthost"; here it is an MX host.
    let words = |text: String| match text.strip_prefix("smarthost") {
        Some(rest) => format!("MX host{rest}"),
        None => text,
    };
    let mut sessions = Vec::new();
    let result = mx
        .send(
            pool,
            store.now(),
            hostname,
            &item.mail_from,
            &item.rcpt_to,
            &mut sessions,
            || body_stream(store, item),
        )
        .await;
    // TLS-RPT's counts (when on): a count that cannot be written is only logged.
    let day = store.now().div_euclid(86_400);
    for session in &sessions {
        if let Err(error) = store.queue().record_tls_session(day, session).await {
            tracing::warn!(%error, "cannot note a TLS session for TLS-RPT");
        }
    }
    result.map_err(|failure| match failure {
        Failure::Temporary(text) => Failure::Temporary(words(text)),
        Failure::Permanent(text) => Failure::Permanent(words(text)),
    })
}

/// An address that could break the SMTP command it goes into is refused.
fn check_addresses(item: &OutboundItem) -> Result<(), Failure> {
    for address in [&item.mail_from, &item.rcpt_to] {
        if address
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>')
        {
            return Err(Failure::Permanent(format!("unusable address {address:?}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0), 60);
        assert_eq!(backoff(1), 120);
        assert_eq!(backoff(3), 480);
        assert_eq!(backoff(20), 4 * 3600);
    }
}

#[cfg(test)]
mod pool_bench;
#[cfg(test)]
mod pool_tests;
#[cfg(test)]
mod test_server;
