//! `/compose`: writing a secure message — new, reply (`?reply=ID`), reply all
//! (`?reply_all=ID`) or forward (`?forward=ID`). The form has two parts, kept
//! apart on the page: the notification note, which goes by ordinary email and
//! is checked for what looks like PHI (`compose_phi.rs`), and the secure
//! message (subject, body, attachments). Posting it hands a draft to the
//! store (`store.mail().send_draft`), which spools it as the SMTP relay would;
//! when the form needs more (a new address's relationship, a confirmation of
//! the note) it comes back with everything typed kept, and a free account
//! writing where it may not gets a page that explains the upgrade.

use std::time::Duration;

use askama::Template;
use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::handler::Handler;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use store::accounts::Relationship;
use store::ids::MessageId;
use store::outgoing::{Answer, DraftProblem};

use super::compose_form::{ComposeForm, split_addresses};
use super::{Nav, compose_phi, html};
use crate::routes::{Group, Routes};
use crate::sanitize::human_size;
use crate::session::{Client, Viewer};
use crate::{AppState, Error};

/// The compose form and its script.
pub fn routes() -> Routes {
    Routes::new()
        .group(
            Group::signed_in()
                .get("/compose", form)
                // Files stream into staged uploads: no whole-body limit here
                // (the uploads' own size rules apply as they are staged).
                .post(
                    "/compose",
                    Handler::<_, AppState>::layer(send, DefaultBodyLimit::disable()),
                )
                .get("/compose/new-addresses", new_addresses),
        )
        .group(
            Group::public()
                .get("/static/phi-warning.js", || {
                    script(include_str!("../../static/phi-warning.js"))
                })
                .get("/static/compose.js", || script(include_str!("../../static/compose.js"))),
        )
}

/// `?reply=ID`, `?reply_all=ID`, `?forward=ID`, or `?to=ADDRESS` for a new message.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ComposeQuery {
    reply: String,
    reply_all: String,
    forward: String,
    to: String,
}

struct RoleOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

/// A new address and the relationship question about it.
struct RoleQuestion {
    address: String,
    options: Vec<RoleOption>,
}

struct FileRow {
    name: String,
    size: String,
}

struct StagedRow {
    id: String,
    name: String,
}

/// A free account's message to someone it may not write to.
struct Refusal {
    address: String,
    practices: String,
    /// A doctor or staff member of a practice: "Buy now" is offered.
    can_buy: bool,
    /// When their SecureMail plan ended, if it did (billing).
    lapsed: Option<String>,
}

#[derive(Template)]
#[template(path = "compose.html")]
struct ComposePage {
    nav: Option<Nav>,
    csrf: String,
    title: &'static str,
    error: Option<String>,
    refusal: Option<Refusal>,
    /// What a free account may write to, said before it tries.
    free_hint: Option<String>,
    to: String,
    cc: String,
    bcc: String,
    note: String,
    subject: String,
    body: String,
    reply_to_message: String,
    forward_of: String,
    roles: Vec<RoleQuestion>,
    phi: Vec<String>,
    phi_words: String,
    staged: Vec<StagedRow>,
    forwarded: Vec<FileRow>,
    /// The five relationships (value, label), for questions the script adds.
    role_options: Vec<(&'static str, &'static str)>,
}

impl ComposePage {
    fn new(viewer: &Viewer, title: &'static str, form: &ComposeForm) -> Self {
        Self {
            nav: Some(viewer.nav()),
            csrf: viewer.csrf(),
            title,
            error: None,
            refusal: None,
            free_hint: None,
            to: form.to.clone(),
            cc: form.cc.clone(),
            bcc: form.bcc.clone(),
            note: form.note.clone(),
            subject: form.subject.clone(),
            body: form.body.clone(),
            reply_to_message: form.reply_to.as_ref().map(ToString::to_string).unwrap_or_default(),
            forward_of: form.forward_of.as_ref().map(ToString::to_string).unwrap_or_default(),
            roles: Vec::new(),
            phi: Vec::new(),
            phi_words: compose_phi::words().collect::<Vec<_>>().join("|"),
            staged: Vec::new(),
            forwarded: Vec::new(),
            role_options: Relationship::ALL.iter().map(|r| (r.as_str(), r.label())).collect(),
        }
    }

    fn ask_roles(&mut self, addresses: Vec<String>, form: &ComposeForm) {
        self.roles = addresses
            .into_iter()
            .map(|address| {
                let chosen = form
                    .roles
                    .iter()
                    .find(|(a, _)| a.trim().eq_ignore_ascii_case(&address))
                    .map(|(_, r)| r.as_str())
                    .unwrap_or_default();
                RoleQuestion {
                    options: Relationship::ALL
                        .iter()
                        .map(|o| RoleOption {
                            value: o.as_str(),
                            label: o.label(),
                            selected: o.as_str() == chosen,
                        })
                        .collect(),
                    address,
                }
            })
            .collect();
    }

