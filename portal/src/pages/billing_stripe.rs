//! The Stripe provider: a Checkout Session for the card (`POST
//! /v1/checkout/sessions`, a subscription at the configured price), cancelling
//! at period end (`POST /v1/subscriptions/{id}`), and the webhook
//! (`POST /billing/stripe/webhook`) that starts plans, renews them, marks a
//! failed renewal and ends a deleted subscription. A webhook is believed only
//! with a valid `Stripe-Signature` inside the tolerance, and each event id is
//! handled once, however often it is delivered.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use store::accounts::User;
use store::billing::signature::{self, SignatureError};
use store::billing::{Period, Prices, Product, ProviderSettings, StripeSettings};

use crate::AppState;

fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| e.to_string())
}

async fn post(
    stripe: &StripeSettings,
    path: &str,
    form: &[(&str, String)],
    idempotency: &str,
) -> Result<Value, String> {
    let response = client()?
        .post(format!("{}{path}", stripe.api_url))
        .bearer_auth(stripe.secret_key.expose())
        .header("Idempotency-Key", idempotency)
        .form(form)
        .send()
        .await
        .map_err(|e| format!("stripe: {e}"))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| format!("stripe answer: {e}"))?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|e| format!("stripe answer: {e}"))?;
    if !status.is_success() {
        let kind = body["error"]["type"].as_str().unwrap_or("unknown");
        return Err(format!("stripe answered {status} ({kind})"));
    }
    Ok(body)
}

/// Creates the Checkout Session for a purchase; the URL to send the buyer to.
#[allow(clippy::too_many_arguments)]
pub async fn create_checkout_session(
    stripe: &StripeSettings,
    public_url: &str,
    checkout: &str,
    payer_email: &str,
    user: &User,
    product: Product,
    period: Period,
    prices: &Prices,
) -> Result<String, String> {
    let base = public_url.trim_end_matches('/');
    let form = [
        ("mode", "subscription".to_owned()),
        ("success_url", format!("{base}/account/messaging?checkout=done")),
        (
            "cancel_url",
            format!(
                "{base}/billing/buy?product={}&period={}",
                product.as_str(),
                period.as_str()
            ),
        ),
        ("client_reference_id", checkout.to_owned()),
        ("customer_email", payer_email.to_owned()),
        ("metadata[checkout]", checkout.to_owned()),
        ("subscription_data[metadata][checkout]", checkout.to_owned()),
        ("line_items[0][quantity]", "1".to_owned()),
        ("line_items[0][price_data][currency]", prices.currency.clone()),
        (
            "line_items[0][price_data][unit_amount]",
            prices.of(product, period).to_string(),
        ),
        (
            "line_items[0][price_data][recurring][interval]",
            if period == Period::Monthly { "month" } else { "year" }.to_owned(),
        ),
        (
            "line_items[0][price_data][product_data][name]",
            format!("{} for {}", product.label(), user.email),
        ),
    ];
    let session = post(stripe, "/v1/checkout/sessions", &form, checkout).await?;
    session["url"]
        .as_str()
        .filter(|url| url.starts_with("https://") || url.starts_with("http://"))
        .map(str::to_owned)
        .ok_or_else(|| "stripe: the session has no url".to_owned())
}

/// Tells Stripe a subscription ends at the end of its paid period.
pub async fn cancel_at_period_end(stripe: &StripeSettings, subscription: &str) -> Result<(), String> {
    if subscription.is_empty() || !subscription.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("not a subscription id".into());
    }
    let form = [("cancel_at_period_end", "true".to_owned())];
    post(
        stripe,
        &format!("/v1/subscriptions/{subscription}"),
        &form,
        &format!("cancel-{subscription}"),
    )
    .await?;
    Ok(())
}

fn problem(status: StatusCode, title: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({ "type": "about:blank", "title": title, "status": status.as_u16() }).to_string(),
    )
        .into_response()
}

/// The subscription an invoice belongs to (older and newer API versions).
fn invoice_subscription(invoice: &Value) -> Option<&str> {
    invoice["subscription"]
        .as_str()
        .or_else(|| invoice["parent"]["subscription_details"]["subscription"].as_str())
}

