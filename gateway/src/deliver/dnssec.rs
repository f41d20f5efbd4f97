//! What DNSSEC proved of an answer (RFC 4035 §4.3), its records taken
//! together: direct delivery uses it for MX and TLSA answers under DANE.

use hickory_resolver::proto::dnssec::Proof;

/// What DNSSEC proved of an answer's records, taken together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Proven {
    /// Every record is secure.
    Secure,
    /// Proven unsigned (an insecure zone), or no records.
    Insecure,
    /// A record is bogus, or could not be decided under the trust anchor.
    Failed,
}

pub(super) fn proven(proofs: impl Iterator<Item = Proof>) -> Proven {
    let mut all = Proven::Insecure;
    let mut first = true;
    for proof in proofs {
        if proof.is_bogus() || proof.is_indeterminate() {
            return Proven::Failed;
        }
        if first {
            all = if proof.is_secure() {
                Proven::Secure
            } else {
                Proven::Insecure
            };
            first = false;
        } else if !proof.is_secure() {
            all = Proven::Insecure;
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::{Proof, Proven, proven};

    #[test]
    fn an_answer_is_secure_only_when_every_record_is() {
        use Proof::{Bogus, Indeterminate, Insecure, Secure};
        assert_eq!(proven([Secure, Secure].into_iter()), Proven::Secure);
        assert_eq!(proven([Secure, Insecure].into_iter()), Proven::Insecure);
        assert_eq!(proven([Insecure].into_iter()), Proven::Insecure);
        assert_eq!(proven([].into_iter()), Proven::Insecure);
        assert_eq!(proven([Secure, Bogus].into_iter()), Proven::Failed);
        assert_eq!(proven([Indeterminate].into_iter()), Proven::Failed);
    }
}
