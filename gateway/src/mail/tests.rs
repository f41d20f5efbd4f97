//! One snapshot per mail kind (`snapshots/<kind>.txt`: From name, subject,
//! text and HTML as rendered; `UPDATE_SNAPSHOTS=1 cargo test -p gateway mail::`
//! rewrites them, to be read in the diff before committing), and the
//! attacker's tests: names and notes escaped in HTML, headers kept on one line.

use std::path::PathBuf;

use mail_parser::MimeHeaders as _;

use super::{
    Bounce, ChooseRoles, ConfirmEmail, EmailChangeNotice, Envelope, ForPeople, InvoiceLine, Invoices, MailKind,
    MessageWaiting, Quarantined, Rendered, SetPassword, one_line, write,
};

const LINK: &str = "https://secure.example-dental.com/m/0123456789abcdef0123456789abcdef";

fn waiting(sender: &str, notice: Option<&str>) -> MessageWaiting {
    MessageWaiting {
        recipient_name: "Pat Example".to_owned(),
        sender: sender.to_owned(),
        practice: "Smiles Dental".to_owned(),
        notice: notice.map(str::to_owned),
        link: LINK.to_owned(),
        subject_line: format!("Secure message from {sender}"),
        reply_link: "https://secure.example-dental.com/compose?reply=0123456789abcdef0123456789abcdef".to_owned(),
        reply_to: Some("frontdesk@example-dental.com".to_owned()),
    }
}

/// One mail of every kind, with the values a real one has.
fn samples() -> Vec<MailKind> {
    vec![
        MailKind::Notification(waiting("Dr Ada Lovelace", Some("Your appointment follow-up"))),
        MailKind::Invitation(waiting("Dr Ada Lovelace", None)),
        MailKind::SetPassword(SetPassword {
            recipient_name: String::new(),
            link: "https://secure.example-dental.com/password/abc123".to_owned(),
            expires_in: ForPeople(86_400),
        }),
        MailKind::ChooseRoles(ChooseRoles {
            recipient_name: "Ada Lovelace".to_owned(),
            link: format!("{LINK}/roles"),
        }),
        MailKind::Invoices(Invoices {
            recipient_name: "Ada Lovelace".to_owned(),
            link: "https://secure.example-dental.com/account/invoices".to_owned(),
            lines: vec![
                InvoiceLine {
                    label: "INV-000002".to_owned(),
                    paid: "2026-12-02".to_owned(),
                    what: "SecureMail (monthly)".to_owned(),
                    who: "staff@example-dental.com".to_owned(),
                    amount: "$10.00 USD".to_owned(),
                },
                InvoiceLine {
                    label: "INV-000001".to_owned(),
                    paid: "2026-11-02".to_owned(),
                    what: "SecureMail (annual)".to_owned(),
                    who: "you".to_owned(),
                    amount: "$100.00 USD".to_owned(),
                },
            ],
        }),
        MailKind::ConfirmEmail(ConfirmEmail {
            recipient_name: "Pat Example".to_owned(),
            link: "https://secure.example-dental.com/email/abc123".to_owned(),
            expires_in: ForPeople(86_400),
        }),
        MailKind::EmailChangeNotice(EmailChangeNotice {
            recipient_name: "Pat Example".to_owned(),
            link: "https://secure.example-dental.com/account/profile".to_owned(),
        }),
        MailKind::Bounce(Bounce {
            rcpt: "pat@example.org".to_owned(),
            reason: "550 5.1.1 no such user".to_owned(),
            hostname: "mail.example-dental.com".to_owned(),
            delayed: false,
        }),
        MailKind::Quarantined(Quarantined {
            received: "2026-12-01 09:30:00 UTC".to_owned(),
            reference: "0123456789abcdef0123456789abcdef".to_owned(),
        }),
    ]
}

fn snapshot_text(mail: &Rendered) -> String {
    format!(
        "From: {}\nSubject: {}\nAuto-Submitted: {}\n{}\n----- text -----\n{}----- html -----\n{}\n",
        mail.from_name,
        mail.subject,
        mail.auto_submitted,
        mail.reply_to
            .as_ref()
            .map_or_else(String::new, |r| format!("Reply-To: {r}\n")),
        mail.text,
        mail.html.as_deref().unwrap_or("(none: text only)"),
    )
}

fn snapshot_path(kind: &MailKind) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("src/mail/snapshots/{}.txt", kind.name()))
}

