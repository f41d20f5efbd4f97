//! `/account/invoices`: every payment the viewer made (for themself and for
//! the users they pay for), one invoice per page, and "Email me my invoices",
//! which sends the list to the viewer's own address only.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use store::billing::{Invoice, money};

use super::{Nav, html};
use crate::session::Viewer;
use crate::time::Shown;
use crate::{AppState, Error};

struct InvoiceRow {
    number: i64,
    label: String,
    paid: Shown,
    what: String,
    who: String,
    amount: String,
}

#[derive(Template)]
#[template(path = "billing_invoices.html")]
struct ListPage {
    nav: Option<Nav>,
    invoices: Vec<InvoiceRow>,
    emailed: bool,
}

#[derive(Template)]
#[template(path = "billing_invoice.html")]
struct InvoicePage {
    nav: Option<Nav>,
    label: String,
    paid: Shown,
    what: String,
    who: String,
    from: Shown,
    to: Shown,
    amount: String,
    currency: String,
}

fn row(viewer: &Viewer, invoice: &Invoice) -> InvoiceRow {
    InvoiceRow {
        number: invoice.number,
        label: invoice.label(),
        paid: viewer.zone.show(invoice.paid_at),
        what: format!(
            "{} ({})",
            invoice.product.label(),
            invoice.period.label().to_lowercase()
        ),
        who: if invoice.user_id == viewer.user.id {
            "You".to_owned()
        } else {
            invoice.user_email.clone()
        },
        amount: money(invoice.amount_cents, &invoice.currency),
    }
}

/// `?emailed=1` after "Email me my invoices".
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Emailed {
    emailed: String,
}

/// `GET /account/invoices`
pub async fn list(State(state): State<AppState>, viewer: Viewer, Query(q): Query<Emailed>) -> Result<Response, Error> {
    let invoices = state.store.billing().invoices_paid_by(viewer.user.id).await?;
    let page = ListPage {
        nav: Some(viewer.nav()),
        invoices: invoices.iter().map(|i| row(&viewer, i)).collect(),
        emailed: !q.emailed.is_empty(),
    };
    html(StatusCode::OK, &page)
}

/// `GET /account/invoices/{number}`: one invoice, for the person who paid it.
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(number): Path<String>,
) -> Result<Response, Error> {
    let number = number.parse::<i64>().map_err(|_| Error::NotFound)?;
    let invoice = state.store.billing().invoice(viewer.user.id, number).await?;
    let row = row(&viewer, &invoice);
    let page = InvoicePage {
        nav: Some(viewer.nav()),
        label: row.label,
        paid: row.paid,
        what: row.what,
        who: row.who,
        from: viewer.zone.show(invoice.period_start),
        to: viewer.zone.show(invoice.period_end),
        amount: row.amount,
        currency: invoice.currency.to_ascii_uppercase(),
    };
    html(StatusCode::OK, &page)
}

/// `POST /account/invoices/email`: queues a mail with the viewer's invoices
/// to the viewer's own address (at most one every few minutes).
pub async fn email(State(state): State<AppState>, viewer: Viewer) -> Result<Response, Error> {
    state.store.billing().email_invoices(&viewer.user).await?;
    Ok(Redirect::to("/account/invoices?emailed=1").into_response())
}
