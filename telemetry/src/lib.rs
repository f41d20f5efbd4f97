//! What an operator watches: the process's counters and latency histograms,
//! kept in one registry and written in the Prometheus text format by the admin
//! listener (`src/admin_http.rs`).
//!
//! Every label value is a `&'static str` chosen in our code (a listener's
//! name, an SMTP enhanced status code), so by its type no address, subject or
//! file name can reach a metric; the one exception, the audit action, is an
//! identifier our code writes and is checked to be one (`action_label`).

use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub mod latency;

/// One label, its value one of ours.
type Label = [(&'static str, &'static str); 1];

/// How a delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// A temporary failure: tried again later.
    Deferred,
    /// Given up: the sender gets a bounce.
    Bounced,
}

/// The process's metrics. One per process: [`metrics`].
pub struct Metrics {
    registry: Registry,
    accepted: Family<[(&'static str, &'static str); 2], Counter>,
    refused: Family<Label, Counter>,
    sealed: Counter,
    deliveries: Family<Label, Counter>,
    signins: Family<Label, Counter>,
    lockouts: Counter,
    sms: Family<Label, Counter>,
    events: Family<[(&'static str, String); 1], Counter>,
    queue_depth: Family<Label, Gauge>,
    queue_oldest: Family<Label, Gauge>,
    seal_latency: Histogram,
    notification_latency: Histogram,
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Buckets from 5 ms to about 82 s, doubling.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.005, 2.0, 15)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("sealpost");
        let metrics = Self {
            accepted: Family::default(),
            refused: Family::default(),
            sealed: Counter::default(),
            deliveries: Family::default(),
            signins: Family::default(),
            lockouts: Counter::default(),
            sms: Family::default(),
            events: Family::default(),
            queue_depth: Family::default(),
            queue_oldest: Family::default(),
            seal_latency: Histogram::new(latency_buckets()),
            notification_latency: Histogram::new(latency_buckets()),
            registry: Registry::default(),
        };
        registry.register(
            "smtp_accepted",
            "Messages accepted over SMTP (250 after DATA), by listener and kind (secure or pass_through)",
            metrics.accepted.clone(),
        );
        registry.register(
            "smtp_refused",
            "SMTP replies of 4xx or 5xx, by enhanced status code",
            metrics.refused.clone(),
        );
        registry.register(
            "messages_sealed",
            "Secure messages sealed into the store",
            metrics.sealed.clone(),
        );
        registry.register(
            "deliveries",
            "Outbound delivery attempts by outcome (delivered, deferred, bounced)",
            metrics.deliveries.clone(),
        );
        registry.register(
            "signins",
            "Sign-in attempts by outcome (success, failure, refused_locked, throttled)",
            metrics.signins.clone(),
        );
        registry.register(
            "lockouts",
            "Accounts locked after too many failed sign-ins",
            metrics.lockouts.clone(),
        );
        registry.register(
            "sms",
            "Texts and calls with codes, by result (sent, failed)",
            metrics.sms.clone(),
        );
        registry.register(
            "audit_events",
            "Audit log entries written, by action",
            metrics.events.clone(),
        );
        registry.register(
            "queue_depth",
            "Items waiting, by queue (sealing, notifications, outbound)",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "queue_oldest_age_seconds",
            "Age of the oldest item waiting, by queue",
            metrics.queue_oldest.clone(),
        );
        registry.register(
            "seal_latency_seconds",
            "From the end of DATA to the message sealed",
            metrics.seal_latency.clone(),
        );
        registry.register(
            "notification_latency_seconds",
            "From the end of DATA to a notification of it handed to the next server",
            metrics.notification_latency.clone(),
        );
        Self { registry, ..metrics }
    }

    /// A message got its 250: `listener` is `relay` or `submission`.
    pub fn accepted(&self, listener: &'static str, secure: bool) {
        let kind = if secure { "secure" } else { "pass_through" };
        self.accepted
            .get_or_create(&[("listener", listener), ("kind", kind)])
            .inc();
    }

    /// An SMTP reply of 4xx or 5xx; `status` is its enhanced status code.
    pub fn refused(&self, status: &'static str) {
        let status = if status.is_empty() { "none" } else { status };
        self.refused.get_or_create(&[("status", status)]).inc();
    }

    pub fn sealed(&self) {
        self.sealed.inc();
    }

    pub fn delivery(&self, outcome: Delivery) {
        let outcome = match outcome {
            Delivery::Delivered => "delivered",
            Delivery::Deferred => "deferred",
            Delivery::Bounced => "bounced",
        };
        self.deliveries.get_or_create(&[("outcome", outcome)]).inc();
    }

    pub fn sms(&self, sent: bool) {
        let result = if sent { "sent" } else { "failed" };
        self.sms.get_or_create(&[("result", result)]).inc();
    }

    /// An audit entry was written. Sign-ins and lockouts are counted from
    /// here, where every one of them is recorded whatever the channel
    /// (portal, SMTP AUTH, IMAP, SSO, passkeys).
    pub fn audit_event(&self, action: &str) {
        let label = action_label(action).unwrap_or_else(|| "other".to_owned());
        self.events.get_or_create(&[("action", label)]).inc();
        let signin = match action {
            "signin.success" | "signin.sso" | "signin.passkey" | "signin.app_password" => "success",
            "signin.failure" | "signin.sso_failure" | "signin.passkey_failure" => "failure",
            "signin.locked" => "refused_locked",
            "signin.throttled" => "throttled",
            "account.lock" => {
                self.lockouts.inc();
                return;
            }
            _ => return,
        };
        self.signins.get_or_create(&[("outcome", signin)]).inc();
    }

    /// Sets a queue's gauges (read from the database just before a scrape).
    pub fn queue(&self, queue: &'static str, depth: i64, oldest_age_seconds: i64) {
        self.queue_depth.get_or_create(&[("queue", queue)]).set(depth);
        self.queue_oldest
            .get_or_create(&[("queue", queue)])
            .set(oldest_age_seconds);
    }

    /// Everything in the Prometheus text format (OpenMetrics 1.0).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// An audit action as a label value: the actions are identifiers written in
/// our code (`message.view`, `signin.failure`): lower-case words joined by dots.
/// Anything else (there is none today) counts as `other`, so no text from a
/// person — an address has an `@`, a subject spaces or capitals — can get in.
fn action_label(action: &str) -> Option<String> {
    let word = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    (action.len() <= 48 && action.contains('.') && action.split('.').all(word)).then(|| action.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_with_their_labels_and_unknown_actions_as_other() {
        let metrics = Metrics::new();
        metrics.accepted("relay", true);
        metrics.accepted("relay", false);
        metrics.refused("5.7.1");
        metrics.audit_event("signin.failure");
        metrics.audit_event("account.lock");
        metrics.audit_event("someone@example.com");
        metrics.audit_event("Lab results.pdf");
        metrics.audit_event("message.view");
        metrics.queue("sealing", 3, 12);
        let text = metrics.encode();
        assert!(
            text.contains(r#"sealpost_smtp_accepted_total{listener="relay",kind="secure"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sealpost_smtp_refused_total{status="5.7.1"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sealpost_signins_total{outcome="failure"} 1"#),
            "{text}"
        );
        assert!(text.contains("sealpost_lockouts_total 1"), "{text}");
        assert!(!text.contains("example.com") && !text.contains("Lab"), "{text}");
        assert!(
            text.contains(r#"sealpost_audit_events_total{action="other"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sealpost_audit_events_total{action="message.view"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"sealpost_queue_depth{queue="sealing"} 3"#), "{text}");
    }
}
