//! The Secure Drop API, for `sealpost drop` on a front-desk PC: the same tus
//! uploads as `/uploads` at `/api/uploads` (+ `/api/uploads/{id}`), and
//! `POST /api/drops` (JSON `{"to", "role"?, "note"?, "uploads": [ids]}`) that
//! sends the finished uploads to one recipient (`pages::drop_send`).
//!
//! Every request is authenticated by `Authorization: Basic` with the user's
//! email and an app password (RFC 7617), and only by that: a session cookie
//! is ignored here, so a cross-site request can't use one (no CSRF token is
//! needed). Errors are JSON problems (RFC 9457); tus answers stay as
//! `/uploads` gives them.

use axum::Json;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use store::accounts::{Relationship, User};
use store::uploads::UploadId;

use crate::AppState;
use crate::api::{Problem, basic_credentials};
use crate::pages::drop_send::{DropRefusal, DropRequest, send_drop};
use crate::pages::uploads;
use crate::routes::{Group, Routes};
use crate::session::Client;

/// The drop API's routes.
pub fn routes() -> Routes {
    Routes::new().group(
        Group::exempt(
            "authenticated only by Authorization: Basic (email and app password), never by a cookie, \
             which a cross-site request can't send",
        )
        .post("/api/uploads", create)
        .head("/api/uploads/{id}", head)
        .patch("/api/uploads/{id}", patch)
        .delete("/api/uploads/{id}", delete)
        .post("/api/drops", drop_files),
    )
}

/// The caller, from `Authorization: Basic` (email and app password) only.
pub struct AppPasswordUser(pub User);

impl FromRequestParts<AppState> for AppPasswordUser {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some((email, password)) = basic_credentials(&parts.headers)? else {
            return Err(Problem::unauthorized());
        };
        let Ok(Client(client)) = Client::from_request_parts(parts, state).await;
        let user = state.store.auth().check_mail_client(&email, &password, &client).await?;
        Ok(Self(user))
    }
}

/// `POST /api/uploads`: starts an upload (tus creation).
async fn create(State(state): State<AppState>, AppPasswordUser(user): AppPasswordUser, headers: HeaderMap) -> Response {
    uploads::create_for(&state, &user, &headers, "/api/uploads").await
}

/// `HEAD /api/uploads/{id}`: where the upload stands.
async fn head(
    State(state): State<AppState>,
    AppPasswordUser(user): AppPasswordUser,
    Path(id): Path<String>,
) -> Response {
    uploads::head_for(&state, &user, &id).await
}

/// `PATCH /api/uploads/{id}`: continues the upload.
async fn patch(
    State(state): State<AppState>,
    AppPasswordUser(user): AppPasswordUser,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    uploads::patch_for(&state, &user, &id, request).await
}

/// `DELETE /api/uploads/{id}`: removes the upload.
async fn delete(
    State(state): State<AppState>,
    AppPasswordUser(user): AppPasswordUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    uploads::delete_for(&state, &user, &id, &headers).await
}

/// The body of `POST /api/drops`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropJson {
    to: String,
    /// One of the `X-Sealpost-Role` values (`patient`, `doctor_other_practice`…),
    /// needed when `to` is new to the sender's practice.
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    note: String,
    uploads: Vec<String>,
}

#[derive(Serialize)]
struct DroppedJson {
    message: String,
    url: String,
}

/// `POST /api/drops`: sends the finished uploads to one recipient.
async fn drop_files(
    State(state): State<AppState>,
    Client(client): Client,
    AppPasswordUser(user): AppPasswordUser,
    body: Result<Json<DropJson>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Problem> {
    let Json(body) = body.map_err(|rejection| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "Bad request",
            format!("The request is not the JSON this API reads: {}", rejection.body_text()),
        )
    })?;
    let role = match body.role.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        None => None,
        Some(text) => Some(Relationship::parse(text).ok_or_else(|| {
            let known: Vec<&str> = Relationship::ALL.iter().map(|r| r.as_str()).collect();
            Problem::new(
                StatusCode::BAD_REQUEST,
                "Unknown role",
                format!("The role must be one of: {}.", known.join(", ")),
            )
        })?),
    };
    let mut ids = Vec::with_capacity(body.uploads.len());
    for text in &body.uploads {
        ids.push(UploadId::parse(text.trim()).ok_or_else(no_such_upload)?);
    }
    let request = DropRequest {
        to: body.to,
        role,
        note: body.note,
        uploads: ids,
    };
    let sent = send_drop(&state, &user, &request, &client).await.map_err(problem)?;
    let url = format!("{}/m/{sent}", state.config.public_url.trim_end_matches('/'));
    let mut response = (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(&DroppedJson {
            message: sent.to_string(),
            url: url.clone(),
        })
        .unwrap_or_default(),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

fn no_such_upload() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "No such upload",
        "One of the uploads does not exist, or is not yours.",
    )
}

fn problem(refusal: DropRefusal) -> Problem {
    match refusal {
        DropRefusal::Invalid(text) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Not sent", text),
        DropRefusal::NeedsRole(address) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "New recipient",
            format!(
                "{address} is new to your practice: say how you know them (role: patient, doctor_in_practice, \
                 staff_in_practice, doctor_other_practice or staff_other_practice)."
            ),
        ),
        DropRefusal::FreeAccount { address, practices } => Problem::new(
            StatusCode::FORBIDDEN,
            "Not allowed with a free account",
            if practices.is_empty() {
                format!("A free account can't send files to {address}; it can reply to the messages it receives.")
            } else {
                format!(
                    "A free account can't send files to {address}; it can write to the doctors and staff of {}.",
                    practices.join(", ")
                )
            },
        ),
        DropRefusal::Store(store::Error::NotFound | store::Error::Forbidden(_)) => no_such_upload(),
        DropRefusal::Store(other) => other.into(),
    }
}
