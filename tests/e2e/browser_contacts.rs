//! Browser test of the address book (`tests/browser/address_book.mjs`): with a
//! keyboard alone, suggestions while typing, a pick, and the role question a
//! known contact answers. See `browser.rs` for how flows run.

use store::accounts::Role;

use super::browser::run_flow;
use super::harness::{Instance, TEST_PHONE, browser, latest_code, link_in, register_form, set_password, sign_in};
use super::secure_send::send_via_relay;
use super::tenant_boundary::secure;

const ADA: &str = "ada@smiles.example";
const PASSWORD: &str = "Doctor-Pass-77";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_address_book_suggests_a_known_contact_and_fills_the_role() {
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
    // Smiles Dental's patients, Pat and Paula, who give their names on registering.
    for (to, name) in [
        ("pat@example.org", "Pat Example"),
        ("paula@example.org", "Paula Private"),
    ] {
        send_via_relay(
            &instance,
            ADA,
            &[to],
            &secure(ADA, &[to], &[(to, "patient")], "Results"),
        )
        .await
        .expect("accepted with 250");
        let invite = link_in(
            &instance.wait_for_mail(to, 1).await,
            &format!("{}/m/", instance.config.public_url),
        );
        let registered = register_form(&browser(), &instance, &invite, name, "+12015550199").await;
        assert_eq!(registered.status(), 200);
    }
    set_password(&instance, ADA, PASSWORD).await;
    // Ada's first sign-in (elsewhere) sets up her phone; the flow's is a new device.
    let home = sign_in(&browser(), &instance, ADA, PASSWORD, "/inbox").await;
    assert_eq!(home.url().path(), "/inbox");
    let vars = [
        ("PORTAL", instance.config.public_url.clone()),
        ("PASSWORD", PASSWORD.to_owned()),
    ];
    run_flow("address_book", &vars, async |what| match what {
        "code" => latest_code(&instance, Some(TEST_PHONE)).await,
        other => panic!("unexpected ask {other}"),
    })
    .await;
}
