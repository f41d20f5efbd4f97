//! `sealpost tlsrpt send`: TLS-RPT (RFC 8460). The running server counts each
//! direct-delivery session's TLS outcome by recipient domain (with
//! `outbound.tls_reports`); this command turns every finished day's counts
//! into one report per domain, gzipped, DKIM-signed and queued to the
//! `mailto:` addresses of the domain's `_smtp._tls` record (the server
//! delivers them), and then forgets those counts. Run it once a day (a
//! systemd timer or cron); a domain whose DNS lookup fails keeps its counts
//! for the next run, one that publishes no record has them dropped.

use std::collections::BTreeMap;
use std::sync::Arc;

use clap::Subcommand;
use sealpost::app;
use sealpost::config::Config;
use store::SystemClock;
use store::tls_sessions::TlsCount;

#[derive(Subcommand)]
pub(crate) enum TlsrptCommand {
    /// Queue the reports of every day before today (or through --through).
    Send {
        /// The last day to report, `YYYY-MM-DD` (UTC); default: yesterday.
        #[arg(long)]
        through: Option<String>,
    },
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (Howard Hinnant's algorithm).
fn day_of(date: &str) -> Option<i64> {
    let mut parts = date.splitn(3, '-').map(|part| part.parse::<i64>().ok());
    let (year, month, day) = (parts.next()??, parts.next()??, parts.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || date.len() != 10 {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    // 2001-02-29 would land on March 1st: not a date.
    (store::clock::civil_from_days(days) == (year, month, day)).then_some(days)
}

/// `sealpost tlsrpt ...`
pub(crate) async fn tlsrpt(command: TlsrptCommand, config: &Config) -> anyhow::Result<()> {
    let TlsrptCommand::Send { through } = command;
    let store = app::open_store(config, Arc::new(SystemClock)).await?;
    let last = match through.as_deref() {
        Some(date) => day_of(date).ok_or_else(|| anyhow::anyhow!("--through {date:?} is not a date (YYYY-MM-DD)"))?,
        None => store.now().div_euclid(86_400) - 1,
    };
    let mx = gateway::deliver::Mx::new(config.outbound.mx_settings().map_err(anyhow::Error::msg)?)
        .map_err(anyhow::Error::msg)?;
    let dkim = app::dkim_signers(config)?;
    if dkim.is_none() {
        eprintln!("warning: no DKIM key: reports go out unsigned, and receivers may drop them (RFC 8460 §5.3)");
    }
    let mut by_domain: BTreeMap<(i64, String), Vec<TlsCount>> = BTreeMap::new();
    for (day, count) in store.queue().tls_sessions_until(last).await? {
        by_domain
            .entry((day, count.session.policy_domain.clone()))
            .or_default()
            .push(count);
    }
    let submitter = gateway::tlsrpt::Submitter {
        organization: config.dkim.domain.trim_end_matches('.'),
        hostname: config.smtp.hostname.trim_end_matches('.'),
        from_address: &config.outbound.from_address,
    };
    let (mut queued, mut dropped, mut kept) = (0, 0, 0);
    for ((day, domain), counts) in by_domain {
        let addresses = match mx.tls_report_addresses(&domain).await {
            Ok(addresses) => addresses.unwrap_or_default(),
            Err(error) => {
                eprintln!("{domain}: {error}; kept for the next run");
                kept += 1;
                continue;
            }
        };
        if !addresses.is_empty() {
            let id = format!("{day}.{}", store::crypto::random_hex(8));
            let report = gateway::tlsrpt::report(submitter, &id, day, &domain, &counts);
            for to in &addresses {
                let mail = gateway::tlsrpt::report_mail(submitter, to, &report, &domain, day, store.now())?;
                let mail = dkim.as_ref().map_or(mail.clone(), |dkim| dkim.sign(&mail));
                store
                    .queue()
                    .queue_mail(None, &config.outbound.from_address, to, &mail)
                    .await?;
            }
            queued += 1;
        } else {
            dropped += 1;
        }
        store.queue().forget_tls_sessions(day, &domain).await?;
    }
    println!("{queued} report(s) queued; {dropped} domain-day(s) without a TLS-RPT record dropped; {kept} kept");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::day_of;

    #[test]
    fn dates_become_days() {
        assert_eq!(day_of("1970-01-01"), Some(0));
        assert_eq!(day_of("2025-12-01"), Some(20_423));
        assert_eq!(day_of("2000-02-29"), Some(11_016));
        assert_eq!(day_of("2001-02-29"), None);
        assert_eq!(day_of("2025-13-01"), None);
        assert_eq!(day_of("yesterday"), None);
    }
}
