//! `sealpost`: the command line. Only parses arguments and wires things together;
//! the work happens in the store, gateway and portal crates.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sealpost::app;
use sealpost::config::{Config, OutboundMode, Source};
use sealpost::signals::Signals;
use store::SystemClock;

mod cli;

use cli::audit::{self, AuditCommand};
use cli::keys::KeysCommand;
use cli::practice::{self, PracticeCommand};
use cli::spool::{self, SpoolCommand};
use cli::user::{self, UserCommand};

#[derive(Parser)]
#[command(
    name = "sealpost",
    version,
    about = "Secure-messaging gateway for medical and dental practices"
)]
struct Cli {
    /// Configuration file (TOML). Without it: SEALPOST_CONFIG, else ./sealpost.toml,
    /// else /etc/sealpost/sealpost.toml, else the embedded defaults. Every key can
    /// also be set with SEALPOST_<SECTION>_<KEY>.
    #[arg(long, global = true)]
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
    /// Secure messages waiting in quarantine (they could not be sealed).
    Spool {
        #[command(subcommand)]
        command: SpoolCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// DKIM signing of the mail Sealpost writes.
    Dkim {
        #[command(subcommand)]
        command: cli::dkim::DkimCommand,
    },
    /// The outbound queue: list, retry, delete deliveries.
    Queue {
        #[command(subcommand)]
        command: cli::queue::QueueCommand,
    },
    /// TLS-RPT (RFC 8460): queue the daily TLS reports to each domain's `rua`.
    Tlsrpt {
        #[command(subcommand)]
        command: cli::tlsrpt::TlsrptCommand,
    },
    /// Key-encryption keys: list, rotate, retire.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Back up the database, sealed blobs and spool into DIR, and the keys apart.
    Backup {
        /// An empty or new folder.
        dir: PathBuf,
        /// Write the keys here instead of DIR/keys (keep them apart from the data).
        #[arg(long)]
        keys_to: Option<PathBuf>,
    },
    /// Secure Drop: send files to one recipient through the portal's API, or watch
    /// a folder and send each file that appears (docs/secure-drop.md).
    Drop(Box<cli::drop::DropArgs>),
    /// Restore a backup onto this configuration's fresh data folder and database.
    Restore {
        /// A folder `sealpost backup` wrote.
        dir: PathBuf,
        /// Where the backup's keys are, when not in DIR/keys.
        #[arg(long)]
        keys_from: Option<PathBuf>,
        /// Restore over a data folder or database that is not empty.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and report every problem.
    Check,
}

/// Logs go to stderr, filtered by `SEALPOST_LOG` (default `info`), as text or
/// JSON lines (`log.format`).
fn init_logging(format: sealpost::config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEALPOST_LOG").unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        sealpost::config::LogFormat::Text => logs.init(),
        sealpost::config::LogFormat::Json => logs.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A panic's message may quote the input that caused it (a subject, a file
    // name: PHI). Log where it happened, never what it says; the supervisor
    // restarts the worker (docs/workers.md).
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(ToString::to_string).unwrap_or_default();
        tracing::error!(%location, "panic (message withheld: it may quote the input)");
    }));
    // A client of a portal (maybe on another machine): no configuration needed.
    if let Command::Drop(args) = &cli.command {
        return cli::drop::main(args);
    }
    let source = Source::find(cli.config);
    let config = match Config::load_located(source.path(), std::env::vars()) {
        Ok(config) => config,
        Err(problems) => {
            eprintln!("Configuration: {source}");
            eprintln!("The configuration has {} problem(s):", problems.len());
            for problem in problems {
                eprintln!("  - {problem}");
            }
            return ExitCode::from(2);
        }
    };
    init_logging(config.log.format);
    // Every command says which configuration and database it works on (on
    // stderr: stdout stays the command's answer); `serve` and `config check`
    // say it in their report.
    if !matches!(cli.command, Command::Serve | Command::Config { .. }) {
        eprintln!("Configuration: {source}");
        eprintln!("Database:      {}", redact(&config.database_url()));
    }
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    match runtime.block_on(run(cli.command, config, &source)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config, source: &Source) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config, source).await,
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            println!("Configuration OK: {source}");
            println!("  database: {}", redact(&config.database_url()));
            println!("  blobs:    {}", config.blobs_url());
            println!("  outbound: {}", config.outbound.mode);
            println!(
                "  relay:    trusted networks {}; Microsoft 365 tenant {}",
                config.smtp.relay_trusted_networks.join(", "),
                config.smtp.relay_tenant_id.as_deref().unwrap_or("any")
            );
            println!("  which practice each relay source may send for: `sealpost practice list`");
            println!("  {}", reply_to_summary(&config));
            Ok(())
        }
        Command::Migrate => {
            app::create_store(&config, Arc::new(SystemClock)).await?;
            println!("Database schema is up to date.");
            Ok(())
        }
        Command::Practice { command } => practice::run(&config, command).await,
        Command::User { command } => user::user(command, &config).await,
        Command::Dkim { command } => cli::dkim::dkim(command, &config),
        Command::Queue { command } => cli::queue::queue(command, &config).await,
        Command::Tlsrpt { command } => cli::tlsrpt::tlsrpt(command, &config).await,
        Command::Spool { command } => spool::spool(command, &config).await,
        Command::Audit { command } => audit::audit(command, &config).await,
        Command::Keys { command } => cli::keys::keys(command, &config).await,
        Command::Backup { dir, keys_to } => cli::backup::backup(&config, &dir, keys_to.as_deref()).await,
        Command::Drop(_) => unreachable!("dispatched before the configuration is read"),
        Command::Restore { dir, keys_from, force } => {
            cli::backup::restore(&config, &dir, keys_from.as_deref(), force).await
        }
    }
}

