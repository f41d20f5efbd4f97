//! Pagination for lists: `?page=N&limit=M` within bounds, one extra row fetched
//! to know whether older entries exist, and the "Newer" / "Older" links. Bad
//! values get a clear "please check" page, not a guess.

use serde::Deserialize;

use crate::Error;

/// Entries per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most entries a page shows.
pub const MAX_LIMIT: u32 = 200;
/// The highest page number (keeps the offset far from overflow).
pub const MAX_PAGE: u32 = 100_000;

/// The query parameters, as text, so a bad value gets our own words.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PageQuery {
    page: String,
    limit: String,
}

/// Which page of a list to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// From 1, the newest entries.
    pub number: u32,
    pub limit: u32,
}

/// A page of a list and the links around it.
#[derive(Debug, PartialEq, Eq)]
pub struct Links {
    pub number: u32,
    /// The page before this one (newer entries), if this is not the first.
    pub newer: Option<String>,
    /// The page after this one (older entries), if there are any.
    pub older: Option<String>,
}

fn number(text: &str, default: u32, max: u32, what: &str) -> Result<u32, Error> {
    if text.is_empty() {
        return Ok(default);
    }
    match text.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(Error::BadRequest(format!(
            "The {what} must be a whole number from 1 to {max}."
        ))),
    }
}

impl Page {
    /// The page the query asks for.
    pub fn from_query(query: &PageQuery) -> Result<Self, Error> {
        Ok(Self {
            number: number(&query.page, 1, MAX_PAGE, "page number")?,
            limit: number(&query.limit, DEFAULT_LIMIT, MAX_LIMIT, "number of messages per page")?,
        })
    }

    /// How many entries to skip.
    pub fn offset(self) -> i64 {
        i64::from(self.number - 1) * i64::from(self.limit)
    }

    /// How many entries to fetch: one more than shown, to know if older exist.
    pub fn fetch(self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// Keeps this page's entries of `rows` (fetched with [`Self::fetch`]) and
    /// returns the links to the pages around it on `path`.
    pub fn cut<T>(self, path: &str, rows: &mut Vec<T>) -> Links {
        let more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        let link = |number: u32| {
            if self.limit == DEFAULT_LIMIT {
                format!("{path}?page={number}")
            } else {
                format!("{path}?page={number}&limit={}", self.limit)
            }
        };
        Links {
            number: self.number,
            newer: (self.number > 1).then(|| link(self.number - 1)),
            older: more.then(|| link(self.number + 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(page: &str, limit: &str) -> PageQuery {
        PageQuery {
            page: page.into(),
            limit: limit.into(),
        }
    }

    #[test]
    fn bounds_are_checked() {
        assert_eq!(
            Page::from_query(&query("", "")).unwrap(),
            Page {
                number: 1,
                limit: DEFAULT_LIMIT
            }
        );
        assert_eq!(Page::from_query(&query("3", "10")).unwrap().offset(), 20);
        for (page, limit) in [
            ("0", ""),
            ("-1", ""),
            ("x", ""),
            ("100001", ""),
            ("", "0"),
            ("", "201"),
            ("", "1e3"),
        ] {
            assert!(
                matches!(Page::from_query(&query(page, limit)), Err(Error::BadRequest(_))),
                "{page:?} {limit:?}"
            );
        }
        let last = Page::from_query(&query("100000", "200")).unwrap();
        assert_eq!(last.offset(), 99_999 * 200);
    }

    #[test]
    fn links_point_to_newer_and_older_pages() {
        let page = Page { number: 2, limit: 2 };
        let mut rows = vec![1, 2, 3];
        let links = page.cut("/inbox", &mut rows);
        assert_eq!(rows, [1, 2]);
        assert_eq!(links.newer.as_deref(), Some("/inbox?page=1&limit=2"));
        assert_eq!(links.older.as_deref(), Some("/inbox?page=3&limit=2"));
        let first = Page {
            number: 1,
            limit: DEFAULT_LIMIT,
        };
        let mut rows = vec![1];
        let links = first.cut("/sent", &mut rows);
        assert_eq!((links.newer, links.older), (None, None));
    }
}
