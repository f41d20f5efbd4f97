//! The inbox (messages received) and the sent list.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use store::messages::MessageSummary;

use super::{Nav, html};
use crate::routes::{Group, Routes};
use crate::session::Viewer;
use crate::{AppState, Error};

/// The inbox and the sent list.
pub fn routes() -> Routes {
    Routes::new().group(Group::signed_in().get("/inbox", inbox).get("/sent", sent))
}

/// How many messages a list shows.
const LIMIT: i64 = 500;

/// One line of a list.
struct Row {
    id: String,
    who: String,
    subject: String,
    date: String,
    unread: bool,
    attachments: i64,
}

#[derive(Template)]
#[template(path = "list.html")]
struct ListPage {
    nav: Option<Nav>,
    title: &'static str,
    sent: bool,
    rows: Vec<Row>,
}

fn rows(summaries: Vec<MessageSummary>) -> Vec<Row> {
    summaries
        .into_iter()
        .map(|m| {
            let subject = m.subject.expose().trim();
            Row {
                id: m.id.to_string(),
                who: m.counterpart,
                subject: if subject.is_empty() {
                    "(no subject)".to_owned()
                } else {
                    subject.to_owned()
                },
                date: store::clock::format_utc(m.created_at),
                unread: m.unread,
                attachments: m.attachments,
            }
        })
        .collect()
}

/// `GET /inbox`
pub async fn inbox(State(state): State<AppState>, viewer: Viewer) -> Result<Response, Error> {
    let list = state.store.inbox(&viewer.user, LIMIT).await?;
    html(
        StatusCode::OK,
        &ListPage {
            nav: Some(viewer.nav()),
            title: "Inbox",
            sent: false,
            rows: rows(list),
        },
    )
}

/// `GET /sent`
pub async fn sent(State(state): State<AppState>, viewer: Viewer) -> Result<Response, Error> {
    let list = state.store.sent(&viewer.user, LIMIT).await?;
    html(
        StatusCode::OK,
        &ListPage {
            nav: Some(viewer.nav()),
            title: "Sent",
            sent: true,
            rows: rows(list),
        },
    )
}