    /// The attachments a forward carries and the files already staged.
    async fn attachments(
        &mut self,
        state: &AppState,
        viewer: &Viewer,
        form: &ComposeForm,
        client: &str,
    ) -> Result<(), Error> {
        if let Some(id) = &form.forward_of {
            let prefill = state
                .store
                .mail()
                .prefill(&viewer.user, id, Answer::Forward, client)
                .await?;
            self.forwarded = file_rows(&prefill);
        }
        for id in &form.uploads {
            let status = state.store.uploads().status(&viewer.user, id).await?;
            self.staged.push(StagedRow {
                id: id.to_string(),
                name: status.file_name,
            });
        }
        Ok(())
    }
}

fn file_rows(prefill: &store::outgoing::Prefill) -> Vec<FileRow> {
    prefill
        .attachments
        .iter()
        .map(|(name, size)| FileRow {
            name: name.expose().clone(),
            size: human_size(*size),
        })
        .collect()
}

fn title_of(form: &ComposeForm) -> &'static str {
    match (&form.reply_to, &form.forward_of) {
        (Some(_), _) => "Reply",
        (_, Some(_)) => "Forward",
        _ => "New secure message",
    }
}

/// `GET /compose`: an empty form, or one filled in to answer a message.
pub async fn form(
    State(state): State<AppState>,
    Client(client): Client,
    Query(query): Query<ComposeQuery>,
    viewer: Viewer,
) -> Result<Response, Error> {
    let answer = [
        (&query.reply, Answer::Reply, "Reply"),
        (&query.reply_all, Answer::ReplyAll, "Reply to all"),
        (&query.forward, Answer::Forward, "Forward"),
    ]
    .into_iter()
    .find(|(id, _, _)| !id.is_empty());
    let mut form = ComposeForm {
        to: query.to.trim().to_owned(),
        ..ComposeForm::default()
    };
    let Some((id, answer, title)) = answer else {
        let mut page = ComposePage::new(&viewer, "New secure message", &form);
        if viewer.user.may_send_secure().is_err() {
            page.free_hint = Some(free_hint(&state, &viewer).await?);
        }
        return html(StatusCode::OK, &page);
    };
    let id = super::message_id(id)?;
    let prefill = state.store.mail().prefill(&viewer.user, &id, answer, &client).await?;
    form.to = prefill.to.join(", ");
    form.cc = prefill.cc.join(", ");
    form.subject.clone_from(prefill.subject.expose());
    form.body.clone_from(prefill.body.expose());
    if answer == Answer::Forward {
        form.forward_of = Some(id);
    } else {
        form.reply_to = Some(id);
    }
    let mut page = ComposePage::new(&viewer, title, &form);
    page.forwarded = file_rows(&prefill);
    html(StatusCode::OK, &page)
}

async fn free_hint(state: &AppState, viewer: &Viewer) -> Result<String, Error> {
    let practices: Vec<String> = state
        .store
        .mail()
        .invited_by(&viewer.user)
        .await?
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    let hint = if practices.is_empty() {
        "With a free account you can reply to the messages you receive.".to_owned()
    } else {
        format!(
            "With a free account you can reply to the messages you receive, and write to the doctors and staff of {}.",
            practices.join(", ")
        )
    };
    // A lapsed plan says so (billing), rather than leaving the change unexplained.
    Ok(match state.store.billing().lapsed_at(&viewer.user).await? {
        Some(at) => format!("Your SecureMail plan ended on {}. {hint}", viewer.zone.show(at).text),
        None => hint,
    })
}

