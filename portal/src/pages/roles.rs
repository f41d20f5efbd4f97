//! `/m/{id}/roles`: the sender says how they know each new recipient (patient,
//! colleague, another practice), so each gets the right invitation.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use store::accounts::Relationship;
use store::ids::{MessageId, UserId};

use super::{Nav, field, html, message_id};
use crate::routes::{Group, Routes};
use crate::session::{Client, Viewer};
use crate::{AppState, Error};

/// The sender's page for choosing new recipients' relationships.
pub fn routes() -> Routes {
    Routes::new().group(
        Group::signed_in()
            .get("/m/{id}/roles", form)
            .post("/m/{id}/roles", submit),
    )
}

struct RoleOption {
    value: &'static str,
    label: &'static str,
    checked: bool,
}

struct Choice {
    user_id: i64,
    email: String,
    options: Vec<RoleOption>,
}

#[derive(Template)]
#[template(path = "roles.html")]
struct RolesPage {
    nav: Option<Nav>,
    id: String,
    csrf: String,
    recipients: Vec<Choice>,
    error: Option<&'static str>,
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    id: &MessageId,
    form: &[(String, String)],
    error: Option<&'static str>,
) -> Result<RolesPage, Error> {
    let pending = state.store.mail().pending_roles(&viewer.user, id).await?;
    Ok(RolesPage {
        nav: Some(viewer.nav()),
        id: id.to_string(),
        csrf: viewer.csrf(),
        recipients: pending
            .into_iter()
            .map(|r| {
                let chosen = field(form, &format!("role_{}", r.user_id));
                let options = Relationship::ALL
                    .iter()
                    .map(|o| RoleOption {
                        value: o.as_str(),
                        label: o.label(),
                        checked: o.as_str() == chosen,
                    })
                    .collect();
                Choice {
                    user_id: r.user_id.0,
                    email: r.email,
                    options,
                }
            })
            .collect(),
        error,
    })
}

/// `GET /m/{id}/roles`
pub async fn form(State(state): State<AppState>, Path(id): Path<String>, viewer: Viewer) -> Result<Response, Error> {
    let id = message_id(&id)?;
    html(StatusCode::OK, &page(&state, &viewer, &id, &[], None).await?)
}

/// The choices in a submitted form: fields `role_<user id>` = a relationship.
fn choices(form: &[(String, String)]) -> Result<Vec<(UserId, Relationship)>, ()> {
    let mut out = Vec::new();
    for (name, value) in form {
        let Some(user) = name.strip_prefix("role_") else {
            continue;
        };
        let user = user.parse::<i64>().map_err(|_| ())?;
        if value.is_empty() {
            continue;
        }
        out.push((UserId(user), Relationship::parse(value).ok_or(())?));
    }
    Ok(out)
}

/// `POST /m/{id}/roles`: records the choices; the recipients are then notified.
pub async fn submit(
    State(state): State<AppState>,
    Client(client): Client,
    Path(id): Path<String>,
    viewer: Viewer,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, Error> {
    let id = message_id(&id)?;
    let Ok(chosen) = choices(&form) else {
        return html(
            StatusCode::BAD_REQUEST,
            &page(
                &state,
                &viewer,
                &id,
                &form,
                Some("Please choose one of the options for each person."),
            )
            .await?,
        );
    };
    if chosen.is_empty() {
        let page = page(
            &state,
            &viewer,
            &id,
            &form,
            Some("Please choose how you know at least one person."),
        )
        .await?;
        if !page.recipients.is_empty() {
            return html(StatusCode::BAD_REQUEST, &page);
        }
    } else {
        state
            .store
            .mail()
            .choose_roles(&viewer.user, &id, &chosen, &client)
            .await?;
    }
    Ok(Redirect::to(&format!("/m/{id}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_fields_parse() {
        let form = vec![
            ("csrf".to_owned(), "x".to_owned()),
            ("role_7".to_owned(), "patient".to_owned()),
            ("role_9".to_owned(), String::new()),
            ("role_12".to_owned(), "doctor_other_practice".to_owned()),
        ];
        assert_eq!(
            choices(&form).unwrap(),
            vec![
                (UserId(7), Relationship::Patient),
                (UserId(12), Relationship::DoctorOtherPractice)
            ]
        );
        assert!(choices(&[("role_x".to_owned(), "patient".to_owned())]).is_err());
        assert!(choices(&[("role_1".to_owned(), "admin".to_owned())]).is_err());
    }
}
