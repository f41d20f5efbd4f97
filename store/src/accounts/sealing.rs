//! Small secrets at rest (an authenticator app's key, a queued text carrying a
//! code): each sealed under its own data key, wrapped by the active KEK.

use crate::crypto::{DataKey, WrappedKey, open_all, seal_all};
use crate::{Error, Result, Store};

impl Store {
    /// Seals a small value (a TOTP secret, a queued text) under a fresh data key
    /// wrapped by the active KEK: `kek id length, kek id, wrapped key, sealed`.
    pub(crate) fn seal_value(&self, plain: &[u8]) -> Vec<u8> {
        let key = DataKey::generate();
        join_value(&self.keys.wrap(&key), &seal_all(&key, 0, plain))
    }

    /// Opens what [`Store::seal_value`] sealed.
    pub(crate) fn open_value(&self, sealed: &[u8]) -> Result<Vec<u8>> {
        let (wrapped, sealed) = split_value(sealed)?;
        let key = self.keys.unwrap(&wrapped)?;
        open_all(&key, 0, sealed)
    }

    /// The KEK a sealed value's key is wrapped by (for `sealpost keys list`).
    pub(crate) fn value_kek(sealed: &[u8]) -> Option<String> {
        split_value(sealed).ok().map(|(wrapped, _)| wrapped.kek_id)
    }

    /// The same value with its key rewrapped by the active KEK (key rotation);
    /// the sealed part is kept as it is.
    pub(crate) fn rewrap_value(&self, sealed: &[u8]) -> Result<Vec<u8>> {
        let (wrapped, sealed) = split_value(sealed)?;
        Ok(join_value(&self.keys.rewrap(&wrapped)?, sealed))
    }
}

/// A sealed value's bytes: `kek id length, kek id, wrapped key length, wrapped
/// key, sealed`.
fn join_value(wrapped: &WrappedKey, sealed: &[u8]) -> Vec<u8> {
    let id = wrapped.kek_id.as_bytes();
    let mut out = vec![u8::try_from(id.len()).unwrap_or(u8::MAX)];
    out.extend_from_slice(id);
    out.extend_from_slice(&u16::try_from(wrapped.wrapped.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&wrapped.wrapped);
    out.extend_from_slice(sealed);
    out
}

/// The wrapped key and the sealed part of a sealed value (key rotation rewraps
/// the one and keeps the other).
fn split_value(sealed: &[u8]) -> Result<(WrappedKey, &[u8])> {
    let (&id_len, rest) = sealed.split_first().ok_or(Error::Crypto)?;
    let (id, rest) = rest.split_at_checked(usize::from(id_len)).ok_or(Error::Crypto)?;
    let (len, rest) = rest.split_at_checked(2).ok_or(Error::Crypto)?;
    let (wrapped, sealed) = rest
        .split_at_checked(usize::from(u16::from_be_bytes([len[0], len[1]])))
        .ok_or(Error::Crypto)?;
    let wrapped = WrappedKey {
        kek_id: String::from_utf8_lossy(id).into_owned(),
        wrapped: wrapped.to_vec(),
    };
    Ok((wrapped, sealed))
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn small_values_round_trip_and_tampering_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::Store::open(
            crate::StoreConfig {
                database_url: format!("sqlite://{}", dir.path().join("db.sqlite").display()),
                blobs_url: format!("file://{}", dir.path().join("blobs").display()),
                data_dir: dir.path().join("data"),
                policy: crate::Policy::default(),
            },
            std::sync::Arc::new(crate::SystemClock),
        )
        .await
        .unwrap();
        let sealed = store.seal_value(b"JBSWY3DPEHPK3PXP");
        assert!(!sealed.windows(16).any(|w| w == b"JBSWY3DPEHPK3PXP"));
        assert_eq!(store.open_value(&sealed).unwrap(), b"JBSWY3DPEHPK3PXP");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(store.open_value(&bad).is_err());
        assert!(store.open_value(&sealed[..5]).is_err());
    }
}
