//! `/account/profile`: what the account says about its owner, and the time
//! zone the portal shows times in (none: the browser's, see `time.rs`).

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{Nav, html};
use crate::routes::{Group, Routes};
use crate::session::Viewer;
use crate::time::{self, Source, Zone};
use crate::{AppState, Error};

/// The profile page and its form.
pub fn routes() -> Routes {
    Routes::new().group(
        Group::signed_in()
            .get("/account/profile", show)
            .post("/account/profile", save),
    )
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    nav: Option<Nav>,
    name: String,
    email: String,
    phone: String,
    /// The zone the profile names ("" for none).
    chosen: String,
    /// The zone pages use now, and where it comes from, in words.
    zone: Zone,
    zones: Vec<&'static str>,
    saved: bool,
    error: Option<String>,
}

impl ProfilePage {
    fn zone_source(&self) -> &'static str {
        match self.zone.source {
            Source::Profile => "the time zone you chose",
            Source::Browser => "your browser's time zone",
            Source::Server => "the server's time zone",
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct ProfileForm {
    time_zone: String,
}

fn page(viewer: &Viewer, saved: bool, error: Option<String>) -> ProfilePage {
    let user = &viewer.user;
    ProfilePage {
        nav: Some(viewer.nav()),
        name: user.full_name.clone(),
        email: user.email.clone(),
        phone: user.phone.clone(),
        chosen: user.profile.time_zone.clone().unwrap_or_default(),
        zone: viewer.zone,
        zones: chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect(),
        saved,
        error,
    }
}

/// `GET /account/profile`
pub async fn show(viewer: Viewer) -> Result<Response, Error> {
    html(StatusCode::OK, &page(&viewer, false, None))
}

/// `POST /account/profile`: sets or clears the time zone.
pub async fn save(
    State(state): State<AppState>,
    mut viewer: Viewer,
    Form(form): Form<ProfileForm>,
) -> Result<Response, Error> {
    let wanted = form.time_zone.trim();
    if !wanted.is_empty() && time::parse(wanted).is_none() {
        return html(
            StatusCode::BAD_REQUEST,
            &page(
                &viewer,
                false,
                Some("Please choose a time zone from the list.".to_owned()),
            ),
        );
    }
    let chosen = (!wanted.is_empty()).then_some(wanted);
    state.store.accounts().set_time_zone(&viewer.user, chosen).await?;
    viewer.user.profile.time_zone = chosen.map(str::to_owned);
    if let Some(tz) = chosen.and_then(time::parse) {
        viewer.zone = Zone {
            tz,
            source: Source::Profile,
        };
    } else if viewer.zone.source == Source::Profile {
        viewer.zone = time::choose(None, None);
    }
    html(StatusCode::OK, &page(&viewer, true, None))
}
