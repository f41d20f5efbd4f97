//! Browser test of Secure Drop in the portal (`tests/browser/drop.mjs`): two
//! files dropped, the recipient picked from the address book, a new address
//! asked about, both files byte-identical on the sent message, the recipient
//! notified, and every state passes axe. See `browser.rs` for how flows run.

use super::browser::run_flow;
use super::harness::{Instance, browser, link_in, register_form, set_password};
use super::secure_send::send_via_relay;
use super::tenant_boundary::secure;

const ADA: &str = "ada@smiles.example";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_secure_drop_sends_two_files_to_a_picked_contact() {
    let instance = Instance::start_with(|config| config.two_step.required = false).await;
    instance.practice_with_doctor().await;
    // Pat, a patient of the practice who registered: a known contact.
    let to = "pat@example.org";
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
    let registered = register_form(&browser(), &instance, &invite, "Pat Example", "+1 201 555 0199").await;
    assert_eq!(registered.status(), 200);
    let before = instance.wait_for_mail(to, 2).await;
    drop(before);
    set_password(&instance, ADA, "Drop-Pass-77").await;
    let vars = [
        ("PORTAL", instance.config.public_url.clone()),
        ("EMAIL", ADA.to_owned()),
        ("PASSWORD", "Drop-Pass-77".to_owned()),
    ];
    run_flow("drop", &vars, async |what| match what {
        "told" => {
            let mail = instance.wait_for_mail(to, 3).await;
            let text = String::from_utf8_lossy(&mail).into_owned();
            // The notification names the sender, never the files.
            if text.contains("Dr Ada Lovelace") && !text.contains("bitewing") && !text.contains("crown.stl") {
                "yes".to_owned()
            } else {
                format!("unexpected notification: {text}")
            }
        }
        other => panic!("unexpected ask {other}"),
    })
    .await;
}
