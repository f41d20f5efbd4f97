//! Writing in the portal (`/compose`), driven by an HTTP client with cookies
//! as a browser posts the form (multipart): a patient's reply threads with
//! the original as an Outlook reply would (portal, store and IMAP agree), a
//! forward carries the attachments to a new address and nothing is in clear
//! afterwards, free accounts write only where the rules allow, a forged reply
//! or forward id is not found, CSRF is required, and a note that looks like
//! PHI needs confirming.

use reqwest::multipart::Form;

use super::browser::pat_is_registered;
use super::harness::{
    Instance, browser, csrf_in, files_containing, link_in, logs, postgres_tables_containing, set_password, sign_in,
};
use super::secure_send::{ada_sends, canary};

const ADA: &str = "ada@smiles.example";
const ADA_PASSWORD: &str = "Doctor-Pass-77";
const PAT: &str = "pat@example.org";
const PAT_PASSWORD: &str = "Correct-Horse-42";

/// Signs `email` in with a fresh cookie jar.
pub(super) async fn signed_in(instance: &Instance, email: &str, password: &str) -> reqwest::Client {
    let http = browser();
    let home = sign_in(&http, instance, email, password, "/inbox").await;
    assert_eq!(home.url().path(), "/inbox", "{email} signed in");
    http
}

