//! `outbound.direct_*`: best-method delivery — partner domains whose
//! recipients may get a secure message itself over verified TLS instead of a
//! notification, when the sending practice's User Manager allows it
//! (`gateway::best_method`, `docs/delivery.md`).

use super::OutboundMode;
use super::listeners::parse_size;
use super::outbound::Outbound;

impl Outbound {
    /// Partner domains must be domain names, and need `mx` mode (only then
    /// does Sealpost connect to partners itself and can verify their TLS).
    pub(super) fn check_direct(&self, problems: &mut Vec<String>) {
        for domain in &self.direct_domains {
            let name = domain.trim().trim_end_matches('.');
            if name.is_empty()
                || !name.contains('.')
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                problems.push(format!("outbound.direct_domains: {domain:?} is not a mail domain"));
            }
        }
        if !self.direct_domains.is_empty() && self.mode != OutboundMode::Mx {
            problems.push(format!(
                "outbound.direct_domains needs outbound.mode = \"mx\" (it is {:?}): only then does Sealpost \
                 reach partners itself and verify their TLS",
                self.mode.to_string()
            ));
        }
        if let Err(e) = parse_size(&self.direct_max_size) {
            problems.push(format!("outbound.direct_max_size: {e}"));
        }
        if self.direct_retry_for > 86_400 {
            problems.push("outbound.direct_retry_for must be at most 86400 seconds (a day)".into());
        }
    }

    /// Direct delivery as the gateway uses it; `None` without partner domains
    /// (or outside `mx` mode): every secure message then goes the portal way.
    #[must_use]
    pub fn direct_policy(&self) -> Option<gateway::best_method::DirectPolicy> {
        (self.mode == OutboundMode::Mx && !self.direct_domains.is_empty()).then(|| {
            gateway::best_method::DirectPolicy::new(
                self.direct_domains.iter().cloned(),
                parse_size(&self.direct_max_size).unwrap_or(10_000_000),
                i64::try_from(self.direct_retry_for).unwrap_or(900),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, OutboundMode};

    #[test]
    fn partner_domains_need_mx_mode_and_must_be_domains() {
        let mut config = Config::default();
        config.outbound.direct_domains = vec!["partner.example".into(), "not a domain".into()];
        config.outbound.direct_max_size = "lots".into();
        let problems = config.validate().unwrap_err().join("\n");
        assert!(problems.contains("\"not a domain\" is not a mail domain"), "{problems}");
        assert!(
            problems.contains("outbound.direct_domains needs outbound.mode = \"mx\""),
            "{problems}"
        );
        assert!(problems.contains("outbound.direct_max_size"), "{problems}");
        assert!(config.outbound.direct_policy().is_none(), "never outside mx mode");

        config.outbound.mode = OutboundMode::Mx;
        config.outbound.direct_domains = vec!["Partner.Example".into()];
        config.outbound.direct_max_size = "2MB".into();
        config.validate().unwrap();
        let policy = config.outbound.direct_policy().unwrap();
        assert!(policy.is_partner("dr@partner.example"));
        assert_eq!(policy.max_size, 2_000_000);
        config.outbound.direct_domains.clear();
        assert!(config.outbound.direct_policy().is_none(), "off without partners");
    }
}
