//! `sealpost audit …`, and the anchors `serve` writes to its log so that the
//! audit log can be checked against something the database does not hold.

use std::sync::Arc;

use clap::Subcommand;
use sealpost::app;
use sealpost::config::Config;
use store::SystemClock;

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Check the audit log's keyed hash chain, and that it still reaches an anchor.
    Verify {
        /// An anchor kept earlier (`ID:HASH`, from `sealpost audit anchor` or the
        /// server's log): the log must still hold that entry, unchanged.
        #[arg(long)]
        anchor: Option<String>,
    },
    /// Check the chain, then print its newest entry as an anchor to keep elsewhere.
    Anchor,
    /// Print the entries since a date for a SIEM, one record each (no PHI).
    Export {
        /// `YYYY-MM-DD` (UTC midnight) or an RFC 3339 time.
        #[arg(long)]
        since: String,
        #[arg(long, value_enum, default_value = "json")]
        format: super::audit_export::ExportFormat,
    },
}

/// `sealpost audit ...`
pub(crate) async fn audit(command: AuditCommand, config: &Config) -> anyhow::Result<()> {
    if let AuditCommand::Export { since, format } = &command {
        return super::audit_export::export(config, since, *format).await;
    }
    let anchor = match &command {
        AuditCommand::Verify { anchor: Some(text) } => Some(text.parse::<store::audit::Anchor>()?),
        _ => None,
    };
    let store = app::open_store(config, Arc::new(SystemClock)).await?;
    let intact = match store.audit_log().verify_audit_against(anchor.as_ref()).await? {
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
        AuditCommand::Export { .. } => {}
        AuditCommand::Anchor => match intact.newest {
            Some(newest) => println!("{newest}"),
            None => anyhow::bail!("the audit log is empty: there is no anchor yet"),
        },
    }
    Ok(())
}

/// Logs the audit log's newest entry every hour it changed, so the log file
/// holds anchors that `sealpost audit verify --anchor` can check the database
/// against: a database edit cannot reach back into the log file.
pub(crate) async fn log_audit_anchors(store: Arc<store::Store>) {
    let mut last = None;
    loop {
        last = log_audit_anchor(&store, last).await;
        tokio::time::sleep(std::time::Duration::from_hours(1)).await;
    }
}

/// Logs the newest entry unless it is `last`; returns it.
pub(crate) async fn log_audit_anchor(store: &store::Store, last: Option<i64>) -> Option<i64> {
    match store.audit_log().audit_anchor().await {
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
