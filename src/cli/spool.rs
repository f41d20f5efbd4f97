//! `sealpost spool …`: the secure messages that could not be sealed and wait in
//! quarantine (docs/workers.md), and putting one back in line once its cause is
//! fixed. Only ids and times are shown: the content stays sealed.

use std::sync::Arc;

use clap::Subcommand;
use sealpost::app;
use sealpost::config::Config;
use store::SystemClock;
use store::clock::format_utc;
use store::ids::MessageId;

#[derive(Subcommand)]
pub(crate) enum SpoolCommand {
    /// List the messages in quarantine, oldest first.
    Quarantined,
    /// Put a quarantined message back in line with a fresh count of attempts; the
    /// running server's sealer picks it up within a few seconds.
    Release {
        /// The message id, as `spool quarantined` and the log line show it.
        #[arg(long)]
        id: String,
    },
}

/// `sealpost spool ...`
pub(crate) async fn spool(command: SpoolCommand, config: &Config) -> anyhow::Result<()> {
    let store = app::open_store(config, Arc::new(SystemClock)).await?;
    match command {
        SpoolCommand::Quarantined => {
            let entries = store.queue().quarantined_spool().await?;
            if entries.is_empty() {
                println!("No message is in quarantine.");
            }
            for entry in entries {
                println!(
                    "{}  received {}  quarantined {}  attempts {}",
                    entry.id,
                    format_utc(entry.received_at),
                    entry.quarantined_at.map_or_else(|| "-".to_owned(), format_utc),
                    entry.attempts
                );
            }
            Ok(())
        }
        SpoolCommand::Release { id } => {
            let id = MessageId::parse(id.trim()).ok_or_else(|| anyhow::anyhow!("{id:?} is not a message id"))?;
            if store.queue().release_quarantined(&id).await? {
                println!("Released {id}: the sealer tries it again now.");
                Ok(())
            } else {
                anyhow::bail!("message {id} is not in quarantine (see `sealpost spool quarantined`)")
            }
        }
    }
}
