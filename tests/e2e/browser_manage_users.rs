//! Browser test of deactivation (issue 13 item 4): a User Manager deactivates a
//! staff member who left, in Chromium (`tests/browser/deactivate.mjs`, every page
//! checked with axe); his open session ends and his password no longer signs in.

use super::browser::run_flow;
use super::harness::{Instance, TEST_PHONE, browser, latest_code, set_password, sign_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_user_manager_deactivates_a_staff_member_who_left() {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    set_password(&instance, "ada@smiles.example", "Doctor-Pass-77").await;
    // Ada's first sign-in (elsewhere) sets up her phone; the flow's is a new device.
    let home = sign_in(&browser(), &instance, "ada@smiles.example", "Doctor-Pass-77", "/inbox").await;
    assert_eq!(home.url().path(), "/inbox");
    instance
        .store()
        .accounts()
        .add_practice_user(
            "bob@smiles.example",
            "Bob Staff",
            store::accounts::Role::Staff,
            "smiles.example",
            true,
            false,
        )
        .await
        .unwrap();
    set_password(&instance, "bob@smiles.example", "Maple-Tree-88").await;
    let bob = browser();
    let bob_home = sign_in(&bob, &instance, "bob@smiles.example", "Maple-Tree-88", "/inbox").await;
    assert_eq!(bob_home.url().path(), "/inbox");

    let vars = [
        ("PORTAL", instance.config.public_url.clone()),
        ("MANAGER_PASSWORD", "Doctor-Pass-77".to_owned()),
        ("STAFF_PASSWORD", "Maple-Tree-88".to_owned()),
    ];
    run_flow("deactivate", &vars, async |what| match what {
        "code" => latest_code(&instance, Some(TEST_PHONE)).await,
        other => panic!("unexpected ask {other}"),
    })
    .await;
    let after = bob.get(instance.url("/inbox")).send().await.unwrap();
    assert_ne!(after.url().path(), "/inbox", "Bob's open session ended");
    let audit = instance.store().audit_log().recent_audit(100).await.unwrap();
    assert!(audit.iter().any(|(_, a, _)| a == "user.deactivate"));
}
