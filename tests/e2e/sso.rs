//! SAML single sign-on against a real identity provider: pysaml2
//! (`tests/sso/idp.py`, run with the system Python) answers the portal's
//! AuthnRequests with Responses signed by xmlsec1 (RSA-SHA256). Practice staff
//! land signed in; forged, wrapped, unsigned, replayed, expired, misaddressed
//! and other-practice assertions are refused.
#![allow(clippy::doc_markdown)] // SAML's words (IdP, AuthnRequest, NameID) read better bare

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use store::Clock as _;
use store::accounts::Role;

use super::harness::Instance;

const PYTHON: &str = "/usr/bin/python3";
const ENTITY_ID: &str = "https://idp.smiles.example/saml/idp";
const SSO_URL: &str = "https://idp.smiles.example/saml/sso";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The pysaml2 IdP in a temp folder (its RSA key is made there, per run).
struct Idp {
    dir: tempfile::TempDir,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sso/idp.py")
}

impl Idp {
    fn new() -> Self {
        let ok = Command::new(PYTHON)
            .args(["-c", "import saml2"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok && Path::new("/usr/bin/xmlsec1").exists(),
            "the SSO tests need a real SAML IdP: apt-get install python3-pysaml2 xmlsec1 (see .ci/run)"
        );
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let dir = self.dir.path().to_str().unwrap();
        let output = Command::new(PYTHON)
            .arg(script())
            .args(args)
            .args(["--dir", dir, "--entity-id", ENTITY_ID, "--sso-url", SSO_URL])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "idp.py {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    fn metadata(&self) -> String {
        self.run(&["metadata"])
    }

    /// A base64 SAMLResponse for `email`, answering `request`, signed as `sign` says.
    fn respond(&self, sp: &Path, request: &str, email: &str, now: i64, sign: &str, audience: Option<&str>) -> String {
        let now = now.to_string();
        let mut args = vec![
            "respond",
            "--sp-metadata",
            sp.to_str().unwrap(),
            "--request",
            request,
            "--email",
            email,
            "--now",
            &now,
            "--sign",
            sign,
        ];
        if let Some(audience) = audience {
            args.extend(["--audience", audience]);
        }
        self.run(&args)
    }
}

/// A practice (smiles.example) with SSO through `idp`; its doctor Ada (active),
/// staff Carol (added, no password yet); another practice with staff Bob.
async fn setup(idp: &Idp) -> (Instance, PathBuf) {
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let store = instance.store();
    store
        .accounts()
        .add_practice_user(
            "carol@smiles.example",
            "Carol Staff",
            Role::Staff,
            "smiles.example",
            true,
            false,
        )
        .await
        .unwrap();
    store
        .accounts()
        .add_practice("Other Clinic", "other.example")
        .await
        .unwrap();
    store
        .accounts()
        .add_practice_user(
            "bob@other.example",
            "Bob Other",
            Role::Staff,
            "other.example",
            true,
            false,
        )
        .await
        .unwrap();
    super::harness::set_password(&instance, "ada@smiles.example", "Correct-Horse-7!").await;
    // What `sealpost practice sso --domain smiles.example --idp-metadata FILE` does.
    let xml = idp.metadata();
    let parsed = portal::sso::parse_idp_metadata(&xml).unwrap();
    assert_eq!(parsed.entity_id, ENTITY_ID);
    store
        .auth()
        .set_practice_idp("smiles.example", &parsed.entity_id, &xml)
        .await
        .unwrap();
    // The IdP learns about us from our SP metadata, as an admin would set it up.
    let sp_xml = client()
        .get(instance.url("/saml/smiles.example/metadata"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(sp_xml.contains("/saml/smiles.example/acs"), "{sp_xml}");
    let sp = idp.dir.path().join("sp.xml");
    std::fs::write(&sp, sp_xml).unwrap();
    (instance, sp)
}

/// A browser (cookies) that does not follow redirects, so we see where it is sent.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Starts SSO in `http`: the AuthnRequest (SAMLRequest) the portal sends to the IdP.
async fn begin(http: &reqwest::Client, instance: &Instance) -> String {
    let response = http
        .get(instance.url("/saml/smiles.example/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(SSO_URL), "{location}");
    let url = reqwest::Url::parse(&location).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "SAMLRequest")
        .map(|(_, v)| v.into_owned())
        .expect("a SAMLRequest")
}

async fn post_acs(http: &reqwest::Client, instance: &Instance, response: &str) -> reqwest::Response {
    http.post(instance.url("/saml/smiles.example/acs"))
        .form(&[("SAMLResponse", response), ("RelayState", "")])
        .send()
        .await
        .unwrap()
}

/// Is `http` signed in? (The inbox answers 200 only to a session.)
async fn signed_in(http: &reqwest::Client, instance: &Instance) -> bool {
    http.get(instance.url("/inbox")).send().await.unwrap().status() == 200
}

/// Decodes, edits and re-encodes a SAMLResponse.
fn edit(response: &str, change: impl FnOnce(String) -> String) -> String {
    let xml = String::from_utf8(B64.decode(response).unwrap()).unwrap();
    B64.encode(change(xml))
}

/// The assertion element (`<…:Assertion …>…</…:Assertion>`) in a Response.
fn assertion_span(xml: &str) -> (usize, usize) {
    let start = xml.find(":Assertion ").map(|i| xml[..i].rfind('<').unwrap()).unwrap();
    let close = xml.find(":Assertion>").unwrap();
    let end = close + ":Assertion>".len();
    (start, end)
}

/// An attacker's copy of a signed assertion: no signature, another ID, and Carol
/// instead of Ada.
fn unsigned_copy(signed: &str) -> String {
    let open = signed
        .find(":Signature ")
        .or_else(|| signed.find(":Signature>"))
        .unwrap();
    let sig_start = signed[..open].rfind('<').unwrap();
    let prefix = &signed[sig_start + 1..open];
    let closing = format!("</{prefix}:Signature>");
    let sig_end = signed.find(&closing).unwrap() + closing.len();
    format!("{}{}", &signed[..sig_start], &signed[sig_end..])
        .replace("ada@smiles.example", "carol@smiles.example")
        .replacen(" ID=\"", " ID=\"evil", 1)
}

#[tokio::test]
async fn sso_signs_in_practice_staff_through_a_real_idp() {
    let idp = Idp::new();
    let (instance, sp) = setup(&idp).await;
    let now = instance.clock.now();

    // The sign-in page offers SSO; an address leads to its practice's IdP.
    let http = client();
    let page = http
        .get(instance.url("/signin"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("action=\"/saml/start\""));
    let start = http
        .get(instance.url("/saml/start?practice=Ada%40Smiles.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.headers()["location"], "/saml/smiles.example/login");
    let none = http
        .get(instance.url("/saml/start?practice=bob%40other.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 400);

    // Response and assertion signed (pysaml2's default for this IdP).
    let request = begin(&http, &instance).await;
    let response = idp.respond(&sp, &request, "ada@smiles.example", now, "response+assertion", None);
    let answer = post_acs(&http, &instance, &response).await;
    assert_eq!(answer.status(), 303);
    assert_eq!(answer.headers()["location"], "/inbox");
    let inbox = http.get(instance.url("/inbox")).send().await.unwrap();
    assert_eq!(inbox.status(), 200);
    assert!(inbox.text().await.unwrap().contains("Dr Ada Lovelace"));
    let audit = instance.store().audit_log().recent_audit(10).await.unwrap();
    assert!(audit.iter().any(|(_, action, _)| action == "signin.sso"), "{audit:?}");

    // Only the assertion signed (Okta's and Google's default); Carol, added by
    // an admin, never set a password: the IdP vouches for her, and she is active.
    let carol = client();
    let request = begin(&carol, &instance).await;
    let response = idp.respond(&sp, &request, "carol@smiles.example", now, "assertion", None);
    assert_eq!(post_acs(&carol, &instance, &response).await.status(), 303);
    assert!(signed_in(&carol, &instance).await);
    let status = instance
        .store()
        .accounts()
        .user_by_email("carol@smiles.example")
        .await
        .unwrap()
        .unwrap()
        .status;
    assert_eq!(status, store::accounts::UserStatus::Active);
    assert!(instance.store().audit_log().verify_audit().await.unwrap().is_ok());
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one attack after another, each a few lines
async fn sso_refuses_forged_wrapped_unsigned_replayed_and_misaddressed_assertions() {
    let idp = Idp::new();
    let (instance, sp) = setup(&idp).await;
    let now = instance.clock.now();

    // Each attempt: a fresh browser starts SSO, the IdP answers, we meddle, and
    // the ACS must refuse (403) without signing anyone in.
    let refused = async |name: &str, make: &dyn Fn(&str) -> String| {
        let http = client();
        let request = begin(&http, &instance).await;
        let response = make(&request);
        let answer = post_acs(&http, &instance, &response).await;
        assert_eq!(answer.status(), 403, "{name}: expected a refusal");
        assert!(answer.text().await.unwrap().contains("Single sign-on failed"), "{name}");
        assert!(!signed_in(&http, &instance).await, "{name}: signed in anyway");
    };

    refused("unsigned", &|request| {
        idp.respond(&sp, request, "ada@smiles.example", now, "none", None)
    })
    .await;
    refused("NameID changed after signing", &|request| {
        let response = idp.respond(&sp, request, "ada@smiles.example", now, "response+assertion", None);
        edit(&response, |xml| {
            xml.replace("ada@smiles.example", "carol@smiles.example")
        })
    })
    .await;
    refused("wrapping: an unsigned assertion beside the signed one", &|request| {
        let response = idp.respond(&sp, request, "ada@smiles.example", now, "assertion", None);
        edit(&response, |xml| {
            let (start, end) = assertion_span(&xml);
            let evil = unsigned_copy(&xml[start..end]);
            format!("{}{evil}{}", &xml[..start], &xml[start..])
        })
    })
    .await;
    refused(
        "wrapping: the signed assertion moved inside an unsigned one",
        &|request| {
            let response = idp.respond(&sp, request, "ada@smiles.example", now, "assertion", None);
            edit(&response, |xml| {
                let (start, end) = assertion_span(&xml);
                let signed = xml[start..end].to_owned();
                let evil = unsigned_copy(&signed);
                let close = evil.rfind("</").unwrap();
                let wrapped = format!("{}{signed}{}", &evil[..close], &evil[close..]);
                format!("{}{wrapped}{}", &xml[..start], &xml[end..])
            })
        },
    )
    .await;
    refused("signed by a key the practice never configured", &|request| {
        let impostor = Idp::new();
        impostor.respond(&sp, request, "ada@smiles.example", now, "response+assertion", None)
    })
    .await;
    refused("addressed to another service provider", &|request| {
        idp.respond(
            &sp,
            request,
            "ada@smiles.example",
            now,
            "response+assertion",
            Some("https://evil-sp.example/metadata"),
        )
    })
    .await;
    refused("a user of another practice", &|request| {
        idp.respond(&sp, request, "bob@other.example", now, "response+assertion", None)
    })
    .await;
    refused("an address with no account", &|request| {
        idp.respond(&sp, request, "nobody@smiles.example", now, "response+assertion", None)
    })
    .await;

    // Expired: the IdP answered, but the assertion arrives after NotOnOrAfter
    // (5 minutes) plus our allowed clock skew (2 minutes).
    let http = client();
    let request = begin(&http, &instance).await;
    let response = idp.respond(&sp, &request, "ada@smiles.example", now, "response+assertion", None);
    instance.clock.advance(8 * 60);
    assert_eq!(post_acs(&http, &instance, &response).await.status(), 403);
    assert!(!signed_in(&http, &instance).await);
    let now = instance.clock.now();

    // A good Response posted from another browser (login CSRF) is refused, and
    // refusing it spends nothing: the right browser can still use it once...
    let http = client();
    let request = begin(&http, &instance).await;
    let response = idp.respond(&sp, &request, "ada@smiles.example", now, "response+assertion", None);
    let stranger = client();
    assert_eq!(post_acs(&stranger, &instance, &response).await.status(), 403);
    assert_eq!(post_acs(&http, &instance, &response).await.status(), 303);
    assert!(signed_in(&http, &instance).await);
    // ...and only once: replayed from the same browser, or by someone who also
    // copied the request cookie, it is refused.
    let again = client();
    assert_eq!(post_acs(&again, &instance, &response).await.status(), 403);
    let replay = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(instance.url("/saml/smiles.example/acs"))
        .header("cookie", format!("sealpost_sso={}", in_response_to(&response)))
        .form(&[("SAMLResponse", response.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 403, "a replayed Response");
    assert!(
        replay
            .headers()
            .get("set-cookie")
            .is_none_or(|c| !c.to_str().unwrap().starts_with("sealpost_session="))
    );

    // Each refusal was for the reason the attack should trip (the log has it;
    // the page says only that sign-on failed).
    let logs = super::harness::logs();
    for reason in [
        "signature missing or not valid for the practice's IdP",
        "response holds more than one assertion (signature wrapping?)",
        "assertion Audience is not this SP",
        "no doctor or staff account with this address in the practice",
        "assertion IssueInstant too old or in the future",
        "answer does not belong to this browser's request",
        "no pending request matches InResponseTo (unsolicited, expired or used)",
    ] {
        assert!(logs.contains(reason), "no refusal logged for: {reason}");
    }
    // Every refusal is audited.
    let audit = instance.store().audit_log().recent_audit(200).await.unwrap();
    let failures = audit
        .iter()
        .filter(|(_, action, _)| action == "signin.sso_failure")
        .count();
    assert!(failures >= 12, "{failures} audited refusals");

    // No SSO for unknown practices or practices without an IdP.
    let http = client();
    for path in [
        "/saml/nowhere.example/metadata",
        "/saml/nowhere.example/login",
        "/saml/other.example/metadata",
        "/saml/other.example/login",
    ] {
        assert_eq!(
            http.get(instance.url(path)).send().await.unwrap().status(),
            404,
            "{path}"
        );
    }
    let posted = http
        .post(instance.url("/saml/nowhere.example/acs"))
        .form(&[("SAMLResponse", response.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 404);
}

/// The request id a Response answers (read from its XML, as an attacker could).
fn in_response_to(response: &str) -> String {
    let xml = String::from_utf8(B64.decode(response).unwrap()).unwrap();
    xml.split("InResponseTo=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn sso_replay_cache_refuses_a_seen_assertion_id() {
    use store::accounts::saml::{SsoRefusal, VerifiedAssertion};
    let instance = Instance::start().await;
    instance.practice_with_doctor().await;
    let store = instance.store();
    let practice = store
        .accounts()
        .practice_by_domain("smiles.example")
        .await
        .unwrap()
        .unwrap();
    store.auth().begin_sso(&practice, "_r1").await.unwrap();
    store.auth().begin_sso(&practice, "_r2").await.unwrap();
    let now = instance.clock.now();
    let assertion = |request: &str| VerifiedAssertion {
        assertion_id: "_a1".into(),
        in_response_to: request.into(),
        email: "ada@smiles.example".into(),
        expires_at: now + 300,
    };
    assert!(
        store
            .auth()
            .finish_sso(&practice, &assertion("_r1"), "test")
            .await
            .unwrap()
            .is_ok()
    );
    // The same assertion again, even answering another live request: a replay.
    let again = store
        .auth()
        .finish_sso(&practice, &assertion("_r2"), "test")
        .await
        .unwrap();
    assert_eq!(again.err(), Some(SsoRefusal::Replay));
    // A request is spent once; an unknown or expired one is refused.
    let spent = store
        .auth()
        .finish_sso(&practice, &assertion("_r1"), "test")
        .await
        .unwrap();
    assert_eq!(spent.err(), Some(SsoRefusal::UnknownRequest));
    store.auth().begin_sso(&practice, "_r3").await.unwrap();
    instance.clock.advance(11 * 60);
    let late = VerifiedAssertion {
        assertion_id: "_a2".into(),
        ..assertion("_r3")
    };
    assert_eq!(
        store.auth().finish_sso(&practice, &late, "test").await.unwrap().err(),
        Some(SsoRefusal::UnknownRequest)
    );
}
