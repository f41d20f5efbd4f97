//! "Buy now": a free account buys SecureMail (or the Outlook add-in) for
//! itself, or a User Manager buys it for one of their practice's users
//! (`?for=ID`). With the `dev` provider the page takes a test card and the
//! plan starts at once; with Stripe it hands over to a Checkout Session and
//! the plan starts when Stripe's signed webhook says the payment went through.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use store::billing::{Period, Product, ProviderSettings, money};
use store::ids::UserId;

use super::billing_stripe;
use super::{Nav, html};
use crate::session::Viewer;
use crate::{AppState, Error};

/// `?product=securemail&period=monthly&for=ID` (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BuyQuery {
    product: String,
    period: String,
    #[serde(rename = "for")]
    for_user: String,
}

/// The posted form: the same choices and, for the dev provider, the card.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BuyForm {
    product: String,
    period: String,
    #[serde(rename = "for")]
    for_user: String,
    card_number: String,
    card_expiry: String,
    card_cvc: String,
}

struct PeriodOption {
    value: &'static str,
    label: String,
    checked: bool,
}

#[derive(Template)]
#[template(path = "billing_buy.html")]
struct BuyPage {
    nav: Option<Nav>,
    product: &'static str,
    product_value: &'static str,
    /// Whose plan it is, when a User Manager buys for someone else.
    for_someone: Option<String>,
    for_user: String,
    periods: Vec<PeriodOption>,
    /// The dev provider asks for a test card here; Stripe asks on its own page.
    dev: bool,
    error: Option<String>,
}

fn choices(product: &str, period: &str) -> (Product, Period) {
    (
        Product::parse(product).unwrap_or(Product::SecureMail),
        Period::parse(period).unwrap_or(Period::Monthly),
    )
}

/// Whom the plan is for: the viewer, or `for` (a User Manager's user).
fn target(viewer: &Viewer, for_user: &str) -> Result<UserId, Error> {
    if for_user.is_empty() {
        return Ok(viewer.user.id);
    }
    for_user.parse::<i64>().map(UserId).map_err(|_| Error::NotFound)
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    product: Product,
    period: Period,
    for_user: UserId,
    error: Option<String>,
) -> Result<BuyPage, Error> {
    let user = state
        .store
        .billing()
        .check_purchase(&viewer.user, for_user, product)
        .await?;
    let prices = &state.store.policy().billing.prices;
    let periods = [Period::Monthly, Period::Annual]
        .into_iter()
        .map(|p| PeriodOption {
            value: p.as_str(),
            label: format!(
                "{}: {} per {}",
                p.label(),
                money(prices.of(product, p), &prices.currency),
                if p == Period::Monthly { "month" } else { "year" }
            ),
            checked: p == period,
        })
        .collect();
    Ok(BuyPage {
        nav: Some(viewer.nav()),
        product: product.label(),
        product_value: product.as_str(),
        for_someone: (user.id != viewer.user.id).then(|| format!("{} ({})", user.display_name(), user.email)),
        for_user: if user.id == viewer.user.id {
            String::new()
        } else {
            user.id.0.to_string()
        },
        periods,
        dev: matches!(state.store.policy().billing.provider, ProviderSettings::Dev),
        error,
    })
}

/// `GET /billing/buy`: what it costs and how to pay. Someone who can't buy
/// (already paid for, not a practice user) is told why.
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<BuyQuery>,
) -> Result<Response, Error> {
    let (product, period) = choices(&query.product, &query.period);
    let for_user = target(&viewer, &query.for_user)?;
    html(
        StatusCode::OK,
        &page(&state, &viewer, product, period, for_user, None).await?,
    )
}

