//! TLS-RPT's raw material (RFC 8460): a count of direct-delivery sessions by
//! day, recipient (policy) domain, the TLS policy in force and, for a failure,
//! the MX host and the RFC 8460 result type. No address is kept: a domain, a
//! host name and counts. Reports are built from a day's rows, which are then
//! removed.

use sqlx::Row;

use crate::{Queue, Result};

/// One session's TLS outcome, as the delivery recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSession {
    /// The recipient domain whose policy applied (lower case).
    pub policy_domain: String,
    /// `sts`, `tlsa` or `no-policy-found` (RFC 8460 §4.3).
    pub policy_type: String,
    /// The policy's lines (the MTA-STS policy text, or the TLSA records),
    /// newline-separated; empty for `no-policy-found`.
    pub policy_string: String,
    /// The MX host of a failure; empty for a success.
    pub mx_host: String,
    /// The RFC 8460 result type of a failure; empty for a success.
    pub result_type: String,
}

/// A day's count of sessions with the same outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsCount {
    pub session: TlsSession,
    pub sessions: i64,
}

impl Queue<'_> {
    /// Counts one session on `day` (days since 1970-01-01, UTC).
    pub async fn record_tls_session(&self, day: i64, session: &TlsSession) -> Result<()> {
        sqlx::query(
            "INSERT INTO tls_sessions (day, policy_domain, policy_type, policy_string, mx_host, result_type, sessions)
             VALUES ($1, $2, $3, $4, $5, $6, 1)
             ON CONFLICT (day, policy_domain, policy_type, mx_host, result_type)
             DO UPDATE SET sessions = tls_sessions.sessions + 1, policy_string = $4",
        )
        .bind(day)
        .bind(&session.policy_domain)
        .bind(&session.policy_type)
        .bind(&session.policy_string)
        .bind(&session.mx_host)
        .bind(&session.result_type)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// The counts of `day` and the days before it not reported yet, by
    /// domain, oldest first.
    pub async fn tls_sessions_until(&self, day: i64) -> Result<Vec<(i64, TlsCount)>> {
        let rows = sqlx::query(
            "SELECT day, policy_domain, policy_type, policy_string, mx_host, result_type, sessions FROM tls_sessions
             WHERE day <= $1 ORDER BY day, policy_domain, policy_type, mx_host, result_type",
        )
        .bind(day)
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("day")?,
                    TlsCount {
                        session: TlsSession {
                            policy_domain: row.try_get("policy_domain")?,
                            policy_type: row.try_get("policy_type")?,
                            policy_string: row.try_get("policy_string")?,
                            mx_host: row.try_get("mx_host")?,
                            result_type: row.try_get("result_type")?,
                        },
                        sessions: row.try_get("sessions")?,
                    },
                ))
            })
            .collect()
    }

    /// Removes a day's counts for one domain (reported, or nobody to report to).
    pub async fn forget_tls_sessions(&self, day: i64, policy_domain: &str) -> Result<()> {
        sqlx::query("DELETE FROM tls_sessions WHERE day = $1 AND policy_domain = $2")
            .bind(day)
            .bind(policy_domain)
            .execute(&self.db)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::TlsSession;
    use crate::testing::store;

    #[tokio::test]
    async fn sessions_are_counted_by_outcome_and_forgotten_by_day_and_domain() {
        let (_dir, store, _clock) = store().await;
        let queue = store.queue();
        let success = TlsSession {
            policy_domain: "partner.example".into(),
            policy_type: "sts".into(),
            policy_string: "version: STSv1\nmode: enforce".into(),
            mx_host: String::new(),
            result_type: String::new(),
        };
        let failure = TlsSession {
            mx_host: "mx2.partner.example".into(),
            result_type: "certificate-host-mismatch".into(),
            ..success.clone()
        };
        for session in [&success, &success, &failure] {
            queue.record_tls_session(20_000, session).await.unwrap();
        }
        queue.record_tls_session(20_001, &success).await.unwrap();
        let rows = queue.tls_sessions_until(20_000).await.unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        let counts: Vec<(String, i64)> = rows
            .iter()
            .map(|(_, count)| (count.session.result_type.clone(), count.sessions))
            .collect();
        assert_eq!(
            counts,
            [(String::new(), 2), ("certificate-host-mismatch".to_owned(), 1)]
        );
        queue.forget_tls_sessions(20_000, "partner.example").await.unwrap();
        assert!(queue.tls_sessions_until(20_000).await.unwrap().is_empty());
        assert_eq!(queue.tls_sessions_until(20_001).await.unwrap().len(), 1);
    }
}
