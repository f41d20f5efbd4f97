//! Registration from an invitation link (`/m/{id}?invite=TOKEN` shows the form,
//! `POST /m/{id}/register?invite=TOKEN` registers): a form that asks what the
//! recipient's role needs, validated here, then `store::Accounts::register`.
//!
//! Doctors pick a specialty and tick procedures. Without JavaScript the
//! pre-selection happens on the server: the "Show procedures" button re-renders
//! the form with that specialty's typical procedures ticked; registering with a
//! specialty and no procedures ticked takes the specialty's typical ones.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use store::accounts::phone_number::{self, PhoneCountry};
use store::accounts::{Invitation, Profile, Registration, Relationship, UserStatus};
use store::ids::MessageId;

use super::{InviteQuery, field, html, message_id};
use crate::error::LinkProblem;
use crate::routes::{Group, Routes};
use crate::session::Client;
use crate::specialties;
use crate::{AppState, Error};

/// Registration (the form itself is shown at `GET /m/{id}?invite=…`).
pub fn routes() -> Routes {
    Routes::new().group(
        Group::exempt(
            "authorised by the invitation token it carries, which a forger would have to know (and could \
             then use directly); no cookie is involved, and one that is sent is not used",
        )
        .post("/m/{id}/register", submit),
    )
}

/// What the person typed, kept when the form comes back with errors.
#[derive(Default)]
struct Values {
    full_name: String,
    phone: String,
    specialty: String,
    procedures: Vec<String>,
    practice_name: String,
    practice_website: String,
    practice_phone: String,
    practice_address: String,
}

impl Values {
    fn from_form(form: &[(String, String)]) -> Self {
        let text = |name| field(form, name).trim().to_owned();
        let mut procedures: Vec<String> = Vec::new();
        for (_, value) in form.iter().filter(|(k, _)| k == "procedures") {
            if !procedures.contains(value) {
                procedures.push(value.clone());
            }
        }
        Self {
            full_name: text("full_name"),
            phone: text("phone"),
            specialty: text("specialty"),
            procedures,
            practice_name: text("practice_name"),
            practice_website: text("practice_website"),
            practice_phone: text("practice_phone"),
            practice_address: text("practice_address"),
        }
    }
}

/// Problems shown next to the fields they concern.
#[derive(Default)]
struct Problems {
    general: Option<String>,
    full_name: Option<&'static str>,
    phone: Option<&'static str>,
    specialty: Option<&'static str>,
    procedures: Option<&'static str>,
    practice_name: Option<&'static str>,
    practice_website: Option<&'static str>,
    practice_phone: Option<&'static str>,
    practice_address: Option<&'static str>,
}

impl Problems {
    fn any(&self) -> bool {
        self.general.is_some()
            || [
                self.full_name,
                self.phone,
                self.specialty,
                self.procedures,
                self.practice_name,
                self.practice_website,
                self.practice_phone,
                self.practice_address,
            ]
            .iter()
            .any(Option::is_some)
    }
}

struct ProcedureBox {
    id: String,
    name: String,
    checked: bool,
}

struct SpecialtyGroup {
    name: String,
    open: bool,
    procedures: Vec<ProcedureBox>,
}

struct SpecialtyOption {
    name: String,
    selected: bool,
}

