//! `sealpost`: the command line. Only parses arguments and wires things together;
//! the work happens in the store, gateway and portal crates.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use sealpost::app;
use sealpost::config::Config;
use store::SystemClock;
use store::accounts::Role;

#[derive(Parser)]
#[command(
    name = "sealpost",
    version,
    about = "Secure-messaging gateway for medical and dental practices"
)]
struct Cli {
    /// Configuration file (TOML). Without one, embedded defaults apply; every key
    /// can also be set with SEALPOST_<SECTION>_<KEY>.
    #[arg(long, global = true, env = "SEALPOST_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the SMTP and IMAP listeners, the portal and the workers.
    Serve,
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Create or update the database schema.
    Migrate,
    /// Manage practices.
    Practice {
        #[command(subcommand)]
        command: PracticeCommand,
    },
    /// Manage practice users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// DKIM signing of the mail Sealpost writes.
    Dkim {
        #[command(subcommand)]
        command: DkimCommand,
    },
}

#[derive(Subcommand)]
enum DkimCommand {
    /// Make an RSA-2048 signing key and print the DNS record to publish.
    Keygen,
    /// Print the DNS record for the existing key.
    Record,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and report every problem.
    Check,
}

#[derive(Subcommand)]
enum PracticeCommand {
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

#[derive(Clone, Copy, ValueEnum)]
enum PracticeRole {
    Doctor,
    Staff,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a doctor or staff member to a practice; prints their set-password link.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: PracticeRole,
        /// The practice's domain.
        #[arg(long)]
        practice: String,
        /// A paid account: may send secure mail.
        #[arg(long)]
        paid: bool,
        /// May manage the practice's users (the first user always may).
        #[arg(long)]
        user_manager: bool,
    },
    /// Make an app password for a user's mail client; prints it (shown only once).
    AppPassword {
        #[arg(long)]
        email: String,
        /// What it is for, e.g. "Outlook on the front desk PC".
        #[arg(long)]
        label: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit log's keyed hash chain, and that it still reaches an anchor.
    Verify {
        /// An anchor kept earlier (`ID:HASH`, from `sealpost audit anchor` or the
        /// server's log): the log must still hold that entry, unchanged.
        #[arg(long)]
        anchor: Option<String>,
    },
    /// Check the chain, then print its newest entry as an anchor to keep elsewhere.
    Anchor,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SEALPOST_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    // A panic's message may quote the input that caused it (a subject, a file
    // name: PHI). Log where it happened, never what it says; the supervisor
    // restarts the worker (docs/workers.md).
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(ToString::to_string).unwrap_or_default();
        tracing::error!(%location, "panic (message withheld: it may quote the input)");
    }));
    let config = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(problems) => {
            eprintln!("The configuration has {} problem(s):", problems.len());
            for problem in problems {
                eprintln!("  - {problem}");
            }
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
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
        let was_on = store.disable_practice_idp(domain).await?;
        println!(
            "Single sign-on for {domain} is off{}.",
            if was_on { "" } else { " (it was not set up)" }
        );
        return Ok(());
    }
    let path = metadata.context("--idp-metadata FILE is needed")?;
    let xml = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let idp = portal::sso::parse_idp_metadata(&xml).map_err(anyhow::Error::msg)?;
    let practice = store.set_practice_idp(domain, &idp.entity_id, &xml).await?;
    println!("Single sign-on for {} now uses IdP {}.", practice.domain, idp.entity_id);
    println!("  IdP sign-on URL:      {}", idp.sso_url);
    println!("  SP metadata URL:      {}", sp.entity_id);
    println!("  SP entity id:         {}", sp.entity_id);
    println!("  ACS URL (HTTP-POST):  {}", sp.acs_url);
    Ok(())
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            println!("Configuration OK.");
            println!("  database: {}", redact(&config.database_url()));
            println!("  blobs:    {}", config.blobs_url());
            println!("  outbound: {}", config.outbound.mode);
            println!(
                "  relay:    trusted networks {}; Microsoft 365 tenant {}",
                config.smtp.relay_trusted_networks.join(", "),
                config.smtp.relay_tenant_id.as_deref().unwrap_or("any")
            );
            println!("  which practice each relay source may send for: `sealpost practice list`");
            Ok(())
        }
        Command::Migrate => {
            app::open_store(&config, Arc::new(SystemClock)).await?;
            println!("Database schema is up to date.");
            Ok(())
        }
        Command::Practice {
            command: PracticeCommand::Add { name, domain },
        } => {
            let store = app::open_store(&config, Arc::new(SystemClock)).await?;
            let practice = store.add_practice(&name, &domain).await?;
            println!(
                "Added practice {} ({}), id {}.",
                practice.name, practice.domain, practice.id
            );
            Ok(())
        }
        Command::Practice {
            command: sso @ PracticeCommand::Sso { .. },
        } => practice_sso(&config, sso).await,
        Command::Practice { command } => practice_routing(&config, command).await,
        Command::User { command } => user(command, &config).await,
        Command::Dkim { command } => {
            let path = config.dkim_key_path();
            let value = match command {
                DkimCommand::Keygen => {
                    let value = gateway::dkim::generate(&path).map_err(anyhow::Error::msg)?;
                    println!(
                        "Wrote a new DKIM key to {} (keep it private; back it up).",
                        path.display()
                    );
                    value
                }
                DkimCommand::Record => gateway::dkim::record(&path).map_err(anyhow::Error::msg)?,
            };
            println!("Publish this TXT record, then restart Sealpost:");
            println!(
                "{}._domainkey.{} IN TXT \"{value}\"",
                config.dkim.selector, config.dkim.domain
            );
            Ok(())
        }
        Command::Audit { command } => audit(command, &config).await,
    }
}

