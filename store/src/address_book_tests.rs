//! Who is in whose address book: a practice's people for its users, only
//! correspondents and the inviting practice's users for anyone else.

use sqlx::Row;

use super::{AddressBookEntry, MAX_SUGGESTIONS};
use crate::Store;
use crate::accounts::{Relationship, Role, User};
use crate::ids::MessageId;
use crate::testing::store;

/// Two practices, their people, and who has written to whom.
struct World {
    ada: User,
    bob: User,
    pat: User,
    pia: User,
}

async fn person(store: &Store, email: &str, name: &str, role: &str) -> i64 {
    sqlx::query(
        "INSERT INTO users (email, full_name, role, status, created_at) VALUES ($1, $2, $3, 'active', 0) RETURNING id",
    )
    .bind(email)
    .bind(name)
    .bind(role)
    .fetch_one(&store.db)
    .await
    .unwrap()
    .get("id")
}

async fn contact(store: &Store, practice: i64, user: i64, relationship: &str) {
    sqlx::query("INSERT INTO contacts (practice_id, user_id, relationship, created_at) VALUES ($1, $2, $3, 0)")
        .bind(practice)
        .bind(user)
        .bind(relationship)
        .execute(&store.db)
        .await
        .unwrap();
}

/// A message from `sender` (of `practice`) to `recipients`, each copy in `state`.
async fn message(store: &Store, sender: i64, practice: i64, recipients: &[i64], state: &str) {
    let id = MessageId::generate().to_string();
    sqlx::query(
        "INSERT INTO messages (id, sender_id, practice_id, kek_id, size, state, created_at, expires_at)
         VALUES ($1, $2, $3, 'k', 1, 'sealed', 0, 0)",
    )
    .bind(&id)
    .bind(sender)
    .bind(practice)
    .execute(&store.db)
    .await
    .unwrap();
    for recipient in recipients {
        sqlx::query("INSERT INTO message_recipients (message_id, user_id, state) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(recipient)
            .bind(state)
            .execute(&store.db)
            .await
            .unwrap();
    }
}

async fn user(store: &Store, email: &str) -> User {
    store.accounts().user_by_email(email).await.unwrap().unwrap()
}

async fn world(store: &Store) -> World {
    let accounts = store.accounts();
    let smiles = accounts
        .add_practice("Smiles Dental", "smiles.example")
        .await
        .unwrap()
        .id
        .0;
    let other = accounts
        .add_practice("Other Clinic", "other.example")
        .await
        .unwrap()
        .id
        .0;
    let add = |email, name, role, domain| accounts.add_practice_user(email, name, role, domain, true, false);
    add("ada@smiles.example", "Dr Ada Lovelace", Role::Doctor, "smiles.example")
        .await
        .unwrap();
    add("bob@smiles.example", "Bob Staff", Role::Staff, "smiles.example")
        .await
        .unwrap();
    let olga = add("olga@other.example", "Dr Olga Other", Role::Doctor, "other.example")
        .await
        .unwrap()
        .0
        .id
        .0;
    let ada = user(store, "ada@smiles.example").await;
    let pat = person(store, "pat@example.org", "Pat Example", "patient").await;
    let paula = person(store, "paula@example.org", "Paula Private", "patient").await;
    let pia = person(store, "pia@example.org", "Pia Elsewhere", "patient").await;
    let drew = person(store, "drew@else.example", "Dr Drew Else", "doctor").await;
    let newbie = person(store, "newbie@example.net", "", "unknown").await;
    contact(store, smiles, pat, "patient").await;
    contact(store, smiles, paula, "patient").await;
    contact(store, smiles, drew, "doctor_other_practice").await;
    contact(store, other, pia, "patient").await;
    // Ada wrote to Pat, and to a new address nobody has described yet.
    message(store, ada.id.0, smiles, &[pat], "notify").await;
    message(store, ada.id.0, smiles, &[newbie], "awaiting_role").await;
    // Olga wrote to Pia; and to Pat, a copy still waiting for its role (Pat
    // does not see it, so Olga is not Pat's correspondent yet).
    message(store, olga, other, &[pia], "notify").await;
    message(store, olga, other, &[pat], "awaiting_role").await;
    World {
        ada,
        bob: user(store, "bob@smiles.example").await,
        pat: user(store, "pat@example.org").await,
        pia: user(store, "pia@example.org").await,
    }
}

fn addresses(entries: &[AddressBookEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.address.as_str()).collect()
}

#[tokio::test]
async fn a_practice_user_finds_colleagues_contacts_and_correspondents_by_prefix() {
    let (_dir, store, _) = store().await;
    let w = world(&store).await;
    let mail = store.mail();
    let all = mail.address_book(&w.ada, "", 50, 0).await.unwrap();
    assert_eq!(
        addresses(&all),
        [
            "bob@smiles.example",
            "drew@else.example",
            "newbie@example.net",
            "pat@example.org",
            "paula@example.org"
        ],
        "by name, the address where there is none; never Ada herself, never the other practice's people"
    );
    let pat = mail.suggest_addresses(&w.ada, "pa", 10).await.unwrap();
    assert_eq!(addresses(&pat), ["pat@example.org", "paula@example.org"]);
    assert_eq!(pat[0].relationship, Some(Relationship::Patient));
    assert_eq!(pat[0].description, "Patient");
    assert_eq!(pat[0].name, "Pat Example");
    // A word of the name, any case; the colleague is a colleague.
    let bob = mail.suggest_addresses(&w.ada, "STA", 10).await.unwrap();
    assert_eq!(addresses(&bob), ["bob@smiles.example"]);
    assert_eq!(bob[0].relationship, Some(Relationship::StaffInPractice));
    let drew = mail.suggest_addresses(&w.ada, "else", 10).await.unwrap();
    assert_eq!(drew[0].relationship, Some(Relationship::DoctorOtherPractice));
    // A correspondent the practice has no role for yet: no relationship, no words.
    let newbie = mail.suggest_addresses(&w.ada, "newbie@", 10).await.unwrap();
    assert_eq!(newbie[0].relationship, None);
    assert_eq!(newbie[0].description, "");
    // A prefix only: the middle of an address matches nothing.
    assert!(
        mail.suggest_addresses(&w.ada, "example.org", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(mail.suggest_addresses(&w.ada, "  ", 10).await.unwrap().is_empty());
    // Staff see the same practice book.
    let from_bob = mail.address_book(&w.bob, "", 50, 0).await.unwrap();
    assert!(addresses(&from_bob).contains(&"ada@smiles.example"));
    assert!(addresses(&from_bob).contains(&"paula@example.org"));
}

#[tokio::test]
async fn a_patient_sees_correspondents_and_the_inviting_practice_never_its_other_contacts() {
    let (_dir, store, _) = store().await;
    let w = world(&store).await;
    let mail = store.mail();
    let pats = mail.address_book(&w.pat, "", 50, 0).await.unwrap();
    assert_eq!(
        addresses(&pats),
        ["bob@smiles.example", "ada@smiles.example"],
        "Smiles Dental's people only: not Paula or Drew (its other contacts), not Olga (her copy waits for its role)"
    );
    assert!(pats.iter().all(|e| e.relationship.is_none()));
    assert_eq!(pats[1].description, "Doctor, Smiles Dental");
    assert_eq!(pats[0].description, "Staff, Smiles Dental");
    for prefix in ["pau", "drew", "pia", "olga", "new"] {
        assert!(
            mail.suggest_addresses(&w.pat, prefix, 10).await.unwrap().is_empty(),
            "{prefix}"
        );
    }
    // Pia, Other Clinic's patient, sees Olga and nothing of Smiles Dental.
    let pias = mail.address_book(&w.pia, "", 50, 0).await.unwrap();
    assert_eq!(addresses(&pias), ["olga@other.example"]);
    // Once Pat can see Olga's message, Olga is a correspondent.
    sqlx::query("UPDATE message_recipients SET state = 'notify' WHERE user_id = $1")
        .bind(w.pat.id.0)
        .execute(&store.db)
        .await
        .unwrap();
    let olga = mail.suggest_addresses(&w.pat, "olga", 10).await.unwrap();
    assert_eq!(addresses(&olga), ["olga@other.example"]);
}

#[tokio::test]
async fn results_are_bounded_paged_and_wildcards_are_literal() {
    let (_dir, store, _) = store().await;
    let w = world(&store).await;
    let smiles = w.ada.practice_id.unwrap().0;
    for n in 0..30 {
        let id = person(&store, &format!("many{n:02}@example.org"), "", "patient").await;
        contact(&store, smiles, id, "patient").await;
    }
    let mail = store.mail();
    let suggested = mail.suggest_addresses(&w.ada, "many", 1000).await.unwrap();
    assert_eq!(suggested.len(), usize::try_from(MAX_SUGGESTIONS).unwrap());
    assert_eq!(mail.suggest_addresses(&w.ada, "many", 3).await.unwrap().len(), 3);
    let second = mail.address_book(&w.ada, "many", 10, 10).await.unwrap();
    assert_eq!(second.first().unwrap().address, "many10@example.org");
    assert_eq!(second.len(), 10);
    for wildcard in ["%", "_", "m%", "\\"] {
        assert!(
            mail.suggest_addresses(&w.ada, wildcard, 10).await.unwrap().is_empty(),
            "{wildcard}"
        );
    }
    let long = "a".repeat(super::MAX_SEARCH + 1);
    assert!(matches!(
        mail.suggest_addresses(&w.ada, &long, 10).await,
        Err(crate::Error::Invalid(_))
    ));
    assert!(matches!(
        mail.address_book(&w.ada, "a\u{0}b", 10, 0).await,
        Err(crate::Error::Invalid(_))
    ));
}
