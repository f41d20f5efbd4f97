//! The Stripe provider against a local HTTP server written here that speaks
//! the documented shapes (`POST /v1/checkout/sessions`, `POST
//! /v1/subscriptions/{id}`, form-encoded, Bearer key; JSON answers) and
//! webhooks signed as Stripe signs them (`Stripe-Signature: t=…,v1=…`). A
//! completed checkout starts the plan; a replayed event changes nothing; a
//! bad, missing or stale signature is refused and changes nothing; a renewal
//! adds an invoice and extends the period; a failed renewal lapses at the
//! period's end; cancelling tells Stripe to stop at period end.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use sealpost::config::BillingProvider;
use serde_json::{Value, json};
use store::Clock as _;
use store::accounts::Role;
use store::billing::PlanStatus;
use store::billing::signature::sign;

use super::billing::{post_form, signed_in_user};
use super::harness::Instance;

const KEY: &str = "sk_test_fake";
const SECRET: &str = "whsec_test_fake";

/// What the fake Stripe was asked: (path, form fields).
type Seen = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

struct FakeStripe {
    addr: SocketAddr,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn authorised(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {KEY}"))
}

async fn start_fake_stripe() -> FakeStripe {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let sessions = {
        let seen = Arc::clone(&seen);
        move |headers: HeaderMap, Form(form): Form<Vec<(String, String)>>| async move {
            if !authorised(&headers) {
                return (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({ "error": { "type": "invalid_request_error" } })),
                );
            }
            let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            if field("mode").as_deref() != Some("subscription")
                || field("line_items[0][price_data][unit_amount]").is_none()
            {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({ "error": { "type": "invalid_request_error" } })),
                );
            }
            seen.lock().unwrap().push(("/v1/checkout/sessions".into(), form));
            (
                StatusCode::OK,
                Json(
                    json!({ "id": "cs_test_1", "object": "checkout.session", "url": format!("http://{addr}/pay/cs_test_1") }),
                ),
            )
        }
    };
    let subscriptions = {
        let seen = Arc::clone(&seen);
        move |Path(id): Path<String>, headers: HeaderMap, Form(form): Form<Vec<(String, String)>>| async move {
            if !authorised(&headers) {
                return (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({ "error": { "type": "invalid_request_error" } })),
                );
            }
            seen.lock().unwrap().push((format!("/v1/subscriptions/{id}"), form));
            (
                StatusCode::OK,
                Json(json!({ "id": id, "object": "subscription", "cancel_at_period_end": true })),
            )
        }
    };
    let app = Router::new()
        .route("/v1/checkout/sessions", post(sessions))
        .route("/v1/subscriptions/{id}", post(subscriptions))
        .route("/pay/{id}", get(|| async { "Stripe test checkout page" }))
        .with_state(());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    FakeStripe { addr, seen, task }
}