/// One `<optgroup>` of the specialty select: dental or medical.
struct Field {
    label: &'static str,
    options: Vec<SpecialtyOption>,
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage {
    nav: Option<super::Nav>,
    action: String,
    invite: String,
    email: String,
    practice: String,
    role_line: Option<String>,
    doctor: bool,
    other_practice: bool,
    values: Values,
    problems: Problems,
    fields: Vec<Field>,
    /// Every procedure once: the chosen specialty's group first (open), then
    /// the others' remaining procedures (collapsed).
    groups: Vec<SpecialtyGroup>,
    note: Option<String>,
}

#[derive(Template)]
#[template(path = "check_email.html")]
struct CheckEmailPage {
    nav: Option<super::Nav>,
    email: String,
}

fn role_line(relationship: Option<Relationship>, practice: &str) -> Option<String> {
    Some(match relationship? {
        Relationship::Patient => format!("You are registering as a patient of {practice}."),
        Relationship::DoctorInPractice => format!("You are registering as a doctor at {practice}."),
        Relationship::StaffInPractice => format!("You are registering as a staff member at {practice}."),
        Relationship::DoctorOtherPractice => "You are registering as a doctor at another practice.".to_owned(),
        Relationship::StaffOtherPractice => "You are registering as a staff member at another practice.".to_owned(),
    })
}

fn is_doctor(relationship: Option<Relationship>) -> bool {
    matches!(
        relationship,
        Some(Relationship::DoctorInPractice | Relationship::DoctorOtherPractice)
    )
}

impl RegisterPage {
    fn new(invitation: &Invitation, id: &MessageId, invite: &str, values: Values, problems: Problems) -> Self {
        let relationship = invitation.relationship;
        let data = specialties::all();
        let fields = data
            .groups()
            .into_iter()
            .map(|(label, group)| Field {
                label,
                options: group
                    .iter()
                    .map(|s| SpecialtyOption {
                        name: s.name.clone(),
                        selected: s.name == values.specialty,
                    })
                    .collect(),
            })
            .collect();
        let chosen = data.find(&values.specialty);
        let ordered = chosen.into_iter().chain(
            data.groups()
                .into_iter()
                .flat_map(|(_, group)| group)
                .filter(|s| s.name != values.specialty),
        );
        let mut seen = std::collections::HashSet::new();
        let mut groups = Vec::new();
        for specialty in ordered {
            let mut procedures = Vec::new();
            for name in &specialty.procedures {
                if seen.insert(name.as_str()) {
                    let id = format!("procedure-{}", seen.len());
                    procedures.push(ProcedureBox {
                        id,
                        name: name.clone(),
                        checked: values.procedures.contains(name),
                    });
                }
            }
            if !procedures.is_empty() {
                let open = specialty.name == values.specialty || procedures.iter().any(|p| p.checked);
                groups.push(SpecialtyGroup {
                    name: specialty.name.clone(),
                    open,
                    procedures,
                });
            }
        }
        Self {
            nav: None,
            action: format!("/m/{id}/register?invite={invite}"),
            invite: invite.to_owned(),
            email: invitation.user.email.clone(),
            practice: invitation.practice.name.clone(),
            role_line: role_line(relationship, &invitation.practice.name),
            doctor: is_doctor(relationship),
            other_practice: relationship.is_some_and(Relationship::other_practice),
            values,
            problems,
            fields,
            groups,
            note: None,
        }
    }
}

/// The invitation behind `invite`, if it is for message `id` and nobody has
/// registered with it yet.
async fn invitation(state: &AppState, id: &MessageId, invite: &str) -> Result<Invitation, Error> {
    let next = Some(format!("/m/{id}"));
    let with_next = |problem| Error::Link {
        problem,
        next: next.clone(),
    };
    let invitation = match state.store.accounts().invitation(invite).await {
        Ok(invitation) => invitation,
        Err(error) => {
            return Err(match Error::from(error) {
                Error::Link { problem, .. } => with_next(problem),
                other => other,
            });
        }
    };
    // An invitation is reused for the practice's later messages to the person.
    if !state.store.accounts().invitation_opens(&invitation, id).await? {
        return Err(with_next(LinkProblem::Unknown));
    }
    if invitation.user.status != UserStatus::Invited {
        return Err(with_next(LinkProblem::Used));
    }
    Ok(invitation)
}

/// An invitation that expired or was used offers "Send me a new link" (and
/// sign-in, for those who registered); other problems are the error page.
fn dead_invitation(error: Error, invite: &str) -> Result<Response, Error> {
    if let Error::Link { problem, next } = &error {
        if let Some(page) = super::link_renewal::offer(*problem, invite, next.as_deref()) {
            return page;
        }
    }
    Err(error)
}

/// The empty registration form (`GET /m/{id}?invite=TOKEN`).
pub(crate) async fn form(state: &AppState, id: &MessageId, invite: &str) -> Result<Response, Error> {
    let invitation = match invitation(state, id, invite).await {
        Ok(invitation) => invitation,
        Err(error) => return dead_invitation(error, invite),
    };
    html(
        StatusCode::OK,
        &RegisterPage::new(&invitation, id, invite, Values::default(), Problems::default()),
    )
}

/// Checks the form against what the role needs; fills in the specialty's
/// procedures when none are ticked.
fn validate(values: &mut Values, doctor: bool, other_practice: bool, country: PhoneCountry) -> Problems {
    let mut problems = Problems::default();
    let too_long = |text: &str, max: usize| text.chars().count() > max;
    if values.full_name.is_empty() || too_long(&values.full_name, 200) {
        problems.full_name = Some("Please enter your full name.");
    }
    if values.phone.is_empty() {
        problems.phone = Some("Please enter a phone number we can reach you at.");
    } else if let Err(problem) = phone_number::to_e164(&values.phone, country) {
        problems.phone = Some(problem);
    }
    if doctor {
        let data = specialties::all();
        match data.find(&values.specialty) {
            None => problems.specialty = Some("Please choose your specialty from the list."),
            Some(specialty) if values.procedures.is_empty() => values.procedures.clone_from(&specialty.procedures),
            Some(_) => {}
        }
        if values.procedures.iter().any(|p| !data.knows_procedure(p)) {
            values.procedures.retain(|p| data.knows_procedure(p));
            problems.procedures = Some("Please choose procedures from the list.");
        }
    }
    if other_practice {
        if values.practice_name.is_empty() || too_long(&values.practice_name, 200) {
            problems.practice_name = Some("Please enter the name of your practice.");
        }
        let website = &values.practice_website;
        if too_long(website, 200)
            || website.chars().any(char::is_whitespace)
            || (!website.is_empty() && !website.contains('.'))
        {
            problems.practice_website = Some("Please enter a web address like www.example.com, or leave this empty.");
        }
        match phone_number::optional_e164(&values.practice_phone, country) {
            Ok(e164) => values.practice_phone = e164,
            Err(problem) => problems.practice_phone = Some(problem),
        }
        if too_long(&values.practice_address, 500) {
            problems.practice_address = Some("Please enter a shorter address.");
        }
    }
    problems
}

fn registration(values: &Values, doctor: bool, other_practice: bool) -> Registration {
    let optional = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    let mut profile = Profile::default();
    if doctor {
        profile.specialty = optional(&values.specialty);
        profile.procedures.clone_from(&values.procedures);
    }
    if other_practice {
        profile.practice_name = optional(&values.practice_name);
        profile.practice_website = optional(&values.practice_website);
        profile.practice_phone = optional(&values.practice_phone);
        profile.practice_address = optional(&values.practice_address);
    }
    Registration {
        full_name: values.full_name.clone(),
        phone: values.phone.clone(),
        profile,
    }
}

/// `POST /m/{id}/register?invite=TOKEN`: registers, or shows the form again with the
/// problems (or with a specialty's procedures ticked).
pub async fn submit(
    State(state): State<AppState>,
    Client(client): Client,
    Path(id): Path<String>,
    Query(query): Query<InviteQuery>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, Error> {
    let id = message_id(&id)?;
    let invite = if query.invite.is_empty() {
        field(&form, "invite").to_owned()
    } else {
        query.invite
    };
    if invite.is_empty() {
        return Err(Error::NotSignedIn {
            next: format!("/m/{id}"),
        });
    }
    let invitation = match invitation(&state, &id, &invite).await {
        Ok(invitation) => invitation,
        Err(error) => return dead_invitation(error, &invite),
    };
    let doctor = is_doctor(invitation.relationship);
    let other_practice = invitation.relationship.is_some_and(Relationship::other_practice);
    let mut values = Values::from_form(&form);

    if doctor && field(&form, "step") == "specialty" {
        let mut problems = Problems::default();
        let note = if let Some(specialty) = specialties::all().find(&values.specialty) {
            values.procedures.clone_from(&specialty.procedures);
            Some(format!(
                "We ticked the usual procedures for {}. Untick any you don't do, add others, then press Register.",
                specialty.name
            ))
        } else {
            problems.specialty = Some("Please choose your specialty from the list.");
            None
        };
        let mut page = RegisterPage::new(&invitation, &id, &invite, values, problems);
        page.note = note;
        return html(StatusCode::OK, &page);
    }

    let country = state.store.policy().default_phone_country;
    let problems = validate(&mut values, doctor, other_practice, country);
    if problems.any() {
        return html(
            StatusCode::BAD_REQUEST,
            &RegisterPage::new(&invitation, &id, &invite, values, problems),
        );
    }
    match state
        .store
        .accounts()
        .register(&invite, registration(&values, doctor, other_practice), &client)
        .await
    {
        Ok(user) => html(
            StatusCode::OK,
            &CheckEmailPage {
                nav: None,
                email: user.email,
            },
        ),
        Err(store::Error::Invalid(message)) => {
            let problems = Problems {
                general: Some(message),
                ..Problems::default()
            };
            html(
                StatusCode::BAD_REQUEST,
                &RegisterPage::new(&invitation, &id, &invite, values, problems),
            )
        }
        Err(error) => Err(match Error::from(error) {
            Error::Link { problem, .. } => Error::Link {
                problem,
                next: Some(format!("/m/{id}")),
            },
            other => other,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doctor_without_procedures_gets_the_specialtys_usual_ones() {
        let mut values = Values {
            full_name: "Dr A".into(),
            phone: "(201) 555-0123".into(),
            specialty: "Endodontics".into(),
            ..Values::default()
        };
        assert!(!validate(&mut values, true, false, PhoneCountry::default()).any());
        assert!(values.procedures.iter().any(|p| p == "Root canal treatment"));
    }

    #[test]
    fn unknown_specialty_and_procedures_are_refused() {
        let mut values = Values {
            full_name: "Dr A".into(),
            phone: "555".into(),
            specialty: "Wizardry".into(),
            procedures: vec!["Fillings".into(), "Spells".into()],
            ..Values::default()
        };
        let problems = validate(&mut values, true, false, PhoneCountry::default());
        assert!(problems.specialty.is_some() && problems.procedures.is_some());
        assert!(problems.phone.is_some(), "555 can't be a phone");
        assert_eq!(values.procedures, ["Fillings"]);
    }

    #[test]
    fn other_practice_needs_a_practice_name() {
        let mut values = Values {
            full_name: "B".into(),
            phone: "555".into(),
            practice_website: "not a site".into(),
            ..Values::default()
        };
        let problems = validate(&mut values, false, true, PhoneCountry::default());
        assert!(problems.practice_name.is_some() && problems.practice_website.is_some());
        assert!(
            validate(
                &mut Values {
                    full_name: "P".into(),
                    phone: "1".into(),
                    ..Values::default()
                },
                false,
                false,
                PhoneCountry::default()
            )
            .full_name
            .is_none()
        );
    }
}
