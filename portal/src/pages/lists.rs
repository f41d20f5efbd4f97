//! The inbox (messages received) and the sent list, a page at a time (see
//! `pagination.rs`); on a wide screen beside the reading pane, which the
//! message page (`message.rs`) fills, showing the same list.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use store::messages::MessageSummary;

use super::{Nav, html};
use crate::pagination::{Links, Page, PageQuery};
use crate::routes::{Group, Routes};
use crate::session::Viewer;
use crate::time::{Shown, Zone};
use crate::{AppState, Error};

/// The inbox and the sent list.
pub fn routes() -> Routes {
    Routes::new().group(Group::signed_in().get("/inbox", inbox).get("/sent", sent))
}

/// One line of a list.
pub(super) struct Row {
    pub id: String,
    pub who: String,
    pub subject: String,
    pub date: Shown,
    pub unread: bool,
    pub attachments: i64,
}

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Folder {
    Inbox,
    Sent,
}

impl Folder {
    fn path(self) -> &'static str {
        match self {
            Self::Inbox => "/inbox",
            Self::Sent => "/sent",
        }
    }
}

/// A list as the list page and the message page's side column show it.
pub(super) struct ListPane {
    pub title: &'static str,
    pub sent: bool,
    pub rows: Vec<Row>,
    pub page: Links,
    /// The message open beside the list, if any (marked as current).
    pub current: Option<String>,
}

impl ListPane {
    /// A page of `folder` for `viewer`, times in their zone.
    pub(super) async fn load(state: &AppState, viewer: &Viewer, folder: Folder, page: Page) -> Result<Self, Error> {
        let mail = state.store.mail();
        let mut list = match folder {
            Folder::Inbox => mail.inbox_page(&viewer.user, page.fetch(), page.offset()).await?,
            Folder::Sent => mail.sent_page(&viewer.user, page.fetch(), page.offset()).await?,
        };
        let links = page.cut(folder.path(), &mut list);
        Ok(Self {
            title: match folder {
                Folder::Inbox => "Inbox",
                Folder::Sent => "Sent",
            },
            sent: folder == Folder::Sent,
            rows: rows(list, viewer.zone),
            page: links,
            current: None,
        })
    }
}

#[derive(Template)]
#[template(path = "list.html")]
struct ListPage {
    nav: Option<Nav>,
    list: ListPane,
}

fn rows(summaries: Vec<MessageSummary>, zone: Zone) -> Vec<Row> {
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
                date: zone.show(m.created_at),
                unread: m.unread,
                attachments: m.attachments,
            }
        })
        .collect()
}

async fn list(state: AppState, viewer: Viewer, query: PageQuery, folder: Folder) -> Result<Response, Error> {
    let page = Page::from_query(&query)?;
    let list = ListPane::load(&state, &viewer, folder, page).await?;
    html(
        StatusCode::OK,
        &ListPage {
            nav: Some(viewer.nav()),
            list,
        },
    )
}

/// `GET /inbox?page=N&limit=M`
pub async fn inbox(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<PageQuery>,
) -> Result<Response, Error> {
    list(state, viewer, query, Folder::Inbox).await
}

/// `GET /sent?page=N&limit=M`
pub async fn sent(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<PageQuery>,
) -> Result<Response, Error> {
    list(state, viewer, query, Folder::Sent).await
}
