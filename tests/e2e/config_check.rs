//! `sealpost config check` on real files: the keys that take one word from a list
//! (`outbound.mode`, `outbound.smarthost_tls`, `two_step.sms_provider`) load from
//! files written for them, and a wrong word is a clear message and exit code 2;
//! it says where replies to notification emails go.

use std::process::Output;

/// Runs the real binary's `config check` on a file with `text`.
fn config_check(text: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealpost.toml");
    std::fs::write(&path, text).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .arg("--config")
        .arg(&path)
        .args(["config", "check"])
        .env_remove("SEALPOST_CONFIG")
        .env("SEALPOST_DATA_DIR", dir.path())
        .env("SEALPOST_LOG", "error")
        .output()
        .unwrap()
}

#[test]
fn config_check_accepts_every_mode_word_in_a_file() {
    let output = config_check(
        "[outbound]\nmode = \"smarthost\"\nsmarthost = \"smtp.example.net:465\"\nsmarthost_tls = \"tls\"\n\n\
         [two_step]\nsms_provider = \"http\"\nsms_url = \"https://sms.example.net/send\"\nsms_from = \"+15550100\"\n",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("outbound: smarthost"), "{stdout}");
}

#[test]
fn config_check_names_the_key_the_value_and_the_words_and_exits_2() {
    let output = config_check(
        "[outbound]\nmode = \"pigeon\"\nsmarthost_tls = \"ssl\"\n\n[two_step]\nsms_provider = \"twilio\"\n\n\
         [smtp]\nrelay_listen = \"nowhere\"\n",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("The configuration has 4 problem(s)"), "{stderr}");
    for line in [
        "outbound.mode \"pigeon\" must be outbox, smarthost or mx",
        "outbound.smarthost_tls \"ssl\" must be starttls, tls or none",
        "two_step.sms_provider \"twilio\" must be dev or http",
        "smtp.relay_listen \"nowhere\" is not an address",
    ] {
        assert!(stderr.contains(line), "{line} missing from {stderr}");
    }
}

#[test]
fn config_check_takes_mx_delivery_and_names_a_wrong_tls_policy() {
    let good = config_check("[outbound]\nmode = \"mx\"\ntls_policies = { \"partner.example\" = \"verify\" }\n");
    assert!(good.status.success(), "{good:?}");
    let output = config_check("[outbound]\nmode = \"mx\"\ntls_policies = { \"partner.example\" = \"strict\" }\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("outbound.tls_policies.\"partner.example\" \"strict\" must be none, opportunistic or verify"),
        "{stderr}"
    );
}

#[test]
fn config_check_says_where_replies_to_notifications_go() {
    let unset = config_check("");
    let stdout = String::from_utf8_lossy(&unset.stdout);
    assert!(unset.status.success(), "{unset:?}");
    assert!(
        stdout.contains("replies to notifications: no Reply-To, so they go to secure@localhost")
            && stdout.contains("outbound.notification_reply_to"),
        "{stdout}"
    );
    let set = config_check(
        "[outbound]\nnotification_reply_to = \"no-reply@example-dental.com\"\n\
         practice_reply_to = { \"smiles.example\" = \"frontdesk@smiles.example\" }\n",
    );
    let stdout = String::from_utf8_lossy(&set.stdout);
    assert!(set.status.success(), "{set:?}");
    assert!(
        stdout.contains(
            "replies to notifications: Reply-To no-reply@example-dental.com; per practice: smiles.example -> frontdesk@smiles.example"
        ),
        "{stdout}"
    );
    let bad = config_check("[outbound]\nnotification_reply_to = \"front desk\"\n");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("outbound.notification_reply_to \"front desk\" is not an email address"),
        "{stderr}"
    );
}

/// Runs `sealpost config check` on a file with `text`, with extra variables.
fn config_check_with_env(text: &str, env: &[(&str, &str)]) -> (Output, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealpost.toml");
    std::fs::write(&path, text).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sealpost"));
    command
        .arg("--config")
        .arg(&path)
        .args(["config", "check"])
        .env_remove("SEALPOST_CONFIG")
        .env("SEALPOST_DATA_DIR", dir.path())
        .env("SEALPOST_LOG", "error");
    for (name, value) in env {
        command.env(name, value);
    }
    (command.output().unwrap(), path, dir)
}

#[test]
fn config_check_reports_every_problem_with_its_file_and_line_or_variable() {
    let text = "public_url = \"ftp://x\"\n\
                \n\
                [smtp]\n\
                # the relay\n\
                relay_listen = \"nowhere\"\n\
                max_recipients = \"many\"\n\
                relay_listn = \"127.0.0.1:25\"\n\
                \n\
                [outbound]\n\
                mode = \"pigeon\"\n\
                [bogus]\n\
                x = 1\n";
    let (output, path, _dir) = config_check_with_env(text, &[("SEALPOST_PASSWORDS_MIN_LENGTH", "3")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let file = path.display().to_string();
    assert!(stderr.contains("The configuration has 7 problem(s)"), "{stderr}");
    assert!(
        stderr.contains(&format!("Configuration: {file} (from --config)")),
        "{stderr}"
    );
    for (line, problem) in [
        (1, "public_url \"ftp://x\" must start with https://"),
        (5, "smtp.relay_listen \"nowhere\" is not an address"),
        (6, "smtp.max_recipients: invalid type"),
        (7, "smtp.relay_listn: unknown field `relay_listn`"),
        (10, "outbound.mode \"pigeon\" must be outbox, smarthost or mx"),
        (11, "bogus: unknown field `bogus`"),
    ] {
        assert!(
            stderr.contains(&format!("{file}:{line}: {problem}")),
            "{file}:{line}: {problem} missing from {stderr}"
        );
    }
    assert!(
        stderr.contains("passwords.min_length must be between 8 and 256 (set by SEALPOST_PASSWORDS_MIN_LENGTH)"),
        "{stderr}"
    );
    // A variable overrides the file's line, and says so.
    let (output, _, _dir) = config_check_with_env(
        "[smtp]\nrelay_listen = \"127.0.0.1:2525\"\n",
        &[("SEALPOST_SMTP_RELAY_LISTEN", "nowhere")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "smtp.relay_listen \"nowhere\" is not an address like 127.0.0.1:2525 (set by SEALPOST_SMTP_RELAY_LISTEN)"
        ),
        "{stderr}"
    );
}

#[test]
fn config_check_reports_every_syntax_error_with_its_line() {
    let (output, path, _dir) = config_check_with_env("a = 1\nb = \n[smtp\nc = 3\n", &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let file = path.display().to_string();
    assert!(stderr.contains(&format!("{file}:2: ")), "{stderr}");
    assert!(stderr.contains(&format!("{file}:3: ")), "{stderr}");
    let (output, _, _dir) = config_check_with_env("", &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("Configuration OK: "), "{stdout}");
}
