//! Browser tests of writing in the portal (`tests/browser/compose_*.mjs`): a
//! patient replies to all and the doctor reads the reply in the portal and
//! over IMAP in the same thread; the note's PHI warning as it is typed; a free
//! account refused writing outside its practice and allowed to it; a forward
//! with an upload to two recipients, one new, who registers and reads it.
//! Every page is checked for accessibility at phone and desktop width.

use super::browser::{pat_is_registered, pat_vars, run_flow, texted_code};
use super::compose::{assert_nothing_in_clear, headers_of, signed_in, user};
use super::harness::{Instance, TEST_PHONE, latest_code, link_in, set_password};
use super::secure_send::{ada_sends, canary, secure_message, send_via_relay};

const ADA: &str = "ada@smiles.example";
const ADA_PASSWORD: &str = "Doctor-Pass-77";
const PAT: &str = "pat@example.org";
const BOB: &str = "bob@smiles.example";
const FAMILY: &str = "kim@example.net";
const FAMILY_PHONE: &str = "+12015550177";

const IMAP_SEPARATOR: &str = "\n=====\n";

/// Every message in `user`'s INBOX over IMAP (implicit TLS, Python's imaplib),
/// whole, one after the other with [`IMAP_SEPARATOR`] between them.
fn imap_inbox(port: &str, user: &str, password: &str) -> String {
    const CLIENT: &str = r#"
import imaplib, ssl, sys
port, user, password = sys.argv[1:4]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL("127.0.0.1", int(port), ssl_context=ctx)
m.login(user, password)
m.select("INBOX")
typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
bodies = [d[1] for d in data if isinstance(d, tuple)]
sys.stdout.write("\n=====\n".join(b.decode(errors="replace") for b in bodies))
m.logout()
"#;
    let output = std::process::Command::new("python3")
        .args(["-c", CLIENT, port, user, password])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "imaplib: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn hex_sha256(bytes: &[u8]) -> String {
    store::crypto::sha256(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_a_patient_replies_to_all_and_the_doctor_reads_it_threaded_in_the_portal_and_over_imap() {
    let instance = Instance::start().await;
    pat_is_registered(&instance).await;
    instance
        .store()
        .accounts()
        .add_practice_user(
            BOB,
            "Bob Staff",
            store::accounts::Role::Staff,
            "smiles.example",
            false,
            false,
        )
        .await
        .unwrap();
    set_password(&instance, ADA, ADA_PASSWORD).await;
    // Ada writes to Pat with Bob in Cc.
    let message = String::from_utf8(secure_message(PAT, &canary(), b"%PDF-1.4", None)).unwrap();
    assert!(message.contains("\r\nTo: "));
    let message = message.replacen("\r\nTo: ", &format!("\r\nCc: {BOB}\r\nTo: "), 1);
    send_via_relay(&instance, ADA, &[PAT, BOB], message.as_bytes())
        .await
        .unwrap();
    instance.wait_for_mail(BOB, 1).await;
    let pat = user(&instance, PAT).await;
    // The message with Bob in Cc (Pat's other one came in the same second).
    let bob = user(&instance, BOB).await;
    let original = instance.store().mail().inbox(&bob, 1).await.unwrap()[0].id.clone();
    let original_id = headers_of(&instance, PAT, &original)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: ").map(str::to_owned))
        .unwrap();

    let reply_canary = canary();
    let mut vars = pat_vars(&instance, &reply_canary);
    vars.push(("MESSAGE", original.to_string()));
    run_flow("compose_reply", &vars, async |what| {
        assert_eq!(what, "code");
        texted_code(&instance).await
    })
    .await;

    // Pat's Sent: the reply, then the new message to Ada (the outsider got nothing).
    let sent = instance.store().mail().sent(&pat, 5).await.unwrap();
    assert_eq!(sent.len(), 2, "the reply and the message to the practice");
    let bobs = instance.store().mail().inbox(&bob, 5).await.unwrap();
    let reply = sent
        .iter()
        .find(|m| bobs.iter().any(|b| b.id == m.id))
        .expect("the reply reached Bob")
        .id
        .clone();
    let headers = headers_of(&instance, ADA, &reply).await;
    assert!(headers.contains(&format!("In-Reply-To: {original_id}")), "{headers}");
    assert!(
        headers.contains(&format!("Cc: <{BOB}>")),
        "reply all keeps the Cc: {headers}"
    );

    // Ada reads it in the portal...
    let ada = signed_in(&instance, ADA, ADA_PASSWORD).await;
    let page = ada
        .get(instance.url(&format!("/m/{reply}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&reply_canary), "Ada reads the reply in the portal");
    // ...and over IMAP: the reply in her INBOX, threaded to her message in Sent.
    let ada_user = user(&instance, ADA).await;
    let app_password = instance
        .store()
        .auth()
        .create_app_password(&ada_user, "Outlook", "test")
        .await
        .unwrap();
    let port = instance.running.addresses.imap_tls.port().to_string();
    let fetched = tokio::task::spawn_blocking(move || imap_inbox(&port, ADA, &app_password))
        .await
        .unwrap();
    let reply_text = fetched
        .split(IMAP_SEPARATOR)
        .find(|m| {
            mail_parser::MessageParser::default()
                .parse(m.as_bytes())
                .and_then(|p| p.body_text(0).map(|t| t.contains(&reply_canary)))
                .unwrap_or(false)
        })
        .unwrap_or_else(|| panic!("the reply is not in Ada's INBOX over IMAP: {fetched}"));
    assert!(
        reply_text.contains(&format!("In-Reply-To: {original_id}")),
        "{reply_text}"
    );
    assert!(
        reply_text.contains(&format!("References: {original_id}")),
        "{reply_text}"
    );
    assert_nothing_in_clear(&instance, &reply_canary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_a_forward_with_an_upload_reaches_two_recipients_and_the_new_one_registers_and_reads_it() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let canary = canary();
    let attachment: Vec<u8> = (0..80_000u32)
        .map(|i| (i * 7 % 253) as u8)
        .chain(canary.bytes())
        .collect();
    ada_sends(&instance, PAT, &canary, &attachment, Some("patient")).await;
    instance.wait_for_mail(PAT, 1).await;
    set_password(&instance, ADA, ADA_PASSWORD).await;
    // Ada's first sign-in (elsewhere) sets up her phone; the flow's is a new browser.
    signed_in(&instance, ADA, ADA_PASSWORD).await;
    let original = instance
        .store()
        .mail()
        .sent(&user(&instance, ADA).await, 1)
        .await
        .unwrap()[0]
        .id
        .clone();
    let vars = [
        ("PORTAL", instance.config.public_url.clone()),
        ("CANARY", canary.clone()),
        ("FAMILY", FAMILY.to_owned()),
        ("FAMILY_PHONE", FAMILY_PHONE.to_owned()),
        ("ADA_PASSWORD", ADA_PASSWORD.to_owned()),
        ("MESSAGE", original.to_string()),
        ("ATTACHMENT_NAME", format!("report-{canary}.pdf")),
        ("ATTACHMENT_SHA256", hex_sha256(&attachment)),
    ];
    let mut codes = 0;
    let portal = instance.config.public_url.clone();
    run_flow("compose_forward", &vars, async |what| match what {
        "code" => {
            codes += 1;
            let phone = if codes == 1 { TEST_PHONE } else { FAMILY_PHONE };
            latest_code(&instance, Some(phone)).await
        }
        "invite" => link_in(&instance.wait_for_mail(FAMILY, 1).await, &format!("{portal}/m/")),
        "set_password_link" => link_in(&instance.wait_for_mail(FAMILY, 2).await, &format!("{portal}/password/")),
        other => panic!("unexpected ask {other}"),
    })
    .await;

    let family = user(&instance, FAMILY).await;
    assert_eq!(
        family.role,
        store::accounts::Role::Patient,
        "the role chosen in the form"
    );
    let forward = instance.store().mail().inbox(&family, 1).await.unwrap()[0].clone();
    assert_eq!(forward.attachments, 2, "the forwarded file and the upload");
    let pat = user(&instance, PAT).await;
    assert!(
        instance
            .store()
            .mail()
            .inbox(&pat, 5)
            .await
            .unwrap()
            .iter()
            .any(|m| m.id == forward.id)
    );
    assert_nothing_in_clear(&instance, &canary).await;
}
