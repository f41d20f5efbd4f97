//! `/account/profile`: what the account says about its owner (name, cell and
//! landline phones in E.164 shown in national format, a doctor's ADA number or
//! NPI, specialty and procedures), the practice (shown, changed only by the
//! practice's administrator), the email address (changed through
//! `profile_email.rs`), and the time zone the portal shows times in (none: the
//! browser's, see `time.rs`).

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use store::accounts::phone_number::{self, PhoneCountry};
use store::accounts::practice_info::PracticeChange;
use store::accounts::{ProfileChange, Role};

use super::{Nav, field, html};
use crate::routes::{Group, Routes};
use crate::session::{Client, Viewer};
use crate::specialties;
use crate::time::{self, Source, Zone};
use crate::{AppState, Error};

/// The profile page and its forms.
pub fn routes() -> Routes {
    Routes::new().group(
        Group::signed_in()
            .get("/account/profile", show)
            .post("/account/profile", save)
            .post("/account/profile/details", save_details)
            .post("/account/profile/practice", save_practice),
    )
}

/// What the details form shows: as stored, or as typed when it comes back.
#[derive(Default)]
pub(crate) struct Details {
    pub full_name: String,
    pub phone: String,
    pub landline: String,
    pub ada_number: String,
    pub npi: String,
    pub specialty: String,
    pub procedures: Vec<String>,
}

/// Problems shown next to their fields.
#[derive(Default)]
pub(crate) struct Problems {
    pub full_name: Option<&'static str>,
    pub phone: Option<&'static str>,
    pub landline: Option<&'static str>,
    pub ada_number: Option<&'static str>,
    pub npi: Option<&'static str>,
    pub specialty: Option<&'static str>,
}

impl Problems {
    fn any(&self) -> bool {
        [
            self.full_name,
            self.phone,
            self.landline,
            self.ada_number,
            self.npi,
            self.specialty,
        ]
        .iter()
        .any(Option::is_some)
    }
}

/// The practice, as the page shows it; its User Manager gets a form.
#[derive(Default)]
pub(crate) struct PracticeFacts {
    pub name: String,
    pub rows: Vec<(&'static str, String)>,
    /// The viewer is the practice's User Manager: the form's values follow.
    pub editable: bool,
    pub website: String,
    pub phone: String,
    pub address: String,
}

pub(crate) struct ProcedureBox {
    pub id: String,
    pub name: String,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "profile.html")]
pub(crate) struct ProfilePage {
    pub nav: Option<Nav>,
    pub email: String,
    /// The address a requested change waits to move to.
    pub pending_email: Option<String>,
    pub doctor: bool,
    pub details: Details,
    pub problems: Problems,
    pub specialty_groups: Vec<(&'static str, Vec<String>)>,
    pub procedures: Vec<ProcedureBox>,
    pub practice: Option<PracticeFacts>,
    /// How a phone number is written here, e.g. `(201) 555-0123`.
    pub phone_example: &'static str,
    /// The zone the profile names ("" for none).
    pub chosen: String,
    /// The zone pages use now, and where it comes from, in words.
    pub zone: Zone,
    pub zones: Vec<&'static str>,
    /// A line for the top of the page ("Saved.").
    pub status: Option<String>,
    pub error: Option<String>,
    pub email_value: String,
    pub email_problem: Option<String>,
    /// This page's tab in `account_tabs.html`.
    pub account_tab: &'static str,
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

/// An example number for the installation's country, for the help text.
fn phone_example(country: PhoneCountry) -> &'static str {
    match country.code().as_str() {
        "US" | "CA" => "(201) 555-0123",
        "GB" => "020 7946 0000",
        _ => "+1 201 555 0123",
    }
}

fn stored_details(viewer: &Viewer, country: PhoneCountry) -> Details {
    let user = &viewer.user;
    let profile = &user.profile;
    let shown = |phone: &str| phone_number::display(phone, country);
    Details {
        full_name: user.full_name.clone(),
        phone: shown(&user.phone),
        landline: profile.landline.as_deref().map(shown).unwrap_or_default(),
        ada_number: profile.ada_number.clone().unwrap_or_default(),
        npi: profile.npi.clone().unwrap_or_default(),
        specialty: profile.specialty.clone().unwrap_or_default(),
        procedures: profile.procedures.clone(),
    }
}

/// The chosen specialty's procedures, then any others ticked, once each.
fn procedure_boxes(details: &Details) -> Vec<ProcedureBox> {
    let usual = specialties::all()
        .find(&details.specialty)
        .map(|s| s.procedures.clone())
        .unwrap_or_default();
    let mut names: Vec<String> = usual;
    for p in &details.procedures {
        if !names.contains(p) {
            names.push(p.clone());
        }
    }
    names
        .into_iter()
        .enumerate()
        .map(|(i, name)| ProcedureBox {
            id: format!("procedure-{i}"),
            checked: details.procedures.contains(&name),
            name,
        })
        .collect()
}

/// The practice as the page shows it: the account's practice, else what the
/// person said about their own practice when registering.
async fn practice_facts(state: &AppState, viewer: &Viewer) -> Result<Option<PracticeFacts>, Error> {
    let profile = &viewer.user.profile;
    if let Some(id) = viewer.user.practice_id {
        let practice = state.store.accounts().practice(id).await?;
        let info = state.store.accounts().practice_info(id).await?;
        let country = state.store.policy().default_phone_country;
        let phone = info
            .phone
            .as_deref()
            .map(|p| phone_number::display(p, country))
            .unwrap_or_default();
        let mut rows = vec![("Mail domain", practice.domain)];
        for (label, value) in [
            ("Website", &info.website),
            ("Phone", &Some(phone.clone())),
            ("Address", &info.address),
        ] {
            if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
                rows.push((label, value.clone()));
            }
        }
        return Ok(Some(PracticeFacts {
            name: practice.name,
            rows,
            editable: viewer.user.user_manager,
            website: info.website.unwrap_or_default(),
            phone,
            address: info.address.unwrap_or_default(),
        }));
    }
    let Some(name) = profile.practice_name.clone() else {
        return Ok(None);
    };
    let mut rows = Vec::new();
    for (label, value) in [
        ("Website", &profile.practice_website),
        ("Phone", &profile.practice_phone),
        ("Address", &profile.practice_address),
    ] {
        if let Some(value) = value {
            rows.push((label, value.clone()));
        }
    }
    Ok(Some(PracticeFacts {
        name,
        rows,
        ..PracticeFacts::default()
    }))
}

