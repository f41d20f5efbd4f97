//! Tests of `[outbound]` and `[dkim]` (with `[[dkim.domains]]`).

use super::*;
use crate::config::Config;

fn load(pairs: &[(&str, &str)]) -> Result<Config, Vec<String>> {
    Config::load(None, pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
}

#[test]
fn a_config_file_written_for_the_string_keys_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealpost.toml");
    std::fs::write(
        &path,
        "[outbound]\nmode = \"smarthost\"\nsmarthost = \"relay.example.net:465\"\nsmarthost_tls = \"tls\"\n",
    )
    .unwrap();
    let config = Config::load(Some(&path), Vec::new()).unwrap();
    assert_eq!(config.outbound.mode, OutboundMode::Smarthost);
    assert_eq!(config.outbound.smarthost_tls, SmarthostTls::Tls);
    assert_eq!(config.outbound.mode.to_string(), "smarthost");
    let defaults = Config::load(None, Vec::new()).unwrap();
    assert_eq!(defaults.outbound.mode, OutboundMode::Outbox);
    assert_eq!(defaults.outbound.smarthost_tls, SmarthostTls::Starttls);
}

#[test]
fn every_smarthost_tls_word_loads() {
    for (word, value) in SmarthostTls::WORDS {
        let config = load(&[
            ("SEALPOST_OUTBOUND_MODE", "smarthost"),
            ("SEALPOST_OUTBOUND_SMARTHOST_TLS", word),
        ])
        .unwrap();
        assert_eq!(config.outbound.smarthost_tls, *value);
    }
}

