//! The admin CLI (issue 13 items 4, 6, 7), run as the real binary: every
//! command finds the server's configuration the same way (`--config`, else
//! `SEALPOST_CONFIG`, else `./sealpost.toml`, else `/etc/sealpost/sealpost.toml`,
//! else the embedded defaults) and says which configuration and database it
//! used; an admin command on a database that does not exist refuses and creates
//! nothing (`migrate` creates it); `user list`, `user link` (old links die),
//! `user manager`, `user deactivate` (sessions and app passwords end, sent
//! messages stay) and `user reactivate`; `serve` names every address it cannot bind with its key.

use std::path::Path;
use std::process::{Command, Output};

use store::accounts::TokenPurpose;

use super::harness::{Instance, browser, link_in, post_signin, set_password, sign_in};
use super::secure_send::{ada_sends, canary};

/// The binary with a clean environment for configuration, in `cwd`.
fn sealpost_in(cwd: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sealpost"));
    command
        .current_dir(cwd)
        .args(args)
        .env_remove("SEALPOST_CONFIG")
        .env_remove("SEALPOST_DATA_DIR")
        .env_remove("SEALPOST_DATABASE_URL")
        .env("SEALPOST_LOG", "error");
    command
}

fn run(command: &mut Command) -> Output {
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "sealpost failed:\n{}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Writes a configuration whose data folder is `data` (relative paths resolve
/// against the working folder).
fn write_config(path: &Path, data: &Path) {
    std::fs::write(path, format!("data_dir = {:?}\n", data.display().to_string())).unwrap();
}

#[test]
#[allow(clippy::too_many_lines)] // one lookup, tried step by step
fn every_admin_command_finds_the_config_the_same_way_and_refuses_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let flag_file = dir.path().join("flag.toml");
    let var_file = dir.path().join("var.toml");
    write_config(&flag_file, &dir.path().join("flag-data"));
    write_config(&var_file, &dir.path().join("var-data"));

    // --config: a missing database is refused, and nothing is created.
    let commands: [&[&str]; 6] = [
        &["practice", "list"],
        &["user", "list", "--practice", "smiles.example"],
        &["user", "link", "--email", "ada@smiles.example"],
        &["user", "deactivate", "--email", "ada@smiles.example"],
        &["audit", "verify"],
        &["spool", "quarantined"],
    ];
    for args in commands {
        let output = run(&mut sealpost_in(
            &cwd,
            &[&["--config", flag_file.to_str().unwrap()][..], args].concat(),
        ));
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("Configuration: {} (from --config)", flag_file.display())),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "Database:      sqlite://{}/sealpost.db",
                dir.path().join("flag-data").display()
            )),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("does not exist"), "{args:?}: {stderr}");
        assert!(
            !dir.path().join("flag-data/sealpost.db").exists(),
            "{args:?} created the database"
        );
    }

    // SEALPOST_CONFIG, when there is no --config; `migrate` creates the database.
    let output = run(sealpost_in(&cwd, &["migrate"]).env("SEALPOST_CONFIG", &var_file));
    ok(&output);
    assert!(
        text(&output.stderr).contains(&format!("Configuration: {} (from SEALPOST_CONFIG)", var_file.display())),
        "{}",
        text(&output.stderr)
    );
    assert!(dir.path().join("var-data/sealpost.db").exists());
    let output = run(sealpost_in(&cwd, &["practice", "list"]).env("SEALPOST_CONFIG", &var_file));
    assert!(ok(&output).contains("No practices yet"));
    // --config wins over SEALPOST_CONFIG.
    let output = run(
        sealpost_in(&cwd, &["--config", flag_file.to_str().unwrap(), "practice", "list"])
            .env("SEALPOST_CONFIG", &var_file),
    );
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("(from --config)"));
    // A --config or SEALPOST_CONFIG file that is not there is an error, not the defaults.
    let output = run(sealpost_in(&cwd, &["practice", "list"]).env("SEALPOST_CONFIG", dir.path().join("nope.toml")));
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("cannot read"), "{}", text(&output.stderr));

    // ./sealpost.toml in the working folder, and `config check` and `serve`'s
    // report name it too.
    write_config(&cwd.join("sealpost.toml"), &dir.path().join("var-data"));
    let output = run(&mut sealpost_in(&cwd, &["practice", "list"]));
    ok(&output);
    assert!(
        text(&output.stderr).contains("Configuration: sealpost.toml (found in the working folder)"),
        "{}",
        text(&output.stderr)
    );
    let check = ok(&run(&mut sealpost_in(&cwd, &["config", "check"])));
    assert!(
        check.contains("Configuration OK: sealpost.toml (found in the working folder)"),
        "{check}"
    );

    // No file anywhere: the embedded defaults (when this machine has no
    // /etc/sealpost/sealpost.toml), whose ./data/sealpost.db does not exist.
    std::fs::remove_file(cwd.join("sealpost.toml")).unwrap();
    if !Path::new("/etc/sealpost/sealpost.toml").exists() {
        let output = run(&mut sealpost_in(
            &cwd,
            &["user", "list", "--practice", "smiles.example"],
        ));
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains("Configuration: embedded defaults"), "{stderr}");
        assert!(stderr.contains("Database:      sqlite://data/sealpost.db"), "{stderr}");
        assert!(!cwd.join("data").exists(), "an admin command made a data folder");
    }
}

