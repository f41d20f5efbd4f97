//! Plans with the dev provider, driven over HTTP as a browser posts the forms:
//! a free doctor is refused at compose with "Buy now", a declined test card
//! changes nothing, a good one makes the account paid at once and the same
//! message goes out; invoices are listed, viewed and emailed (own address,
//! rate-limited); a User Manager buys SecureMail and the Outlook add-in for a
//! user, only the payer may cancel, cancelling SecureMail takes the Outlook
//! plan along, and once the period is over the user is free again and told why.

use reqwest::multipart::Form;
use store::accounts::Role;

use super::harness::{Instance, browser, csrf_in, set_password, sign_in};

const PASSWORD: &str = "Billing-Pass-55";

/// A practice user with a password, signed in with a fresh cookie jar.
pub(super) async fn signed_in_user(
    instance: &Instance,
    email: &str,
    role: Role,
    manager: bool,
) -> (store::accounts::User, reqwest::Client) {
    let _ = instance
        .store()
        .accounts()
        .add_practice("Smiles Dental", "smiles.example")
        .await;
    let (user, _) = instance
        .store()
        .accounts()
        .add_practice_user(email, "Someone Example", role, "smiles.example", false, manager)
        .await
        .unwrap();
    set_password(instance, email, PASSWORD).await;
    let http = browser();
    let home = sign_in(&http, instance, email, PASSWORD, "/inbox").await;
    assert_eq!(home.url().path(), "/inbox", "{email} signed in");
    (user, http)
}

