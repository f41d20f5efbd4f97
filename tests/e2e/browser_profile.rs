//! Browser tests of the profile and of recovery (`tests/browser/profile.mjs`,
//! `tests/browser/locked_out.mjs`): editing the profile (a refused phone, the
//! time zone changing how times show, an email change confirmed by the new
//! address), and a locked-out patient who gets back in from an expired link
//! without anyone's help. See `browser.rs` for how flows run.

use super::browser::{pat_is_registered, pat_vars, run_flow, texted_code};
use super::harness::{Instance, link_in};

const PATIENT: &str = "pat@example.org";
const NEW_EMAIL: &str = "pat.new@example.org";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_profile_edit_time_zone_and_email_change() {
    let instance = Instance::start().await;
    let canary = pat_is_registered(&instance).await;
    let mut vars = pat_vars(&instance, &canary);
    vars.push(("TIMEZONE", "Asia/Tokyo".to_owned()));
    vars.push(("NEW_EMAIL", NEW_EMAIL.to_owned()));
    let before = instance.outbox_for(PATIENT).len();
    run_flow("profile", &vars, async |what| match what {
        "code" => texted_code(&instance).await,
        "email_link" => {
            let mail = instance.wait_for_mail(NEW_EMAIL, 1).await;
            link_in(&mail, &format!("{}/email/", instance.config.public_url))
        }
        other => panic!("unexpected ask {other}"),
    })
    .await;
    // The old address was told; the account now has the new one, phones in E.164.
    let notice = instance.wait_for_mail(PATIENT, before + 1).await;
    assert!(String::from_utf8_lossy(&notice).contains("email address is being changed"));
    let accounts = instance.store().accounts();
    let pat = accounts.user_by_email(NEW_EMAIL).await.unwrap().expect("moved");
    assert!(accounts.user_by_email(PATIENT).await.unwrap().is_none());
    assert_eq!(pat.full_name, "Pat Q. Example");
    assert_eq!(pat.phone, "+12015550123");
    assert_eq!(pat.profile.landline.as_deref(), Some("+442079460000"));
    assert_eq!(pat.profile.time_zone.as_deref(), Some("America/New_York"));
    let audit = instance.store().audit_log().recent_audit(50).await.unwrap();
    for action in ["profile.update", "email.change_request", "email.change"] {
        assert!(
            audit.iter().any(|(_, a, _)| a == action),
            "no {action} in the audit log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_locked_out_patient_recovers_from_an_expired_link() {
    let instance = Instance::start().await;
    let canary = pat_is_registered(&instance).await;
    // Past the 10 minutes in which registration's set-password mail holds back another.
    instance.clock.advance(11 * 60);
    let before = instance.outbox_for(PATIENT).len();
    let reset_prefix = format!("{}/password/", instance.config.public_url);
    run_flow("locked_out", &pat_vars(&instance, &canary), async |what| match what {
        "expired_link" => {
            let mail = instance.wait_for_mail(PATIENT, before + 1).await;
            // A day and more later: the link (24 hours) has expired.
            instance.clock.advance(25 * 3600);
            link_in(&mail, &reset_prefix)
        }
        "new_link" => {
            let mail = instance.wait_for_mail(PATIENT, before + 2).await;
            link_in(&mail, &reset_prefix)
        }
        "code" => texted_code(&instance).await,
        other => panic!("unexpected ask {other}"),
    })
    .await;
    let audit = instance.store().audit_log().recent_audit(100).await.unwrap();
    for action in ["account.lock", "password.reset_request", "link.renew", "password.set"] {
        assert!(
            audit.iter().any(|(_, a, _)| a == action),
            "no {action} in the audit log"
        );
    }
}
