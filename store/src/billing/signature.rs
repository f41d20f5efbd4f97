//! Stripe's webhook signature (`Stripe-Signature: t=…,v1=…`): an HMAC-SHA256
//! under the endpoint's secret over `"{t}.{body}"`, hex-encoded; any `v1` may
//! match (several during a secret's rollover), and `t` must be within the
//! tolerance of now, so an old delivery can't be replayed later.

use aws_lc_rs::{constant_time, hmac};

/// Why a webhook's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// No `t=` or no `v1=` in the header.
    Malformed,
    /// No `v1` signature matches.
    Mismatch,
    /// The signed time is outside the tolerance.
    TooOld,
}

/// The hex `v1` signature of `body` signed at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    hex::encode(context.sign().as_ref())
}

/// Checks a `Stripe-Signature` header for `body` at `now`.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance: i64) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return Err(SignatureError::Malformed);
    };
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let expected = sign(secret, timestamp, body);
    let matches = signatures
        .iter()
        .any(|given| constant_time::verify_slices_are_equal(given.as_bytes(), expected.as_bytes()).is_ok());
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    if (now - timestamp).abs() > tolerance {
        return Err(SignatureError::TooOld);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_secret_and_time() {
        let body = br#"{"id":"evt_1"}"#;
        let good = format!("t=1000,v1={}", sign("whsec_a", 1000, body));
        assert_eq!(verify("whsec_a", &good, body, 1100, 300), Ok(()));
        // A rolled-over secret: any v1 may match.
        let two = format!(
            "t=1000,v1={},v1={}",
            sign("whsec_old", 1000, body),
            sign("whsec_a", 1000, body)
        );
        assert_eq!(verify("whsec_a", &two, body, 1000, 300), Ok(()));
        assert_eq!(verify("whsec_b", &good, body, 1100, 300), Err(SignatureError::Mismatch));
        assert_eq!(
            verify("whsec_a", &good, br#"{"id":"evt_2"}"#, 1100, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify("whsec_a", &good, body, 1301, 300), Err(SignatureError::TooOld));
        // The time is signed: changing it breaks the signature.
        let moved = good.replace("t=1000", "t=1300");
        assert_eq!(
            verify("whsec_a", &moved, body, 1300, 300),
            Err(SignatureError::Mismatch)
        );
        for bad in ["", "v1=abc", "t=1000", "t=x,v1=abc", "garbage"] {
            assert!(verify("whsec_a", bad, body, 1000, 300).is_err(), "{bad}");
        }
    }
}
