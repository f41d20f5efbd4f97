//! The admin CLI (issue 13 items 4, 6, 7), run as the real binary: every
//! command finds the server's configuration the same way (`--config`, else
//! `SEALPOST_CONFIG`, else `./sealpost.toml`, else `/etc/sealpost/sealpost.toml`,
//! else the embedded defaults) and says which configuration and database it
//! used; an admin command on a database that does not exist refuses and creates
//! nothing (`migrate` creates it); `serve` names every address it cannot bind
//! with its key.

use std::path::Path;
use std::process::{Command, Output};


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
        &["user", "app-password", "--email", "ada@smiles.example", "--label", "x"],
        &["keys", "list"],
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
