//! `/account/messaging`: the account's plan state (paid or free, and why),
//! "Buy now", the plans the viewer pays for (their own and those bought for
//! others) and cancelling one with a confirmation. A cancelled plan runs to
//! the end of its paid period; cancelling SecureMail cancels the same user's
//! Outlook plan too. The buy page (`billing_buy.rs`), invoices
//! (`billing_invoices.rs`) and Stripe (`billing_stripe.rs`) are beside it.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use store::billing::{Plan, PlanStatus, Product, ProviderSettings, money};

use super::{Nav, billing_buy, billing_invoices, billing_stripe, html};
use crate::routes::{Group, Routes};
use crate::session::Viewer;
use crate::time::Shown;
use crate::{AppState, Error};

/// The billing pages and Stripe's webhook.
pub fn routes() -> Routes {
    Routes::new()
        .group(
            Group::signed_in()
                .get("/account/messaging", show)
                .get("/account/messaging/cancel", confirm_cancel)
                .post("/account/messaging/cancel", cancel)
                .get("/billing/buy", billing_buy::show)
                .post("/billing/buy", billing_buy::buy)
                .get("/account/invoices", billing_invoices::list)
                .get("/account/invoices/{number}", billing_invoices::show)
                .post("/account/invoices/email", billing_invoices::email),
        )
        .group(
            Group::exempt("Stripe's webhook: no cookie; believed only with a valid Stripe-Signature")
                .post("/billing/stripe/webhook", billing_stripe::webhook),
        )
}

/// `?bought=ID`, `?cancelled=N`, `?checkout=done`: what just happened.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Done {
    bought: String,
    cancelled: String,
    checkout: String,
}

struct PlanRow {
    id: i64,
    who: String,
    mine: bool,
    plan: String,
    price: String,
    status: String,
    until: Shown,
    cancellable: bool,
}

#[derive(Template)]
#[template(path = "billing_messaging.html")]
struct MessagingPage {
    nav: Option<Nav>,
    paid: bool,
    /// A doctor or staff member of a practice: plans are for them.
    may_buy: bool,
    lapsed: Option<Shown>,
    has_outlook: bool,
    done: Option<String>,
    plans: Vec<PlanRow>,
}

fn status_words(status: PlanStatus) -> &'static str {
    match status {
        PlanStatus::Active => "Renews on",
        PlanStatus::Cancelled => "Cancelled, ends on",
        PlanStatus::PastDue => "Payment failed, ends on",
        PlanStatus::Ended => "Ended on",
    }
}

/// A day in the viewer's time zone, short enough for a phone's table:
/// `14 Feb 2027` (the machine-readable part keeps the time).
fn day(viewer: &Viewer, seconds: i64) -> Shown {
    let shown = viewer.zone.show(seconds);
    let local = chrono::DateTime::<chrono::Utc>::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .with_timezone(&viewer.zone.tz);
    Shown {
        text: local.format("%-d %b %Y").to_string(),
        machine: shown.machine,
    }
}

/// `GET /account/messaging`
pub async fn show(State(state): State<AppState>, viewer: Viewer, Query(done): Query<Done>) -> Result<Response, Error> {
    let billing = state.store.billing();
    let user = &viewer.user;
    let plans = billing
        .plans_paid_by(user.id)
        .await?
        .into_iter()
        .map(|line| PlanRow {
            id: line.plan.id,
            mine: line.plan.user_id == user.id,
            who: if line.user_name.is_empty() {
                line.user_email.clone()
            } else {
                format!("{} ({})", line.user_name, line.user_email)
            },
            plan: format!(
                "{} ({})",
                line.plan.product.label(),
                line.plan.period.label().to_lowercase()
            ),
            price: money(line.plan.amount_cents, &line.plan.currency),
            status: status_words(line.plan.status).to_owned(),
            until: day(&viewer, line.plan.period_end),
            cancellable: matches!(line.plan.status, PlanStatus::Active | PlanStatus::PastDue),
        })
        .collect();
    let done = if !done.bought.is_empty() {
        let plan = done.bought.parse::<i64>().ok();
        match plan {
            Some(id) => match billing.plan(id).await {
                Ok(plan) if plan.payer_id == user.id && plan.user_id == user.id => {
                    Some(format!("Thank you: {} is yours now.", plan.product.label()))
                }
                Ok(plan) if plan.payer_id == user.id => {
                    let who = state.store.accounts().user(plan.user_id).await?;
                    Some(format!(
                        "Thank you: {} for {} started.",
                        plan.product.label(),
                        who.email
                    ))
                }
                _ => None,
            },
            None => None,
        }
    } else if !done.cancelled.is_empty() {
        Some("Cancelled. The plan runs to the end of its paid period; then the account is free again and can still reply to what it receives.".to_owned())
    } else if done.checkout == "done" {
        Some("Thank you. Your plan starts as soon as the payment service confirms the payment, usually within seconds: reload this page to see it.".to_owned())
    } else {
        None
    };
    let page = MessagingPage {
        nav: Some(viewer.nav()),
        paid: user.paid,
        may_buy: user.may_send_secure() != Err(store::accounts::SenderRefusal::NotPracticeUser),
        lapsed: billing.lapsed_at(user).await?.map(|at| viewer.zone.show(at)),
        has_outlook: billing.live_plan(user.id, Product::Outlook).await?.is_some(),
        done,
        plans,
    };
    html(StatusCode::OK, &page)
}

