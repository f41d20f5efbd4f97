//! `sealpost practice …`: practices (with a summary of their people), their
//! single sign-on, their mail domains and the relay sources that may send for them.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;
use sealpost::app;
use sealpost::config::Config;
use store::SystemClock;

#[derive(Subcommand)]
pub(crate) enum PracticeCommand {
    /// Add a practice.
    Add {
        #[arg(long)]
        name: String,
        /// The practice's mail domain, e.g. smiles-dental.com.
        #[arg(long)]
        domain: String,
    },
    /// List the practices with their mail domains and the relay sources that may
    /// send secure mail for each.
    List,
    /// Set which mail systems may send secure mail for a practice: networks its
    /// mail server connects from, or its Microsoft 365 tenant id. Needed once a
    /// gateway serves more than one practice.
    Relay {
        /// The practice's domain.
        #[arg(long)]
        domain: String,
        /// A network (CIDR, e.g. 192.0.2.0/28) the practice's mail system relays from.
        #[arg(long, value_name = "CIDR")]
        add_network: Vec<String>,
        #[arg(long, value_name = "CIDR")]
        remove_network: Vec<String>,
        /// The practice's Microsoft 365 tenant id (Exchange Online stamps it on
        /// mail as X-MS-Exchange-CrossTenant-Id).
        #[arg(long, value_name = "ID")]
        add_tenant_id: Vec<String>,
        #[arg(long, value_name = "ID")]
        remove_tenant_id: Vec<String>,
        /// A user of the practice (e.g. a service user with an app password)
        /// that the practice's own MTA signs in as on the submission port; it
        /// may relay for every sender in the practice's domains.
        #[arg(long, value_name = "EMAIL")]
        add_account: Vec<String>,
        #[arg(long, value_name = "EMAIL")]
        remove_account: Vec<String>,
        /// The SHA-256 fingerprint (hex) of the TLS client certificate the
        /// practice's mail system presents on the relay port (needs
        /// `smtp.relay_client_ca`).
        #[arg(long, value_name = "SHA256HEX")]
        add_client_cert: Vec<String>,
        #[arg(long, value_name = "SHA256HEX")]
        remove_client_cert: Vec<String>,
    },
    /// Add or remove a further mail domain of a practice; secure senders'
    /// addresses must be in one of its domains.
    Domain {
        /// The practice's (first) domain.
        #[arg(long)]
        domain: String,
        #[arg(long, required_unless_present = "remove", conflicts_with = "remove")]
        add: Option<String>,
        #[arg(long)]
        remove: Option<String>,
    },
    /// Set up (or turn off) SAML single sign-on for a practice's staff.
    Sso {
        /// The practice's domain.
        #[arg(long)]
        domain: String,
        /// The identity provider's SAML metadata XML file.
        #[arg(long, required_unless_present = "disable", conflicts_with = "disable")]
        idp_metadata: Option<PathBuf>,
        /// Turn single sign-on off.
        #[arg(long)]
        disable: bool,
    },
}

/// Runs one `sealpost practice` command.
pub(crate) async fn run(config: &Config, command: PracticeCommand) -> anyhow::Result<()> {
    match command {
        PracticeCommand::Add { name, domain } => {
            let store = app::open_store(config, Arc::new(SystemClock)).await?;
            let practice = store.accounts().add_practice(&name, &domain).await?;
            println!(
                "Added practice {} ({}), id {}.",
                practice.name, practice.domain, practice.id
            );
            Ok(())
        }
        sso @ PracticeCommand::Sso { .. } => practice_sso(config, sso).await,
        command => practice_routing(config, command).await,
    }
}

/// `sealpost practice sso`: stores the `IdP` metadata (checked first) or turns SSO off.
async fn practice_sso(config: &Config, command: PracticeCommand) -> anyhow::Result<()> {
    let PracticeCommand::Sso {
        domain,
        idp_metadata: metadata,
        disable,
    } = command
    else {
        anyhow::bail!("not a practice sso command");
    };
    let domain = domain.as_str();
    let store = app::open_store(config, Arc::new(SystemClock)).await?;
    let sp = portal::sso::Sp::new(&config.public_url, &domain.trim().to_ascii_lowercase());
    if disable {
        let was_on = store.auth().disable_practice_idp(domain).await?;
        println!(
            "Single sign-on for {domain} is off{}.",
            if was_on { "" } else { " (it was not set up)" }
        );
        return Ok(());
    }
    let path = metadata.context("--idp-metadata FILE is needed")?;
    let xml = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let idp = portal::sso::parse_idp_metadata(&xml).map_err(anyhow::Error::msg)?;
    let practice = store.auth().set_practice_idp(domain, &idp.entity_id, &xml).await?;
    println!("Single sign-on for {} now uses IdP {}.", practice.domain, idp.entity_id);
    println!("  IdP sign-on URL:      {}", idp.sso_url);
    println!("  SP metadata URL:      {}", sp.entity_id);
    println!("  SP entity id:         {}", sp.entity_id);
    println!("  ACS URL (HTTP-POST):  {}", sp.acs_url);
    Ok(())
}

