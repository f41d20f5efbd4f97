//! Browser test of plans and billing (`tests/browser/billing.mjs`): a free
//! doctor buys SecureMail with the dev provider's test card and then writes to
//! an outsider, buys the Outlook add-in, views and emails the invoices, and
//! cancels SecureMail with its linked Outlook plan. See `browser.rs` for how
//! flows run.

use store::accounts::Role;

use super::browser::run_flow;
use super::harness::{Instance, TEST_PHONE, browser, latest_code, set_password, sign_in};

const DOC: &str = "doc@smiles.example";
const PASSWORD: &str = "Billing-Pass-55";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_buy_compose_invoices_and_cancel_with_the_outlook_plan() {
    let instance = Instance::start().await;
    instance
        .store()
        .accounts()
        .add_practice("Smiles Dental", "smiles.example")
        .await
        .unwrap();
    let (doc, _) = instance
        .store()
        .accounts()
        .add_practice_user(DOC, "Dr Doc Free", Role::Doctor, "smiles.example", false, false)
        .await
        .unwrap();
    set_password(&instance, DOC, PASSWORD).await;
    // The first sign-in (elsewhere) sets up the phone; the flow's is a new device.
    let home = sign_in(&browser(), &instance, DOC, PASSWORD, "/inbox").await;
    assert_eq!(home.url().path(), "/inbox");
    let vars = [
        ("PORTAL", instance.config.public_url.clone()),
        ("PASSWORD", PASSWORD.to_owned()),
    ];
    run_flow("billing", &vars, async |what| match what {
        "code" => latest_code(&instance, Some(TEST_PHONE)).await,
        other => panic!("unexpected ask {other}"),
    })
    .await;
    let mail = String::from_utf8_lossy(&instance.wait_for_mail(DOC, 1).await).into_owned();
    assert!(mail.contains("INV-000001") && mail.contains("INV-000002"), "{mail}");
    let plans = instance.store().billing().plans_paid_by(doc.id).await.unwrap();
    assert!(
        plans
            .iter()
            .all(|l| l.plan.status == store::billing::PlanStatus::Cancelled),
        "{plans:?}"
    );
    assert!(
        instance.store().accounts().user(doc.id).await.unwrap().paid,
        "paid to the period's end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_a_user_manager_buys_securemail_for_a_user() {
    let instance = Instance::start().await;
    let accounts = instance.store().accounts();
    accounts.add_practice("Smiles Dental", "smiles.example").await.unwrap();
    accounts
        .add_practice_user(
            "um@smiles.example",
            "Uma Manager",
            Role::Staff,
            "smiles.example",
            false,
            true,
        )
        .await
        .unwrap();
    let (sam, _) = accounts
        .add_practice_user(
            "sam@smiles.example",
            "Sam Staff",
            Role::Staff,
            "smiles.example",
            false,
            false,
        )
        .await
        .unwrap();
    set_password(&instance, "um@smiles.example", PASSWORD).await;
    let home = sign_in(&browser(), &instance, "um@smiles.example", PASSWORD, "/inbox").await;
    assert_eq!(home.url().path(), "/inbox");
    let vars = [
        ("PORTAL", instance.config.public_url.clone()),
        ("PASSWORD", PASSWORD.to_owned()),
    ];
    run_flow("billing_manager", &vars, async |what| match what {
        "code" => latest_code(&instance, Some(TEST_PHONE)).await,
        other => panic!("unexpected ask {other}"),
    })
    .await;
    assert!(
        instance
            .store()
            .accounts()
            .user(sam.id)
            .await
            .unwrap()
            .may_send_secure()
            .is_ok()
    );
}
