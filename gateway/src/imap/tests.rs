//! Session tests over an in-memory duplex: a signed-in session with INBOX
//! selected (the [`Harness`] of `fuzzing.rs`, over a real store with two sealed
//! messages: a plain one and one with nested parts), asserting the exact responses of
//! FETCH, STORE and SEARCH, and the sequence-set pieces they share.

use std::num::NonZeroU32;

use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use store::mailbox::{Flags, MailEntry};

use super::fuzzing::Harness;
use super::sequence::{chosen, contains};

/// A store with the harness's two messages, and their sequence numbers (the
/// two are sealed in the same second, so their order is the ids' order).
struct Fixture {
    _dir: tempfile::TempDir,
    harness: Harness,
    plain: u32,
    nested: u32,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::new(dir.path()).await;
    let out = String::from_utf8(harness.run(b"o FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n").await).unwrap();
    let (plain, nested) = if out.contains("Subject: plain") { (1, 2) } else { (2, 1) };
    Fixture {
        _dir: dir,
        harness,
        plain,
        nested,
    }
}

impl Fixture {
    /// Everything the server wrote after `input` (the sign-in and SELECT
    /// lines cut off), as text.
    async fn after_select(&self, input: &str) -> String {
        let out = String::from_utf8(self.harness.run(input.as_bytes()).await).unwrap();
        let start = out.find("S OK").expect("INBOX selected");
        let rest = &out[start..];
        rest[rest.find("\r\n").unwrap() + 2..].to_owned()
    }
}

/// The first response to `input` in a fresh store.
async fn after_select(input: &str) -> String {
    fixture().await.after_select(input).await
}

/// The response to the command tagged `tag`: the lines since the previous
/// tagged line, up to and including its own.
fn lines_for<'a>(out: &'a str, tag: &str) -> Vec<&'a str> {
    let mut lines = Vec::new();
    for line in out.split("\r\n") {
        lines.push(line);
        if line.starts_with(&format!("{tag} ")) {
            return lines;
        }
        let tagged = line.split(' ').nth(1).is_some_and(|w| ["OK", "NO", "BAD"].contains(&w));
        if tagged && !line.starts_with("* ") {
            lines.clear();
        }
    }
    panic!("no tagged response for {tag} in {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_writes_flags_uids_and_sizes_per_message() {
    let out = after_select("f FETCH 1:* (FLAGS UID RFC822.SIZE)\r\n").await;
    let lines = lines_for(&out, "f");
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("* 1 FETCH (FLAGS () UID 1 RFC822.SIZE "), "{out}");
    assert!(lines[1].starts_with("* 2 FETCH (FLAGS () UID 2 RFC822.SIZE "), "{out}");
    assert_eq!(lines[2], "f OK FETCH completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_fetch_sets_seen_and_a_peek_does_not() {
    let fixture = fixture().await;
    let n = fixture.plain;
    let out = fixture
        .after_select(&format!(
            "p FETCH {n} (BODY.PEEK[TEXT])\r\na FETCH {n} (FLAGS)\r\nb FETCH {n} (BODY[TEXT])\r\nc FETCH {n} (FLAGS)\r\n"
        ))
        .await;
    assert_eq!(
        lines_for(&out, "p"),
        [
            &format!("* {n} FETCH (BODY[TEXT] {{12}}"),
            "Hello Bob.",
            ")",
            "p OK FETCH completed"
        ]
    );
    assert_eq!(
        lines_for(&out, "a"),
        [&format!("* {n} FETCH (FLAGS ())"), "a OK FETCH completed"]
    );
    // The new flags come with the body (RFC 3501 §6.4.5).
    assert_eq!(
        lines_for(&out, "b"),
        [
            &format!("* {n} FETCH (BODY[TEXT] {{12}}"),
            "Hello Bob.",
            " FLAGS (\\Seen))",
            "b OK FETCH completed"
        ]
    );
    assert_eq!(
        lines_for(&out, "c"),
        [&format!("* {n} FETCH (FLAGS (\\Seen))"), "c OK FETCH completed"]
    );
}