/// `sealpost practice list|relay|domain`: which domains and relay sources are
/// each practice's.
async fn practice_routing(config: &Config, command: PracticeCommand) -> anyhow::Result<()> {
    use store::accounts::relay_sources::{RelaySource, SourceKind};
    let db = app::open_store(config, Arc::new(SystemClock)).await?;
    match command {
        PracticeCommand::Relay {
            domain,
            add_network,
            remove_network,
            add_tenant_id,
            remove_tenant_id,
            add_account,
            remove_account,
            add_client_cert,
            remove_client_cert,
        } => {
            let changes = [
                (SourceKind::Network, false, add_network),
                (SourceKind::Network, true, remove_network),
                (SourceKind::Tenant, false, add_tenant_id),
                (SourceKind::Tenant, true, remove_tenant_id),
                (SourceKind::Account, false, add_account),
                (SourceKind::Account, true, remove_account),
                (SourceKind::ClientCert, false, add_client_cert),
                (SourceKind::ClientCert, true, remove_client_cert),
            ];
            if changes.iter().all(|(_, _, values)| values.is_empty()) {
                anyhow::bail!(
                    "nothing to change: give --add-network, --add-tenant-id, --add-account, --add-client-cert or a --remove-… option"
                );
            }
            for (kind, remove, values) in changes {
                for value in values {
                    let mut value = value.trim().to_ascii_lowercase();
                    if kind == SourceKind::ClientCert {
                        value.retain(|c| c != ':');
                    }
                    let valid = match kind {
                        SourceKind::Network => value.parse::<ipnet::IpNet>().is_ok(),
                        SourceKind::Tenant => {
                            !value.is_empty() && value.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
                        }
                        SourceKind::Account => store::accounts::normalize_email(&value).is_ok(),
                        SourceKind::ClientCert => value.len() == 64 && value.chars().all(|c| c.is_ascii_hexdigit()),
                    };
                    if !valid {
                        anyhow::bail!(
                            "{value:?} is not a {}",
                            match kind {
                                SourceKind::Network => "network like 192.0.2.0/28",
                                SourceKind::Tenant => "Microsoft 365 tenant id (a GUID)",
                                SourceKind::Account => "mail address",
                                SourceKind::ClientCert => "SHA-256 certificate fingerprint (64 hex digits)",
                            }
                        );
                    }
                    db.accounts()
                        .set_relay_source(&domain, &RelaySource { kind, value }, remove)
                        .await?;
                }
            }
        }
        PracticeCommand::Domain { domain, add, remove } => {
            let (other, removing) = match (add, remove) {
                (Some(add), None) => (add, false),
                (None, Some(remove)) => (remove, true),
                _ => anyhow::bail!("give either --add DOMAIN or --remove DOMAIN"),
            };
            db.accounts().set_practice_domain(&domain, &other, removing).await?;
        }
        PracticeCommand::List => {}
        PracticeCommand::Add { .. } | PracticeCommand::Sso { .. } => {
            anyhow::bail!("not a practice list, relay or domain command")
        }
    }
    print_practice_routing(&db).await
}

/// One line on a practice's people: how many, how far registered, and who
/// manages them (`sealpost user list --practice D` lists each).
async fn print_member_summary(db: &store::Store, domain: &str) -> anyhow::Result<()> {
    use store::accounts::manage::Registration;
    let members = db.accounts().practice_members(domain).await?;
    let count = |r: Registration| members.iter().filter(|m| m.registration == r).count();
    let managers: Vec<&str> = members
        .iter()
        .filter(|m| m.user.user_manager)
        .map(|m| m.user.email.as_str())
        .collect();
    println!(
        "  users:          {} ({} registered, {} invited, {} deactivated)",
        members.len(),
        count(Registration::Full) + count(Registration::WithoutTwoStep),
        count(Registration::Invited),
        count(Registration::Deactivated)
    );
    println!(
        "  User Managers:  {}",
        if managers.is_empty() {
            "-".to_owned()
        } else {
            managers.join(", ")
        }
    );
    Ok(())
}

/// Prints every practice's domains and relay sources, and what that means.
async fn print_practice_routing(db: &store::Store) -> anyhow::Result<()> {
    use store::accounts::relay_sources::SourceKind;
    let routing = db.accounts().practice_routing().await?;
    let several = routing.len() > 1;
    if routing.is_empty() {
        println!("No practices yet (add one with `sealpost practice add`).");
    }
    for entry in routing {
        println!("{} (id {})", entry.practice.name, entry.practice.id);
        println!("  domains:        {}", entry.domains.join(", "));
        print_member_summary(db, &entry.practice.domain).await?;
        let networks: Vec<&str> = entry
            .sources
            .iter()
            .filter(|s| s.kind == SourceKind::Network)
            .map(|s| s.value.as_str())
            .collect();
        let tenants: Vec<&str> = entry
            .sources
            .iter()
            .filter(|s| s.kind == SourceKind::Tenant)
            .map(|s| s.value.as_str())
            .collect();
        let accounts: Vec<&str> = entry
            .sources
            .iter()
            .filter(|s| s.kind == SourceKind::Account)
            .map(|s| s.value.as_str())
            .collect();
        let certs: Vec<&str> = entry
            .sources
            .iter()
            .filter(|s| s.kind == SourceKind::ClientCert)
            .map(|s| s.value.as_str())
            .collect();
        let or_none = |v: &[&str]| if v.is_empty() { "-".to_owned() } else { v.join(", ") };
        println!("  relay networks: {}", or_none(&networks));
        println!("  M365 tenant ids: {}", or_none(&tenants));
        println!("  relay accounts: {}", or_none(&accounts));
        println!("  client certs:   {}", or_none(&certs));
        let relayed = entry.sources.iter().any(|s| s.kind != SourceKind::Account);
        let relay = match (!relayed, several) {
            (false, _) => "only from the sources above (within the trusted networks)",
            (true, false) => "from the trusted networks (single practice: no relay sources needed)",
            (true, true) => "REFUSED: several practices share this gateway; set its relay sources",
        };
        println!("  relayed secure mail: {relay}");
        if accounts.is_empty() {
            println!("  authenticated submission: its own users, as themselves");
        } else {
            println!(
                "  authenticated submission: its own users, as themselves; the relay accounts, for any sender in its domains"
            );
        }
    }
    Ok(())
}
