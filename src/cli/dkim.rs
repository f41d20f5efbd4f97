//! `sealpost dkim …`: makes the signing keys (RSA-2048 and Ed25519, RFC 8463)
//! and prints the DNS records to publish — DKIM for both keys, and suggestions
//! for SPF, DMARC, MTA-STS and TLS-RPT. Rotation uses new selectors: make keys
//! under them, publish, switch the config, keep the old records a while.
//! `--domain D` does the same for another sending domain (`[[dkim.domains]]`).

use std::path::PathBuf;

use clap::Subcommand;
use sealpost::config::Config;

#[derive(Subcommand)]
pub(crate) enum DkimCommand {
    /// Make the RSA-2048 and Ed25519 signing keys that are missing and print
    /// the DNS records to publish.
    Keygen {
        /// Another sending domain's keys (a `[[dkim.domains]]` entry; default:
        /// `dkim.domain`).
        #[arg(long)]
        domain: Option<String>,
        /// RSA selector for a key rotation (default: the configured one).
        #[arg(long)]
        selector: Option<String>,
        /// Ed25519 selector for a key rotation (default: the configured one).
        #[arg(long)]
        ed25519_selector: Option<String>,
    },
    /// Print the DNS records for the existing keys.
    Record {
        /// Another sending domain's records (default: `dkim.domain`).
        #[arg(long)]
        domain: Option<String>,
    },
}

/// One key: its selector and file.
struct Key {
    selector: String,
    path: PathBuf,
}