#[test]
fn every_kind_renders_as_its_snapshot() {
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut seen = [false; 9];
    let mut differ = Vec::new();
    for kind in samples() {
        // No catch-all: a new kind must be added here, and so get a snapshot.
        let slot = match kind {
            MailKind::Notification(_) => 0,
            MailKind::Invitation(_) => 1,
            MailKind::SetPassword(_) => 2,
            MailKind::ChooseRoles(_) => 3,
            MailKind::Bounce(_) => 4,
            MailKind::Quarantined(_) => 5,
            MailKind::Invoices(_) => 6,
            MailKind::ConfirmEmail(_) => 7,
            MailKind::EmailChangeNotice(_) => 8,
        };
        seen[slot] = true;
        let actual = snapshot_text(&kind.render().unwrap());
        let path = snapshot_path(&kind);
        if update {
            std::fs::write(&path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != actual {
            differ.push(format!(
                "{}:\n--- expected\n{expected}\n--- actual\n{actual}",
                path.display()
            ));
        }
    }
    assert!(seen.iter().all(|s| *s), "a kind has no sample: {seen:?}");
    assert!(
        differ.is_empty(),
        "mail differs from its snapshot (UPDATE_SNAPSHOTS=1 rewrites them):\n{}",
        differ.join("\n")
    );
}

#[test]
fn no_snapshot_without_a_kind() {
    let names: Vec<String> = samples().iter().map(|k| format!("{}.txt", k.name())).collect();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/mail/snapshots");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(names.contains(&name), "stale snapshot {name}");
    }
}

const SCRIPT: &str = "Dr <script>alert(\"x\")</script> & 'Co'";
const NOTE: &str = "<b>Bring</b> your card & \"insurance\"\r\nBcc: victim@example.org";

#[test]
fn names_and_notes_are_escaped_in_html() {
    for kind in [
        MailKind::Notification(waiting(SCRIPT, Some(NOTE))),
        MailKind::Invitation(waiting(SCRIPT, Some(NOTE))),
    ] {
        let html = kind.render().unwrap().html.unwrap();
        for raw in ["<script", "</script>", "<b>", "\"x\"", "\"insurance\"", "'Co'", "& "] {
            assert!(!html.contains(raw), "{raw:?} unescaped in {html}");
        }
        assert!(
            html.contains("Dr &#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; &#39;Co&#39;"),
            "{html}"
        );
        assert!(
            html.contains("&#60;b&#62;Bring&#60;/b&#62; your card &#38; &#34;insurance&#34;"),
            "{html}"
        );
    }
    let choose = MailKind::ChooseRoles(ChooseRoles {
        recipient_name: "<img src=x onerror=alert(1)>".to_owned(),
        link: format!("{LINK}\"><script>x</script>"),
    });
    let html = choose.render().unwrap().html.unwrap();
    assert!(!html.contains("<img") && !html.contains("<script"), "{html}");
    assert!(html.contains("Dear &#60;img src=x onerror=alert(1)&#62;,"), "{html}");
}

#[test]
fn the_text_part_keeps_the_words_as_written() {
    let text = MailKind::Notification(waiting(SCRIPT, Some("Fees & \"co-pay\"")))
        .render()
        .unwrap()
        .text;
    assert!(
        text.contains(&format!("Note from {SCRIPT}: Fees & \"co-pay\"\n")),
        "{text}"
    );
}

/// The header block of a written message.
fn header_block(message: &[u8]) -> String {
    let text = String::from_utf8(message.to_vec()).unwrap();
    text[..text.find("\r\n\r\n").unwrap()].to_owned()
}

fn written(kind: &MailKind) -> Vec<u8> {
    let envelope = Envelope {
        from_address: "notify@example-dental.com",
        to: "pat@example.org",
        now: 1_800_000_000,
    };
    write(&kind.render().unwrap(), envelope, None)
}

#[test]
fn a_name_cannot_add_a_header() {
    let evil = "Eve\r\nBcc: victim@example.org\r\nX-Injected: 1";
    for kind in [
        MailKind::Notification(waiting(evil, Some(NOTE))),
        MailKind::Bounce(Bounce {
            rcpt: "pat@example.org\r\nBcc: victim@example.org".to_owned(),
            reason: "550\r\nBcc: victim@example.org".to_owned(),
            hostname: "mail.example".to_owned(),
            delayed: true,
        }),
    ] {
        let message = written(&kind);
        let headers = header_block(&message);
        for line in headers.split("\r\n") {
            let name = line.split(':').next().unwrap().to_ascii_lowercase();
            assert!(name != "bcc" && name != "x-injected", "injected header in:\n{headers}");
        }
        let parsed = mail_parser::MessageParser::default().parse(&message).unwrap();
        assert!(parsed.bcc().is_none());
        assert!(parsed.header("X-Injected").is_none());
        assert!(!parsed.subject().unwrap().contains(['\r', '\n']));
    }
    let parsed_message = written(&MailKind::Notification(waiting(evil, None)));
    let parsed = mail_parser::MessageParser::default().parse(&parsed_message).unwrap();
    assert_eq!(
        parsed.subject(),
        Some("Secure message from Eve Bcc: victim@example.org X-Injected: 1")
    );
    let from = parsed.from().unwrap().first().unwrap();
    assert_eq!(
        from.name(),
        Some("Eve Bcc: victim@example.org X-Injected: 1 via Sealpost")
    );
    assert_eq!(from.address(), Some("notify@example-dental.com"));
}

#[test]
fn a_name_cannot_pose_as_the_sender_address() {
    let posing = "Ada \"The Doc\" <ceo@bank.example>, eve@attacker.example";
    let message = written(&MailKind::Notification(waiting(posing, None)));
    let parsed = mail_parser::MessageParser::default().parse(&message).unwrap();
    let from = parsed.from().unwrap();
    assert_eq!(from.iter().count(), 1, "{}", header_block(&message));
    let from = from.first().unwrap();
    assert_eq!(from.address(), Some("notify@example-dental.com"));
    assert_eq!(from.name(), Some(format!("{posing} via Sealpost").as_str()));
}

#[test]
fn non_ascii_names_are_encoded_words() {
    let message = written(&MailKind::Notification(waiting("Zoë Ångström", None)));
    let headers = header_block(&message);
    assert!(headers.is_ascii(), "{headers}");
    assert!(headers.to_ascii_lowercase().contains("=?utf-8?"), "{headers}");
    let parsed = mail_parser::MessageParser::default().parse(&message).unwrap();
    assert_eq!(parsed.subject(), Some("Secure message from Zoë Ångström"));
    assert_eq!(
        parsed.from().unwrap().first().unwrap().name(),
        Some("Zoë Ångström via Sealpost")
    );
    assert!(parsed.body_text(0).unwrap().contains("Zoë Ångström (Smiles Dental)"));
}

#[test]
fn html_kinds_are_multipart_alternative_and_reports_plain_text() {
    for kind in samples() {
        let message = written(&kind);
        let parsed = mail_parser::MessageParser::default().parse(&message).unwrap();
        let content_type = parsed.content_type().unwrap();
        let has_html = kind.render().unwrap().html.is_some();
        if has_html {
            assert_eq!(
                (content_type.ctype(), content_type.subtype()),
                ("multipart", Some("alternative")),
                "{}",
                kind.name()
            );
            assert_eq!(parsed.html_body_count(), 1);
        } else {
            assert_eq!((content_type.ctype(), content_type.subtype()), ("text", Some("plain")));
        }
        let auto = parsed.header_raw("Auto-Submitted").unwrap().trim().to_owned();
        assert_eq!(auto, kind.render().unwrap().auto_submitted);
    }
}

#[test]
fn one_line_drops_controls_and_folds_space() {
    assert_eq!(one_line("  a\r\nb\tc\u{0}d\u{85}e  "), "a b c d e");
    assert_eq!(one_line("\r\n"), "");
}

#[test]
fn a_notification_says_a_reply_by_email_is_not_secure_and_carries_its_reply_to() {
    for kind in [
        MailKind::Notification(waiting("Dr Ada Lovelace", None)),
        MailKind::Invitation(waiting("Dr Ada Lovelace", None)),
    ] {
        let rendered = kind.render().unwrap();
        for part in [&rendered.text, rendered.html.as_ref().unwrap()] {
            assert!(part.contains("a reply by email is not secure"), "{part}");
        }
        let message = written(&kind);
        let parsed = mail_parser::MessageParser::default().parse(&message).unwrap();
        let reply_to = parsed.reply_to().and_then(|r| r.first()).and_then(|a| a.address());
        assert_eq!(reply_to, Some("frontdesk@example-dental.com"));
    }
    // The notification links to the secure reply; the invitation, whose
    // reader has no account yet, to the message.
    let notification = MailKind::Notification(waiting("Dr Ada Lovelace", None))
        .render()
        .unwrap();
    assert!(
        notification
            .text
            .contains("/compose?reply=0123456789abcdef0123456789abcdef\n")
    );
    // Without a configured address: no Reply-To at all.
    let mut plain = waiting("Dr Ada Lovelace", None);
    plain.reply_to = None;
    let message = written(&MailKind::Notification(plain));
    assert!(!header_block(&message).to_ascii_lowercase().contains("reply-to"));
    // A configured address can't add a header either.
    let mut evil = waiting("Dr Ada Lovelace", None);
    evil.reply_to = Some("desk@example.com\r\nBcc: victim@example.org".to_owned());
    let headers = header_block(&written(&MailKind::Notification(evil)));
    assert!(!headers.to_ascii_lowercase().contains("\r\nbcc:"), "{headers}");
}