/// Posts an event to the webhook, signed at `t` with `secret`.
async fn deliver(instance: &Instance, event: &Value, secret: &str, t: i64) -> (u16, Value) {
    let body = event.to_string();
    let signature = format!("t={t},v1={}", sign(secret, t, body.as_bytes()));
    let response = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .post(instance.url("/billing/stripe/webhook"))
        .header("stripe-signature", signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn event(id: &str, kind: &str, object: Value) -> Value {
    json!({ "id": id, "object": "event", "type": kind, "data": { "object": object } })
}

#[tokio::test]
async fn stripe_checkout_webhooks_renewals_failures_replays_and_cancel() {
    let stripe = start_fake_stripe().await;
    let api = format!("http://{}", stripe.addr);
    let instance = Instance::start_with(|config| {
        config.billing.provider = BillingProvider::Stripe;
        config.billing.stripe_api_url = api;
        config.billing.stripe_secret_key = KEY.into();
        config.billing.stripe_webhook_secret = SECRET.into();
    })
    .await;
    let (doc, http) = signed_in_user(&instance, "doc@smiles.example", Role::Doctor, false).await;
    let billing = instance.store().billing();

    // Buy now goes to Stripe's page, not a card form here.
    let to_stripe = post_form(
        &http,
        &instance,
        "/billing/buy",
        "/billing/buy",
        &[("product", "securemail"), ("period", "monthly")],
    )
    .await;
    assert_eq!(to_stripe.url().path(), "/pay/cs_test_1");
    let (checkout, form) = {
        let seen = stripe.seen.lock().unwrap();
        let (path, form) = seen.last().unwrap().clone();
        assert_eq!(path, "/v1/checkout/sessions");
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap();
        (field("client_reference_id"), form)
    };
    let has = |k: &str, v: &str| form.iter().any(|(a, b)| a == k && b == v);
    assert!(
        has("line_items[0][price_data][unit_amount]", "1000")
            && has("line_items[0][price_data][recurring][interval]", "month")
    );
    assert!(has("customer_email", "doc@smiles.example"));
    assert!(
        !instance.store().accounts().user(doc.id).await.unwrap().paid,
        "not paid before Stripe says so"
    );

    let now = instance.clock.now();
    let completed = event(
        "evt_checkout",
        "checkout.session.completed",
        json!({ "id": "cs_test_1", "object": "checkout.session", "client_reference_id": checkout, "subscription": "sub_1", "payment_status": "paid" }),
    );
    // Forged (wrong secret), unsigned, stale: refused, nothing changes.
    assert_eq!(deliver(&instance, &completed, "whsec_wrong", now).await.0, 400);
    assert_eq!(deliver(&instance, &completed, SECRET, now - 301).await.0, 400);
    let unsigned = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .post(instance.url("/billing/stripe/webhook"))
        .body(completed.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 400);
    assert!(!instance.store().accounts().user(doc.id).await.unwrap().paid);

    let (status, answer) = deliver(&instance, &completed, SECRET, now).await;
    assert_eq!((status, answer["outcome"].as_str()), (200, Some("plan started")));
    assert!(instance.store().accounts().user(doc.id).await.unwrap().paid);
    // Replayed (Stripe retries): acknowledged, nothing more.
    let (status, answer) = deliver(&instance, &completed, SECRET, now).await;
    assert_eq!((status, answer["duplicate"].as_bool()), (200, Some(true)));
    assert_eq!(billing.invoices_paid_by(doc.id).await.unwrap().len(), 1);

    // A renewal: a second invoice, the period extended; replaying it adds none.
    let plan = billing.plan_by_ref("sub_1").await.unwrap();
    let next_end = plan.period_end + 30 * 86_400;
    let renewal = event(
        "evt_renew",
        "invoice.paid",
        json!({ "object": "invoice", "subscription": "sub_1", "billing_reason": "subscription_cycle", "amount_paid": 1000, "currency": "usd",
                "lines": { "data": [ { "period": { "start": plan.period_end, "end": next_end } } ] } }),
    );
    assert_eq!(deliver(&instance, &renewal, SECRET, now).await.0, 200);
    assert_eq!(deliver(&instance, &renewal, SECRET, now).await.0, 200);
    assert_eq!(billing.invoices_paid_by(doc.id).await.unwrap().len(), 2);
    assert_eq!(billing.plan(plan.id).await.unwrap().period_end, next_end);

    // The next renewal fails: still paid until the period's end, then free.
    let failed = event(
        "evt_fail",
        "invoice.payment_failed",
        json!({ "object": "invoice", "subscription": "sub_1" }),
    );
    assert_eq!(deliver(&instance, &failed, SECRET, now).await.0, 200);
    assert_eq!(billing.plan(plan.id).await.unwrap().status, PlanStatus::PastDue);
    assert!(instance.store().accounts().user(doc.id).await.unwrap().paid);
    let messaging = http
        .get(instance.url("/account/messaging"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(messaging.contains("Payment failed, ends on"), "{messaging}");

    // Cancelling tells Stripe to stop at period end.
    let plan_id = plan.id.to_string();
    let confirm = format!("/account/messaging/cancel?plan={plan_id}");
    let cancelled = post_form(
        &http,
        &instance,
        &confirm,
        "/account/messaging/cancel",
        &[("plan", &plan_id)],
    )
    .await;
    assert_eq!(cancelled.url().path(), "/account/messaging");
    {
        let seen = stripe.seen.lock().unwrap();
        let (path, form) = seen.last().unwrap();
        assert_eq!(path, "/v1/subscriptions/sub_1");
        assert!(form.iter().any(|(k, v)| k == "cancel_at_period_end" && v == "true"));
    }

    instance.clock.advance(next_end - now + 1);
    assert_eq!(billing.end_lapsed().await.unwrap(), 1);
    assert!(!instance.store().accounts().user(doc.id).await.unwrap().paid);
    // An event for a subscription we don't know is acknowledged and ignored.
    let stranger = event(
        "evt_other",
        "invoice.payment_failed",
        json!({ "object": "invoice", "subscription": "sub_unknown" }),
    );
    let (status, answer) = deliver(&instance, &stranger, SECRET, instance.clock.now()).await;
    assert_eq!((status, answer["outcome"].as_str()), (200, Some("unknown")));
}