async fn page(http: &reqwest::Client, instance: &Instance, path: &str) -> (u16, String) {
    let response = http.get(instance.url(path)).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Posts a form after taking the CSRF token from `from` (a page with the form).
pub(super) async fn post_form(
    http: &reqwest::Client,
    instance: &Instance,
    from: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let (_, form) = page(http, instance, from).await;
    let csrf = csrf_in(&form);
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    http.post(instance.url(action)).form(&all).send().await.unwrap()
}

async fn compose_to_outsider(http: &reqwest::Client, instance: &Instance) -> reqwest::Response {
    let (_, form) = page(http, instance, "/compose").await;
    let form = Form::new()
        .text("csrf", csrf_in(&form))
        .text("to", "pat@example.org")
        .text("role:pat@example.org", "patient")
        .text("subject", "Your results")
        .text("body", "All fine.");
    http.post(instance.url("/compose"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

fn card(number: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("product", "securemail"),
        ("period", "monthly"),
        ("card_number", number),
        ("card_expiry", "12/40"),
        ("card_cvc", "123"),
    ]
}

#[tokio::test]
async fn a_free_doctor_buys_with_a_test_card_then_writes_to_an_outsider_and_gets_invoices() {
    let instance = Instance::start().await;
    let (doc, http) = signed_in_user(&instance, "doc@smiles.example", Role::Doctor, false).await;

    let refused = compose_to_outsider(&http, &instance).await;
    assert_eq!(refused.status(), 403);
    let refused = refused.text().await.unwrap();
    assert!(
        refused.contains("href=\"/billing/buy?product=securemail\"") && refused.contains("Buy now"),
        "{refused}"
    );

    let (status, buy) = page(&http, &instance, "/billing/buy?product=securemail").await;
    assert_eq!(status, 200);
    assert!(
        buy.contains("$10.00 USD per month") && buy.contains("$100.00 USD per year"),
        "{buy}"
    );

    // Declined, then not a test card: nothing changes, the page says why.
    let declined = post_form(
        &http,
        &instance,
        "/billing/buy",
        "/billing/buy",
        &card("4000 0000 0000 0002"),
    )
    .await;
    assert_eq!(declined.status(), 402);
    assert!(declined.text().await.unwrap().contains("declined"));
    let bad = post_form(
        &http,
        &instance,
        "/billing/buy",
        "/billing/buy",
        &card("1234 5678 9012 3456"),
    )
    .await;
    assert_eq!(bad.status(), 402);
    assert!(!instance.store().accounts().user(doc.id).await.unwrap().paid);
    assert!(
        instance
            .store()
            .billing()
            .invoices_paid_by(doc.id)
            .await
            .unwrap()
            .is_empty()
    );
    // No CSRF token: refused before anything is charged.
    let forged = http
        .post(instance.url("/billing/buy"))
        .form(&card("4242 4242 4242 4242"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(!instance.store().accounts().user(doc.id).await.unwrap().paid);

    let bought = post_form(
        &http,
        &instance,
        "/billing/buy",
        "/billing/buy",
        &card("4242 4242 4242 4242"),
    )
    .await;
    assert_eq!(bought.url().path(), "/account/messaging");
    let bought = bought.text().await.unwrap();
    assert!(
        bought.contains("SecureMail is yours now") && bought.contains("Paid:"),
        "{bought}"
    );
    assert!(instance.store().accounts().user(doc.id).await.unwrap().paid);

    let sent = compose_to_outsider(&http, &instance).await;
    assert!(sent.url().path().starts_with("/m/"), "sent: {}", sent.url());

    let (_, invoices) = page(&http, &instance, "/account/invoices").await;
    assert!(
        invoices.contains("INV-000001") && invoices.contains("$10.00 USD"),
        "{invoices}"
    );
    let (status, one) = page(&http, &instance, "/account/invoices/1").await;
    assert_eq!(status, 200);
    assert!(one.contains("Invoice INV-000001") && one.contains(">USD<"), "{one}");
    assert_eq!(page(&http, &instance, "/account/invoices/2").await.0, 404);
    assert_eq!(page(&http, &instance, "/account/invoices/x").await.0, 404);

    let emailed = post_form(&http, &instance, "/account/invoices", "/account/invoices/email", &[]).await;
    assert_eq!(emailed.url().query(), Some("emailed=1"));
    let mail = String::from_utf8_lossy(&instance.wait_for_mail("doc@smiles.example", 1).await).into_owned();
    assert!(
        mail.contains("Your Sealpost invoices") && mail.contains("INV-000001"),
        "{mail}"
    );
    // Again at once: refused, nothing more is sent.
    let again = post_form(&http, &instance, "/account/invoices", "/account/invoices/email", &[]).await;
    assert_eq!(again.status(), 400);
}

#[tokio::test]
async fn a_user_manager_buys_for_a_user_and_cancelling_takes_the_outlook_plan_then_it_lapses() {
    let instance = Instance::start().await;
    let (_manager, um) = signed_in_user(&instance, "um@smiles.example", Role::Staff, true).await;
    let (staff, staff_http) = signed_in_user(&instance, "staff@smiles.example", Role::Staff, false).await;
    let for_staff = staff.id.0.to_string();

    let (_, manage) = page(&um, &instance, &format!("/practice/users/{for_staff}")).await;
    assert!(
        manage.contains(&format!("/billing/buy?product=securemail&amp;for={for_staff}")),
        "{manage}"
    );
    let from = format!("/billing/buy?product=securemail&for={for_staff}");
    let (_, buy) = page(&um, &instance, &from).await;
    assert!(
        buy.contains("For Someone Example (staff@smiles.example), charged to you."),
        "{buy}"
    );
    let mut fields = card("4242 4242 4242 4242");
    fields.push(("for", &for_staff));
    let bought = post_form(&um, &instance, &from, "/billing/buy", &fields).await;
    assert!(
        bought
            .text()
            .await
            .unwrap()
            .contains("SecureMail for staff@smiles.example started")
    );
    let outlook_from = format!("/billing/buy?product=outlook&for={for_staff}");
    fields[0] = ("product", "outlook");
    let bought = post_form(&um, &instance, &outlook_from, "/billing/buy", &fields).await;
    assert_eq!(bought.url().path(), "/account/messaging");
    assert!(instance.store().accounts().user(staff.id).await.unwrap().paid);

    // The user can't buy twice, can't cancel what the manager pays for, and
    // can't buy for the manager.
    let plans = instance.store().billing().plans_paid_by(_manager.id).await.unwrap();
    assert_eq!(plans.len(), 2);
    let securemail = plans
        .iter()
        .find(|l| l.plan.product == store::billing::Product::SecureMail)
        .unwrap()
        .plan
        .id;
    assert_eq!(
        page(
            &staff_http,
            &instance,
            &format!("/account/messaging/cancel?plan={securemail}")
        )
        .await
        .0,
        404
    );
    assert_eq!(
        page(&staff_http, &instance, &format!("/billing/buy?for={}", _manager.id.0))
            .await
            .0,
        404
    );
    let (status, twice) = page(&staff_http, &instance, "/billing/buy?product=securemail").await;
    assert_eq!(status, 400);
    assert!(twice.contains("already has a running SecureMail plan"), "{twice}");

    let (_, mine) = page(&um, &instance, "/account/messaging").await;
    assert!(
        mine.contains("staff@smiles.example") && mine.contains("Renews on"),
        "{mine}"
    );
    let confirm_path = format!("/account/messaging/cancel?plan={securemail}");
    let (_, confirm) = page(&um, &instance, &confirm_path).await;
    assert!(confirm.contains("also cancels the Outlook add-in plan"), "{confirm}");
    let plan = securemail.to_string();
    let cancelled = post_form(
        &um,
        &instance,
        &confirm_path,
        "/account/messaging/cancel",
        &[("plan", &plan)],
    )
    .await;
    let cancelled = cancelled.text().await.unwrap();
    assert_eq!(cancelled.matches("Cancelled, ends on").count(), 2, "{cancelled}");
    assert!(
        !cancelled.contains("/account/messaging/cancel?plan="),
        "nothing left to cancel"
    );

    // Paid until the period is over; then the worker step makes the user free.
    assert!(instance.store().accounts().user(staff.id).await.unwrap().paid);
    instance.clock.advance(31 * 86_400);
    assert_eq!(instance.store().billing().end_lapsed().await.unwrap(), 1);
    assert!(!instance.store().accounts().user(staff.id).await.unwrap().paid);
    // A month later the session is long over: sign in again.
    let staff_http = browser();
    sign_in(&staff_http, &instance, "staff@smiles.example", PASSWORD, "/inbox").await;
    let refused = compose_to_outsider(&staff_http, &instance).await;
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("Your SecureMail plan ended on"));
    let (_, state) = page(&staff_http, &instance, "/account/messaging").await;
    assert!(state.contains("Free:") && state.contains("plan ended on"), "{state}");
}
