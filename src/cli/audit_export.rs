//! `sealpost audit export --since DATE [--format json|csv]`: the audit log for a
//! SIEM, one record per entry on stdout, oldest first. Fields (stable; see
//! docs/operations.md): `id`, `time` (RFC 3339, UTC), `at` (Unix seconds),
//! `actor`, `action`, `object`, `client`, `hash`. Ids only, never content:
//! anything else is exported as `[redacted]` (`store::maintenance::audit_export`).

use std::io::Write as _;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use sealpost::app;
use sealpost::config::Config;
use store::SystemClock;
use store::maintenance::audit_export::AuditRecord;

/// The export's formats.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// JSON Lines: one object per line.
    Json,
    /// CSV with a header line (RFC 4180).
    Csv,
}

const FIELDS: [&str; 8] = ["id", "time", "at", "actor", "action", "object", "client", "hash"];

/// `2026-12-01` (midnight UTC) or an RFC 3339 time, as Unix seconds.
pub(crate) fn parse_since(text: &str) -> anyhow::Result<i64> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(time.timestamp());
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc().timestamp());
    }
    bail!("--since {text:?} is not a date: use YYYY-MM-DD (UTC) or an RFC 3339 time such as 2026-12-01T08:00:00Z")
}

/// `sealpost audit export ...`
pub(crate) async fn export(config: &Config, since: &str, format: ExportFormat) -> anyhow::Result<()> {
    let since = parse_since(since)?;
    let store = app::open_store(config, Arc::new(SystemClock)).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if matches!(format, ExportFormat::Csv) {
        writeln!(out, "{}", FIELDS.join(","))?;
    }
    let mut failed = None;
    let count = store
        .maintenance()
        .export_audit(since, |record| {
            if failed.is_none() {
                failed = write_record(&mut out, &record, format).err();
            }
            Ok(())
        })
        .await?;
    if let Some(error) = failed {
        return Err(error).context("cannot write the export");
    }
    out.flush()?;
    eprintln!("{count} audit entries exported.");
    Ok(())
}

fn write_record(out: &mut impl std::io::Write, record: &AuditRecord, format: ExportFormat) -> std::io::Result<()> {
    let time = chrono::DateTime::from_timestamp(record.at, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    match format {
        ExportFormat::Json => {
            let line = serde_json::json!({
                "id": record.id,
                "time": time,
                "at": record.at,
                "actor": record.actor,
                "action": record.action,
                "object": record.object,
                "client": record.client,
                "hash": record.hash,
            });
            writeln!(out, "{line}")
        }
        ExportFormat::Csv => {
            let fields = [
                record.id.to_string(),
                time,
                record.at.to_string(),
                record.actor.clone(),
                record.action.clone(),
                record.object.clone(),
                record.client.clone(),
                record.hash.clone(),
            ];
            let quoted: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            writeln!(out, "{}", quoted.join(","))
        }
    }
}

/// Quotes a field when it needs it (RFC 4180), and defuses a leading `=`, `+`,
/// `-` or `@` that a spreadsheet would run as a formula.
fn csv_field(field: &str) -> String {
    let field = if field.starts_with(['=', '+', '-', '@']) {
        format!("'{field}")
    } else {
        field.to_owned()
    };
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_and_nonsense_does_not() {
        assert_eq!(parse_since("1970-01-02").unwrap(), 86_400);
        assert_eq!(parse_since("1970-01-01T01:00:00+01:00").unwrap(), 0);
        for bad in ["", "yesterday", "2026-13-01", "2026-12-01 08:00", "12/01/2026"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=cmd"), "'=cmd");
        assert_eq!(csv_field("x\"y"), "\"x\"\"y\"");
    }
}