/// `sealpost audit ...`
async fn audit(command: AuditCommand, config: &Config) -> anyhow::Result<()> {
    let anchor = match &command {
        AuditCommand::Verify { anchor: Some(text) } => Some(text.parse::<store::audit::Anchor>()?),
        _ => None,
    };
    let store = app::open_store(config, Arc::new(SystemClock)).await?;
    let intact = match store.verify_audit_against(anchor.as_ref()).await? {
        Ok(intact) => intact,
        Err(broken) => anyhow::bail!("{broken}"),
    };
    match command {
        AuditCommand::Verify { .. } => {
            println!(
                "Audit log intact: {} entries{}.",
                intact.entries,
                if anchor.is_some() {
                    ", and it reaches the anchor"
                } else {
                    ""
                }
            );
            if let Some(newest) = intact.newest {
                println!("Newest entry (keep as the next anchor): {newest}");
            }
        }
        AuditCommand::Anchor => match intact.newest {
            Some(newest) => println!("{newest}"),
            None => anyhow::bail!("the audit log is empty: there is no anchor yet"),
        },
    }
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
                    db.set_relay_source(&domain, &RelaySource { kind, value }, remove)
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
            db.set_practice_domain(&domain, &other, removing).await?;
        }
        PracticeCommand::List => {}
        PracticeCommand::Add { .. } | PracticeCommand::Sso { .. } => {
            anyhow::bail!("not a practice list, relay or domain command")
        }
    }
    print_practice_routing(&db).await
}

