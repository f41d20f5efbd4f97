//! The address book over HTTPS: `/contacts/suggest` answers signed-in people
//! only, with each suggestion's relationship; a practice user finds the
//! practice's people, a patient only their correspondents and the inviting
//! practice's users, and nobody another practice's contacts; `/contacts` lists
//! the same people a page at a time, each with a link to write to them.

use lettre::AsyncTransport as _;
use store::accounts::Role;

use super::harness::{Instance, browser, set_password, sign_in, submission_client};
use super::secure_send::send_via_relay;
use super::tenant_boundary::{CAROL, other_practice, secure};

const ADA: &str = "ada@smiles.example";
const PAT: &str = "pat@example.org";
const PASSWORD: &str = "Correct-Horse-42";

/// Smiles Dental (Ada, Bob) has written to Pat and Paula; Other Clinic
/// (Carol) to Pia. Ada and Pat can sign in.
async fn two_practices() -> Instance {
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
    for to in [PAT, "paula@example.org"] {
        send_via_relay(
            &instance,
            ADA,
            &[to],
            &secure(ADA, &[to], &[(to, "patient")], "Results"),
        )
        .await
        .expect("accepted with 250");
        instance.wait_for_mail(to, 1).await;
    }
    // With two practices the relay needs each one's sources: Carol submits instead.
    let carol = other_practice(&instance).await;
    let password = instance
        .store()
        .auth()
        .create_app_password(&carol, "Outlook", "test")
        .await
        .unwrap();
    let pia = "pia@example.org";
    let envelope = lettre::address::Envelope::new(Some(CAROL.parse().unwrap()), vec![pia.parse().unwrap()]).unwrap();
    submission_client(&instance, CAROL, &password)
        .send_raw(&envelope, &secure(CAROL, &[pia], &[(pia, "patient")], "Results"))
        .await
        .expect("accepted with 250");
    instance.wait_for_mail(pia, 1).await;
    set_password(&instance, ADA, PASSWORD).await;
    set_password(&instance, PAT, PASSWORD).await;
    instance
}

/// A browser signed in as `email`.
async fn signed_in(instance: &Instance, email: &str) -> reqwest::Client {
    let http = browser();
    let home = sign_in(&http, instance, email, PASSWORD, "/inbox").await;
    assert_eq!(home.url().path(), "/inbox", "{email} signed in");
    http
}

/// The suggestions for `q` as (address, relationship, label).
async fn suggest(http: &reqwest::Client, instance: &Instance, q: &str) -> Vec<(String, Option<String>, String)> {
    let q = q.replace('%', "%25").replace(' ', "%20");
    let response = http
        .get(instance.url(&format!("/contacts/suggest?q={q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{q}");
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    body["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["address"].as_str().unwrap().to_owned(),
                s["relationship"].as_str().map(str::to_owned),
                s["label"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn addresses(found: &[(String, Option<String>, String)]) -> Vec<&str> {
    found.iter().map(|(a, _, _)| a.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggestions_carry_relationships_and_never_cross_a_practice_or_reach_a_stranger() {
    let instance = two_practices().await;

    // A stranger: a JSON 401 for the suggestions, the sign-in page for the book.
    let stranger = browser();
    let refused = stranger
        .get(instance.url("/contacts/suggest?q=pa"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().get("www-authenticate").is_none());
    let problem = refused.text().await.unwrap();
    assert!(!problem.contains("example.org"), "{problem}");
    let page = stranger.get(instance.url("/contacts")).send().await.unwrap();
    assert_eq!(page.url().path(), "/signin");

    // Ada: her practice's patients with their relationship, her colleague.
    let ada = signed_in(&instance, ADA).await;
    let patients = suggest(&ada, &instance, "pa").await;
    assert_eq!(addresses(&patients), [PAT, "paula@example.org"]);
    assert!(
        patients
            .iter()
            .all(|(_, r, l)| r.as_deref() == Some("patient") && l == "Patient"),
        "{patients:?}"
    );
    let bob = suggest(&ada, &instance, "Bob").await;
    assert_eq!(
        bob,
        [(
            "bob@smiles.example".to_owned(),
            Some("staff_in_practice".to_owned()),
            "Staff in my practice".to_owned()
        )]
    );
    // Nothing of Other Clinic's: its doctor, its patient.
    assert!(suggest(&ada, &instance, "carol").await.is_empty());
    assert!(suggest(&ada, &instance, "pia").await.is_empty());
    // Bounded, and a wildcard is a character like any other.
    let one = ada
        .get(instance.url("/contacts/suggest?q=p&limit=1"))
        .send()
        .await
        .unwrap();
    let one: serde_json::Value = serde_json::from_str(&one.text().await.unwrap()).unwrap();
    assert_eq!(one["suggestions"].as_array().unwrap().len(), 1);
    assert!(suggest(&ada, &instance, "%").await.is_empty());
    let long = ada
        .get(instance.url(&format!("/contacts/suggest?q={}", "p".repeat(101))))
        .send()
        .await
        .unwrap();
    assert_eq!(long.status(), 400);
    for bad in ["0", "-1", "many"] {
        let refused = ada
            .get(instance.url(&format!("/contacts/suggest?q=p&limit={bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "limit={bad}");
        let problem = refused.text().await.unwrap();
        assert!(problem.contains("whole number"), "{problem}");
    }

    // The page: searchable, each person with a link to write to them.
    let book = ada.get(instance.url("/contacts?q=pa")).send().await.unwrap();
    assert_eq!(book.status(), 200);
    let book = book.text().await.unwrap();
    assert!(book.contains("/compose?to=pat%40example.org"), "{book}");
    assert!(book.contains("paula@example.org") && !book.contains("bob@smiles.example"));
    let paged = ada.get(instance.url("/contacts?limit=1&page=2")).send().await.unwrap();
    let paged = paged.text().await.unwrap();
    assert!(
        paged.contains("Page 2") && paged.contains("/contacts?page=3&#38;limit=1"),
        "{paged}"
    );

    // Pat: Smiles Dental's people (no relationship: Pat is no practice), never
    // the practice's other patients, never Other Clinic.
    let pat = signed_in(&instance, PAT).await;
    let smiles = suggest(&pat, &instance, "a").await;
    assert_eq!(smiles, [(ADA.to_owned(), None, "Doctor, Smiles Dental".to_owned())]);
    assert_eq!(
        addresses(&suggest(&pat, &instance, "bob").await),
        ["bob@smiles.example"]
    );
    for other in ["paula", "pia", "carol", "pa"] {
        assert!(suggest(&pat, &instance, other).await.is_empty(), "{other}");
    }
    let book = pat
        .get(instance.url("/contacts"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(book.contains(ADA) && !book.contains("paula@") && !book.contains(CAROL));
}
