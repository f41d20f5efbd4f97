//! Which mail systems may send secure mail for a practice, and which mail
//! domains are its own (DESIGN.md, "Who is trusted with what": a practice's relay
//! sources act for that practice only). An admin sets both with `sealpost
//! practice relay` and `sealpost practice domain`; the SMTP gateway checks them
//! (`gateway/src/smtp/tenant.rs`).
//!
//! A relay source is a network the practice's mail system connects from, or its
//! Microsoft 365 tenant id (Exchange Online shares its outbound addresses among
//! all tenants, so for it the tenant id is what identifies the practice), or an
//! SMTP AUTH relay account: one user of the practice that its own MTA signs in
//! as on the submission port to relay for every sender in the practice's
//! domains. Any other authenticated submission session acts only as its own user.

use sqlx::Row;

use super::{Practice, practice_from_row};
use crate::audit::AuditEvent;
use crate::ids::PracticeId;
use crate::{Accounts, Error, Result};

/// What kind of relay source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A network (CIDR) the practice's mail system connects from.
    Network,
    /// A Microsoft 365 tenant id, matched against `X-MS-Exchange-CrossTenant-Id`.
    Tenant,
    /// A user of the practice (by address) that the practice's mail system signs
    /// in as on the submission port; it relays for the practice's domains.
    Account,
    /// The SHA-256 fingerprint (lower-case hex) of a TLS client certificate the
    /// practice's mail system presents on the relay port (`smtp.relay_client_ca`).
    ClientCert,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Network => "network",
            Self::Tenant => "tenant",
            Self::Account => "account",
            Self::ClientCert => "client_cert",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "network" => Some(Self::Network),
            "tenant" => Some(Self::Tenant),
            "account" => Some(Self::Account),
            "client_cert" => Some(Self::ClientCert),
            _ => None,
        }
    }
}

/// One relay source of a practice. The value is checked by whoever sets it
/// (the CLI parses networks) and stored lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySource {
    pub kind: SourceKind,
    pub value: String,
}

/// A practice with its mail domains and relay sources, as the admin sees it.
#[derive(Debug, Clone)]
pub struct PracticeRouting {
    pub practice: Practice,
    /// Its first domain, then any others.
    pub domains: Vec<String>,
    pub sources: Vec<RelaySource>,
}

/// A practice's routing as the SMTP gateway checks it ([`Accounts::sending_rules`]).
#[derive(Debug, Clone)]
pub struct SendingRules {
    pub routing: PracticeRouting,
    /// More than one practice on this gateway: relay sources are then required.
    pub several_practices: bool,
}

fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