/// `POST /billing/stripe/webhook`: Stripe's events, signature first.
pub async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let ProviderSettings::Stripe(stripe) = &state.store.policy().billing.provider else {
        return problem(StatusCode::NOT_FOUND, "Stripe is not this server's payment provider");
    };
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Err(error) = signature::verify(
        stripe.webhook_secret.expose(),
        header,
        &body,
        state.store.now(),
        stripe.tolerance,
    ) {
        tracing::warn!(?error, "stripe webhook refused");
        let title = match error {
            SignatureError::Malformed => "Stripe-Signature header missing or malformed",
            SignatureError::Mismatch => "Stripe-Signature does not match",
            SignatureError::TooOld => "Stripe-Signature timestamp outside the tolerance",
        };
        return problem(StatusCode::BAD_REQUEST, title);
    }
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return problem(StatusCode::BAD_REQUEST, "the event is not JSON");
    };
    let (Some(id), Some(kind)) = (event["id"].as_str(), event["type"].as_str()) else {
        return problem(StatusCode::BAD_REQUEST, "the event has no id or type");
    };
    let billing = state.store.billing();
    match billing.claim_event(id).await {
        Ok(true) => {}
        Ok(false) => {
            return (
                StatusCode::OK,
                axum::Json(json!({ "received": true, "duplicate": true })),
            )
                .into_response();
        }
        Err(error) => {
            tracing::error!(%error, "stripe webhook: cannot record the event");
            return problem(StatusCode::INTERNAL_SERVER_ERROR, "try again");
        }
    }
    match handle(&state, kind, &event["data"]["object"]).await {
        Ok(outcome) => {
            tracing::info!(kind, outcome, "stripe event handled");
            (
                StatusCode::OK,
                axum::Json(json!({ "received": true, "outcome": outcome })),
            )
                .into_response()
        }
        Err(error) => {
            tracing::error!(%error, kind, "stripe event failed: given back for Stripe's retry");
            let _ = billing.release_event(id).await;
            problem(StatusCode::INTERNAL_SERVER_ERROR, "try again")
        }
    }
}

/// What one event does; the outcome word is for the log and the answer.
async fn handle(state: &AppState, kind: &str, object: &Value) -> Result<&'static str, store::Error> {
    let billing = state.store.billing();
    let not_found = |result: Result<&'static str, store::Error>| match result {
        Err(store::Error::NotFound) => Ok("unknown"),
        other => other,
    };
    match kind {
        "checkout.session.completed" => {
            if !matches!(object["payment_status"].as_str(), Some("paid" | "no_payment_required")) {
                return Ok("unpaid");
            }
            let checkout = object["client_reference_id"].as_str().unwrap_or("");
            let subscription = object["subscription"].as_str().unwrap_or("");
            not_found(
                billing
                    .complete_checkout(checkout, subscription)
                    .await
                    .map(|_| "plan started"),
            )
        }
        "invoice.paid" => {
            // The first invoice is the checkout's, already counted.
            if object["billing_reason"].as_str() == Some("subscription_create") {
                return Ok("first invoice");
            }
            let Some(subscription) = invoice_subscription(object) else {
                return Ok("no subscription");
            };
            let plan = match billing.plan_by_ref(subscription).await {
                Ok(plan) => plan,
                Err(store::Error::NotFound) => return Ok("unknown"),
                Err(e) => return Err(e),
            };
            let period_end = object["lines"]["data"][0]["period"]["end"]
                .as_i64()
                .unwrap_or(plan.period_end + plan.period.seconds());
            let amount = object["amount_paid"].as_i64().unwrap_or(plan.amount_cents);
            billing.renew(&plan, amount, period_end).await.map(|()| "renewed")
        }
        "invoice.payment_failed" => {
            let Some(subscription) = invoice_subscription(object) else {
                return Ok("no subscription");
            };
            match billing.plan_by_ref(subscription).await {
                Ok(plan) => billing.renewal_failed(&plan).await.map(|()| "past due"),
                Err(store::Error::NotFound) => Ok("unknown"),
                Err(e) => Err(e),
            }
        }
        "customer.subscription.deleted" => {
            let subscription = object["id"].as_str().unwrap_or("");
            match billing.plan_by_ref(subscription).await {
                Ok(plan) => billing.end_now(&plan).await.map(|()| "ended"),
                Err(store::Error::NotFound) => Ok("unknown"),
                Err(e) => Err(e),
            }
        }
        _ => Ok("ignored"),
    }
}