async fn serve(config: Config, source: &Source) -> anyhow::Result<()> {
    // Before anything starts: a SIGTERM from then on is a graceful stop.
    let mut signals = Signals::install()?;
    let listeners = app::Listeners::bind(&config).await?;
    let mut running = app::start(&config, listeners, Arc::new(SystemClock)).await?;
    // SIGHUP reloads the certificate (sealpost::reload); installed before we say we run.
    let sighup = tokio::spawn(
        sealpost::reload::on_sighup(Arc::clone(&running.certificates)).context("installing the SIGHUP handler")?,
    );
    let a = running.addresses;
    println!("Sealpost is running.");
    println!("  Configuration    {source}");
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
    if let Some(admin) = running.admin {
        println!("  Admin            http://{admin}/metrics, /healthz, /readyz");
    }
    match config.outbound.mode {
        OutboundMode::Smarthost => println!("  Outbound mail    smarthost {}", config.outbound.smarthost),
        OutboundMode::Outbox => println!("  Outbound mail    Maildir {}/", config.outbox_dir().display()),
        OutboundMode::Mx => println!("  Outbound mail    direct to each domain's MX"),
    }
    if running.dkim_signing {
        println!(
            "  DKIM             signing as {}._domainkey.{}",
            config.dkim.selector, config.dkim.domain
        );
        for keys in config.dkim.domain_keys(&config.data_dir) {
            println!("                   and {}._domainkey.{}", keys.selector, keys.domain);
        }
    } else {
        println!(
            "  DKIM             off: no key at {} (run `sealpost dkim keygen`)",
            config.dkim_key_path().display()
        );
    }
    match running.certificates.serving() {
        Some(cert) if config.tls.acme() => println!(
            "  TLS certificate  serial {} (ACME for {}; renewed by itself)",
            cert.serial,
            config.tls.acme_domains.join(", ")
        ),
        Some(cert) => println!("  TLS certificate  serial {} (SIGHUP reloads it)", cert.serial),
        None => {}
    }
    println!(
        "  Data             {}/ ({})",
        config.data_dir.display(),
        redact(&config.database_url())
    );
    let anchors = tokio::spawn(audit::log_audit_anchors(Arc::clone(&running.store)));
    let stop = signals.stop().await;
    sighup.abort();
    let grace = Duration::from_secs(config.server.shutdown_grace);
    println!(
        "Stopping ({}): no new connections; up to {} s for what is in flight.",
        stop.name(),
        grace.as_secs()
    );
    if running.shutdown(grace).await {
        println!("Everything in flight finished.");
    } else {
        println!("Grace period over: closing the connections still open.");
    }
    anchors.abort();
    audit::log_audit_anchor(&running.store, None).await;
    running.store.close().await;
    Ok(())
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

/// Where replies to notification emails go, for `sealpost config check`.
fn reply_to_summary(config: &Config) -> String {
    let outbound = &config.outbound;
    let mut line = match &outbound.notification_reply_to {
        Some(address) => format!("replies to notifications: Reply-To {address}"),
        None => format!(
            "replies to notifications: no Reply-To, so they go to {} \
             (set outbound.notification_reply_to to a front desk or no-reply address)",
            outbound.from_address
        ),
    };
    if !outbound.practice_reply_to.is_empty() {
        let each: Vec<String> = outbound
            .practice_reply_to
            .iter()
            .map(|(domain, address)| format!("{domain} -> {address}"))
            .collect();
        line = format!("{line}; per practice: {}", each.join(", "));
    }
    line
}