/// `sealpost dkim ...`
pub(crate) fn dkim(command: DkimCommand, config: &Config) -> anyhow::Result<()> {
    let domain = match &command {
        DkimCommand::Keygen { domain, .. } | DkimCommand::Record { domain } => domain.as_deref(),
    };
    let keys = match domain {
        None => config.dkim.default_keys(&config.data_dir),
        Some(domain) if domain_ok(domain) => config.dkim.keys_for(domain, &config.data_dir),
        Some(domain) => anyhow::bail!("{domain:?} is not a mail domain"),
    };
    let (rsa, ed25519, fresh) = match &command {
        DkimCommand::Keygen {
            selector,
            ed25519_selector,
            ..
        } => {
            let rsa = key(&keys, selector.as_deref(), &keys.selector, keys.key.clone(), config)?;
            let ed = key(
                &keys,
                ed25519_selector.as_deref(),
                &keys.ed25519_selector,
                keys.ed25519_key.clone(),
                config,
            )?;
            if rsa.selector == ed.selector {
                anyhow::bail!("the RSA and Ed25519 keys need two different selectors");
            }
            if rsa.path.exists() && ed.path.exists() {
                anyhow::bail!(
                    "both keys exist already ({} and {}); to rotate, make new ones with \
                     --selector NEW --ed25519-selector NEW2",
                    rsa.path.display(),
                    ed.path.display()
                );
            }
            let mut fresh = Vec::new();
            if !rsa.path.exists() {
                gateway::dkim::generate(&rsa.path).map_err(anyhow::Error::msg)?;
                fresh.push(rsa.path.clone());
            }
            if !ed.path.exists() {
                gateway::dkim::generate_ed25519(&ed.path).map_err(anyhow::Error::msg)?;
                fresh.push(ed.path.clone());
            }
            (rsa, ed, fresh)
        }
        DkimCommand::Record { .. } => (
            Key {
                selector: keys.selector.clone(),
                path: keys.key.clone(),
            },
            Key {
                selector: keys.ed25519_selector.clone(),
                path: keys.ed25519_key.clone(),
            },
            Vec::new(),
        ),
    };
    for path in &fresh {
        println!(
            "Wrote a new DKIM key to {} (keep it private; back it up).",
            path.display()
        );
    }
    let domain = keys.domain.as_str();
    println!("Publish these DNS records, then restart Sealpost:");
    println!();
    println!("; DKIM: both keys sign every mail Sealpost writes (RSA for every receiver, Ed25519 per RFC 8463)");
    let rsa_record = gateway::dkim::record(&rsa.path).map_err(anyhow::Error::msg)?;
    println!("{}._domainkey.{domain}. IN TXT {}", rsa.selector, txt(&rsa_record));
    match gateway::dkim::ed25519_record(&ed25519.path) {
        Ok(record) => println!("{}._domainkey.{domain}. IN TXT {}", ed25519.selector, txt(&record)),
        Err(_) if !ed25519.path.exists() => println!(
            "; no Ed25519 key at {}: run `sealpost dkim keygen` to add one",
            ed25519.path.display()
        ),
        Err(error) => anyhow::bail!(error),
    }
    if rsa.selector != keys.selector || ed25519.selector != keys.ed25519_selector {
        let (prefix, place) = if keys.is_default {
            ("dkim.", String::new())
        } else {
            ("", format!(" in the [[dkim.domains]] entry for {domain}"))
        };
        println!(
            "; rotation: once these records are published, set {prefix}selector = {:?} and \
             {prefix}ed25519_selector = {:?}{place}; keep the old records for a week",
            rsa.selector, ed25519.selector
        );
    }
    if !keys.is_default && !config.dkim.signs_for(domain) {
        println!();
        println!("; {domain} is not configured yet: add to the configuration, then restart:");
        println!(";   [[dkim.domains]]");
        println!(";   domain = {domain:?}");
        if rsa.selector != "sealpost" || ed25519.selector != "sealpost-ed25519" {
            println!(";   selector = {:?}", rsa.selector);
            println!(";   ed25519_selector = {:?}", ed25519.selector);
        }
        println!(
            ";   and, for a practice's notifications from it: [outbound] practice_from = {{ \"<practice domain>\" = \"secure@{domain}\" }}"
        );
    }
    println!();
    println!("; Suggestions (adjust to every host that sends as {domain}):");
    println!(
        "{domain}. IN TXT \"v=spf1 a:{} mx -all\"",
        config.smtp.hostname.trim_end_matches('.')
    );
    println!("_dmarc.{domain}. IN TXT \"v=DMARC1; p=quarantine; adkim=s; rua=mailto:dmarc-reports@{domain}\"");
    println!("_mta-sts.{domain}. IN TXT \"v=STSv1; id=1\"  ; change id whenever the policy changes");
    println!(
        ";   with https://mta-sts.{domain}/.well-known/mta-sts.txt: \"version: STSv1\\nmode: enforce\\nmx: <your MX>\\nmax_age: 604800\""
    );
    println!("_smtp._tls.{domain}. IN TXT \"v=TLSRPTv1; rua=mailto:tls-reports@{domain}\"");
    Ok(())
}

fn domain_ok(domain: &str) -> bool {
    let domain = domain.trim_end_matches('.');
    domain.contains('.')
        && domain
            .split('.')
            .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// The key for `flag` (a rotation's new selector) or the configured one.
fn key(
    keys: &sealpost::config::SigningKeys,
    flag: Option<&str>,
    configured: &str,
    configured_path: PathBuf,
    config: &Config,
) -> anyhow::Result<Key> {
    match flag.map(str::trim) {
        None => Ok(Key {
            selector: configured.to_owned(),
            path: configured_path,
        }),
        Some(selector)
            if selector.is_empty()
                || !selector
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            anyhow::bail!("{selector:?} is not a selector (one DNS label: letters, digits, - and _)")
        }
        Some(selector) => {
            // Beside the configured key: the default domain's in dkim/, another
            // domain's in dkim/<domain>/.
            let dir = if keys.is_default {
                config.data_dir.join("dkim")
            } else {
                sealpost::config::Dkim::domain_dir(&config.data_dir, &keys.domain)
            };
            Ok(Key {
                selector: selector.to_owned(),
                path: dir.join(format!("{selector}.key")),
            })
        }
    }
}

/// A TXT value as quoted strings of at most 255 characters (RFC 1035 §3.3.14).
fn txt(value: &str) -> String {
    value
        .as_bytes()
        .chunks(255)
        .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
        .collect::<Vec<_>>()
        .join(" ")
}
