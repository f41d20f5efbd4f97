//! Browser test of a message's end (`tests/browser/lifecycle.mjs`): the
//! countdown, read receipts after the recipient opens and downloads, keep
//! longer, and delete for everyone as the other side sees it. See `browser.rs`
//! for how flows run.

use store::accounts::Role;

use super::browser::run_flow;
use super::harness::{Instance, TEST_PHONE, browser, latest_code, set_password, sign_in};
use super::imap::wait_sealed;
use super::secure_send::{ada_sends, canary};

const ADA_PASSWORD: &str = "Doctor-Pass-77";
const BOB_PASSWORD: &str = "Staff-Pass-77";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_countdown_receipts_extend_and_delete_for_everyone() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    instance
        .store()
        .accounts()
        .add_practice_user(
            "bob@smiles.example",
            "Bob Staff",
            Role::Staff,
            "smiles.example",
            false,
            false,
        )
        .await
        .unwrap();
    set_password(&instance, "ada@smiles.example", ADA_PASSWORD).await;
    set_password(&instance, "bob@smiles.example", BOB_PASSWORD).await;
    // Each one's first sign-in (elsewhere) sets up their phone.
    for (email, password) in [
        ("ada@smiles.example", ADA_PASSWORD),
        ("bob@smiles.example", BOB_PASSWORD),
    ] {
        let home = sign_in(&browser(), &instance, email, password, "/inbox").await;
        assert_eq!(home.url().path(), "/inbox");
    }
    let canary = canary();
    ada_sends(&instance, "bob@smiles.example", &canary, b"%PDF-1.4 scan", None).await;
    let id = wait_sealed(&instance, "bob@smiles.example").await;
    let vars = [
        ("PORTAL", instance.config.public_url.clone()),
        ("ADA_PASSWORD", ADA_PASSWORD.to_owned()),
        ("BOB_PASSWORD", BOB_PASSWORD.to_owned()),
        ("MESSAGE", id.to_string()),
        ("SUBJECT", format!("Lab results {canary}")),
    ];
    run_flow("lifecycle", &vars, async |what| match what {
        "code" => latest_code(&instance, Some(TEST_PHONE)).await,
        other => panic!("unexpected ask {other}"),
    })
    .await;
    let audit = instance.store().audit_log().recent_audit(200).await.unwrap();
    let object = format!("message:{id}");
    for action in [
        "message.view",
        "attachment.download",
        "message.extend",
        "message.delete",
    ] {
        assert!(
            audit.iter().any(|(_, a, o)| a == action && o.starts_with(&object)),
            "{action} audited"
        );
    }
}
