//! `GET /m/{id}`: a secure message in its conversation. Signed in, the reader
//! sees every message of the thread they may see (newest last, earlier ones
//! folded, the one linked to open) beside their folder's list; with
//! `?print=message` or `?print=conversation`, the same content alone, unfolded,
//! for printing. With an invitation, a new recipient sees the registration
//! form (posted to `/m/{id}/register`, see `register.rs`); anyone else is sent
//! to sign in. A participant asking for a message that ended (deleted for
//! everyone, expired, or deleted for themself) sees how and when (410 Gone).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::lists::{Folder, ListPane};
use super::message_view::MessageBlock;
use super::{Nav, html, message_id};
use crate::pagination::{Page, PageQuery};
use crate::routes::{Group, Routes};
use crate::session::{Client, Viewer};
use crate::time::Shown;
use crate::{AppState, Error};
use store::messages::lifecycle::Ending;

/// A message's page: for anyone, as it also shows the registration form.
pub fn routes() -> Routes {
    Routes::new().group(Group::public().get("/m/{id}", show))
}

/// What to print, if the page is the print view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Print {
    /// The message linked to, alone.
    Message,
    /// Every message of the conversation the reader may see.
    Conversation,
}

/// `?invite=TOKEN` (a new recipient) and `?print=message|conversation`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MessageQuery {
    invite: String,
    print: String,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    nav: Option<Nav>,
    /// The message linked to.
    id: String,
    /// Its subject: the conversation's title.
    subject: String,
    messages: Vec<MessageBlock>,
    /// The folder beside the conversation (none when printing).
    list: Option<ListPane>,
    print: Option<Print>,
    /// For the lifecycle forms (`message_lifecycle.rs`).
    csrf: String,
    /// The step "Keep longer" and "Delete sooner" move the date by.
    step_days: i64,
}

/// What a participant sees of a message that ended: how, and when.
#[derive(Template)]
#[template(path = "message_gone.html")]
struct GonePage {
    nav: Option<Nav>,
    ending: Ending,
    at: Option<Shown>,
}

impl MessagePage {
    fn printing_conversation(&self) -> bool {
        self.print == Some(Print::Conversation)
    }
}

/// `GET /m/{id}` (`?invite=TOKEN` for a new recipient, `?print=…` to print).
pub async fn show(
    State(state): State<AppState>,
    Client(client): Client,
    Path(id): Path<String>,
    Query(query): Query<MessageQuery>,
    viewer: Option<Viewer>,
) -> Result<Response, Error> {
    let id = message_id(&id)?;
    let print = match query.print.as_str() {
        "" => None,
        "message" => Some(Print::Message),
        "conversation" => Some(Print::Conversation),
        _ => {
            return Err(Error::BadRequest(
                "To print, choose print=message or print=conversation.".to_owned(),
            ));
        }
    };
    let Some(viewer) = viewer else {
        if query.invite.is_empty() {
            return Err(Error::NotSignedIn {
                next: format!("/m/{id}"),
            });
        }
        return super::register::form(&state, &id, &query.invite).await;
    };
    let mail = state.store.mail();
    let opened = if print == Some(Print::Message) {
        mail.open_message(&viewer.user, &id, &client).await.map(|v| vec![v])
    } else {
        mail.open_conversation(&viewer.user, &id, &client).await
    };
    let views = match opened {
        Ok(views) => views,
        // A participant learns it ended, and when; anyone else, nothing.
        Err(store::Error::NotFound) => {
            let tombstone = mail.tombstone(&viewer.user, &id).await?;
            return html(
                StatusCode::GONE,
                &GonePage {
                    nav: Some(viewer.nav()),
                    ending: tombstone.ending,
                    at: tombstone.at.map(|at| viewer.zone.show(at)),
                },
            );
        }
        Err(other) => return Err(other.into()),
    };
    let now = state.store.now();
    let opened_by_sender = views.iter().find(|v| v.id == id).is_some_and(|v| v.is_sender);
    let count = views.len();
    let mut messages = Vec::with_capacity(count);
    for (at, view) in views.into_iter().enumerate() {
        let receipts = if view.is_sender {
            match mail.receipts(&viewer.user, &view.id).await {
                Ok(receipts) => receipts,
                // It ended since it was opened: no receipts to show.
                Err(store::Error::NotFound) => Vec::new(),
                Err(other) => return Err(other.into()),
            }
        } else {
            Vec::new()
        };
        let can_change = mail.may_change_expiry(&viewer.user, &view.id).await?;
        let mut block = MessageBlock::new(view, viewer.zone).await;
        block.lifecycle(now, can_change, receipts, viewer.zone);
        // Earlier messages fold, except the one linked to; printing unfolds all.
        block.collapsed = print.is_none() && at + 1 < count && block.id != id.as_str();
        messages.push(block);
    }
    let subject = messages
        .iter()
        .find(|m| m.id == id.as_str())
        .map_or_else(String::new, |m| m.subject.clone());
    let list = if print.is_some() {
        None
    } else {
        let folder = if opened_by_sender { Folder::Sent } else { Folder::Inbox };
        let mut list = ListPane::load(&state, &viewer, folder, Page::from_query(&PageQuery::default())?).await?;
        list.current = Some(id.to_string());
        Some(list)
    };
    // Opening marked messages read: the folder list counts what is left.
    let mut nav = viewer.nav();
    nav.unread = mail.unread_count(&viewer.user).await?;
    html(
        StatusCode::OK,
        &MessagePage {
            nav: Some(nav),
            id: id.to_string(),
            subject,
            messages,
            list,
            print,
            csrf: viewer.csrf(),
            step_days: state.store.policy().extend_step_days,
        },
    )
}
