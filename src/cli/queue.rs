//! `sealpost queue …`: the outbound queue (notifications, DSNs, mail passing
//! through) for admins: list what waits and why, make it due now, or delete a
//! delivery. Retrying and deleting are audited.

use std::sync::Arc;

use clap::Subcommand;
use sealpost::app;
use sealpost::config::Config;
use store::SystemClock;
use store::clock::format_utc;

#[derive(Subcommand)]
pub(crate) enum QueueCommand {
    /// List the deliveries waiting, oldest first (with --all, the finished too).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Make a waiting delivery (or, with --all, every one) due now; the running
    /// server tries within a few seconds.
    Retry {
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Delete a delivery: it is not sent, and no DSN goes out for it.
    Delete {
        #[arg(long)]
        id: String,
    },
}

/// `sealpost queue ...`
pub(crate) async fn queue(command: QueueCommand, config: &Config) -> anyhow::Result<()> {
    let store = app::open_store(config, Arc::new(SystemClock)).await?;
    let not_found =
        |id: &str| anyhow::anyhow!("no delivery {id:?} that can be changed now (see `sealpost queue list`)");
    match command {
        QueueCommand::List { all } => {
            let entries = store.queue().list_outbound(all, 10_000).await?;
            if entries.is_empty() {
                println!("The outbound queue is empty.");
            }
            for entry in entries {
                let from = if entry.mail_from.is_empty() {
                    "<> (a DSN)"
                } else {
                    entry.mail_from.as_str()
                };
                println!(
                    "{}  {}  attempts {}  queued {}  next {}  from {}  to {}{}",
                    entry.id,
                    entry.state,
                    entry.attempts,
                    format_utc(entry.created_at),
                    format_utc(entry.next_attempt_at),
                    from,
                    entry.rcpt_to,
                    entry
                        .last_error
                        .map(|e| format!("  last error: {e}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        QueueCommand::Retry { id, all: _ } => {
            let id = id.as_deref().map(str::trim);
            match store.queue().retry_outbound(id, "cli").await {
                Ok(n) => {
                    println!("{n} deliver{} due now.", if n == 1 { "y is" } else { "ies are" });
                    Ok(())
                }
                Err(store::Error::NotFound) => Err(not_found(id.unwrap_or_default())),
                Err(error) => Err(error.into()),
            }
        }
        QueueCommand::Delete { id } => match store.queue().delete_outbound(id.trim(), "cli").await {
            Ok(()) => {
                println!("Deleted delivery {}.", id.trim());
                Ok(())
            }
            Err(store::Error::NotFound) => Err(not_found(&id)),
            Err(error) => Err(error.into()),
        },
    }
}
