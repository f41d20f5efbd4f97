//! Changing the email address from the profile: asking (a link goes to the new
//! address, the current one is told), cancelling, and the link itself
//! (`/email/{token}`: a page with a button, so a mail scanner that
//! opens links changes nothing).

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use store::accounts::EmailChange;

use super::html;
use super::profile::{Problems, page};
use crate::routes::{Group, Routes};
use crate::session::{Client, Viewer};
use crate::{AppState, Error};

/// The email change's routes.
pub fn routes() -> Routes {
    Routes::new()
        .group(
            Group::signed_in()
                .post("/account/profile/email", request)
                .post("/account/profile/email/cancel", cancel),
        )
        .group(
            Group::exempt(
                "authorised by the confirmation token in the path, which only the new address received; \
                 no cookie is involved",
            )
            .get("/email/{token}", confirm_form)
            .post("/email/{token}", confirm),
        )
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct EmailForm {
    email: String,
}

/// `POST /account/profile/email`: sends the new address its link.
pub async fn request(
    State(state): State<AppState>,
    Client(client): Client,
    viewer: Viewer,
    Form(form): Form<EmailForm>,
) -> Result<Response, Error> {
    let wanted = form.email.trim().to_owned();
    let answer = state
        .store
        .accounts()
        .request_email_change(&viewer.user, &wanted, &client)
        .await;
    let mut shown = page(&state, &viewer, None, Problems::default()).await?;
    match answer {
        Ok(EmailChange::Sent(_)) => {
            shown.status = Some(format!(
                "We sent a link to {wanted}. Open it to finish the change; we also told {}.",
                viewer.user.email
            ));
            html(StatusCode::OK, &shown)
        }
        Ok(EmailChange::HeldBack(slot)) => {
            shown.email_value = wanted;
            shown.email_problem = Some(format!(
                "We sent a link to this address at {} and did not send another. Please look for it (also in spam), or ask again after {}.",
                viewer.zone.show(slot.sent_at).text,
                viewer.zone.show(slot.next_at).text
            ));
            html(StatusCode::TOO_MANY_REQUESTS, &shown)
        }
        Err(store::Error::Invalid(problem) | store::Error::Conflict(problem)) => {
            shown.email_value = wanted;
            shown.email_problem = Some(problem);
            html(StatusCode::BAD_REQUEST, &shown)
        }
        Err(error) => Err(error.into()),
    }
}

/// `POST /account/profile/email/cancel`
pub async fn cancel(State(state): State<AppState>, viewer: Viewer) -> Result<Response, Error> {
    state.store.accounts().cancel_email_change(&viewer.user).await?;
    let mut shown = page(&state, &viewer, None, Problems::default()).await?;
    shown.status = Some("The change is cancelled: the link we sent no longer works.".to_owned());
    html(StatusCode::OK, &shown)
}

#[derive(Template)]
#[template(path = "email_confirm.html")]
struct ConfirmPage {
    nav: Option<super::Nav>,
    token: String,
    /// Done: the account's address now.
    changed_to: Option<String>,
}

/// `GET /email/{token}`: the button that confirms.
pub async fn confirm_form(State(state): State<AppState>, Path(token): Path<String>) -> Result<Response, Error> {
    state
        .store
        .auth()
        .check_token(&token, store::accounts::TokenPurpose::ConfirmEmail)
        .await?;
    html(
        StatusCode::OK,
        &ConfirmPage {
            nav: None,
            token,
            changed_to: None,
        },
    )
}

/// `POST /email/{token}`: the address changes.
pub async fn confirm(
    State(state): State<AppState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<Response, Error> {
    let user = state.store.accounts().confirm_email_change(&token, &client).await?;
    html(
        StatusCode::OK,
        &ConfirmPage {
            nav: None,
            token: String::new(),
            changed_to: Some(user.email),
        },
    )
}
