//! The address book: the people a signed-in person may look up and be offered
//! while typing an address, each with their name, address and relationship.
//!
//! Who is in it follows "Who is trusted with what" (DESIGN.md): a practice user
//! (a doctor or staff member of a practice) sees their colleagues, their
//! practice's contacts (with the relationship the practice gave each), and the
//! people they have written to or received from. Anyone else (a patient, a
//! doctor of another practice) sees only the people they have written to or
//! received from, and the doctors and staff of the practices that wrote to
//! them, never those practices' other contacts. Received mail counts only where
//! the copy is theirs to see (not one waiting for its role).
//!
//! One query per call, bounded by a `LIMIT`. The search text is matched as a
//! prefix of the address or of a word of the name; a search starts from the
//! matching people and checks each through indexes (migration 0020), so a
//! keystroke costs the same however much mail the viewer has: about 11 ms for
//! "p" against 5,000 contacts and 50,000 sent messages on `SQLite` (dev build),
//! where gathering the whole book first took 250 ms.

use sqlx::Row;

use crate::accounts::{Relationship, Role, User};
use crate::{Error, Mail, Result};

/// The most suggestions one call returns.
pub const MAX_SUGGESTIONS: i64 = 20;
/// The most entries one page of the address book holds.
pub const MAX_PAGE: i64 = 201;
/// The longest search text, in characters.
pub const MAX_SEARCH: usize = 100;

/// One person in the address book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressBookEntry {
    /// Lower-cased.
    pub address: String,
    /// The full name; empty if they have not given one.
    pub name: String,
    /// How they relate to the viewer's practice: for a practice user only, and
    /// only where the practice knows it (a colleague or a contact).
    pub relationship: Option<Relationship>,
    /// What they are to the viewer, in words: the relationship's label
    /// ("Patient"), else a practice person's role and practice ("Doctor,
    /// Smiles Dental"), else empty.
    pub description: String,
}

/// The people a practice user knows: colleagues (1), the practice's contacts
/// (2), and correspondents (3). The tag's digit ranks where a person appears
/// twice: what the practice knows wins over a bare correspondent.
const PRACTICE_PEOPLE: &str = "
    SELECT id AS uid, CASE role WHEN 'doctor' THEN '1:doctor_in_practice' ELSE '1:staff_in_practice' END AS tag
      FROM users WHERE practice_id = $1 AND role IN ('doctor', 'staff')
    UNION ALL
    SELECT user_id AS uid, '2:' || relationship AS tag FROM contacts WHERE practice_id = $1";

/// The people anyone else knows besides correspondents: the doctors and staff
/// of the practices that have them as a contact (no relationship: the roles
/// describe people to a practice, and this viewer is not one). `$1` is no
/// practice here (-1); naming it keeps the parameters the same for both.
const INVITING_PRACTICES: &str = "
    SELECT u.id AS uid, '2:' AS tag FROM contacts c JOIN users u ON u.practice_id = c.practice_id
     WHERE c.user_id = $2 AND c.practice_id <> $1 AND u.role IN ('doctor', 'staff')";

/// Everyone the viewer has written to (Bcc included: they chose them) or
/// received a message they may see from.
const CORRESPONDENTS: &str = "
    SELECT r.user_id AS uid, '3:' AS tag FROM messages m JOIN message_recipients r ON r.message_id = m.id
     WHERE m.sender_id = $2
    UNION ALL
    SELECT m.sender_id AS uid, '3:' AS tag FROM message_recipients r JOIN messages m ON m.id = r.message_id
     WHERE r.user_id = $2 AND r.state = 'notify'";

/// People matching a search (`$4`: a prefix pattern of the address or name,
/// `$5`: of a later word of the name), each with the tag of the first rule
/// that puts them in the book (the ranks as above), or none. `CROSS JOIN`
/// keeps `SQLite` reading a person's own few copies first, by index.
const BY_SEARCH: &str = "
    SELECT * FROM (
      SELECT u.email, u.full_name, u.role, p.name AS practice,
        CASE
          WHEN u.practice_id = $1 AND u.role = 'doctor' THEN '1:doctor_in_practice'
          WHEN u.practice_id = $1 AND u.role = 'staff' THEN '1:staff_in_practice'
          ELSE COALESCE(
            (SELECT '2:' || c.relationship FROM contacts c WHERE c.practice_id = $1 AND c.user_id = u.id),
            CASE WHEN $1 < 0 AND u.role IN ('doctor', 'staff') AND EXISTS (
                   SELECT 1 FROM contacts c WHERE c.user_id = $2 AND c.practice_id = u.practice_id)
                 THEN '2:' END,
            CASE WHEN EXISTS (
                   SELECT 1 FROM message_recipients r CROSS JOIN messages m
                    WHERE r.user_id = u.id AND m.id = r.message_id AND m.sender_id = $2)
                 OR EXISTS (
                   SELECT 1 FROM messages m CROSS JOIN message_recipients r
                    WHERE m.sender_id = u.id AND r.message_id = m.id AND r.user_id = $2 AND r.state = 'notify')
                 THEN '3:' END)
        END AS tag
        FROM users u LEFT JOIN practices p ON p.id = u.practice_id
       WHERE u.id <> $2 AND $3 <> ''
         AND (u.email LIKE $4 ESCAPE '\\' OR LOWER(u.full_name) LIKE $4 ESCAPE '\\'
              OR LOWER(u.full_name) LIKE $5 ESCAPE '\\')
    ) found
    WHERE tag IS NOT NULL
    ORDER BY LOWER(COALESCE(NULLIF(full_name, ''), email)), email
    LIMIT $6 OFFSET $7";

