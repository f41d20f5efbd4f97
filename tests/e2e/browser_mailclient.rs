//! The portal as a mail client in a real browser (`tests/browser/mailclient.mjs`):
//! folders with the unread count, a conversation folded and unfolded, the
//! print view, the Account menu by keyboard and times in the reader's zone.
//! Also over plain HTTP: a conversation shows a reader only their messages of
//! the thread, and a stranger gets 404.

use super::browser::{pat_is_registered, pat_vars, run_flow, texted_code};
use super::harness::{Instance, browser, sign_in};
use super::secure_send::send_via_relay;

const PATIENT: &str = "pat@example.org";
const THREAD_SUBJECT: &str = "Your visit on Friday";
const FIRST_TEXT: &str = "Please bring your insurance card on Friday.";
const LAST_TEXT: &str = "Here is the form to fill in before you come.";
const ATTACHMENT_NAME: &str = "intake-form.pdf";

/// A secure message from Dr Ada with its own Message-ID, answering `answers`
/// (In-Reply-To the last, References all); with an attachment if named.
fn ada_message(to: &[&str], id: &str, answers: &[&str], text: &str, attachment: Option<&str>) -> Vec<u8> {
    let mut head = format!(
        "From: \"Dr Ada Lovelace\" <ada@smiles.example>\r\nTo: {}\r\nSubject: [secure] {THREAD_SUBJECT}\r\n\
         Message-ID: <{id}>\r\nX-Sealpost-Secure: 1\r\nX-Sealpost-Role: {} patient\r\nMIME-Version: 1.0\r\n",
        to.join(", "),
        to.join(" patient, "),
    );
    if let Some(parent) = answers.last() {
        let references: Vec<String> = answers.iter().map(|a| format!("<{a}>")).collect();
        head.push_str(&format!(
            "In-Reply-To: <{parent}>\r\nReferences: {}\r\n",
            references.join(" ")
        ));
    }
    let body = match attachment {
        None => format!("Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"),
        Some(name) => format!(
            "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\
             --b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\r\n%PDF-1.4 form\r\n--b--\r\n"
        ),
    };
    format!("{head}{body}").into_bytes()
}

async fn ada_sends_raw(instance: &Instance, to: &[&str], message: Vec<u8>) {
    send_via_relay(instance, "ada@smiles.example", to, &message)
        .await
        .expect("accepted with 250");
}

/// Three messages from Ada to Pat in one thread, a minute apart; each sealed
/// (Pat notified) before the next is sent.
async fn a_conversation(instance: &Instance) {
    let thread = [
        ("v1@smiles.example", &[][..], FIRST_TEXT, None),
        (
            "v2@smiles.example",
            &["v1@smiles.example"][..],
            "A reminder about Friday.",
            None,
        ),
        (
            "v3@smiles.example",
            &["v1@smiles.example", "v2@smiles.example"][..],
            LAST_TEXT,
            Some(ATTACHMENT_NAME),
        ),
    ];
    for (id, answers, text, attachment) in thread {
        let before = instance.outbox_for(PATIENT).len();
        instance.clock.advance(60);
        ada_sends_raw(
            instance,
            &[PATIENT],
            ada_message(&[PATIENT], id, answers, text, attachment),
        )
        .await;
        instance.wait_for_mail(PATIENT, before + 1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_mail_client_folders_conversation_print_account_menu_and_time_zone() {
    let instance = Instance::start().await;
    let canary = pat_is_registered(&instance).await;
    a_conversation(&instance).await;
    let mut vars = pat_vars(&instance, &canary);
    vars.extend([
        ("TIMEZONE", "America/New_York".to_owned()),
        ("UNREAD", "4".to_owned()),
        ("THREAD_SUBJECT", THREAD_SUBJECT.to_owned()),
        ("FIRST_TEXT", FIRST_TEXT.to_owned()),
        ("LAST_TEXT", LAST_TEXT.to_owned()),
        ("ATTACHMENT_NAME", ATTACHMENT_NAME.to_owned()),
    ]);
    run_flow("mailclient", &vars, async |what| {
        assert_eq!(what, "code");
        texted_code(&instance).await
    })
    .await;
    let pat = instance
        .store()
        .accounts()
        .user_by_email(PATIENT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pat.profile.time_zone.as_deref(), Some("Asia/Tokyo"));
    assert_eq!(instance.store().mail().unread_count(&pat).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_shows_each_reader_only_their_messages_and_strangers_get_404() {
    let instance = Instance::start().await;
    let canary = pat_is_registered(&instance).await;
    a_conversation(&instance).await;
    // Bob joins later: only he and Ada see this one, though it is in the thread.
    let secret = "For Dr Bob only: the second opinion.";
    ada_sends_raw(
        &instance,
        &["bob@other.example"],
        ada_message(
            &["bob@other.example"],
            "v4@smiles.example",
            &["v1@smiles.example", "v3@smiles.example"],
            secret,
            None,
        ),
    )
    .await;
    instance.wait_for_mail("bob@other.example", 1).await;
    let http = browser();
    sign_in(&http, &instance, PATIENT, "Correct-Horse-42", "/inbox").await;
    let inbox = http
        .get(instance.url("/inbox"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ids: Vec<&str> = inbox
        .match_indices("href=\"/m/")
        .map(|(at, _)| &inbox[at + 9..at + 41])
        .collect();
    assert_eq!(ids.len(), 4, "Pat's inbox: {ids:?}");
    let page = http.get(instance.url(&format!("/m/{}", ids[0]))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    // The conversation (the folder's list beside it shows the other messages).
    let page = &page[page.find("class=\"reading-pane\"").expect("a reading pane")..];
    assert!(
        page.contains(FIRST_TEXT) && page.contains(LAST_TEXT),
        "Pat sees the thread"
    );
    assert!(
        !page.contains(secret),
        "Pat sees a message of the thread she was not on"
    );
    assert!(!page.contains(&canary), "another conversation shows in this one");
    assert_eq!(page.matches("class=\"earlier\"").count(), 2);
    let print = http
        .get(instance.url(&format!("/m/{}?print=conversation", ids[0])))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(print.contains(FIRST_TEXT) && !print.contains("class=\"earlier\"") && !print.contains(secret));
    assert!(
        !print.contains(&canary) && !print.contains("class=\"list-pane\""),
        "the print view shows the folder"
    );
    let bad = http
        .get(instance.url(&format!("/m/{}?print=everything", ids[0])))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // Someone else with an account: the same answer as for no such message.
    instance
        .store()
        .accounts()
        .add_practice_user(
            "eve@smiles.example",
            "Eve",
            store::accounts::Role::Staff,
            "smiles.example",
            false,
            false,
        )
        .await
        .unwrap();
    super::harness::set_password(&instance, "eve@smiles.example", "Eve-Password-55").await;
    let eve = browser();
    sign_in(&eve, &instance, "eve@smiles.example", "Eve-Password-55", "/inbox").await;
    for path in [
        format!("/m/{}", ids[0]),
        format!("/m/{}?print=conversation", ids[0]),
        format!("/m/{}?print=message", ids[0]),
        "/m/0123456789abcdef0123456789abcdef".to_owned(),
    ] {
        let response = eve.get(instance.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let text = response.text().await.unwrap();
        assert!(!text.contains(FIRST_TEXT) && !text.contains(THREAD_SUBJECT), "{path}");
    }
}
