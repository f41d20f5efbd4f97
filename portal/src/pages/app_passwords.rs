//! `/account/app-passwords`: make, list and revoke passwords for mail apps.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use serde::Deserialize;

use super::{Nav, html};
use crate::routes::{Group, Routes};
use crate::session::{Client, Viewer};
use crate::{AppState, Error};

/// The app-password page and its forms.
pub fn routes() -> Routes {
    Routes::new().group(
        Group::signed_in()
            .get("/account/app-passwords", list)
            .post("/account/app-passwords", create)
            .post("/account/app-passwords/{id}/revoke", revoke),
    )
}

struct Row {
    id: i64,
    label: String,
    created: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "app_passwords.html")]
struct AppPasswordsPage {
    nav: Option<Nav>,
    passwords: Vec<Row>,
    /// (label, password) just made: shown this once.
    created: Option<(String, String)>,
    error: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct CreateForm {
    label: String,
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    created: Option<(String, String)>,
    error: Option<String>,
) -> Result<AppPasswordsPage, Error> {
    let passwords = state
        .store
        .auth()
        .app_passwords(&viewer.user)
        .await?
        .into_iter()
        .map(|p| Row {
            id: p.id,
            label: p.label,
            created: viewer.zone.show(p.created_at).text,
            last_used: p.last_used_at.map_or_else(
                || "not used yet".to_owned(),
                |at| format!("last used {}", viewer.zone.show(at).text),
            ),
        })
        .collect();
    Ok(AppPasswordsPage {
        nav: Some(viewer.nav()),
        passwords,
        created,
        error,
    })
}

/// `GET /account/app-passwords`
pub async fn list(State(state): State<AppState>, viewer: Viewer) -> Result<Response, Error> {
    html(StatusCode::OK, &page(&state, &viewer, None, None).await?)
}

/// `POST /account/app-passwords`: makes one and shows it once.
pub async fn create(
    State(state): State<AppState>,
    Client(client): Client,
    viewer: Viewer,
    Form(form): Form<CreateForm>,
) -> Result<Response, Error> {
    match state
        .store
        .auth()
        .create_app_password(&viewer.user, &form.label, &client)
        .await
    {
        Ok(password) => html(
            StatusCode::OK,
            &page(&state, &viewer, Some((form.label.trim().to_owned(), password)), None).await?,
        ),
        Err(store::Error::Invalid(problem)) => html(
            StatusCode::BAD_REQUEST,
            &page(&state, &viewer, None, Some(problem)).await?,
        ),
        Err(error) => Err(error.into()),
    }
}

/// `POST /account/app-passwords/{id}/revoke`
pub async fn revoke(
    State(state): State<AppState>,
    Client(client): Client,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let id: i64 = id.parse().map_err(|_| Error::NotFound)?;
    state
        .store
        .auth()
        .revoke_app_password(&viewer.user, id, &client)
        .await?;
    Ok(axum::response::IntoResponse::into_response(Redirect::to(
        "/account/app-passwords",
    )))
}
