//! Plans on a clock the test moves: buying makes a user paid, cancelling
//! takes the Outlook plan along and runs to period end, who may buy and
//! cancel for whom, invoices numbered in sequence, replayed events.

use super::{Period, PlanStatus, Product};
use crate::Error;
use crate::accounts::{Role, User};
use crate::testing::store;

async fn person(store: &crate::Store, email: &str, domain: &str, role: Role, manager: bool) -> User {
    let _ = store.accounts().add_practice(domain, domain).await;
    store
        .accounts()
        .add_practice_user(email, "Someone", role, domain, false, manager)
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn buying_makes_paid_and_cancelling_runs_to_period_end_with_the_outlook_plan() {
    let (_dir, store, clock) = store().await;
    let billing = store.billing();
    let doc = person(&store, "doc@a.example", "a.example", Role::Doctor, false).await;
    assert!(doc.may_send_secure().is_err());
    // The add-in needs SecureMail first.
    assert!(matches!(
        billing.check_purchase(&doc, doc.id, Product::Outlook).await,
        Err(Error::Invalid(_))
    ));
    let mail = billing
        .start_plan(&doc, doc.id, Product::SecureMail, Period::Monthly, "")
        .await
        .unwrap();
    assert_eq!(mail.amount_cents, 1_000);
    assert!(store.accounts().user(doc.id).await.unwrap().may_send_secure().is_ok());
    // No second running plan of one product.
    assert!(matches!(
        billing
            .start_plan(&doc, doc.id, Product::SecureMail, Period::Annual, "")
            .await,
        Err(Error::Conflict(_))
    ));
    let outlook = billing
        .start_plan(&doc, doc.id, Product::Outlook, Period::Annual, "")
        .await
        .unwrap();
    let cancelled = billing.cancel(&doc, mail.id).await.unwrap();
    assert_eq!(
        cancelled.iter().map(|p| p.id).collect::<Vec<_>>(),
        [mail.id, outlook.id]
    );
    // Still paid until the period ends.
    clock.advance(29 * 86_400);
    assert_eq!(billing.end_lapsed().await.unwrap(), 0);
    let user = store.accounts().user(doc.id).await.unwrap();
    assert!(user.paid);
    assert_eq!(billing.lapsed_at(&user).await.unwrap(), None);
    clock.advance(2 * 86_400);
    // SecureMail ends; the annual Outlook plan ends with it.
    assert_eq!(billing.end_lapsed().await.unwrap(), 1);
    let user = store.accounts().user(doc.id).await.unwrap();
    assert!(!user.paid);
    assert!(billing.lapsed_at(&user).await.unwrap().is_some());
    assert_eq!(billing.plan(outlook.id).await.unwrap().status, PlanStatus::Ended);
    assert!(billing.plans_paid_by(doc.id).await.unwrap().is_empty());
    // Two payments, numbered in sequence, with their currency.
    let invoices = billing.invoices_paid_by(doc.id).await.unwrap();
    assert_eq!(invoices.iter().map(|i| i.number).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(
        super::money(invoices[1].amount_cents, &invoices[1].currency),
        "$10.00 USD"
    );
    // A cancelled plan can't be cancelled again.
    assert!(matches!(billing.cancel(&doc, mail.id).await, Err(Error::NotFound)));
}

#[tokio::test]
async fn a_user_manager_buys_for_their_practice_only_and_only_the_payer_cancels() {
    let (_dir, store, _clock) = store().await;
    let billing = store.billing();
    let manager = person(&store, "um@a.example", "a.example", Role::Staff, true).await;
    let staff = person(&store, "staff@a.example", "a.example", Role::Staff, false).await;
    let other = person(&store, "doc@b.example", "b.example", Role::Doctor, false).await;
    // Not a manager: can't buy for a colleague; a manager can't buy across practices.
    assert!(matches!(
        billing.check_purchase(&staff, manager.id, Product::SecureMail).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        billing.check_purchase(&manager, other.id, Product::SecureMail).await,
        Err(Error::NotFound)
    ));
    let plan = billing
        .start_plan(&manager, staff.id, Product::SecureMail, Period::Annual, "")
        .await
        .unwrap();
    assert_eq!(plan.payer_id, manager.id);
    assert!(store.accounts().user(staff.id).await.unwrap().paid);
    // The manager sees it among the plans they pay for; the user can't cancel it.
    let lines = billing.plans_paid_by(manager.id).await.unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].user_email, "staff@a.example");
    assert!(matches!(billing.cancel(&staff, plan.id).await, Err(Error::NotFound)));
    assert!(matches!(billing.invoice(staff.id, 1).await, Err(Error::NotFound)));
    assert_eq!(
        billing.invoice(manager.id, 1).await.unwrap().user_email,
        "staff@a.example"
    );
}

#[tokio::test]
async fn dev_plans_renew_and_a_failed_renewal_lapses_at_period_end() {
    let (_dir, store, clock) = store().await;
    let billing = store.billing();
    let doc = person(&store, "doc@a.example", "a.example", Role::Doctor, false).await;
    let plan = billing
        .start_plan(&doc, doc.id, Product::SecureMail, Period::Monthly, "")
        .await
        .unwrap();
    clock.advance(31 * 86_400);
    // The dev provider's test card always pays: renewed, a second invoice.
    assert_eq!(billing.end_lapsed().await.unwrap(), 0);
    let renewed = billing.plan(plan.id).await.unwrap();
    assert_eq!(renewed.period_end, plan.period_end + 30 * 86_400);
    assert_eq!(billing.invoices_paid_by(doc.id).await.unwrap().len(), 2);
    // A failed renewal: paid until the period's end, then free.
    billing.renewal_failed(&renewed).await.unwrap();
    assert_eq!(billing.plan(plan.id).await.unwrap().status, PlanStatus::PastDue);
    assert!(store.accounts().user(doc.id).await.unwrap().paid);
    clock.advance(30 * 86_400);
    assert_eq!(billing.end_lapsed().await.unwrap(), 1);
    assert!(!store.accounts().user(doc.id).await.unwrap().paid);
}

#[tokio::test]
async fn a_checkout_completes_once_and_an_event_is_handled_once() {
    let (_dir, store, _clock) = store().await;
    let billing = store.billing();
    let doc = person(&store, "doc@a.example", "a.example", Role::Doctor, false).await;
    let checkout = billing
        .start_checkout(&doc, doc.id, Product::SecureMail, Period::Monthly)
        .await
        .unwrap();
    assert!(!store.accounts().user(doc.id).await.unwrap().paid);
    let plan = billing.complete_checkout(&checkout, "sub_1").await.unwrap();
    assert_eq!(plan.provider_ref, "sub_1");
    assert!(matches!(
        billing.complete_checkout(&checkout, "sub_1").await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        billing.complete_checkout("co_unknown", "sub_2").await,
        Err(Error::NotFound)
    ));
    assert!(billing.claim_event("evt_1").await.unwrap());
    assert!(!billing.claim_event("evt_1").await.unwrap());
    billing.release_event("evt_1").await.unwrap();
    assert!(billing.claim_event("evt_1").await.unwrap());
}