#[test]
fn mx_mode_loads_with_its_keys_and_bad_ones_are_named() {
    let config = load(&[
        ("SEALPOST_OUTBOUND_MODE", "mx"),
        ("SEALPOST_OUTBOUND_DNS_SERVERS", r#"["127.0.0.1:5353", "::1"]"#),
        ("SEALPOST_OUTBOUND_TLS_POLICIES", r#"{ "Partner.Example" = "verify" }"#),
    ])
    .unwrap();
    assert_eq!(config.outbound.mode, OutboundMode::Mx);
    let settings = config.outbound.mx_settings().unwrap();
    assert_eq!(settings.port, 25);
    assert_eq!(settings.dns_servers.len(), 2);
    assert_eq!(settings.dns_servers[1].port(), 53);
    assert_eq!(
        settings.policies.get("partner.example"),
        Some(&gateway::deliver::TlsPolicy::Verify)
    );
    assert_eq!(settings.default_policy, gateway::deliver::TlsPolicy::Opportunistic);
    let problems = load(&[
        ("SEALPOST_OUTBOUND_MODE", "mx"),
        ("SEALPOST_OUTBOUND_DNS_SERVERS", r#"["dns.example"]"#),
        ("SEALPOST_OUTBOUND_TLS_POLICY", "maybe"),
        ("SEALPOST_OUTBOUND_TLS_POLICIES", r#"{ "partner.example" = "strict" }"#),
        ("SEALPOST_OUTBOUND_GIVE_UP_AFTER", "0"),
    ])
    .unwrap_err();
    assert_eq!(
        problems,
        [
            "outbound.dns_servers: \"dns.example\" must be IP or IP:PORT",
            "outbound.tls_policy \"maybe\" must be none, opportunistic or verify",
            "outbound.tls_policies.\"partner.example\" \"strict\" must be none, opportunistic or verify",
            "outbound.give_up_after must be at least 1",
        ]
    );
}

#[test]
fn unknown_words_name_the_key_the_value_and_the_accepted_words() {
    let problems = load(&[
        ("SEALPOST_OUTBOUND_MODE", "pigeon"),
        ("SEALPOST_OUTBOUND_SMARTHOST_TLS", "ssl"),
    ])
    .unwrap_err();
    assert_eq!(
        problems,
        [
            "outbound.mode \"pigeon\" must be outbox, smarthost or mx",
            "outbound.smarthost_tls \"ssl\" must be starttls, tls or none",
        ]
    );
    let upper = load(&[("SEALPOST_OUTBOUND_MODE", "Smarthost")]).unwrap_err();
    assert_eq!(upper, ["outbound.mode \"Smarthost\" must be outbox, smarthost or mx"]);
    let number = load(&[("SEALPOST_OUTBOUND_MODE", "5")]).unwrap_err();
    assert_eq!(number, ["outbound.mode 5 must be outbox, smarthost or mx"]);
}

#[test]
fn reply_to_addresses_are_checked_and_a_practice_s_own_wins() {
    let problems = load(&[
        ("SEALPOST_OUTBOUND_NOTIFICATION_REPLY_TO", "front desk"),
        (
            "SEALPOST_OUTBOUND_PRACTICE_REPLY_TO",
            r#"{ "smiles.example" = "nobody", "not a domain" = "desk@example.com" }"#,
        ),
    ])
    .unwrap_err();
    assert_eq!(
        problems,
        [
            "outbound.notification_reply_to \"front desk\" is not an email address",
            "outbound.practice_reply_to: \"not a domain\" is not a practice's mail domain",
            "outbound.practice_reply_to.\"smiles.example\" \"nobody\" is not an email address",
        ]
    );
    let config = load(&[
        ("SEALPOST_OUTBOUND_NOTIFICATION_REPLY_TO", "no-reply@example-dental.com"),
        (
            "SEALPOST_OUTBOUND_PRACTICE_REPLY_TO",
            r#"{ "Smiles.Example" = "frontdesk@smiles.example" }"#,
        ),
    ])
    .unwrap();
    let reply_to = config.outbound.reply_to();
    assert_eq!(
        reply_to.for_practice("smiles.example"),
        Some("frontdesk@smiles.example")
    );
    assert_eq!(
        reply_to.for_practice("other.example"),
        Some("no-reply@example-dental.com")
    );
    assert_eq!(
        Config::load(None, Vec::new()).unwrap().outbound.reply_to(),
        gateway::mail::ReplyTo::default()
    );
}

#[test]
fn smarthost_mode_needs_host_and_port_and_every_mode_a_sender() {
    let problems = load(&[
        ("SEALPOST_OUTBOUND_MODE", "smarthost"),
        ("SEALPOST_OUTBOUND_SMARTHOST", "relay.example.net"),
        ("SEALPOST_OUTBOUND_FROM_ADDRESS", "not an address"),
        ("SEALPOST_OUTBOUND_NOTIFICATION_SUBJECT", " "),
        ("SEALPOST_DKIM_SELECTOR", "two.labels"),
    ])
    .unwrap_err();
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(problems[0].contains("outbound.smarthost \"relay.example.net\" must be HOST:PORT"));
    assert!(problems[1].contains("outbound.from_address"));
    assert!(problems[2].contains("outbound.notification_subject"));
    assert!(problems[3].contains("dkim.selector"));
    // The smarthost is only checked when it is the route.
    load(&[("SEALPOST_OUTBOUND_SMARTHOST", "relay.example.net")]).unwrap();
}

#[test]
fn the_connection_pool_keys_load_and_zero_is_refused() {
    let config = load(&[
        ("SEALPOST_OUTBOUND_MAX_CONNECTIONS_PER_DESTINATION", "3"),
        ("SEALPOST_OUTBOUND_IDLE_TIMEOUT", "7"),
    ])
    .unwrap();
    let pool = config.outbound.pool_settings();
    assert_eq!(pool.max_connections_per_destination, 3);
    assert_eq!(pool.idle_timeout, std::time::Duration::from_secs(7));
    let defaults = load(&[]).unwrap().outbound.pool_settings();
    assert_eq!(defaults, gateway::deliver::PoolSettings::default());
    let problems = load(&[
        ("SEALPOST_OUTBOUND_MAX_CONNECTIONS_PER_DESTINATION", "0"),
        ("SEALPOST_OUTBOUND_IDLE_TIMEOUT", "0"),
    ])
    .unwrap_err();
    assert_eq!(
        problems,
        [
            "outbound.max_connections_per_destination must be at least 1",
            "outbound.idle_timeout must be at least 1",
        ]
    );
}

#[test]
fn signing_domains_practice_from_and_rate_limits_load_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealpost.toml");
    std::fs::write(
        &path,
        "data_dir = \"/srv/sealpost\"\n\
         [outbound]\npractice_from = { \"Smiles.example\" = \"secure@smiles.example\" }\n\
         rate_limit = 30\nrate_limits = { \"partner.example\" = 2 }\n\
         [dkim]\ndomain = \"gateway.example\"\n\
         [[dkim.domains]]\ndomain = \"smiles.example\"\n\
         [[dkim.domains]]\ndomain = \"brite.example\"\nselector = \"r2027\"\ned25519_key = \"/keys/b.key\"\n",
    )
    .unwrap();
    let config = Config::load(Some(&path), Vec::new()).unwrap();
    let keys = config.dkim.domain_keys(&config.data_dir);
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys[0].key,
        std::path::Path::new("/srv/sealpost/dkim/smiles.example/sealpost.key")
    );
    assert_eq!(
        keys[0].ed25519_key,
        std::path::Path::new("/srv/sealpost/dkim/smiles.example/sealpost-ed25519.key")
    );
    assert_eq!(
        keys[1].key,
        std::path::Path::new("/srv/sealpost/dkim/brite.example/r2027.key")
    );
    assert_eq!(keys[1].ed25519_key, std::path::Path::new("/keys/b.key"));
    assert!(config.dkim.keys_for("gateway.example", &config.data_dir).is_default);
    assert_eq!(config.dkim.keys_for("Brite.Example.", &config.data_dir), keys[1]);
    assert!(!config.dkim.signs_for("other.example"));
    assert_eq!(
        config
            .outbound
            .practice_from()
            .get("smiles.example")
            .map(String::as_str),
        Some("secure@smiles.example")
    );
    let rates = config.outbound.rate_limits();
    assert!(rates.take("a@partner.example", 0).is_ok() && rates.take("b@partner.example", 0).is_ok());
    assert_eq!(rates.take("c@partner.example", 0), Err(60));

    let problems = load(&[
        ("SEALPOST_DKIM_DOMAIN", "gateway.example"),
        (
            "SEALPOST_DKIM_DOMAINS",
            r#"[{ domain = "gateway.example" }, { domain = "x" }, { domain = "ok.example", selector = "a.b" }]"#,
        ),
        (
            "SEALPOST_OUTBOUND_PRACTICE_FROM",
            r#"{ "smiles.example" = "secure@nokeys.example" }"#,
        ),
        ("SEALPOST_OUTBOUND_RATE_LIMITS", r#"{ "partner.example" = 0 }"#),
    ])
    .unwrap_err();
    assert_eq!(problems.len(), 5, "{problems:?}");
    let all = problems.join("\n");
    for needle in [
        "\"gateway.example\" is listed twice",
        "\"x\" is not a mail domain",
        "selector and ed25519_selector",
        "outbound.rate_limits.\"partner.example\" must be at least 1",
        "\"nokeys.example\" has no DKIM keys",
    ] {
        assert!(all.contains(needle), "{needle} in {all}");
    }
}