/// A PEEK of every body in one command: each message served whole, one
/// `message.view` audit entry per message (the chain intact: they are written
/// together in one transaction), and no read state changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peek_of_every_body_audits_each_view_and_changes_nothing_else() {
    let fixture = fixture().await;
    let audit = fixture.harness.store().audit_log();
    let before = audit.verify_audit().await.unwrap().expect("an intact chain");
    let out = fixture
        .after_select("p FETCH 1:* (BODY.PEEK[])\r\nf FETCH 1:* (FLAGS)\r\n")
        .await;
    let peek = lines_for(&out, "p").join("\r\n");
    assert!(peek.contains("Hello Bob.") && peek.contains("<p>html</p>"), "{out}");
    assert_eq!(peek.matches(" FETCH (BODY[] {").count(), 2, "{out}");
    assert!(!peek.contains("FLAGS"), "a PEEK changes no flags: {out}");
    assert_eq!(
        lines_for(&out, "f"),
        ["* 1 FETCH (FLAGS ())", "* 2 FETCH (FLAGS ())", "f OK FETCH completed"]
    );
    let after = audit.verify_audit().await.unwrap().expect("an intact chain");
    // The session's sign-in is audited too: count only what FETCH added.
    let signed_in = {
        let out = fixture.after_select("").await;
        assert!(out.contains("Z OK"), "{out}");
        audit.verify_audit().await.unwrap().unwrap() - after
    };
    assert_eq!(after - before - signed_in, 2, "one view per message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_parts_are_fetched_by_their_numbers() {
    let fixture = fixture().await;
    let n = fixture.nested;
    let out = fixture
        .after_select(&format!("f FETCH {n} (BODY.PEEK[1.1] BODY.PEEK[1.2] BODY.PEEK[9])\r\n"))
        .await;
    // A part the message does not have is empty, not an error.
    assert_eq!(
        lines_for(&out, "f"),
        [
            &format!("* {n} FETCH (BODY[1.1] {{5}}"),
            "plain BODY[1.2] {11}",
            "<p>html</p> BODY[9] {0}",
            ")",
            "f OK FETCH completed"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uid_range_past_the_largest_still_names_the_last_message() {
    // RFC 3501 §6.4.8: `5:*` with UIDs 1 and 2 is `2:5`, so UID 2 answers.
    let out = after_select("u UID FETCH 5:* (FLAGS)\r\n").await;
    assert_eq!(
        lines_for(&out, "u"),
        ["* 2 FETCH (UID 2 FLAGS ())", "u OK UID FETCH completed"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_then_search_by_flag() {
    let out = after_select(
        "s STORE 2 +FLAGS (\\Flagged \\Seen)\r\na SEARCH UNSEEN\r\nb SEARCH FLAGGED\r\nc SEARCH SUBJECT lab\r\n",
    )
    .await;
    assert_eq!(
        lines_for(&out, "s"),
        ["* 2 FETCH (FLAGS (\\Seen \\Flagged))", "s OK STORE completed"]
    );
    assert_eq!(lines_for(&out, "a"), ["* SEARCH 1", "a OK SEARCH completed"]);
    assert_eq!(lines_for(&out, "b"), ["* SEARCH 2", "b OK SEARCH completed"]);
    // Searching content would mean decrypting every message: refused.
    let refused = lines_for(&out, "c");
    assert!(refused.len() == 1 && refused[0].starts_with("c NO "), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_fetch_items_are_refused_before_any_work() {
    let items = vec!["FLAGS"; super::fetch::MAX_FETCH_ITEMS + 1].join(" ");
    let out = after_select(&format!("f FETCH 1:* ({items})\r\n")).await;
    assert_eq!(
        lines_for(&out, "f"),
        ["f BAD [LIMIT] Too many FETCH data items (at most 64)"]
    );
}

fn set(ranges: &[(u32, Option<u32>)]) -> SequenceSet {
    let value = |v: u32| SeqOrUid::Value(NonZeroU32::new(v).unwrap());
    let sequences: Vec<Sequence> = ranges
        .iter()
        .map(|&(a, b)| match b {
            Some(0) => Sequence::Range(value(a), SeqOrUid::Asterisk),
            Some(b) => Sequence::Range(value(a), value(b)),
            None => Sequence::Single(value(a)),
        })
        .collect();
    SequenceSet(sequences.try_into().unwrap())
}

#[test]
fn sets_resolve_star_and_reversed_ranges() {
    // `0` stands for `*` here.
    assert!(contains(&set(&[(3, None)]), 3, 10));
    assert!(!contains(&set(&[(3, None)]), 4, 10));
    assert!(
        contains(&set(&[(7, Some(2))]), 5, 10),
        "a range may be written backwards"
    );
    assert!(contains(&set(&[(8, Some(0))]), 10, 10));
    assert!(!contains(&set(&[(8, Some(0))]), 7, 10));
    assert!(
        contains(&set(&[(20, Some(0))]), 10, 10),
        "n:* past the largest is largest:n"
    );
    assert!(contains(&set(&[(1, None), (4, Some(5))]), 5, 10));
}

#[test]
fn chosen_maps_numbers_and_uids_to_indexes() {
    let entry = |uid: u32| MailEntry {
        uid,
        id: store::ids::MessageId::generate(),
        size: 100,
        internal_date: 0,
        flags: Flags(0),
    };
    let entries = [entry(3), entry(7), entry(9)];
    assert_eq!(chosen(&entries, &set(&[(2, Some(0))]), false), [1, 2]);
    assert_eq!(chosen(&entries, &set(&[(7, Some(0))]), true), [1, 2]);
    assert_eq!(chosen(&entries, &set(&[(4, Some(6))]), true), Vec::<usize>::new());
    assert_eq!(chosen(&[], &set(&[(1, Some(0))]), true), Vec::<usize>::new());
}
