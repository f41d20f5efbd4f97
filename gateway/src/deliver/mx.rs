//! Direct delivery to each recipient domain's mail exchangers (RFC 5321 §5):
//! the MX records in preference order (a null MX, RFC 7505, refuses mail for
//! good), the domain's own A/AAAA records when it has no MX, every IPv4 and
//! IPv6 address of a host tried in turn, and the next host after a temporary
//! failure. Connections go through the shared [`Pool`]: each MX host is one
//! more destination, so a connection carries one message after another.
//!
//! TLS follows the recipient domain's policy: `opportunistic` (the default:
//! STARTTLS when offered, any certificate, RFC 7672 §1.3), `verify` (STARTTLS
//! required and the certificate verified for the MX host's name) or `none`.
//! A domain without a configured policy that publishes an MTA-STS policy in
//! `enforce` mode ([`super::mta_sts`]) gets `verify`, and only the MX hosts
//! its policy names are tried. Before either, an MX host with secure TLSA
//! records ([`super::dane`]) must match them (DANE takes precedence, RFC 8461 §2).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use rustls_pki_types::CertificateDer;

use store::tls_sessions::TlsSession;

use super::dane::{DaneVerifier, Tlsa};
use super::dnssec::{Proven, proven};
use super::mta_sts::{Mode, MtaSts, Policy};
use super::{Body, Failure, Pool, Smarthost, SmarthostTls};
use crate::tlsrpt::result;

/// How the connection to a domain's MX hosts is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsPolicy {
    /// No TLS, even when offered (a partner that cannot do TLS right).
    None,
    /// STARTTLS when offered, any certificate (the default).
    #[default]
    Opportunistic,
    /// STARTTLS required, the certificate verified for the MX host's name
    /// (the system's roots plus `outbound.tls_ca_file`).
    Verify,
}

/// What direct delivery needs besides the pool.
#[derive(Debug, Clone, Default)]
pub struct MxSettings {
    /// The port MX hosts listen on: 25 (another only for tests).
    pub port: u16,
    /// DNS servers to ask; empty: the system's (`/etc/resolv.conf`).
    pub dns_servers: Vec<SocketAddr>,
    /// A policy by recipient domain (lower case); others get `default_policy`.
    pub policies: HashMap<String, TlsPolicy>,
    pub default_policy: TlsPolicy,
    /// Certificates trusted for `verify` besides the system's roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Whether MTA-STS policies are discovered for domains without a
    /// configured policy.
    pub mta_sts: bool,
    /// The HTTPS port MTA-STS policies are fetched from (443; tests only).
    pub mta_sts_port: u16,
    /// Whether TLSA records are looked up (DANE) for domains without a
    /// configured policy.
    pub dane: bool,
    /// DNSSEC trust anchors (DNSKEY records, zone-file text); `None`: the
    /// root zone's, built in.
    pub trust_anchors: Option<String>,
    /// Whether each session's TLS outcome is noted for TLS-RPT reports.
    pub tls_reports: bool,
}

/// The resolver and the TLS settings for direct delivery.
pub struct Mx {
    resolver: TokioResolver,
    settings: MxSettings,
    verifying: Arc<rustls::ClientConfig>,
    mta_sts: Option<MtaSts>,
    /// Validates DNSSEC, for TLSA lookups.
    validating: Option<TokioResolver>,
    /// The DANE verifier last built for each host and its records: the same
    /// records give the same configuration, so pooled connections are reused.
    dane: std::sync::Mutex<HashMap<String, (Vec<Tlsa>, Arc<rustls::ClientConfig>)>>,
}