/// `POST /billing/buy`: pays with a dev test card (the plan starts at once)
/// or goes to Stripe Checkout.
pub async fn buy(State(state): State<AppState>, viewer: Viewer, Form(form): Form<BuyForm>) -> Result<Response, Error> {
    let (Some(product), Some(period)) = (Product::parse(&form.product), Period::parse(&form.period)) else {
        return Err(Error::BadRequest("Please choose a plan and how often to pay.".into()));
    };
    let for_user = target(&viewer, &form.for_user)?;
    let billing = state.store.billing();
    match &state.store.policy().billing.provider {
        ProviderSettings::Dev => {
            if let Err(problem) = dev_card(&form.card_number, &form.card_expiry, &form.card_cvc, state.store.now()) {
                let page = page(&state, &viewer, product, period, for_user, Some(problem.into())).await?;
                return html(StatusCode::PAYMENT_REQUIRED, &page);
            }
            let plan = billing.start_plan(&viewer.user, for_user, product, period, "").await?;
            tracing::info!(plan = plan.id, product = product.as_str(), "plan bought");
            Ok(Redirect::to(&format!("/account/messaging?bought={}", plan.id)).into_response())
        }
        ProviderSettings::Stripe(stripe) => {
            let checkout = billing.start_checkout(&viewer.user, for_user, product, period).await?;
            let user = state.store.accounts().user(for_user).await?;
            let url = billing_stripe::create_checkout_session(
                stripe,
                &state.config.public_url,
                &checkout,
                &viewer.user.email,
                &user,
                product,
                period,
                &state.store.policy().billing.prices,
            )
            .await
            .map_err(|problem| {
                tracing::warn!(%problem, "stripe checkout session failed");
                Error::BadRequest(
                    "The payment service could not be reached. Nothing was charged; please try again in a few minutes."
                        .into(),
                )
            })?;
            Ok(Redirect::to(&url).into_response())
        }
    }
}

/// The dev provider's test cards (no network): `4242 4242 4242 4242` pays,
/// `4000 0000 0000 0002` is declined, any other number is refused; the
/// expiry must be a future `MM/YY` and the CVC 3 or 4 digits.
pub fn dev_card(number: &str, expiry: &str, cvc: &str, now: i64) -> Result<(), &'static str> {
    let digits: String = number.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    if digits.len() < 12 || digits.len() > 19 || !digits.chars().all(|c| c.is_ascii_digit()) || !luhn(&digits) {
        return Err("That is not a card number. Please check the digits.");
    }
    let (month, year) = expiry.trim().split_once('/').unwrap_or(("", ""));
    let (Ok(month), Ok(year)) = (month.trim().parse::<u32>(), year.trim().parse::<i32>()) else {
        return Err("Please give the card's expiry as MM/YY.");
    };
    let year = if year < 100 { 2000 + year } else { year };
    let today = chrono::DateTime::<chrono::Utc>::from_timestamp(now, 0).unwrap_or_default();
    use chrono::Datelike;
    if !(1..=12).contains(&month) || (year, month) < (today.year(), today.month()) {
        return Err("This card has expired, or the expiry is not a month.");
    }
    let cvc = cvc.trim();
    if !(3..=4).contains(&cvc.len()) || !cvc.chars().all(|c| c.is_ascii_digit()) {
        return Err("The security code is the 3 or 4 digits on the card.");
    }
    match digits.as_str() {
        "4242424242424242" => Ok(()),
        "4000000000000002" => Err("The card was declined. Nothing was charged."),
        _ => Err("This server takes test cards only (dev provider): use 4242 4242 4242 4242."),
    }
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

#[cfg(test)]
mod tests {
    use super::dev_card;

    const NOW: i64 = 1_796_000_000; // Nov 2026

    #[test]
    fn the_dev_provider_takes_test_cards_only() {
        assert_eq!(dev_card("4242 4242 4242 4242", "12/30", "123", NOW), Ok(()));
        assert!(
            dev_card("4000 0000 0000 0002", "12/30", "123", NOW)
                .unwrap_err()
                .contains("declined")
        );
        assert!(
            dev_card("4242 4242 4242 4241", "12/30", "123", NOW)
                .unwrap_err()
                .contains("not a card number")
        );
        assert!(
            dev_card("5555 5555 5555 4444", "12/30", "123", NOW)
                .unwrap_err()
                .contains("test cards only")
        );
        assert!(
            dev_card("4242424242424242", "01/20", "123", NOW)
                .unwrap_err()
                .contains("expired")
        );
        assert!(
            dev_card("4242424242424242", "13/30", "123", NOW)
                .unwrap_err()
                .contains("expired")
        );
        assert!(
            dev_card("4242424242424242", "soon", "123", NOW)
                .unwrap_err()
                .contains("MM/YY")
        );
        assert!(
            dev_card("4242424242424242", "12/30", "12a", NOW)
                .unwrap_err()
                .contains("security code")
        );
        assert!(dev_card("<script>", "12/30", "123", NOW).is_err());
    }
}
