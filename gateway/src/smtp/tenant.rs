//! The Microsoft 365 tenant check on the relay port. Exchange Online connectors
//! cannot authenticate with SMTP AUTH, and its outbound IP ranges are shared by
//! every tenant, so trusting those ranges alone would let any Microsoft 365
//! organisation relay through the gateway. With `smtp.relay_tenant_id` set, a
//! relayed message must carry `X-MS-Exchange-CrossTenant-Id` (stamped by
//! Exchange Online on mail leaving a tenant) with exactly that tenant id, in
//! every copy of the header present; otherwise it is refused with 550 5.7.1.
//!
//! Then the practice boundary (DESIGN.md, "Who is trusted with what"): secure
//! mail for a practice must come from one of that practice's relay sources (a
//! network, a Microsoft 365 tenant id, a TLS client certificate; set with `sealpost practice relay`), or
//! from an authenticated session of its own user, or from a session signed in
//! as the practice's SMTP AUTH relay account), and the sender's address must be
//! in one of the practice's domains. A single-practice install needs no
//! relay sources: its trusted networks are that practice's.

use ipnet::IpNet;
use store::accounts::User;
use store::accounts::relay_sources::SourceKind;
use store::ids::PracticeId;
use store::ingest::headers::raw_header_values;

use super::ListenerKind;
use super::reply::{Reply, common};
use super::session::Session;

/// The header Exchange Online stamps with the sending tenant's id.
pub const TENANT_HEADER: &str = "X-MS-Exchange-CrossTenant-Id";

impl Session {
    /// Refuses a relayed message from another (or no) Microsoft 365 tenant.
    pub(super) fn check_tenant(&self, header_block: &[u8]) -> Result<(), Reply> {
        let Some(expected) = &self.server.config.relay_tenant_id else {
            return Ok(());
        };
        if self.kind != ListenerKind::Relay || self.user.is_some() {
            return Ok(());
        }
        let values = raw_header_values(header_block, TENANT_HEADER);
        if tenant_matches(&values, expected) {
            return Ok(());
        }
        tracing::warn!(peer = %self.peer.ip(), found = values.len(), "relayed message from another tenant refused");
        Err(Reply::new(
            550,
            "5.7.1",
            format!(
                "Relaying denied: this gateway relays only for its own Microsoft 365 organisation ({TENANT_HEADER} does not match)"
            ),
        ))
    }
}

/// Does the tenant header of a message name `tenant` (every copy present)?
fn tenant_matches(values: &[String], tenant: &str) -> bool {
    !values.is_empty() && values.iter().all(|v| v.trim().eq_ignore_ascii_case(tenant))
}

fn refuse(why: &str) -> Reply {
    Reply::new(550, "5.7.1", format!("Secure mail refused: {why}"))
}

impl Session {
    /// May this session send secure mail for `practice` as `sender`? With
    /// `own_domain` (a new secure message, not a reply in a conversation) the
    /// sender's address must be in one of the practice's domains; relayed mail
    /// must come from one of the practice's relay sources. Otherwise 550 5.7.1,
    /// saying what to set.
    pub(super) async fn check_practice_source(
        &self,
        sender: &User,
        practice: PracticeId,
        own_domain: bool,
        header_block: &[u8],
    ) -> Result<(), Reply> {
        let db = &self.server.store;
        let failed = |error: store::Error| {
            tracing::error!(%error, "cannot look up a practice's relay sources");
            common::temporary_failure()
        };
        let rules = db.accounts().sending_rules(practice).await.map_err(failed)?;
        let (own, domains) = (&rules.routing.practice, &rules.routing.domains);
        if own_domain {
            let domain = sender.email.rsplit_once('@').map_or("", |(_, d)| d);
            if !domains.iter().any(|d| d == domain) {
                return Err(refuse(&format!(
                    "{} is not in a mail domain of {} ({}); an admin adds domains with `sealpost practice domain`",
                    sender.email,
                    own.name,
                    domains.join(", ")
                )));
            }
        }
        // An authenticated session acts only as its own user (checked before).
        if self.kind != ListenerKind::Relay || self.user.is_some() {
            return Ok(());
        }
        // A relay account signs in on the submission port: it is no source of relayed connections.
        let mut sources = rules.routing.sources.clone();
        sources.retain(|source| source.kind != SourceKind::Account);
        if sources.is_empty() {
            if rules.several_practices {
                tracing::warn!(peer = %self.peer.ip(), practice = %practice, "secure mail for a practice without relay sources refused");
                return Err(refuse(&format!(
                    "this gateway serves several practices and none of {}'s relay sources is set; an admin sets \
                     them with `sealpost practice relay --domain {} --network CIDR` or `--tenant-id ID`",
                    own.name, own.domain
                )));
            }
            return Ok(());
        }
        let tenants = raw_header_values(header_block, TENANT_HEADER);
        let ip = self.peer.ip();
        let allowed = sources.iter().any(|source| match source.kind {
            SourceKind::Network => source.value.parse::<IpNet>().is_ok_and(|net| net.contains(&ip)),
            SourceKind::Tenant => tenant_matches(&tenants, &source.value),
            SourceKind::ClientCert => self.client_cert.as_deref() == Some(source.value.as_str()),
            SourceKind::Account => false,
        });
        if allowed {
            return Ok(());
        }
        tracing::warn!(peer = %ip, practice = %practice, "secure mail from another practice's relay source refused");
        Err(refuse(&format!(
            "this mail system is not a relay source of {} (its network or Microsoft 365 tenant is not set for \
             the practice with `sealpost practice relay`)",
            own.name
        )))
    }
}

impl Session {
    /// A session signed in as a practice's SMTP AUTH relay account relays for
    /// that practice only: every address given (the envelope sender and From:)
    /// must be in one of its domains, else 550 5.7.1. `Ok(false)`: this session
    /// is no relay account, so the caller's own-user rule applies.
    pub(super) async fn relay_account_allows(&self, addresses: &[&str]) -> Result<bool, Reply> {
        let Some(practice) = self.relay_for else {
            return Ok(false);
        };
        let db = &self.server.store;
        let failed = |error: store::Error| {
            tracing::error!(%error, "cannot look up a practice's domains");
            common::temporary_failure()
        };
        let domains = db.accounts().practice_domains(practice).await.map_err(failed)?;
        for address in addresses.iter().filter(|a| !a.is_empty()) {
            let domain = address.rsplit_once('@').map_or("", |(_, d)| d).to_ascii_lowercase();
            if !domains.contains(&domain) {
                let own = db.accounts().practice(practice).await.map_err(failed)?;
                tracing::warn!(practice = %practice, "relay account sent for another practice's domain; refused");
                return Err(Reply::new(
                    550,
                    "5.7.1",
                    format!(
                        "Relaying denied: this account is the relay account of {} and relays only for its \
                         mail domains ({}); {address} is not in one of them",
                        own.name,
                        domains.join(", ")
                    ),
                ));
            }
        }
        Ok(true)
    }
}
