//! Small secrets at rest (an authenticator app's key, a queued text carrying a
//! code): each sealed under its own data key, wrapped by the active KEK.

use crate::crypto::{DataKey, WrappedKey, open_all, seal_all};
use crate::{Error, Result, Store};

impl Store {
    /// Seals a small value (a TOTP secret, a queued text) under a fresh data key
    /// wrapped by the active KEK: `kek id length, kek id, wrapped key, sealed`.
    pub(crate) fn seal_value(&self, plain: &[u8]) -> Vec<u8> {
        let key = DataKey::generate();
        let wrapped = self.keys.wrap(&key);
        let id = wrapped.kek_id.as_bytes();
        let mut out = vec![u8::try_from(id.len()).unwrap_or(u8::MAX)];
        out.extend_from_slice(id);
        out.extend_from_slice(&u16::try_from(wrapped.wrapped.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&wrapped.wrapped);
        out.extend_from_slice(&seal_all(&key, 0, plain));
        out
    }

    /// Opens what [`Store::seal_value`] sealed.
    pub(crate) fn open_value(&self, sealed: &[u8]) -> Result<Vec<u8>> {
        let (&id_len, rest) = sealed.split_first().ok_or(Error::Crypto)?;
        let (id, rest) = rest.split_at_checked(usize::from(id_len)).ok_or(Error::Crypto)?;
        let (len, rest) = rest.split_at_checked(2).ok_or(Error::Crypto)?;
        let (wrapped, sealed) = rest
            .split_at_checked(usize::from(u16::from_be_bytes([len[0], len[1]])))
            .ok_or(Error::Crypto)?;
        let key = self.keys.unwrap(&WrappedKey {
            kek_id: String::from_utf8_lossy(id).into_owned(),
            wrapped: wrapped.to_vec(),
        })?;
        open_all(&key, 0, sealed)
    }
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