/// The page for `viewer`, with `details` as the form shows them.
pub(crate) async fn page(
    state: &AppState,
    viewer: &Viewer,
    details: Option<Details>,
    problems: Problems,
) -> Result<ProfilePage, Error> {
    let country = state.store.policy().default_phone_country;
    let details = details.unwrap_or_else(|| stored_details(viewer, country));
    let specialty_groups = specialties::all()
        .groups()
        .into_iter()
        .map(|(label, group)| (label, group.iter().map(|s| s.name.clone()).collect()))
        .collect();
    Ok(ProfilePage {
        nav: Some(viewer.nav()),
        email: viewer.user.email.clone(),
        pending_email: state.store.accounts().pending_email(&viewer.user).await?,
        doctor: viewer.user.role == Role::Doctor,
        procedures: procedure_boxes(&details),
        details,
        problems,
        specialty_groups,
        practice: practice_facts(state, viewer).await?,
        phone_example: phone_example(country),
        chosen: viewer.user.profile.time_zone.clone().unwrap_or_default(),
        zone: viewer.zone,
        zones: chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect(),
        status: None,
        error: None,
        email_value: String::new(),
        email_problem: None,
        account_tab: "profile",
    })
}

/// `GET /account/profile`
pub async fn show(State(state): State<AppState>, viewer: Viewer) -> Result<Response, Error> {
    html(StatusCode::OK, &page(&state, &viewer, None, Problems::default()).await?)
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct ProfileForm {
    time_zone: String,
}

/// `POST /account/profile`: sets or clears the time zone.
pub async fn save(
    State(state): State<AppState>,
    mut viewer: Viewer,
    Form(form): Form<ProfileForm>,
) -> Result<Response, Error> {
    let wanted = form.time_zone.trim();
    if !wanted.is_empty() && time::parse(wanted).is_none() {
        let mut page = page(&state, &viewer, None, Problems::default()).await?;
        page.error = Some("Please choose a time zone from the list.".to_owned());
        return html(StatusCode::BAD_REQUEST, &page);
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
    let mut page = page(&state, &viewer, None, Problems::default()).await?;
    page.status = Some("Saved.".to_owned());
    html(StatusCode::OK, &page)
}

/// Checks the details form; each problem goes next to its field.
pub(crate) fn validate(details: &mut Details, doctor: bool, country: PhoneCountry) -> Problems {
    let mut problems = Problems::default();
    if details.full_name.is_empty() || details.full_name.chars().count() > 200 {
        problems.full_name = Some("Please enter your full name.");
    }
    if details.phone.is_empty() {
        problems.phone = Some("Please enter a cell phone number we can reach you at.");
    } else if let Err(problem) = phone_number::to_e164(&details.phone, country) {
        problems.phone = Some(problem);
    }
    if let Err(problem) = phone_number::optional_e164(&details.landline, country) {
        problems.landline = Some(problem);
    }
    if doctor {
        if !details.ada_number.is_empty() && !store::accounts::profile::valid_ada(&details.ada_number) {
            problems.ada_number = Some("An ADA number has 5 to 12 digits, like 123456789.");
        }
        if !details.npi.is_empty() && !store::accounts::profile::valid_npi(&details.npi) {
            problems.npi =
                Some("This is not a valid NPI: it has 10 digits, the last one a check digit. Please check it.");
        }
        let data = specialties::all();
        if details.specialty.is_empty() {
            details.procedures.clear();
        } else if let Some(specialty) = data.find(&details.specialty) {
            details.procedures.retain(|p| data.knows_procedure(p));
            if details.procedures.is_empty() {
                details.procedures.clone_from(&specialty.procedures);
            }
        } else {
            problems.specialty = Some("Please choose your specialty from the list.");
        }
    }
    problems
}

/// `POST /account/profile/details`: name, phones, and a doctor's numbers,
/// specialty and procedures.
pub async fn save_details(
    State(state): State<AppState>,
    Client(client): Client,
    mut viewer: Viewer,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, Error> {
    let text = |name| field(&form, name).trim().to_owned();
    let mut details = Details {
        full_name: text("full_name"),
        phone: text("phone"),
        landline: text("landline"),
        ada_number: text("ada_number"),
        npi: text("npi"),
        specialty: text("specialty"),
        procedures: form
            .iter()
            .filter(|(k, _)| k == "procedures")
            .map(|(_, v)| v.clone())
            .collect(),
    };
    let doctor = viewer.user.role == Role::Doctor;
    let country = state.store.policy().default_phone_country;
    let problems = validate(&mut details, doctor, country);
    if problems.any() {
        let mut page = page(&state, &viewer, Some(details), problems).await?;
        page.error = Some("Some details need another look: see the notes next to them.".to_owned());
        return html(StatusCode::BAD_REQUEST, &page);
    }
    let change = ProfileChange {
        full_name: details.full_name,
        phone: details.phone,
        landline: details.landline,
        ada_number: details.ada_number,
        npi: details.npi,
        specialty: (!details.specialty.is_empty()).then_some(details.specialty),
        procedures: details.procedures,
    };
    viewer.user = state
        .store
        .accounts()
        .update_profile(&viewer.user, &change, &client)
        .await?;
    let mut page = page(&state, &viewer, None, Problems::default()).await?;
    page.status = Some("Your details are saved.".to_owned());
    html(StatusCode::OK, &page)
}

/// `POST /account/profile/practice`: the User Manager changes the practice's
/// name and details; anyone else is refused and nothing changes.
pub async fn save_practice(
    State(state): State<AppState>,
    Client(client): Client,
    viewer: Viewer,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, Error> {
    let text = |name| field(&form, name).trim().to_owned();
    let change = PracticeChange {
        name: text("practice_name"),
        website: text("practice_website"),
        phone: text("practice_phone"),
        address: text("practice_address"),
    };
    match state
        .store
        .accounts()
        .set_practice_info(&viewer.user, &change, &client)
        .await
    {
        Ok(()) => {
            let mut page = page(&state, &viewer, None, Problems::default()).await?;
            page.status = Some("The practice's information is saved.".to_owned());
            html(StatusCode::OK, &page)
        }
        Err(store::Error::Invalid(problem)) => {
            let mut page = page(&state, &viewer, None, Problems::default()).await?;
            page.error = Some(problem);
            html(StatusCode::BAD_REQUEST, &page)
        }
        Err(store::Error::Forbidden(_)) => Err(Error::Forbidden),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_problem_is_named_next_to_its_field() {
        let us = PhoneCountry::default();
        let mut details = Details {
            full_name: "Dr Ada".into(),
            phone: "12345".into(),
            landline: "call me".into(),
            ada_number: "12".into(),
            npi: "1234567890".into(),
            specialty: "Wizardry".into(),
            ..Details::default()
        };
        let problems = validate(&mut details, true, us);
        assert!(problems.full_name.is_none());
        assert!(problems.phone.is_some() && problems.landline.is_some());
        assert!(problems.ada_number.is_some() && problems.npi.is_some() && problems.specialty.is_some());
        let mut fine = Details {
            full_name: "Dr Ada".into(),
            phone: "(201) 555-0123".into(),
            npi: "1234567893".into(),
            specialty: "Endodontics".into(),
            ..Details::default()
        };
        assert!(!validate(&mut fine, true, us).any());
        assert!(
            fine.procedures.iter().any(|p| p == "Root canal treatment"),
            "the usual ones"
        );
        // Not a doctor: the numbers are not looked at.
        let mut patient = Details {
            full_name: "Pat".into(),
            phone: "+44 20 7946 0000".into(),
            npi: "nonsense".into(),
            ..Details::default()
        };
        assert!(!validate(&mut patient, false, us).any());
    }
}