/// `text` for a `LIKE … ESCAPE '\'` pattern: its wildcards made literal.
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The search text, checked and lower-cased.
fn search_text(search: &str) -> Result<String> {
    let search = search.trim();
    if search.chars().count() > MAX_SEARCH {
        return Err(Error::invalid(format!("Search for at most {MAX_SEARCH} characters.")));
    }
    if search.chars().any(char::is_control) {
        return Err(Error::invalid(
            "The search holds characters that can't be in a name or address.",
        ));
    }
    Ok(search.to_lowercase())
}

/// Words for a person the viewer's practice has no relationship with.
fn describe(role: Role, practice: Option<&str>) -> String {
    let role = match role {
        Role::Doctor => "Doctor",
        Role::Staff => "Staff",
        Role::Patient | Role::Unknown => return String::new(),
    };
    match practice {
        Some(practice) if !practice.is_empty() => format!("{role}, {practice}"),
        _ => role.to_owned(),
    }
}

impl Mail<'_> {
    /// Up to `limit` (at most [`MAX_SUGGESTIONS`]) people in `viewer`'s address
    /// book whose address, or a word of whose name, starts with `prefix`. An
    /// empty prefix suggests nobody.
    pub async fn suggest_addresses(&self, viewer: &User, prefix: &str, limit: i64) -> Result<Vec<AddressBookEntry>> {
        if prefix.trim().is_empty() {
            return Ok(Vec::new());
        }
        self.address_book(viewer, prefix, limit.clamp(1, MAX_SUGGESTIONS), 0)
            .await
    }

    /// A page of `viewer`'s address book (see the module's comment for who is
    /// in it): `limit` people (at most [`MAX_PAGE`]) after `offset`, matching
    /// `search` as [`Self::suggest_addresses`] does (everyone when empty),
    /// ordered by name (the address where there is none).
    pub async fn address_book(
        &self,
        viewer: &User,
        search: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<AddressBookEntry>> {
        let search = search_text(search)?;
        let practice = match (viewer.practice_id, viewer.role) {
            (Some(practice), Role::Doctor | Role::Staff) => Some(practice),
            _ => None,
        };
        // The whole book is gathered from the viewer's own rows; a search is
        // answered from the people whose name or address matches, each checked
        // through indexes, so a keystroke never reads every message the viewer
        // has sent.
        let sql = if search.is_empty() {
            let known = if practice.is_some() {
                PRACTICE_PEOPLE
            } else {
                INVITING_PRACTICES
            };
            format!(
                "WITH found (uid, tag) AS ({known} UNION ALL {CORRESPONDENTS}),
                      known (uid, tag) AS (SELECT uid, MIN(tag) FROM found GROUP BY uid)
                 SELECT u.email, u.full_name, u.role, p.name AS practice, k.tag
                   FROM known k JOIN users u ON u.id = k.uid LEFT JOIN practices p ON p.id = u.practice_id
                  WHERE u.id <> $2 AND $3 = '' AND $4 = $4 AND $5 = $5
                  ORDER BY LOWER(COALESCE(NULLIF(u.full_name, ''), u.email)), u.email
                  LIMIT $6 OFFSET $7"
            )
        } else {
            BY_SEARCH.to_owned()
        };
        let pattern = format!("{}%", like_literal(&search));
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(practice.map_or(-1, |p| p.0))
            .bind(viewer.id.0)
            .bind(&search)
            .bind(&pattern)
            .bind(format!("% {pattern}"))
            .bind(limit.clamp(1, MAX_PAGE))
            .bind(offset.max(0))
            .fetch_all(&self.db)
            .await?;
        rows.iter()
            .map(|row| {
                let tag: String = row.try_get("tag")?;
                let relationship = tag.split_once(':').and_then(|(_, r)| Relationship::parse(r));
                let role = Role::parse(&row.try_get::<String, _>("role")?).unwrap_or(Role::Unknown);
                let practice: Option<String> = row.try_get("practice")?;
                Ok(AddressBookEntry {
                    address: row.try_get("email")?,
                    name: row.try_get("full_name")?,
                    description: relationship
                        .map_or_else(|| describe(role, practice.as_deref()), |r| r.label().to_owned()),
                    relationship,
                })
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "address_book_tests.rs"]
mod tests;