impl std::fmt::Debug for Mx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mx")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Mx {
    /// # Errors
    /// When the system's resolver configuration cannot be read.
    pub fn new(settings: MxSettings) -> Result<Self, String> {
        let resolver = Self::resolver(&settings, false)?;
        let validating = if settings.dane {
            Some(Self::resolver(&settings, true)?)
        } else {
            None
        };
        let verifying = super::tls::verifying_config(&settings.extra_roots);
        let mta_sts = if settings.mta_sts {
            Some(MtaSts::new(resolver.clone(), &verifying, settings.mta_sts_port)?)
        } else {
            None
        };
        Ok(Self {
            resolver,
            settings,
            verifying,
            mta_sts,
            validating,
            dane: std::sync::Mutex::new(HashMap::new()),
        })
    }

    fn resolver(settings: &MxSettings, validate: bool) -> Result<TokioResolver, String> {
        let mut builder = if settings.dns_servers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?
        } else {
            let servers = settings
                .dns_servers
                .iter()
                .map(|server| {
                    let (mut udp, mut tcp) = (ConnectionConfig::udp(), ConnectionConfig::tcp());
                    udp.port = server.port();
                    tcp.port = server.port();
                    NameServerConfig::new(server.ip(), true, vec![udp, tcp])
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), servers),
                TokioRuntimeProvider::default(),
            )
        };
        builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        if validate {
            builder.options_mut().validate = true;
            if let Some(anchors) = &settings.trust_anchors {
                let anchors: hickory_resolver::proto::dnssec::TrustAnchors =
                    anchors.parse().map_err(|e| format!("DNSSEC trust anchors: {e}"))?;
                builder = builder.with_trust_anchor(Arc::new(anchors));
            }
        }
        builder.build().map_err(|e| format!("cannot set up DNS: {e}"))
    }

    /// The usable TLSA records of an MX host, when DNSSEC proves them
    /// (`None`: no DANE for this host). A lookup that fails otherwise than
    /// "no such records" is a temporary failure: it may be an attack that
    /// strips the records (RFC 7672 §2.2).
    pub(super) async fn tlsa(&self, host: &str) -> Result<Option<Vec<Tlsa>>, Failure> {
        let Some(resolver) = &self.validating else {
            return Ok(None);
        };
        let name = format!("_{}._tcp.{}.", self.settings.port, host.trim_end_matches('.'));
        match resolver.tlsa_lookup(name.as_str()).await {
            Ok(lookup) => {
                let answers = lookup.answers();
                let tlsa_records = answers.iter().filter(|r| matches!(r.data, RData::TLSA(_)));
                match proven(tlsa_records.map(|record| record.proof)) {
                    Proven::Secure => {}
                    Proven::Insecure => return Ok(None),
                    Proven::Failed => {
                        return Err(Failure::Temporary(
                            "DNSSEC-bogus TLSA answer: 451 4.7.5 the TLSA records failed validation".into(),
                        ));
                    }
                }
                let records: Vec<Tlsa> = answers
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::TLSA(tlsa) => Tlsa {
                            usage: tlsa.cert_usage.into(),
                            selector: tlsa.selector.into(),
                            matching: tlsa.matching.into(),
                            data: tlsa.cert_data.clone(),
                        }
                        .usable(),
                        _ => None,
                    })
                    .collect();
                Ok((!records.is_empty()).then_some(records))
            }
            Err(error) if error.is_no_records_found() => Ok(None),
            Err(error) => Err(Failure::Temporary(format!("TLSA lookup failed: 451 4.7.5 {error}"))),
        }
    }

    /// The `mailto:` addresses TLS-RPT reports about `domain` go to (its
    /// `_smtp._tls` TXT record, RFC 8460 §3); `Ok(None)` when it publishes none.
    ///
    /// # Errors
    /// When DNS fails otherwise than "no such record".
    pub async fn tls_report_addresses(&self, domain: &str) -> Result<Option<Vec<String>>, String> {
        let name = format!("_smtp._tls.{}.", domain.trim_end_matches('.'));
        match self.resolver.txt_lookup(name.as_str()).await {
            Ok(lookup) => Ok(lookup.answers().iter().find_map(|record| match &record.data {
                RData::TXT(txt) => {
                    let text: String = txt.txt_data.iter().map(|part| String::from_utf8_lossy(part)).collect();
                    crate::tlsrpt::mailto_rua(&text)
                }
                _ => None,
            })),
            Err(error) if error.is_no_records_found() || error.is_nx_domain() => Ok(None),
            Err(error) => Err(format!("DNS lookup of {name} failed: {error}")),
        }
    }

    /// The TLS policy for a recipient domain, and the MTA-STS policy that
    /// limits its MX hosts (only when it is in force: `enforce`, and no policy
    /// configured for the domain).
    pub async fn policy(&self, domain: &str, now: i64) -> (TlsPolicy, Option<Policy>) {
        if let Some(policy) = self.configured(domain) {
            return (policy, None);
        }
        if let Some(mta_sts) = &self.mta_sts
            && let Some(policy) = mta_sts.policy(domain, now).await
            && policy.mode == Mode::Enforce
        {
            return (TlsPolicy::Verify, Some(policy));
        }
        (self.settings.default_policy, None)
    }

    pub(super) fn configured(&self, domain: &str) -> Option<TlsPolicy> {
        self.settings.policies.get(&domain.to_ascii_lowercase()).copied()
    }

    pub(super) fn dane_config(&self, host: &str, records: Vec<Tlsa>) -> Arc<rustls::ClientConfig> {
        let mut cache = self.dane.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((known, config)) = cache.get(host)
            && *known == records
        {
            return Arc::clone(config);
        }
        let config = DaneVerifier::new(records.clone()).client_config();
        cache.insert(host.to_owned(), (records, Arc::clone(&config)));
        config
    }

    /// Whether DANE is on (`outbound.dane`: a validating resolver exists).
    pub(super) fn dane_enabled(&self) -> bool {
        self.validating.is_some()
    }

    /// The hosts to try for `domain`, most preferred first, and whether DANE
    /// may apply to them. With `dane`, the MX answer comes from the validating
    /// resolver (RFC 7672 §2.2.1): a secure answer lets DANE apply; an
    /// insecure one (an unsigned zone) does not — its host names could be
    /// anyone's, so their TLSA records prove nothing — and the domain gets its
    /// ordinary policy; an answer that fails validation (bogus, or
    /// indeterminate under a trust anchor) is a temporary failure. A domain
    /// without MX records is its own host, named by the recipient rather than
    /// by DNS, so DANE may apply to it.
    pub(super) async fn hosts(&self, domain: &str, dane: bool) -> Result<(Vec<String>, bool), Failure> {
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let resolver = match &self.validating {
            Some(validating) if dane => validating,
            _ => &self.resolver,
        };
        match resolver.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => {
                let records = || lookup.answers().iter().filter(|r| matches!(r.data, RData::MX(_)));
                let secure = match proven(records().map(|record| record.proof)) {
                    _ if !dane => false,
                    Proven::Secure => true,
                    Proven::Insecure => false,
                    Proven::Failed => {
                        return Err(Failure::Temporary(
                            "DNSSEC-bogus MX answer: 451 4.7.5 the MX records failed validation".into(),
                        ));
                    }
                };
                let mut exchangers: Vec<(u16, String)> = records()
                    .filter_map(|record| match &record.data {
                        RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                        _ => None,
                    })
                    .collect();
                if exchangers.len() == 1 && exchangers[0].1 == "." {
                    return Err(Failure::Permanent(
                        "550 5.1.10 the recipient's domain accepts no mail (null MX)".into(),
                    ));
                }
                if exchangers.is_empty() {
                    return Ok((vec![fqdn], dane));
                }
                exchangers.sort_by_key(|(preference, _)| *preference);
                Ok((exchangers.into_iter().map(|(_, host)| host).collect(), secure))
            }
            Err(error) if error.is_nx_domain() => Err(Failure::Permanent(
                "550 5.1.2 the recipient's domain does not exist".into(),
            )),
            // No MX: the domain itself is the host (RFC 5321 §5.1).
            Err(error) if error.is_no_records_found() => Ok((vec![fqdn], dane)),
            Err(error) => Err(Failure::Temporary(format!("MX lookup failed: 451 4.4.3 {error}"))),
        }
    }

    pub(super) async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, Failure> {
        match self.resolver.lookup_ip(host).await {
            Ok(lookup) if lookup.iter().next().is_some() => Ok(lookup.iter().collect()),
            Ok(_) => Err(Failure::Temporary("451 4.4.4 an MX host has no address".into())),
            Err(error) => Err(Failure::Temporary(format!(
                "451 4.4.4 cannot resolve an MX host: {error}"
            ))),
        }
    }

    /// The peer for one MX host under `policy`.
    pub(super) fn peer(&self, host: &str, addresses: Vec<IpAddr>, policy: TlsPolicy) -> Smarthost {
        Smarthost {
            host: host.trim_end_matches('.').to_ascii_lowercase(),
            port: self.settings.port,
            tls: match policy {
                TlsPolicy::None => SmarthostTls::None,
                TlsPolicy::Opportunistic => SmarthostTls::Opportunistic,
                TlsPolicy::Verify => SmarthostTls::StartTls,
            },
            username: None,
            password: None,
            accept_invalid_certs: policy != TlsPolicy::Verify,
            connect_to: addresses,
            tls_config: (policy == TlsPolicy::Verify).then(|| Arc::clone(&self.verifying)),
        }
    }

    /// Sends one message to one recipient at its domain's MX hosts: the first
    /// host that answers decides, unless its answer is temporary (then the
    /// next host is tried, and the last temporary failure is the result).
    pub(super) async fn send<F, Fut>(
        &self,
        pool: &Pool,
        now: i64,
        helo: &str,
        from: &str,
        to: &str,
        sessions: &mut Vec<TlsSession>,
        mut open_body: F,
    ) -> Result<(), Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Body, Failure>>,
    {
        let domain = to
            .rsplit_once('@')
            .map(|(_, domain)| domain)
            .filter(|domain| !domain.is_empty())
            .ok_or_else(|| Failure::Permanent("553 5.1.3 the recipient has no domain".into()))?;
        let (policy, sts) = self.policy(domain, now).await;
        let mut last = Failure::Temporary("451 4.4.4 no MX host could be reached".into());
        // DANE applies where no policy is configured for the domain, and only
        // to MX hosts a DNSSEC-validated answer named.
        let dane = self.validating.is_some() && self.configured(domain).is_none();
        let (hosts, dane) = self.hosts(domain, dane).await?;
        if self.validating.is_some() && !dane {
            tracing::debug!("MX answer not DNSSEC-validated (or a policy is configured): no DANE");
        }
        for host in hosts {
            if let Some(sts) = &sts
                && !sts.allows(&host)
            {
                last = Failure::Temporary("451 4.7.5 MX host not allowed by the domain's MTA-STS policy".into());
                continue;
            }
            let addresses = match self.addresses(&host).await {
                Ok(addresses) => addresses,
                Err(failure) => {
                    last = failure;
                    continue;
                }
            };
            let tlsa = if !dane {
                None
            } else {
                match self.tlsa(&host).await {
                    Ok(tlsa) => tlsa,
                    Err(failure) => {
                        self.note(
                            sessions,
                            domain,
                            ("tlsa", String::new()),
                            &host,
                            Some(result::DNSSEC_INVALID),
                        );
                        last = failure;
                        continue;
                    }
                }
            };
            let in_force = match (&tlsa, &sts) {
                (Some(records), _) => (
                    "tlsa",
                    records.iter().map(Tlsa::to_string).collect::<Vec<_>>().join("\n"),
                ),
                (None, Some(sts)) => ("sts", sts.text()),
                (None, None) => ("no-policy-found", String::new()),
            };
            let dane_host = tlsa.is_some();
            let mut peer = self.peer(&host, addresses, policy);
            if let Some(records) = tlsa {
                peer.tls = SmarthostTls::StartTls;
                peer.accept_invalid_certs = false;
                peer.tls_config = Some(self.dane_config(&host, records));
            }
            match pool.send(&peer, helo, from, to, &mut open_body).await {
                Ok(()) => {
                    self.note(sessions, domain, in_force, &host, None);
                    tracing::debug!(
                        ?policy,
                        mta_sts = sts.is_some(),
                        dane = dane_host,
                        "delivered to an MX host"
                    );
                    return Ok(());
                }
                Err(Failure::Permanent(error)) => return Err(Failure::Permanent(error)),
                Err(failure) => {
                    if let Failure::Temporary(text) = &failure
                        && let Some(kind) = crate::tlsrpt::result_of(text, dane_host)
                    {
                        self.note(sessions, domain, in_force.clone(), &host, Some(kind));
                    }
                    last = failure;
                }
            }
        }
        Err(last)
    }

    /// Notes one session's TLS outcome for TLS-RPT (when reports are on):
    /// `failure` is its RFC 8460 result type, `None` a success.
    fn note(
        &self,
        sessions: &mut Vec<TlsSession>,
        domain: &str,
        (policy_type, policy_string): (&str, String),
        host: &str,
        failure: Option<&str>,
    ) {
        if !self.settings.tls_reports {
            return;
        }
        sessions.push(TlsSession {
            policy_domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            policy_type: policy_type.to_owned(),
            policy_string,
            mx_host: failure.map_or_else(String::new, |_| host.trim_end_matches('.').to_ascii_lowercase()),
            result_type: failure.unwrap_or_default().to_owned(),
        });
    }
}
