//! The end of a message, from the message page: its sender (or the practice's
//! User Manager) keeps it longer or deletes it sooner (`POST /m/{id}/expiry`),
//! its sender deletes it for everyone (`POST /m/{id}/delete`), a recipient
//! deletes it for themself (`POST /m/{id}/hide`). Each is one store call,
//! audited there; someone who may not do it finds nothing (404).

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use store::messages::lifecycle::ExpiryChange;

use super::{field, message_id};
use crate::routes::{Group, Routes};
use crate::session::{Client, Viewer};
use crate::{AppState, Error};

/// The lifecycle actions; each form carries the session's CSRF token.
pub fn routes() -> Routes {
    Routes::new().group(
        Group::signed_in()
            .post("/m/{id}/expiry", change_expiry)
            .post("/m/{id}/delete", delete_for_everyone)
            .post("/m/{id}/hide", hide_for_me),
    )
}

/// `POST /m/{id}/expiry` with `change=extend|shorten` (and `back=practice`
/// from the User Manager's practice page).
pub async fn change_expiry(
    State(state): State<AppState>,
    Client(client): Client,
    Path(id): Path<String>,
    viewer: Viewer,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, Error> {
    let id = message_id(&id)?;
    let change = match field(&form, "change") {
        "extend" => ExpiryChange::Extend,
        "shorten" => ExpiryChange::Shorten,
        _ => {
            return Err(Error::BadRequest(
                "Choose to keep the message longer or to delete it sooner.".to_owned(),
            ));
        }
    };
    state
        .store
        .mail()
        .change_expiry(&viewer.user, &id, change, &client)
        .await?;
    let back = if field(&form, "back") == "practice" {
        "/practice/retention".to_owned()
    } else {
        format!("/m/{id}")
    };
    Ok(Redirect::to(&back).into_response())
}

/// `POST /m/{id}/delete`: the sender deletes it for all users and on both ends.
pub async fn delete_for_everyone(
    State(state): State<AppState>,
    Client(client): Client,
    Path(id): Path<String>,
    viewer: Viewer,
) -> Result<Response, Error> {
    let id = message_id(&id)?;
    state.store.mail().delete_message(&viewer.user, &id, &client).await?;
    Ok(Redirect::to("/sent").into_response())
}

/// `POST /m/{id}/hide`: a recipient removes it from their own inbox only.
pub async fn hide_for_me(
    State(state): State<AppState>,
    Client(client): Client,
    Path(id): Path<String>,
    viewer: Viewer,
) -> Result<Response, Error> {
    let id = message_id(&id)?;
    state.store.mail().hide_message(&viewer.user, &id, &client).await?;
    Ok(Redirect::to("/inbox").into_response())
}
