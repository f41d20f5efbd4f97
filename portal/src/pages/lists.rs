//! The inbox (messages received) and the sent list, a page at a time (see
//! `pagination.rs`).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use store::messages::MessageSummary;

use super::{Nav, html};
use crate::pagination::{Links, Page, PageQuery};
use crate::routes::{Group, Routes};
use crate::session::Viewer;
use crate::{AppState, Error};

/// The inbox and the sent list.
pub fn routes() -> Routes {
    Routes::new().group(Group::signed_in().get("/inbox", inbox).get("/sent", sent))
}

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
    page: Links,
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

/// `GET /inbox?page=N&limit=M`
pub async fn inbox(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<PageQuery>,
) -> Result<Response, Error> {
    let page = Page::from_query(&query)?;
    let mut list = state
        .store
        .mail()
        .inbox_page(&viewer.user, page.fetch(), page.offset())
        .await?;
    let links = page.cut("/inbox", &mut list);
    html(
        StatusCode::OK,
        &ListPage {
            nav: Some(viewer.nav()),
            title: "Inbox",
            sent: false,
            rows: rows(list),
            page: links,
        },
    )
}

/// `GET /sent?page=N&limit=M`
pub async fn sent(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<PageQuery>,
) -> Result<Response, Error> {
    let page = Page::from_query(&query)?;
    let mut list = state
        .store
        .mail()
        .sent_page(&viewer.user, page.fetch(), page.offset())
        .await?;
    let links = page.cut("/sent", &mut list);
    html(
        StatusCode::OK,
        &ListPage {
            nav: Some(viewer.nav()),
            title: "Sent",
            sent: true,
            rows: rows(list),
            page: links,
        },
    )
}