/// `POST /compose`: sends the message, or shows the form again with what it needs.
pub async fn send(
    State(state): State<AppState>,
    Client(client): Client,
    viewer: Viewer,
    multipart: Multipart,
) -> Result<Response, Error> {
    let form = ComposeForm::read(&state, &viewer.user, multipart).await?;
    let title = title_of(&form);
    let again = async |status: StatusCode, fill: &(dyn Fn(&mut ComposePage) + Sync)| -> Result<Response, Error> {
        let mut page = ComposePage::new(&viewer, title, &form);
        page.attachments(&state, &viewer, &form, &client).await?;
        fill(&mut page);
        html(status, &page)
    };
    if let Some(message) = &form.file_error {
        return again(StatusCode::UNPROCESSABLE_ENTITY, &|p| p.error = Some(message.clone())).await;
    }
    let draft = match form.draft() {
        Ok(draft) => draft,
        Err(Error::BadRequest(message)) => {
            return again(StatusCode::UNPROCESSABLE_ENTITY, &|p| p.error = Some(message.clone())).await;
        }
        Err(other) => return Err(other),
    };
    let problem = match state.store.mail().check_draft(&viewer.user, &draft).await {
        Ok(checked) => checked.err(),
        Err(store::Error::Invalid(message)) => {
            return again(StatusCode::UNPROCESSABLE_ENTITY, &|p| p.error = Some(message.clone())).await;
        }
        Err(other) => return Err(other.into()),
    };
    match problem {
        None => {}
        Some(DraftProblem::NoRecipients) => {
            let message = "Please enter at least one recipient.".to_owned();
            return again(StatusCode::UNPROCESSABLE_ENTITY, &|p| p.error = Some(message.clone())).await;
        }
        Some(DraftProblem::NeedsRoles(addresses)) => {
            return again(StatusCode::UNPROCESSABLE_ENTITY, &|p| {
                p.ask_roles(addresses.clone(), &form);
                p.error = Some("Tell us how you know each new recipient, so they get the right invitation.".to_owned());
            })
            .await;
        }
        Some(DraftProblem::FreeAccount { address, practices }) => {
            let can_buy = viewer.user.may_send_secure() != Err(store::accounts::SenderRefusal::NotPracticeUser);
            let lapsed = state.store.billing().lapsed_at(&viewer.user).await?;
            let lapsed = lapsed.map(|at| viewer.zone.show(at).text);
            return again(StatusCode::FORBIDDEN, &|p| {
                p.title = "Upgrade to write to anyone";
                p.refusal = Some(Refusal {
                    address: address.clone(),
                    practices: practices.join(", "),
                    can_buy,
                    lapsed: lapsed.clone(),
                });
            })
            .await;
        }
    }
    let phi = compose_phi::findings(&draft.note);
    if !phi.is_empty() && !form.confirm_note {
        return again(StatusCode::UNPROCESSABLE_ENTITY, &|p| p.phi.clone_from(&phi)).await;
    }
    let mut files = Vec::with_capacity(form.uploads.len());
    for id in &form.uploads {
        files.push(state.store.uploads().open(&viewer.user, id).await?);
    }
    let sent = match state
        .store
        .mail()
        .send_draft(&viewer.user, &draft, files, &state.config.message_id_host(), &client)
        .await
    {
        Ok(Ok(id)) => id,
        // Checked above; changed in between (a role, a contact): ask again.
        Ok(Err(_)) => {
            let message = "Something changed while sending; please check and send again.".to_owned();
            return again(StatusCode::CONFLICT, &|p| p.error = Some(message.clone())).await;
        }
        Err(store::Error::Invalid(message)) => {
            return again(StatusCode::UNPROCESSABLE_ENTITY, &|p| p.error = Some(message.clone())).await;
        }
        Err(other) => return Err(other.into()),
    };
    for id in &form.uploads {
        if let Err(error) = state.store.uploads().discard(&viewer.user, id).await {
            tracing::warn!(%error, "portal: a sent message's staged upload was not removed (the sweeper will)");
        }
    }
    state.config.spooled.notify_one();
    let to = if sealed(&state, &sent).await {
        format!("/m/{sent}")
    } else {
        "/sent".to_owned()
    };
    Ok(Redirect::to(&to).into_response())
}

/// Waits (a few seconds at most) until the sealer has sealed message `id`, so
/// the sender lands on it; `false` if it is still in the spool then.
pub(crate) async fn sealed(state: &AppState, id: &MessageId) -> bool {
    let mut changes = state.store.mail().mail_changes();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match state.store.queue().spool_entry(id).await {
            Ok(None) => return true,
            Ok(Some(entry)) if entry.quarantined_at.is_none() => {}
            _ => return false,
        }
        if !matches!(tokio::time::timeout_at(deadline, changes.changed()).await, Ok(Ok(()))) {
            return false;
        }
    }
}

/// `GET /static/phi-warning.js` and `/static/compose.js`.
async fn script(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// `?to=…&cc=…&bcc=…&reply_to_message=ID`: the addresses the form would ask about.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AddressesQuery {
    to: String,
    cc: String,
    bcc: String,
    reply_to_message: String,
}

/// `GET /compose/new-addresses`: which of the addresses typed so far need their
/// relationship chosen (JSON `{"ask": [...]}`), so the form's script asks as
/// they are typed; the server asks again when the form is sent anyway.
pub async fn new_addresses(
    State(state): State<AppState>,
    Query(query): Query<AddressesQuery>,
    viewer: Viewer,
) -> Result<Response, Error> {
    let reply_to = match query.reply_to_message.trim() {
        "" => None,
        id => Some(super::message_id(id)?),
    };
    let draft = store::outgoing::Draft {
        to: split_addresses(&query.to),
        cc: split_addresses(&query.cc),
        bcc: split_addresses(&query.bcc),
        reply_to,
        ..store::outgoing::Draft::default()
    };
    let ask = match state.store.mail().check_draft(&viewer.user, &draft).await {
        Ok(Err(DraftProblem::NeedsRoles(addresses))) => addresses,
        // Not yet addresses, or nothing to ask: the form says why when sent.
        Ok(_) | Err(store::Error::Invalid(_)) => Vec::new(),
        Err(other) => return Err(other.into()),
    };
    Ok(axum::Json(serde_json::json!({ "ask": ask })).into_response())
}
