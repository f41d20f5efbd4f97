//! The audit entries of one IMAP FETCH are written together (one transaction,
//! multi-row inserts): on SQLite and on PostgreSQL they chain in order, so the
//! log verifies and its anchor is the last of them.

use store::audit::AuditEvent;

use super::harness::Instance;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_worth_of_audit_entries_chains_in_order_on_every_database() {
    let instance = Instance::start().await;
    let store = instance.store();
    let objects: Vec<String> = (0..230).map(|i| format!("message:{i:032x}")).collect();
    let events: Vec<AuditEvent<'_>> = objects
        .iter()
        .map(|object| AuditEvent {
            actor: "user:1",
            action: "message.view",
            object,
            client: "imap:127.0.0.1",
        })
        .collect();
    let before = store
        .audit_log()
        .verify_audit()
        .await
        .unwrap()
        .expect("an intact chain");
    store.audit_all(&events).await.unwrap();
    let after = store.audit_log().verify_audit().await.unwrap().expect("still intact");
    // Rows out of order (ids not following the VALUES list) would break the
    // chain at the first of them: verify_audit walks it by id.
    assert_eq!(after - before, 230);
    let anchor = store.audit_log().audit_anchor().await.unwrap().expect("an anchor");
    let intact = store
        .audit_log()
        .verify_audit_against(Some(&anchor))
        .await
        .unwrap()
        .expect("the anchor is in the chain");
    assert_eq!(intact.entries, after);
}
