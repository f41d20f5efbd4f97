//! The inbox (messages received) and the sent list, a page at a time (see
//! `pagination.rs`); on a wide screen beside the reading pane, which the
//! message page (`message.rs`) fills, showing the same list. Each line shows
//! its self-destruct countdown; in the sent list, a read mark (how many of its
//! recipients opened it).

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
    /// "Deletes in 12 days".
    pub countdown: String,
    pub ends_soon: bool,
    /// Sent list: "Read", "Read by 1 of 2" or "Not read yet" (none for no recipients yet).
    pub read_mark: Option<ReadMark>,
}

/// The sent list's compact read mark.
pub(super) struct ReadMark {
    /// Everyone opened it.
    pub all: bool,
    /// A short mark ("✓", "1/2") and its words for screen readers and tooltips.
    pub mark: String,
    pub words: String,
}

impl ReadMark {
    fn new(read_by: i64, recipients: i64) -> Option<Self> {
        if recipients <= 0 {
            return None;
        }
        let all = read_by >= recipients;
        Some(Self {
            all,
            mark: if all && recipients == 1 {
                "✓".to_owned()
            } else if all {
                "✓ all".to_owned()
            } else {
                format!("{read_by}/{recipients}")
            },
            words: match (read_by, recipients) {
                (0, _) => "Not read yet".to_owned(),
                (_, 1) => "Read".to_owned(),
                (r, n) if r >= n => format!("Read by all {n} recipients"),
                (r, n) => format!("Read by {r} of {n} recipients"),
            },
        })
    }
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
            rows: rows(list, viewer.zone, state.store.now(), folder == Folder::Sent),
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

fn rows(summaries: Vec<MessageSummary>, zone: Zone, now: i64, sent: bool) -> Vec<Row> {
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
                countdown: super::countdown::deletes_in(now, m.expires_at),
                ends_soon: super::countdown::soon(now, m.expires_at),
                read_mark: if sent {
                    ReadMark::new(m.read_by, m.recipients)
                } else {
                    None
                },
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

#[cfg(test)]
mod tests {
    use super::ReadMark;

    #[test]
    fn the_read_mark_counts_who_opened_it() {
        assert!(ReadMark::new(0, 0).is_none());
        let none = ReadMark::new(0, 2).unwrap();
        assert_eq!(
            (none.mark.as_str(), none.words.as_str(), none.all),
            ("0/2", "Not read yet", false)
        );
        let some = ReadMark::new(1, 2).unwrap();
        assert_eq!(
            (some.mark.as_str(), some.words.as_str()),
            ("1/2", "Read by 1 of 2 recipients")
        );
        let one = ReadMark::new(1, 1).unwrap();
        assert_eq!((one.mark.as_str(), one.words.as_str(), one.all), ("✓", "Read", true));
        let all = ReadMark::new(3, 3).unwrap();
        assert_eq!(
            (all.mark.as_str(), all.words.as_str()),
            ("✓ all", "Read by all 3 recipients")
        );
    }
}
