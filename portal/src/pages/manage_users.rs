//! Manage Users (`/practice/users`): a practice's User Manager lists everyone
//! invited to the practice with their registration status, corrects an invited
//! person's email and phone, re-invites them, turns two-step verification off
//! or on per person, and deactivates someone who left (with a confirmation
//! box). The store authorises every call; anyone else gets 404.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use store::accounts::manage::{ManagedUser, Registration};
use store::ids::UserId;

use super::html;
use crate::routes::{Group, Routes};
use crate::session::{Client, Viewer};
use crate::{AppState, Error};

/// Manage Users: a User Manager's pages only; anyone else finds nothing.
pub fn routes() -> Routes {
    Routes::new().group(
        Group::user_manager()
            .get("/practice/users", list)
            .get("/practice/users/{id}", show)
            .post("/practice/users/{id}", submit),
    )
}

#[derive(Template)]
#[template(path = "manage_users.html")]
struct ListPage {
    nav: Option<super::Nav>,
    users: Vec<Row>,
}

struct Row {
    id: i64,
    name: String,
    email: String,
    status: &'static str,
}

#[derive(Template)]
#[template(path = "manage_user.html")]
#[allow(clippy::struct_excessive_bools)] // the page's switches, each shown or not
struct UserPage {
    nav: Option<super::Nav>,
    id: i64,
    name: String,
    email: String,
    phone: String,
    status: &'static str,
    invited: bool,
    two_step_off: bool,
    allow_disable: bool,
    deactivated: bool,
    /// The manager's own page: no deactivate button.
    is_self: bool,
    done: Option<&'static str>,
    error: Option<String>,
}

fn user_id(text: &str) -> Result<UserId, Error> {
    text.parse().map(UserId).map_err(|_| Error::NotFound)
}

fn user_page(state: &AppState, viewer: &Viewer, managed: &ManagedUser) -> UserPage {
    UserPage {
        nav: Some(viewer.nav()),
        id: managed.user.id.0,
        name: managed.user.display_name().to_owned(),
        email: managed.user.email.clone(),
        // Stored in E.164, shown as people write it at home.
        phone: store::accounts::phone_number::display(&managed.user.phone, state.store.policy().default_phone_country),
        status: managed.registration.label(),
        invited: managed.registration == Registration::Invited,
        two_step_off: managed.two_step_off,
        allow_disable: state.store.policy().two_step.allow_disable,
        deactivated: managed.registration == Registration::Deactivated,
        is_self: managed.user.id == viewer.user.id,
        done: None,
        error: None,
    }
}

/// `GET /practice/users`
pub async fn list(State(state): State<AppState>, viewer: Viewer) -> Result<Response, Error> {
    let users = state
        .store
        .accounts()
        .practice_users(&viewer.user)
        .await?
        .into_iter()
        .map(|m| Row {
            id: m.user.id.0,
            name: m.user.display_name().to_owned(),
            email: m.user.email.clone(),
            status: m.registration.label(),
        })
        .collect();
    html(
        StatusCode::OK,
        &ListPage {
            nav: Some(viewer.nav()),
            users,
        },
    )
}

/// `GET /practice/users/{id}`
pub async fn show(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Result<Response, Error> {
    let managed = state.store.accounts().managed_user(&viewer.user, user_id(&id)?).await?;
    html(StatusCode::OK, &user_page(&state, &viewer, &managed))
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct EditForm {
    action: String,
    email: String,
    phone: String,
    two_step: String,
    confirm: String,
}

/// `POST /practice/users/{id}`: `action` is `edit` (email and phone, then a
/// new invitation), `reinvite`, `two_step` (`two_step` = `on` or `off`), or
/// `deactivate` (only with `confirm` = `yes`).
pub async fn submit(
    State(state): State<AppState>,
    Client(client): Client,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<EditForm>,
) -> Result<Response, Error> {
    let id = user_id(&id)?;
    // Someone else's user is not found, before the action is looked at.
    state.store.accounts().managed_user(&viewer.user, id).await?;
    let store = &state.store;
    let outcome = match form.action.as_str() {
        "edit" => store
            .accounts()
            .edit_invited_user(&viewer.user, id, &form.email, &form.phone, &client)
            .await
            .map(|()| "Saved. We sent a new invitation to the new address."),
        "reinvite" => store
            .accounts()
            .reinvite(&viewer.user, id, &client)
            .await
            .map(|()| "We sent a new invitation. Earlier invitation links no longer work."),
        "two_step" => {
            let on = match form.two_step.as_str() {
                "on" => true,
                "off" => false,
                _ => return Err(Error::NotFound),
            };
            store
                .accounts()
                .set_user_two_step(&viewer.user, id, on, &client)
                .await
                .map(|()| {
                    if on {
                        "Two-step verification is on."
                    } else {
                        "Two-step verification is off."
                    }
                })
        }
        "deactivate" if form.confirm == "yes" => store
            .accounts()
            .deactivate_managed(&viewer.user, id, &client)
            .await
            .map(|()| "Deactivated. They are signed out everywhere and can no longer sign in."),
        "deactivate" => Err(store::Error::invalid(
            "Tick the box to confirm that this person has left, then press Deactivate.",
        )),
        _ => return Err(Error::NotFound),
    };
    let (status, done, error) = match outcome {
        Ok(done) => (StatusCode::OK, Some(done), None),
        Err(store::Error::Invalid(problem) | store::Error::Conflict(problem)) => {
            (StatusCode::BAD_REQUEST, None, Some(problem))
        }
        Err(error) => return Err(error.into()),
    };
    let mut page = user_page(&state, &viewer, &store.accounts().managed_user(&viewer.user, id).await?);
    page.done = done;
    page.error = error;
    html(status, &page)
}