/// Opens `/compose{query}` and posts the form with `fields` (after the page's
/// CSRF token, as the form sends it first). Returns the (followed) response.
async fn compose(
    http: &reqwest::Client,
    instance: &Instance,
    query: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let page = http
        .get(instance.url(&format!("/compose{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csrf = csrf_in(&page.text().await.unwrap());
    post(http, instance, Some(&csrf), fields).await
}

async fn post(
    http: &reqwest::Client,
    instance: &Instance,
    csrf: Option<&str>,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = Form::new();
    if let Some(csrf) = csrf {
        form = form.text("csrf", csrf.to_owned());
    }
    for (name, value) in fields {
        form = form.text((*name).to_owned(), (*value).to_owned());
    }
    http.post(instance.url("/compose"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// The id of the message a sent form landed on (`/m/{id}`).
fn landed_on(response: &reqwest::Response) -> store::ids::MessageId {
    let path = response.url().path().to_owned();
    let id = path
        .strip_prefix("/m/")
        .unwrap_or_else(|| panic!("landed on {path}, not a message"));
    store::ids::MessageId::parse(id).unwrap()
}

pub(super) async fn user(instance: &Instance, email: &str) -> store::accounts::User {
    instance.store().accounts().user_by_email(email).await.unwrap().unwrap()
}

/// The header block of the copy `viewer` may see of message `id`.
pub(super) async fn headers_of(instance: &Instance, viewer: &str, id: &store::ids::MessageId) -> String {
    let viewer = user(instance, viewer).await;
    let mut stream = instance
        .store()
        .mail()
        .open_original(&viewer, id, "test", false)
        .await
        .unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    text.split("\r\n\r\n").next().unwrap().to_owned()
}

/// Nothing holds `canary` in clear: the data folder (database, WAL, blobs,
/// spool, outbox), the logs, and on `PostgreSQL` its tables.
pub(super) async fn assert_nothing_in_clear(instance: &Instance, canary: &str) {
    let leaked = files_containing(instance.dir.path(), canary.as_bytes());
    assert!(leaked.is_empty(), "{canary} in clear in {leaked:?}");
    assert!(!logs().contains(canary), "{canary} in the logs");
    let tables = postgres_tables_containing(instance, canary).await;
    assert!(tables.is_empty(), "{canary} in clear in PostgreSQL tables {tables:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patients_portal_reply_threads_like_outlook_and_reads_in_the_portal_and_over_imap() {
    let instance = Instance::start().await;
    pat_is_registered(&instance).await;
    set_password(&instance, ADA, ADA_PASSWORD).await;
    let pat = signed_in(&instance, PAT, PAT_PASSWORD).await;
    let original = instance
        .store()
        .mail()
        .inbox(&user(&instance, PAT).await, 1)
        .await
        .unwrap()[0]
        .id
        .clone();
    let original_headers = headers_of(&instance, PAT, &original).await;
    let original_msg_id = original_headers
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .expect("the original has a Message-ID")
        .to_owned();

    // Reply: the form is filled in as a mail client would.
    let page = pat
        .get(instance.url(&format!("/compose?reply={original}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("value=\"ada@smiles.example\""), "{page}");
    assert!(page.contains("Re: Lab results"), "{page}");
    assert!(page.contains(&format!("name=\"reply_to_message\" value=\"{original}\"")));

    let reply_canary = canary();
    let body = format!("Thank you. My answer: {reply_canary}");
    let sent = compose(
        &pat,
        &instance,
        &format!("?reply={original}"),
        &[
            ("reply_to_message", original.as_str()),
            ("to", ADA),
            ("note", "Pat answered"),
            ("subject", "Re: Lab results"),
            ("body", &body),
        ],
    )
    .await;
    assert_eq!(sent.status(), 200);
    let reply = landed_on(&sent);
    assert!(
        sent.text().await.unwrap().contains(&reply_canary),
        "the sender sees the sent message"
    );

    // Threaded as Outlook threads: In-Reply-To the original, References ending with it.
    let headers = headers_of(&instance, ADA, &reply).await;
    assert!(
        headers.contains(&format!("In-Reply-To: {original_msg_id}")),
        "{headers}"
    );
    assert!(headers.contains(&format!("References: {original_msg_id}")), "{headers}");
    assert!(!headers.to_ascii_lowercase().contains("x-sealpost"), "{headers}");
    let reply_msg_id = headers.lines().find_map(|l| l.strip_prefix("Message-ID: ")).unwrap();
    let ids = vec![store::threads::normalize_msg_id(reply_msg_id).unwrap()];
    let thread = instance
        .store()
        .mail()
        .find_thread(&ids)
        .await
        .unwrap()
        .expect("the reply's id is recorded");
    assert_eq!(thread.message, reply);

    // In Pat's Sent; Ada is notified without PHI and reads it in the portal.
    let pat_user = user(&instance, PAT).await;
    assert!(
        instance
            .store()
            .mail()
            .sent(&pat_user, 5)
            .await
            .unwrap()
            .iter()
            .any(|m| m.id == reply)
    );
    let notification = instance.wait_for_mail(ADA, 1).await;
    let text = String::from_utf8_lossy(&notification);
    assert!(!text.contains(&reply_canary) && !text.contains("Lab results"), "{text}");
    assert!(text.contains("Pat answered"), "the note is in the notification: {text}");
    let ada = signed_in(&instance, ADA, ADA_PASSWORD).await;
    let link = link_in(&notification, &format!("{}/m/", instance.config.public_url));
    let page = ada
        .get(instance.reachable(&link))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&reply_canary), "Ada reads the reply in the portal");

    // ...and over IMAP, in her INBOX, with the same threading headers.
    let ada_user = user(&instance, ADA).await;
    let app_password = instance
        .store()
        .auth()
        .create_app_password(&ada_user, "Outlook", "test")
        .await
        .unwrap();
    let out = instance.dir.path().join("reply.eml");
    let imap = super::imap::client(&instance, "tls", ADA, &app_password, &out).await;
    assert!(imap.contains("inbox 1") && imap.contains("sent 1"), "{imap}");
    let fetched = String::from_utf8_lossy(&std::fs::read(&out).unwrap()).into_owned();
    std::fs::remove_file(&out).unwrap();
    assert!(
        fetched.contains(&format!("In-Reply-To: {original_msg_id}")),
        "{fetched}"
    );
    let parsed = mail_parser::MessageParser::default().parse(fetched.as_bytes()).unwrap();
    assert!(parsed.body_text(0).unwrap().contains(&reply_canary));
    // Pat's mail app shows the reply in Sent.
    let pat_app = instance
        .store()
        .auth()
        .create_app_password(&pat_user, "Phone", "test")
        .await
        .unwrap();
    let imap = super::imap::client(&instance, "tls", PAT, &pat_app, &instance.dir.path().join("pat.eml")).await;
    assert!(
        imap.contains("sent 1"),
        "the portal reply is in Pat's IMAP Sent: {imap}"
    );
    assert_nothing_in_clear(&instance, &reply_canary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_carries_the_attachments_to_a_new_address_and_nothing_is_in_clear() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let canary = canary();
    let attachment: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .chain(canary.bytes())
        .collect();
    ada_sends(&instance, PAT, &canary, &attachment, Some("patient")).await;
    instance.wait_for_mail(PAT, 1).await;
    set_password(&instance, ADA, ADA_PASSWORD).await;
    let ada = signed_in(&instance, ADA, ADA_PASSWORD).await;
    let original = instance
        .store()
        .mail()
        .sent(&user(&instance, ADA).await, 1)
        .await
        .unwrap()[0]
        .id
        .clone();

    let page = ada
        .get(instance.url(&format!("/compose?forward={original}")))
        .send()
        .await
        .unwrap();
    let page = page.text().await.unwrap();
    assert!(
        page.contains(&format!("report-{canary}.pdf")),
        "the forward lists the attachment"
    );
    // The form's script asks which typed addresses are new: only the stranger.
    let ask = ada
        .get(instance.url("/compose/new-addresses?to=newdoc@other.example,%20pat@example.org&cc=ada@smiles.example"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ask: serde_json::Value = serde_json::from_str(&ask).unwrap();
    assert_eq!(ask, serde_json::json!({ "ask": ["newdoc@other.example"] }));
    let fields = [
        ("forward_of", original.as_str()),
        ("to", "newdoc@other.example"),
        ("subject", "Fwd: Lab results"),
        ("body", "For your opinion."),
    ];
    // A new address: the form comes back asking how Ada knows them.
    let asked = compose(&ada, &instance, "", &fields).await;
    assert_eq!(asked.status(), 422);
    let asked = asked.text().await.unwrap();
    assert!(asked.contains("name=\"role:newdoc@other.example\""), "{asked}");
    assert!(asked.contains("For your opinion."), "what was typed is kept");
    assert!(
        instance.store().queue().pending_spool().await.unwrap().is_empty(),
        "nothing spooled"
    );

    let mut with_role = fields.to_vec();
    with_role.push(("role:newdoc@other.example", "doctor_other_practice"));
    let sent = compose(&ada, &instance, "", &with_role).await;
    assert_eq!(sent.status(), 200);
    let forward = landed_on(&sent);

    // The new recipient is invited; once registered the attachment is byte-identical.
    let notification = instance.wait_for_mail("newdoc@other.example", 1).await;
    assert!(!String::from_utf8_lossy(&notification).contains(&canary));
    let newdoc = user(&instance, "newdoc@other.example").await;
    assert_eq!(
        newdoc.role,
        store::accounts::Role::Doctor,
        "the role chosen in the form"
    );
    let (meta, mut stream) = instance
        .store()
        .mail()
        .open_attachment(&newdoc, &forward, 0, "test")
        .await
        .unwrap();
    assert_eq!(meta.name, format!("report-{canary}.pdf"));
    let mut bytes = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    assert!(bytes == attachment, "forwarded attachment differs");
    assert_nothing_in_clear(&instance, &canary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_account_writes_only_to_the_practice_that_invited_it() {
    let instance = Instance::start().await;
    pat_is_registered(&instance).await;
    let pat = signed_in(&instance, PAT, PAT_PASSWORD).await;
    let form = pat
        .get(instance.url("/compose"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(form.contains("doctors and staff of Smiles Dental"), "{form}");

    let fields = [
        ("to", "someone@elsewhere.example"),
        ("subject", "Hello"),
        ("body", "A question"),
    ];
    let refused = compose(&pat, &instance, "", &fields).await;
    assert_eq!(refused.status(), 403);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("Upgrade to write to anyone") && page.contains("someone@elsewhere.example"),
        "{page}"
    );
    assert!(page.contains("A question"), "what was typed is kept");
    assert!(instance.store().queue().pending_spool().await.unwrap().is_empty());

    let ada_mails = instance.outbox_for(ADA).len();
    let body = format!("A new question {}", canary());
    let sent = compose(
        &pat,
        &instance,
        "",
        &[("to", ADA), ("subject", "Question"), ("body", &body)],
    )
    .await;
    assert_eq!(sent.status(), 200);
    let id = landed_on(&sent);
    instance.wait_for_mail(ADA, ada_mails + 1).await;
    let ada = user(&instance, ADA).await;
    assert!(
        instance
            .store()
            .mail()
            .inbox(&ada, 5)
            .await
            .unwrap()
            .iter()
            .any(|m| m.id == id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_reply_and_forward_ids_are_not_found_and_csrf_is_required() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    ada_sends(&instance, PAT, &canary(), b"%PDF-1.4", Some("patient")).await;
    instance.wait_for_mail(PAT, 1).await;
    let message = instance
        .store()
        .mail()
        .sent(&user(&instance, ADA).await, 1)
        .await
        .unwrap()[0]
        .id
        .clone();
    // Another practice's paid doctor, who may write to anyone, but not see Ada's message.
    instance
        .store()
        .accounts()
        .add_practice("Other Clinic", "other.example")
        .await
        .unwrap();
    instance
        .store()
        .accounts()
        .add_practice_user(
            "sam@other.example",
            "Dr Sam",
            store::accounts::Role::Doctor,
            "other.example",
            true,
            false,
        )
        .await
        .unwrap();
    set_password(&instance, "sam@other.example", "Other-Pass-99").await;
    let sam = signed_in(&instance, "sam@other.example", "Other-Pass-99").await;

    for query in ["reply", "reply_all", "forward"] {
        let page = sam
            .get(instance.url(&format!("/compose?{query}={message}")))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 404, "{query}");
    }
    for (field, value) in [
        ("reply_to_message", message.as_str()),
        ("forward_of", message.as_str()),
        ("reply_to_message", "not-an-id"),
        ("upload", "someoneelsesupload"),
    ] {
        let posted = compose(
            &sam,
            &instance,
            "",
            &[(field, value), ("to", PAT), ("subject", "x"), ("body", "y")],
        )
        .await;
        assert_eq!(posted.status(), 404, "{field}={value}");
    }
    assert!(instance.store().queue().pending_spool().await.unwrap().is_empty());
    assert_eq!(instance.outbox_for(PAT).len(), 1, "nothing more reached Pat");

    // CSRF: no token, or another session's, is refused before anything is read.
    for csrf in [None, Some("0".repeat(64))] {
        let posted = post(
            &sam,
            &instance,
            csrf.as_deref(),
            &[("to", PAT), ("subject", "x"), ("body", "y")],
        )
        .await;
        assert_eq!(posted.status(), 403);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_that_looks_like_phi_is_sent_only_once_confirmed() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    ada_sends(&instance, PAT, &canary(), b"x", Some("patient")).await;
    instance.wait_for_mail(PAT, 1).await;
    set_password(&instance, ADA, ADA_PASSWORD).await;
    let ada = signed_in(&instance, ADA, ADA_PASSWORD).await;
    let fields = [
        ("to", PAT),
        ("bcc", "kim@example.net"),
        ("role:kim@example.net", "patient"),
        ("note", "About your diabetes, DOB 03/14/1985"),
        ("subject", "Follow-up"),
        ("body", "Details inside."),
    ];
    let warned = compose(&ada, &instance, "", &fields).await;
    assert_eq!(warned.status(), 422);
    let page = warned.text().await.unwrap();
    assert!(page.contains("looks like it holds health information"), "{page}");
    assert!(
        page.contains("a date of birth") && page.contains("the word “diabetes”"),
        "{page}"
    );
    assert!(page.contains("name=\"confirm_note\""), "{page}");
    assert!(instance.store().queue().pending_spool().await.unwrap().is_empty());

    let mut confirmed = fields.to_vec();
    confirmed.push(("confirm_note", "1"));
    let sent = compose(&ada, &instance, "", &confirmed).await;
    assert_eq!(sent.status(), 200);
    let id = landed_on(&sent);
    let mail = instance.wait_for_mail(PAT, 2).await;
    assert!(
        String::from_utf8_lossy(&mail).contains("About your diabetes"),
        "sent as confirmed"
    );
    // The Bcc got it; nobody else sees the Bcc address.
    instance.wait_for_mail("kim@example.net", 1).await;
    let kim = user(&instance, "kim@example.net").await;
    assert!(
        instance
            .store()
            .mail()
            .inbox(&kim, 1)
            .await
            .unwrap()
            .iter()
            .any(|m| m.id == id)
    );
    for viewer in [PAT, "kim@example.net"] {
        let headers = headers_of(&instance, viewer, &id).await;
        assert!(
            // No Bcc field (a random Message-ID may hold the letters "bcc").
            !headers.contains("kim@example.net")
                && !headers
                    .lines()
                    .any(|line| line.to_ascii_lowercase().starts_with("bcc:")),
            "{headers}"
        );
    }
    let pat_view = instance
        .store()
        .mail()
        .open_message(&user(&instance, PAT).await, &id, "test")
        .await
        .unwrap();
    assert!(
        !pat_view
            .meta
            .to
            .iter()
            .chain(&pat_view.meta.cc)
            .any(|a| a.contains("kim"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_posted_with_the_form_goes_to_two_recipients_sealed_and_a_refused_type_is_named() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    ada_sends(&instance, PAT, &canary(), b"x", Some("patient")).await;
    instance.wait_for_mail(PAT, 1).await;
    set_password(&instance, ADA, ADA_PASSWORD).await;
    let ada = signed_in(&instance, ADA, ADA_PASSWORD).await;
    let canary = canary();
    let file: Vec<u8> = (0..150_000u32)
        .map(|i| (i * 31 % 251) as u8)
        .chain(canary.bytes())
        .collect();
    let form_page = ada
        .get(instance.url("/compose"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_in(&form_page);
    let multipart = |name: &str, bytes: Vec<u8>| {
        Form::new()
            .text("csrf", csrf.clone())
            .text("to", format!("{PAT}, kim@example.net"))
            .text("role:kim@example.net", "patient")
            .text("subject", format!("Your plan {canary}"))
            .text("body", "The plan is attached.")
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
            )
    };
    // A type outside the accepted list: the form comes back naming it.
    let refused = ada
        .post(instance.url("/compose"))
        .multipart(multipart("tool.exe", b"MZ".to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains(".exe") && page.contains("The plan is attached."),
        "{page}"
    );

    let sent = ada
        .post(instance.url("/compose"))
        .multipart(multipart(&format!("plan-{canary}.pdf"), file.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let id = landed_on(&sent);
    for address in [PAT, "kim@example.net"] {
        let mail = instance
            .wait_for_mail(address, if address == PAT { 2 } else { 1 })
            .await;
        assert!(
            !String::from_utf8_lossy(&mail).contains(&canary),
            "the notification is PHI-free"
        );
        let reader = user(&instance, address).await;
        let (meta, mut stream) = instance
            .store()
            .mail()
            .open_attachment(&reader, &id, 0, "test")
            .await
            .unwrap();
        assert_eq!(meta.name, format!("plan-{canary}.pdf"));
        let mut bytes = Vec::new();
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        assert!(bytes == file, "{address} got a different file");
    }
    // Both named in To: each sees the other; the staged upload is gone.
    let headers = headers_of(&instance, "kim@example.net", &id).await;
    assert!(
        headers.contains("pat@example.org") && headers.contains("kim@example.net"),
        "{headers}"
    );
    assert_nothing_in_clear(&instance, &canary).await;
}