/// Prints every practice's domains and relay sources, and what that means.
async fn print_practice_routing(db: &store::Store) -> anyhow::Result<()> {
    use store::accounts::relay_sources::SourceKind;
    let routing = db.practice_routing().await?;
    let several = routing.len() > 1;
    if routing.is_empty() {
        println!("No practices yet (add one with `sealpost practice add`).");
    }
    for entry in routing {
        println!("{} (id {})", entry.practice.name, entry.practice.id);
        println!("  domains:        {}", entry.domains.join(", "));
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

/// `sealpost user ...`
async fn user(command: UserCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            email,
            name,
            role,
            practice,
            paid,
            user_manager,
        } => {
            let store = app::open_store(config, Arc::new(SystemClock)).await?;
            let role = match role {
                PracticeRole::Doctor => Role::Doctor,
                PracticeRole::Staff => Role::Staff,
            };
            let (user, token) = store
                .add_practice_user(&email, &name, role, &practice, paid, user_manager)
                .await?;
            println!(
                "Added {} <{}> to {practice}{}.",
                user.full_name,
                user.email,
                if user.user_manager { " as User Manager" } else { "" }
            );
            println!("Set-password link (valid 7 days, works once):");
            println!("{}/password/{token}", config.public_url.trim_end_matches('/'));
            Ok(())
        }
        UserCommand::AppPassword { email, label } => {
            let store = app::open_store(config, Arc::new(SystemClock)).await?;
            let user = store
                .user_by_email(&email)
                .await?
                .with_context(|| format!("no user {email}"))?;
            let password = store.create_app_password(&user, &label, "cli").await?;
            println!(
                "App password \"{}\" for {} (shown only this once):",
                label.trim(),
                user.email
            );
            println!("{password}");
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listeners = app::Listeners::bind(&config).await?;
    let running = app::start(&config, listeners, Arc::new(SystemClock)).await?;
    let a = running.addresses;
    println!("Sealpost is running.");
    println!(
        "  SMTP relay       {} (STARTTLS; trusted: {})",
        a.relay,
        config.smtp.relay_trusted_networks.join(", ")
    );
    println!("  SMTP submission  {} (STARTTLS, then AUTH)", a.submission);
    println!(
        "  Portal           https://{}  (links use {})",
        a.portal, config.public_url
    );
    println!(
        "  IMAP             {} (STARTTLS), {} (TLS); sign in with an app password",
        a.imap, a.imap_tls
    );
    match config.outbound.mode.as_str() {
        "smarthost" => println!("  Outbound mail    smarthost {}", config.outbound.smarthost),
        _ => println!("  Outbound mail    Maildir {}/", config.outbox_dir().display()),
    }
    if running.dkim_signing {
        println!(
            "  DKIM             signing as {}._domainkey.{}",
            config.dkim.selector, config.dkim.domain
        );
    } else {
        println!(
            "  DKIM             off: no key at {} (run `sealpost dkim keygen`)",
            config.dkim_key_path().display()
        );
    }
    println!(
        "  Data             {}/ ({})",
        config.data_dir.display(),
        redact(&config.database_url())
    );
    let anchors = tokio::spawn(log_audit_anchors(Arc::clone(&running.store)));
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    println!("Stopping.");
    anchors.abort();
    log_audit_anchor(&running.store, None).await;
    running.store.close().await;
    Ok(())
}

/// Logs the audit log's newest entry every hour it changed, so the log file
/// holds anchors that `sealpost audit verify --anchor` can check the database
/// against: a database edit cannot reach back into the log file.
async fn log_audit_anchors(store: Arc<store::Store>) {
    let mut last = None;
    loop {
        last = log_audit_anchor(&store, last).await;
        tokio::time::sleep(std::time::Duration::from_hours(1)).await;
    }
}

/// Logs the newest entry unless it is `last`; returns it.
async fn log_audit_anchor(store: &store::Store, last: Option<i64>) -> Option<i64> {
    match store.audit_anchor().await {
        Ok(Some(anchor)) if Some(anchor.id) != last => {
            tracing::info!(%anchor, "audit anchor (keep it: sealpost audit verify --anchor ...)");
            Some(anchor.id)
        }
        Ok(_) => last,
        Err(error) => {
            tracing::warn!(%error, "cannot read the audit log's newest entry");
            last
        }
    }
}

/// Hides a password in a database URL.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