impl Accounts<'_> {
    /// Every practice, by domain.
    pub async fn practices(&self) -> Result<Vec<Practice>> {
        sqlx::query("SELECT id, name, domain FROM practices ORDER BY domain")
            .fetch_all(&self.db)
            .await?
            .iter()
            .map(practice_from_row)
            .collect()
    }

    /// Is there more than one practice? A single-practice install needs no relay
    /// sources: the trusted networks are that practice's.
    pub async fn several_practices(&self) -> Result<bool> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM practices")
            .fetch_one(&self.db)
            .await?
            .try_get("n")?;
        Ok(n > 1)
    }

    /// The practice's mail domains: its first one, then the others.
    pub async fn practice_domains(&self, id: PracticeId) -> Result<Vec<String>> {
        let practice = self.practice(id).await?;
        let mut domains = vec![practice.domain];
        for row in sqlx::query("SELECT domain FROM practice_domains WHERE practice_id = $1 ORDER BY domain")
            .bind(id.0)
            .fetch_all(&self.db)
            .await?
        {
            domains.push(row.try_get("domain")?);
        }
        Ok(domains)
    }

    /// Is `domain` taken by a practice, as its first or a further domain?
    pub(crate) async fn domain_taken(&self, domain: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 AS n FROM practices WHERE domain = $1 UNION SELECT 1 AS n FROM practice_domains WHERE domain = $1",
        )
        .bind(domain)
        .fetch_optional(&self.db)
        .await?;
        Ok(row.is_some())
    }

    /// Records an admin's change to a practice's domains or relay sources.
    async fn audit_practice_change(&self, practice: &Practice, action: &str) -> Result<()> {
        self.audit(AuditEvent {
            actor: "admin",
            action,
            object: &format!("practice:{}", practice.id),
            client: "cli",
        })
        .await
    }

    async fn practice_for_admin(&self, practice_domain: &str) -> Result<Practice> {
        self.practice_by_domain(practice_domain)
            .await?
            .ok_or_else(|| Error::invalid(format!("no practice has the domain {practice_domain}")))
    }

    /// Adds (or, with `remove`, removes) a further mail domain of a practice (admin CLI).
    pub async fn set_practice_domain(&self, practice_domain: &str, domain: &str, remove: bool) -> Result<Practice> {
        let practice = self.practice_for_admin(practice_domain).await?;
        let domain = domain.trim().to_ascii_lowercase();
        if !valid_domain(&domain) {
            return Err(Error::invalid(format!("{domain:?} is not a mail domain")));
        }
        if remove {
            let done = sqlx::query("DELETE FROM practice_domains WHERE domain = $1 AND practice_id = $2")
                .bind(&domain)
                .bind(practice.id.0)
                .execute(&self.db)
                .await?;
            if done.rows_affected() == 0 {
                return Err(Error::invalid(format!(
                    "{domain} is not a further domain of {}",
                    practice.domain
                )));
            }
        } else {
            if self.domain_taken(&domain).await? {
                return Err(Error::Conflict(format!(
                    "the domain {domain} belongs to a practice already"
                )));
            }
            sqlx::query("INSERT INTO practice_domains (domain, practice_id, created_at) VALUES ($1, $2, $3)")
                .bind(&domain)
                .bind(practice.id.0)
                .bind(self.now())
                .execute(&self.db)
                .await?;
        }
        self.audit_practice_change(
            &practice,
            if remove {
                "practice.domain_remove"
            } else {
                "practice.domain_add"
            },
        )
        .await?;
        Ok(practice)
    }

    /// The relay sources that may send secure mail for a practice.
    pub async fn relay_sources(&self, id: PracticeId) -> Result<Vec<RelaySource>> {
        let rows =
            sqlx::query("SELECT kind, value FROM practice_relay_sources WHERE practice_id = $1 ORDER BY kind, value")
                .bind(id.0)
                .fetch_all(&self.db)
                .await?;
        let mut sources = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(kind) = SourceKind::parse(&row.try_get::<String, _>("kind")?) {
                sources.push(RelaySource {
                    kind,
                    value: row.try_get("value")?,
                });
            }
        }
        Ok(sources)
    }

    /// Adds (or, with `remove`, removes) a relay source of a practice (admin CLI).
    pub async fn set_relay_source(
        &self,
        practice_domain: &str,
        source: &RelaySource,
        remove: bool,
    ) -> Result<Practice> {
        let practice = self.practice_for_admin(practice_domain).await?;
        let value = source.value.trim().to_ascii_lowercase();
        if value.is_empty() || value.len() > 200 {
            return Err(Error::invalid("a relay source needs a value"));
        }
        if source.kind == SourceKind::Account && !remove {
            let user = self
                .user_by_email(&value)
                .await?
                .ok_or_else(|| Error::invalid(format!("{value} is not a Sealpost user; add it first")))?;
            if user.practice_id != Some(practice.id) {
                return Err(Error::invalid(format!(
                    "{value} is not a user of {}; a relay account must be the practice's own",
                    practice.domain
                )));
            }
        }
        if remove {
            sqlx::query("DELETE FROM practice_relay_sources WHERE practice_id = $1 AND kind = $2 AND value = $3")
                .bind(practice.id.0)
                .bind(source.kind.as_str())
                .bind(&value)
                .execute(&self.db)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO practice_relay_sources (practice_id, kind, value, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (practice_id, kind, value) DO NOTHING",
            )
            .bind(practice.id.0)
            .bind(source.kind.as_str())
            .bind(&value)
            .bind(self.now())
            .execute(&self.db)
            .await?;
        }
        self.audit_practice_change(
            &practice,
            if remove {
                "practice.relay_remove"
            } else {
                "practice.relay_add"
            },
        )
        .await?;
        Ok(practice)
    }

    /// The practice `user` is the SMTP AUTH relay account of, if any: the account
    /// must still be a user of the practice that named it.
    pub async fn relay_account_practice(&self, user: &super::User) -> Result<Option<PracticeId>> {
        let Some(practice) = user.practice_id else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT 1 AS n FROM practice_relay_sources WHERE practice_id = $1 AND kind = 'account' AND value = $2",
        )
        .bind(practice.0)
        .bind(user.email.to_ascii_lowercase())
        .fetch_optional(&self.db)
        .await?;
        Ok(row.map(|_| practice))
    }

    /// What the SMTP gateway checks for each secure message a practice sends:
    /// the practice, its domains and relay sources, and whether the gateway
    /// serves several practices. One statement (it runs for every message).
    pub async fn sending_rules(&self, id: PracticeId) -> Result<SendingRules> {
        let rows = sqlx::query(
            "SELECT CAST(0 AS BIGINT) AS part, name AS a, domain AS b, (SELECT COUNT(*) FROM practices) AS n
             FROM practices WHERE id = $1
             UNION ALL SELECT CAST(1 AS BIGINT), domain, '', CAST(0 AS BIGINT) FROM practice_domains WHERE practice_id = $1
             UNION ALL SELECT CAST(2 AS BIGINT), kind, value, CAST(0 AS BIGINT) FROM practice_relay_sources WHERE practice_id = $1
             ORDER BY part, a, b",
        )
        .bind(id.0)
        .fetch_all(&self.db)
        .await?;
        let mut rows = rows.iter();
        let first = rows.next().ok_or(Error::NotFound)?;
        if first.try_get::<i64, _>("part")? != 0 {
            return Err(Error::NotFound);
        }
        let practice = Practice {
            id,
            name: first.try_get("a")?,
            domain: first.try_get("b")?,
        };
        let several_practices = first.try_get::<i64, _>("n")? > 1;
        let (mut domains, mut sources) = (vec![practice.domain.clone()], Vec::new());
        for row in rows {
            let (a, b): (String, String) = (row.try_get("a")?, row.try_get("b")?);
            match row.try_get::<i64, _>("part")? {
                1 => domains.push(a),
                _ => {
                    if let Some(kind) = SourceKind::parse(&a) {
                        sources.push(RelaySource { kind, value: b });
                    }
                }
            }
        }
        Ok(SendingRules {
            routing: PracticeRouting {
                practice,
                domains,
                sources,
            },
            several_practices,
        })
    }

    /// Every practice with its domains and relay sources (`sealpost practice list`).
    pub async fn practice_routing(&self) -> Result<Vec<PracticeRouting>> {
        let mut out = Vec::new();
        for practice in self.practices().await? {
            out.push(PracticeRouting {
                domains: self.practice_domains(practice.id).await?,
                sources: self.relay_sources(practice.id).await?,
                practice,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::{RelaySource, SourceKind};
    use crate::Error;
    use crate::ids::PracticeId;
    use crate::testing::store;

    /// The one-statement rules say what the separate lookups say.
    #[tokio::test]
    async fn sending_rules_hold_the_practice_its_domains_and_sources_in_one_read() {
        let (_dir, store, _) = store().await;
        let accounts = store.accounts();
        let smiles = accounts.add_practice("Smiles", "smiles.example").await.unwrap();
        let alone = accounts.sending_rules(smiles.id).await.unwrap();
        assert!(!alone.several_practices);
        assert_eq!(alone.routing.domains, ["smiles.example"]);
        assert!(alone.routing.sources.is_empty());

        accounts.add_practice("Other", "other.example").await.unwrap();
        for domain in ["zz.example", "aa.example"] {
            accounts
                .set_practice_domain("smiles.example", domain, false)
                .await
                .unwrap();
        }
        for (kind, value) in [(SourceKind::Tenant, "t-1"), (SourceKind::Network, "10.0.0.0/8")] {
            let source = RelaySource {
                kind,
                value: value.to_owned(),
            };
            accounts
                .set_relay_source("smiles.example", &source, false)
                .await
                .unwrap();
        }
        let rules = accounts.sending_rules(smiles.id).await.unwrap();
        assert!(rules.several_practices);
        assert_eq!(
            (
                rules.routing.practice.name.as_str(),
                rules.routing.practice.domain.as_str()
            ),
            ("Smiles", "smiles.example")
        );
        assert_eq!(
            rules.routing.domains,
            accounts.practice_domains(smiles.id).await.unwrap()
        );
        assert_eq!(rules.routing.domains[0], "smiles.example", "its first domain first");
        assert_eq!(rules.routing.sources, accounts.relay_sources(smiles.id).await.unwrap());
        assert_eq!(rules.routing.sources.len(), 2);
        assert!(matches!(
            accounts.sending_rules(PracticeId(999)).await,
            Err(Error::NotFound)
        ));
    }
}