/// `?plan=ID` (GET) or `plan=ID` (the confirmed form).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CancelForm {
    plan: String,
}

#[derive(Template)]
#[template(path = "billing_cancel.html")]
struct CancelPage {
    nav: Option<Nav>,
    plan_id: i64,
    plan: String,
    who: String,
    until: Shown,
    also_outlook: bool,
    error: Option<String>,
}

/// The viewer's plan that may be cancelled, and the Outlook plan that goes with it.
async fn cancellable(state: &AppState, viewer: &Viewer, plan: &str) -> Result<(Plan, Option<Plan>), Error> {
    let id = plan.parse::<i64>().map_err(|_| Error::NotFound)?;
    let plan = state.store.billing().plan(id).await?;
    if plan.payer_id != viewer.user.id || !matches!(plan.status, PlanStatus::Active | PlanStatus::PastDue) {
        return Err(Error::NotFound);
    }
    let outlook = if plan.product == Product::SecureMail {
        state
            .store
            .billing()
            .live_plan(plan.user_id, Product::Outlook)
            .await?
            .filter(|o| o.status != PlanStatus::Cancelled)
    } else {
        None
    };
    Ok((plan, outlook))
}

async fn cancel_page(
    state: &AppState,
    viewer: &Viewer,
    plan: &Plan,
    outlook: bool,
    error: Option<String>,
) -> Result<CancelPage, Error> {
    let who = state.store.accounts().user(plan.user_id).await?;
    Ok(CancelPage {
        nav: Some(viewer.nav()),
        plan_id: plan.id,
        plan: format!("{} ({})", plan.product.label(), plan.period.label().to_lowercase()),
        who: if who.id == viewer.user.id {
            "you".to_owned()
        } else {
            who.email.clone()
        },
        until: viewer.zone.show(plan.period_end),
        also_outlook: outlook,
        error,
    })
}

/// `GET /account/messaging/cancel?plan=ID`: asks to confirm, saying what else ends.
pub async fn confirm_cancel(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(form): Query<CancelForm>,
) -> Result<Response, Error> {
    let (plan, outlook) = cancellable(&state, &viewer, &form.plan).await?;
    html(
        StatusCode::OK,
        &cancel_page(&state, &viewer, &plan, outlook.is_some(), None).await?,
    )
}

/// `POST /account/messaging/cancel`: the provider first (so nobody is charged
/// for a plan we show as cancelled), then the plans here.
pub async fn cancel(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<CancelForm>,
) -> Result<Response, Error> {
    let (plan, outlook) = cancellable(&state, &viewer, &form.plan).await?;
    if let ProviderSettings::Stripe(stripe) = &state.store.policy().billing.provider {
        for p in std::iter::once(&plan).chain(outlook.as_ref()) {
            if p.provider_ref.is_empty() {
                continue;
            }
            if let Err(problem) = billing_stripe::cancel_at_period_end(stripe, &p.provider_ref).await {
                tracing::warn!(%problem, plan = p.id, "stripe cancel failed");
                let page = cancel_page(
                    &state,
                    &viewer,
                    &plan,
                    outlook.is_some(),
                    Some("The payment service could not be reached, so nothing was cancelled. Please try again in a few minutes.".into()),
                )
                .await?;
                return html(StatusCode::BAD_GATEWAY, &page);
            }
        }
    }
    let cancelled = state.store.billing().cancel(&viewer.user, plan.id).await?;
    Ok(Redirect::to(&format!("/account/messaging?cancelled={}", cancelled.len())).into_response())
}
