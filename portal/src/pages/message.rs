//! `GET /m/{id}`: one secure message. Signed in, the reader sees it; with an
//! invitation, a new recipient sees the registration form (posted to
//! `/m/{id}/register`, see `register.rs`); anyone else is sent to sign in.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use store::clock::format_utc;
use store::messages::MessageView;

use super::{InviteQuery, Nav, html, message_id};
use crate::routes::{Group, Routes};
use crate::sanitize::{SafeHtml, human_size, sanitize_html_bounded};
use crate::session::{Client, Viewer};
use crate::{AppState, Error};

/// A message's page: for anyone, as it also shows the registration form.
pub fn routes() -> Routes {
    Routes::new().group(Group::public().get("/m/{id}", show))
}

struct AttachmentRow {
    index: usize,
    name: String,
    size: String,
}

struct RecipientRow {
    email: String,
    status: &'static str,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    nav: Option<Nav>,
    id: String,
    sender_name: String,
    practice_name: String,
    notice: Option<String>,
    sent_on: String,
    expires_on: String,
    subject: String,
    from: String,
    to: String,
    cc: String,
    date: String,
    body_html: Option<String>,
    body_text: Option<String>,
    /// The HTML body was too large or too deeply nested to show.
    body_too_complex: bool,
    attachments: Vec<AttachmentRow>,
    is_sender: bool,
    recipients: Vec<RecipientRow>,
    awaiting_roles: bool,
}

impl MessagePage {
    /// `html` is the message's HTML body, already sanitised (or refused).
    fn new(view: MessageView, html: Option<SafeHtml>, nav: Nav) -> Self {
        let meta = view.meta;
        let body_too_complex = html == Some(SafeHtml::TooComplex);
        let body_html = match html {
            Some(SafeHtml::Clean(clean)) if !clean.trim().is_empty() => Some(clean),
            _ => None,
        };
        let body_text = if body_html.is_some() {
            None
        } else {
            meta.text.filter(|t| !t.trim().is_empty())
        };
        let subject = meta.subject.trim();
        Self {
            nav: Some(nav),
            id: view.id.to_string(),
            sender_name: view.sender.display_name().to_owned(),
            practice_name: view.practice.name,
            notice: meta.notice.filter(|n| !n.trim().is_empty()),
            sent_on: format_utc(view.created_at),
            expires_on: format_utc(view.expires_at),
            subject: if subject.is_empty() {
                "(no subject)".to_owned()
            } else {
                subject.to_owned()
            },
            from: meta.from,
            to: meta.to.join(", "),
            cc: meta.cc.join(", "),
            date: format_utc(meta.date.unwrap_or(view.created_at)),
            body_html,
            body_text,
            body_too_complex,
            attachments: meta
                .attachments
                .into_iter()
                .enumerate()
                .map(|(index, a)| AttachmentRow {
                    index,
                    name: if a.name.trim().is_empty() {
                        format!("Attachment {}", index + 1)
                    } else {
                        a.name
                    },
                    size: human_size(a.size),
                })
                .collect(),
            is_sender: view.is_sender,
            awaiting_roles: view.recipients.iter().any(|r| r.awaiting_role),
            recipients: view
                .recipients
                .into_iter()
                .map(|r| RecipientRow {
                    status: match (r.awaiting_role, r.read) {
                        (true, _) => "Waiting for you to choose how you know them",
                        (false, true) => "Read",
                        (false, false) => "Not read yet",
                    },
                    email: r.email,
                })
                .collect(),
        }
    }
}

/// `GET /m/{id}` (and `?invite=TOKEN` for a new recipient).
pub async fn show(
    State(state): State<AppState>,
    Client(client): Client,
    Path(id): Path<String>,
    Query(query): Query<InviteQuery>,
    viewer: Option<Viewer>,
) -> Result<Response, Error> {
    let id = message_id(&id)?;
    if let Some(viewer) = viewer {
        let mut view = state.store.mail().open_message(&viewer.user, &id, &client).await?;
        let body = match view.meta.html.take() {
            Some(body) => Some(sanitize_html_bounded(body).await),
            None => None,
        };
        return html(StatusCode::OK, &MessagePage::new(view, body, viewer.nav()));
    }
    if query.invite.is_empty() {
        return Err(Error::NotSignedIn {
            next: format!("/m/{id}"),
        });
    }
    super::register::form(&state, &id, &query.invite).await
}