#[test]
fn serve_names_every_address_it_cannot_bind_with_its_key() {
    let taken_a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = taken_a.local_addr().unwrap().to_string();
    let b = taken_b.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = run(sealpost_in(dir.path(), &["serve"])
        .env("SEALPOST_DATA_DIR", dir.path())
        .env("SEALPOST_SMTP_RELAY_LISTEN", &a)
        .env("SEALPOST_SMTP_SUBMISSION_LISTEN", "127.0.0.1:0")
        .env("SEALPOST_PORTAL_LISTEN", &b)
        .env("SEALPOST_IMAP_LISTEN", "127.0.0.1:0")
        .env("SEALPOST_IMAP_TLS_LISTEN", "127.0.0.1:0"));
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("cannot listen on 2 address(es)"), "{stderr}");
    assert!(
        stderr.contains(&format!("smtp.relay_listen = \"{a}\": already in use")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("portal.listen = \"{b}\": already in use")),
        "{stderr}"
    );
    assert!(!stderr.contains("imap.listen"), "{stderr}");
}

/// The binary on a running instance's data folder and database.
fn admin(instance: &Instance, args: &[&str]) -> Output {
    run(sealpost_in(instance.dir.path(), args)
        .env("SEALPOST_DATA_DIR", &instance.config.data_dir)
        .env("SEALPOST_DATABASE_URL", instance.config.database_url())
        .env("SEALPOST_PUBLIC_URL", &instance.config.public_url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one story, told in order
async fn user_list_link_manager_and_deactivate_from_the_cli() {
    let instance = Instance::start().await;
    // The CLI runs on the system clock: the instance's clock keeps the same time.
    let system_now = store::Clock::now(&store::SystemClock);
    instance.clock.advance(system_now - store::Clock::now(&*instance.clock));
    instance.practice_with_doctor().await;
    set_password(&instance, "ada@smiles.example", "Doctor-Pass-77").await;
    let added = ok(&admin(
        &instance,
        &[
            "user",
            "add",
            "--email",
            "bob@smiles.example",
            "--name",
            "Bob Staff",
            "--role",
            "staff",
            "--practice",
            "smiles.example",
            "--paid",
        ],
    ));
    let first_link = added.lines().last().unwrap().rsplit('/').next().unwrap().to_owned();

    let list = ok(&admin(&instance, &["user", "list", "--practice", "smiles.example"]));
    let line_of = |list: &str, email: &str| {
        list.lines()
            .find(|l| l.starts_with(email))
            .unwrap_or_default()
            .to_owned()
    };
    let ada_line = line_of(&list, "ada@smiles.example");
    assert!(
        ada_line.contains("egistered") && ada_line.ends_with(", User Manager"),
        "{list}"
    );
    assert!(
        line_of(&list, "bob@smiles.example").contains("staff  Invited"),
        "{list}"
    );
    let practices = ok(&admin(&instance, &["practice", "list"]));
    assert!(
        practices.contains("users:          2 (1 registered, 1 invited, 0 deactivated)"),
        "{practices}"
    );
    assert!(practices.contains("User Managers:  ada@smiles.example"), "{practices}");
    let output = admin(&instance, &["user", "list", "--practice", "nowhere.example"]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("no practice with the domain nowhere.example"));

    // A fresh link: the one `user add` printed dies.
    let linked = ok(&admin(&instance, &["user", "link", "--email", "bob@smiles.example"]));
    assert!(linked.contains("earlier links no longer work"), "{linked}");
    let url = linked.lines().last().unwrap();
    assert!(
        url.starts_with(&format!("{}/password/", instance.config.public_url)),
        "{linked}"
    );
    let auth = instance.store().auth();
    assert!(
        auth.check_token(&first_link, TokenPurpose::SetPassword).await.is_err(),
        "the old link still works"
    );
    let fresh = url.rsplit('/').next().unwrap();
    assert!(auth.check_token(fresh, TokenPurpose::SetPassword).await.is_ok());
    let http = browser();
    assert_eq!(http.get(instance.reachable(url)).send().await.unwrap().status(), 200);

    // User Managers: add Bob, remove Ada; the last one stays.
    assert!(
        ok(&admin(&instance, &["user", "manager", "--email", "bob@smiles.example"])).contains("now a User Manager")
    );
    assert!(
        ok(&admin(
            &instance,
            &["user", "manager", "--email", "ada@smiles.example", "--off"]
        ))
        .contains("no longer a User Manager")
    );
    let output = admin(
        &instance,
        &["user", "manager", "--email", "bob@smiles.example", "--off"],
    );
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("only User Manager"),
        "{}",
        text(&output.stderr)
    );
    assert!(
        instance
            .store()
            .accounts()
            .user_by_email("bob@smiles.example")
            .await
            .unwrap()
            .unwrap()
            .user_manager
    );
    let output = admin(&instance, &["user", "manager", "--email", "nobody@smiles.example"]);
    assert!(!output.status.success());

    // Ada sends a secure message, has a portal session and an app password; then she leaves.
    ada_sends(&instance, "pat@example.org", &canary(), b"x", Some("patient")).await;
    let invite = link_in(
        &instance.wait_for_mail("pat@example.org", 1).await,
        &format!("{}/m/", instance.config.public_url),
    );
    let ada_http = browser();
    sign_in(&ada_http, &instance, "ada@smiles.example", "Doctor-Pass-77", "/inbox").await;
    assert_eq!(
        ada_http.get(instance.url("/inbox")).send().await.unwrap().url().path(),
        "/inbox"
    );
    let ada = instance
        .store()
        .accounts()
        .user_by_email("ada@smiles.example")
        .await
        .unwrap()
        .unwrap();
    let app_password = auth.create_app_password(&ada, "Outlook", "test").await.unwrap();
    auth.check_mail_client("ada@smiles.example", &app_password, "test")
        .await
        .unwrap();

    let done = ok(&admin(
        &instance,
        &["user", "deactivate", "--email", "ada@smiles.example"],
    ));
    assert!(done.contains("Deactivated ada@smiles.example"), "{done}");
    assert_ne!(
        ada_http.get(instance.url("/inbox")).send().await.unwrap().url().path(),
        "/inbox",
        "her session ended"
    );
    assert!(
        auth.check_mail_client("ada@smiles.example", &app_password, "test2")
            .await
            .is_err()
    );
    let again = post_signin(&browser(), &instance, "ada@smiles.example", "Doctor-Pass-77", "/inbox").await;
    assert_ne!(again.url().path(), "/inbox", "she cannot sign in");
    let ada = instance
        .store()
        .accounts()
        .user_by_email("ada@smiles.example")
        .await
        .unwrap()
        .unwrap();
    assert!(ada.may_send_secure().is_err(), "no longer sends secure mail");
    // Her message stays for its recipient.
    assert_eq!(
        browser()
            .get(instance.reachable(&invite))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // No link, no app password, no second deactivation.
    for args in [
        &["user", "link", "--email", "ada@smiles.example"][..],
        &["user", "app-password", "--email", "ada@smiles.example", "--label", "x"],
        &["user", "deactivate", "--email", "ada@smiles.example"],
        &["user", "manager", "--email", "ada@smiles.example"],
    ] {
        let output = admin(&instance, args);
        assert!(!output.status.success(), "{args:?}");
        assert!(
            text(&output.stderr).contains("deactivated"),
            "{args:?}: {}",
            text(&output.stderr)
        );
    }
    let list = ok(&admin(&instance, &["user", "list", "--practice", "smiles.example"]));
    assert!(line_of(&list, "ada@smiles.example").ends_with("Deactivated"), "{list}");

    // An admin undoes it: a set-password link; the old password and app password stay void.
    assert!(
        !admin(&instance, &["user", "reactivate", "--email", "bob@smiles.example"])
            .status
            .success()
    );
    let back = ok(&admin(
        &instance,
        &["user", "reactivate", "--email", "ada@smiles.example"],
    ));
    let token = back.lines().last().unwrap().rsplit('/').next().unwrap();
    let wrong = post_signin(&browser(), &instance, "ada@smiles.example", "Doctor-Pass-77", "/inbox").await;
    assert_ne!(wrong.url().path(), "/inbox", "the old password stays void");
    auth.set_password(token, "Harbor-Light-55", "test").await.unwrap();
    let ada = instance
        .store()
        .accounts()
        .user_by_email("ada@smiles.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ada.status, store::accounts::UserStatus::Active);
    assert!(
        auth.check_mail_client("ada@smiles.example", &app_password, "test3")
            .await
            .is_err()
    );
    let audit = instance.store().audit_log().recent_audit(200).await.unwrap();
    for action in [
        "user.link",
        "user.manager_on",
        "user.manager_off",
        "user.deactivate",
        "user.reactivate",
    ] {
        assert!(
            audit.iter().any(|(_, a, _)| a == action),
            "no {action} in the audit log"
        );
    }
}
