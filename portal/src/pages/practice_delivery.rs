//! `/practice/delivery`: a User Manager chooses whether their practice's
//! secure messages go to partner practices as the message itself over
//! verified TLS, instead of a notification and the portal (best-method
//! delivery; off by default). Which domains are partners is the admin's
//! (`outbound.direct_domains`); the page lists none of them, and no message.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::{Nav, field, html};
use crate::routes::{Group, Routes};
use crate::session::{Client, Viewer};
use crate::{AppState, Error};

pub fn routes() -> Routes {
    Routes::new().group(
        Group::user_manager()
            .get("/practice/delivery", show)
            .post("/practice/delivery", save),
    )
}

#[derive(Template)]
#[template(path = "practice_delivery.html")]
struct DeliveryPage {
    nav: Option<Nav>,
    csrf: String,
    direct: bool,
}

/// `GET /practice/delivery`
pub async fn show(State(state): State<AppState>, viewer: Viewer) -> Result<Response, Error> {
    let practice = viewer.user.practice_id.ok_or(Error::NotFound)?;
    let direct = state.store.accounts().practice_direct_delivery(practice).await?;
    html(
        StatusCode::OK,
        &DeliveryPage {
            nav: Some(viewer.nav()),
            csrf: viewer.csrf(),
            direct,
        },
    )
}

/// `POST /practice/delivery` with `direct` = `on` or `off`.
pub async fn save(
    State(state): State<AppState>,
    Client(client): Client,
    viewer: Viewer,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, Error> {
    let on = match field(&form, "direct") {
        "on" => true,
        "off" => false,
        _ => return Err(Error::BadRequest("Choose on or off.".into())),
    };
    state
        .store
        .accounts()
        .set_practice_direct_delivery(&viewer.user, on, &client)
        .await?;
    Ok(Redirect::to("/practice/delivery").into_response())
}
