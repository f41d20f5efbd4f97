//! The certificate every TLS listener serves, swappable while running: the portal,
//! SMTP and IMAP configurations all hold this one resolver, so a certificate
//! reloaded from disk (file watch, SIGHUP) or issued by ACME is used by the next
//! handshake on each of them. A reload that fails keeps the certificate in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::Notify;

use super::CertInfo;

/// What identifies a version of the files: modification times and sizes.
type Stamp = [(Option<SystemTime>, u64); 2];

/// Where the certificate comes from, and which version of the files is loaded.
#[derive(Debug)]
struct Source {
    cert: PathBuf,
    key: PathBuf,
    stamp: Stamp,
}

/// The certificate in use.
struct Loaded {
    key: Arc<CertifiedKey>,
    info: Option<CertInfo>,
}

/// The shared, reloadable certificate (a rustls [`ResolvesServerCert`]).
pub struct Certificates {
    loaded: RwLock<Loaded>,
    source: Mutex<Source>,
    /// Wakes the ACME renewal task to look again (SIGHUP, tests).
    renewal: Notify,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("serving", &self.serving())
            .finish_non_exhaustive()
    }
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    [cert, key].map(|path| match std::fs::metadata(path) {
        Ok(meta) => (meta.modified().ok(), meta.len()),
        Err(_) => (None, 0),
    })
}

/// Reads and checks a pair: the key must belong to the first certificate.
fn read_pair(cert: &Path, key: &Path) -> anyhow::Result<Loaded> {
    let (chain, private) = super::load(cert, key)?;
    let info = CertInfo::of(&chain[0]);
    let key = CertifiedKey::from_der(chain, private, &super::provider())
        .with_context(|| format!("{} and {} do not make a usable pair", cert.display(), key.display()))?;
    Ok(Loaded {
        key: Arc::new(key),
        info,
    })
}

impl Certificates {
    /// Loads the PEM pair at `cert` and `key`.
    pub fn from_files(cert: &Path, key: &Path) -> anyhow::Result<Arc<Self>> {
        let stamp = stamp(cert, key);
        let loaded = read_pair(cert, key)?;
        Ok(Arc::new(Self {
            loaded: RwLock::new(loaded),
            source: Mutex::new(Source {
                cert: cert.to_owned(),
                key: key.to_owned(),
                stamp,
            }),
            renewal: Notify::new(),
        }))
    }

    /// The certificate now served (`None` if it could not be parsed for display).
    pub fn serving(&self) -> Option<CertInfo> {
        self.loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .info
            .clone()
    }

    /// Serves the pair at `cert` and `key` from now on, and watches those files.
    /// On error nothing changes.
    pub fn use_files(&self, cert: &Path, key: &Path) -> anyhow::Result<()> {
        let stamp = stamp(cert, key);
        let loaded = read_pair(cert, key)?;
        let mut source = self.source.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *source = Source {
            cert: cert.to_owned(),
            key: key.to_owned(),
            stamp,
        };
        *self.loaded.write().unwrap_or_else(std::sync::PoisonError::into_inner) = loaded;
        Ok(())
    }

    /// Reads the files again (SIGHUP). On error the certificate in use stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let (cert, key) = {
            let source = self.source.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (source.cert.clone(), source.key.clone())
        };
        self.use_files(&cert, &key)?;
        if let Some(info) = self.serving() {
            tracing::info!(serial = %info.serial, not_after = info.not_after, "TLS certificate reloaded");
        }
        Ok(())
    }

    /// Reloads when the files changed since they were read; `true` if it did.
    pub fn reload_if_changed(&self) -> anyhow::Result<bool> {
        let changed = {
            let source = self.source.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            stamp(&source.cert, &source.key) != source.stamp
        };
        if changed {
            self.reload()?;
        }
        Ok(changed)
    }

    /// Looks at the files every `every` and reloads them when they change. A pair
    /// caught half-written fails its check and is tried again on the next look.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            ticker.tick().await;
            match self.reload_if_changed() {
                Ok(_) => failing = false,
                Err(error) if !failing => {
                    failing = true;
                    tracing::error!(error = %format!("{error:#}"), "the changed TLS certificate files are not usable; still serving the previous certificate");
                    // Look again next time even though the stamp was not recorded.
                }
                Err(_) => {}
            }
        }
    }

    /// Asks the ACME renewal task (if any) to check the certificate now.
    pub fn nudge_renewal(&self) {
        self.renewal.notify_one();
    }

    /// Waits for [`Self::nudge_renewal`].
    pub(crate) async fn renewal_nudged(&self) {
        self.renewal.notified().await;
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self
                .loaded
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .key,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
        let generated = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        let serial = CertInfo::of(generated.cert.der()).unwrap().serial;
        (cert, key, serial)
    }

    #[test]
    fn reload_swaps_a_good_pair_and_keeps_the_old_one_on_a_bad_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, first) = write_pair(dir.path(), "one.example.com");
        let certs = Certificates::from_files(&cert, &key).unwrap();
        assert_eq!(certs.serving().unwrap().serial, first);
        assert!(!certs.reload_if_changed().unwrap(), "nothing changed yet");

        let (_, _, second) = write_pair(dir.path(), "two.example.com");
        certs.reload().unwrap();
        assert_eq!(certs.serving().unwrap().serial, second);
        assert_eq!(certs.serving().unwrap().dns_names, vec!["two.example.com".to_owned()]);

        // A key that does not belong to the certificate: refused, old one kept.
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&key, other.serialize_pem()).unwrap();
        assert!(certs.reload().is_err());
        std::fs::write(&cert, "not a certificate").unwrap();
        assert!(certs.reload_if_changed().is_err());
        assert_eq!(certs.serving().unwrap().serial, second);
    }
}
