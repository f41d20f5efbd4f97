//! `/practice/retention`: a User Manager sets how long their practice's new
//! messages live (or goes back to the configured default), and keeps any
//! readable message of the practice longer or deletes it sooner (the forms
//! post to `/m/{id}/expiry`, `message_lifecycle.rs`). No message content is
//! shown: who sent it, when, to how many, and when it self-destructs.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::{Nav, field, html};
use crate::routes::{Group, Routes};
use crate::session::{Client, Viewer};
use crate::time::Shown;
use crate::{AppState, Error};

/// The most messages the page lists (soonest to self-destruct first).
const LISTED: i64 = 200;

pub fn routes() -> Routes {
    Routes::new().group(
        Group::user_manager()
            .get("/practice/retention", show)
            .post("/practice/retention", save),
    )
}

struct Line {
    id: String,
    sender: String,
    recipients: i64,
    sent_on: Shown,
    expires_on: Shown,
    countdown: String,
    ends_soon: bool,
}

#[derive(Template)]
#[template(path = "practice_retention.html")]
struct RetentionPage {
    nav: Option<Nav>,
    csrf: String,
    days: i64,
    default_days: i64,
    max_days: i64,
    step_days: i64,
    messages: Vec<Line>,
    error: Option<String>,
    /// What was typed, shown again with an error.
    typed: String,
}

async fn page(state: &AppState, viewer: &Viewer, error: Option<String>, typed: String) -> Result<RetentionPage, Error> {
    let mail = state.store.mail();
    let practice = viewer.user.practice_id.ok_or(Error::NotFound)?;
    let now = state.store.now();
    let policy = state.store.policy();
    let messages = mail
        .practice_messages(&viewer.user, LISTED)
        .await?
        .into_iter()
        .map(|m| Line {
            id: m.id.to_string(),
            sender: m.sender,
            recipients: m.recipients,
            sent_on: viewer.zone.show(m.created_at),
            expires_on: viewer.zone.show(m.expires_at),
            countdown: super::countdown::deletes_in(now, m.expires_at),
            ends_soon: super::countdown::soon(now, m.expires_at),
        })
        .collect();
    Ok(RetentionPage {
        nav: Some(viewer.nav()),
        csrf: viewer.csrf(),
        days: mail.practice_retention_days(practice).await?,
        default_days: policy.retention_days,
        max_days: policy.max_retention_days,
        step_days: policy.extend_step_days,
        messages,
        error,
        typed,
    })
}

/// `GET /practice/retention`
pub async fn show(State(state): State<AppState>, viewer: Viewer) -> Result<Response, Error> {
    html(StatusCode::OK, &page(&state, &viewer, None, String::new()).await?)
}

/// `POST /practice/retention` with `days` (empty: the default).
pub async fn save(
    State(state): State<AppState>,
    Client(client): Client,
    viewer: Viewer,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, Error> {
    let typed = field(&form, "days").trim().to_owned();
    let days = if typed.is_empty() || field(&form, "default") == "1" {
        None
    } else if let Ok(days) = typed.parse::<i64>() {
        Some(days)
    } else {
        let error = "Enter a whole number of days.".to_owned();
        return html(
            StatusCode::BAD_REQUEST,
            &page(&state, &viewer, Some(error), typed).await?,
        );
    };
    match state
        .store
        .mail()
        .set_practice_retention(&viewer.user, days, &client)
        .await
    {
        Ok(()) => Ok(Redirect::to("/practice/retention").into_response()),
        Err(store::Error::Invalid(error)) => html(
            StatusCode::BAD_REQUEST,
            &page(&state, &viewer, Some(error), typed).await?,
        ),
        Err(other) => Err(other.into()),
    }
}
