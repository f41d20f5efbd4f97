//! Certificates from an ACME CA (RFC 8555), e.g. Let's Encrypt: an account whose
//! key is kept in `<data_dir>/acme/account.json`, orders for `tls.acme_domains`
//! proved with HTTP-01 challenges (§8.3, answered by [`http01`]), and the issued
//! pair in `<data_dir>/acme/cert.pem` and `key.pem` (mode 0600). [`renew`] issues
//! the first certificate and a new one before each expires, and hands it to the
//! shared [`Certificates`] so new handshakes use it without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use serde::{Deserialize, Serialize};
use store::Clock;

use super::{CertInfo, Certificates};
use crate::config::Config;

pub mod http01;
pub mod renew;

pub use http01::Challenges;

/// How long the CA may take to validate, and then to issue.
const CA_PATIENCE: Duration = Duration::from_mins(2);

/// The account as saved: credentials (with the private key) and the directory they
/// belong to, so a changed `tls.acme_directory` makes a new account.
#[derive(Serialize, Deserialize)]
struct SavedAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// An ACME client for this server's certificate.
pub struct Acme {
    domains: Vec<String>,
    directory: String,
    contact: Vec<String>,
    /// Trust this CA (PEM) for the ACME server's HTTPS instead of the system roots.
    server_ca: Option<PathBuf>,
    dir: PathBuf,
    renew_before: i64,
    challenges: Arc<Challenges>,
    certificates: Arc<Certificates>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("domains", &self.domains)
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

/// The issued certificate chain and its key under `dir`.
pub fn files(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("cert.pem"), dir.join("key.pem"))
}

impl Acme {
    pub fn new(config: &Config, certificates: Arc<Certificates>, clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Self {
            domains: config.tls.acme_domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            directory: config.tls.acme_directory.clone(),
            contact: config.tls.acme_contact.clone(),
            server_ca: config.tls.acme_ca.clone(),
            dir: config.acme_dir(),
            renew_before: i64::from(config.tls.acme_renew_days) * 86_400,
            challenges: Arc::new(Challenges::default()),
            certificates,
            clock,
        })
    }

    /// The tokens the HTTP-01 responder answers for.
    pub fn challenges(&self) -> Arc<Challenges> {
        Arc::clone(&self.challenges)
    }

    /// The issued certificate on disk, if any.
    pub fn issued(&self) -> Option<CertInfo> {
        let (cert, key) = files(&self.dir);
        let (chain, _) = super::load(&cert, &key).ok()?;
        CertInfo::of(&chain[0])
    }

    /// When a new certificate is needed (Unix seconds): at once when none was
    /// issued or it names other domains than configured.
    pub fn due_at(&self) -> i64 {
        match self.issued() {
            Some(info) if info.names_exactly(&self.domains) => info.renew_at(self.renew_before),
            _ => i64::MIN,
        }
    }

    /// Whether a new certificate is needed now.
    pub fn due(&self) -> bool {
        self.clock.now() >= self.due_at()
    }

    fn builder(&self) -> anyhow::Result<instant_acme::AccountBuilder> {
        Ok(match &self.server_ca {
            Some(path) => {
                Account::builder_with_root(path).with_context(|| format!("tls.acme_ca {}", path.display()))?
            }
            None => Account::builder().context("the system's trusted roots")?,
        })
    }

    /// Loads the saved account, or registers a new one and saves it (0600).
    async fn account(&self) -> anyhow::Result<Account> {
        let path = self.dir.join("account.json");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let saved: SavedAccount =
                serde_json::from_str(&text).with_context(|| format!("{} is not an ACME account", path.display()))?;
            if saved.directory == self.directory {
                return self
                    .builder()?
                    .from_credentials(saved.credentials)
                    .await
                    .context("the ACME directory");
            }
            tracing::info!(directory = %self.directory, "tls.acme_directory changed: registering a new ACME account");
        }
        let contact: Vec<&str> = self.contact.iter().map(String::as_str).collect();
        let (account, credentials) = self
            .builder()?
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.directory.clone(),
                None,
            )
            .await
            .context("registering an ACME account")?;
        let saved = SavedAccount {
            directory: self.directory.clone(),
            credentials,
        };
        create_private_dir(&self.dir)?;
        super::write_private(&path, serde_json::to_string(&saved)?.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        tracing::info!(directory = %self.directory, "registered an ACME account");
        Ok(account)
    }

    /// Orders a certificate for the configured domains, answers the HTTP-01
    /// challenges, saves the issued pair and serves it.
    pub async fn issue(&self) -> anyhow::Result<CertInfo> {
        let account = self.account().await?;
        let identifiers: Vec<Identifier> = self.domains.iter().cloned().map(Identifier::Dns).collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .context("placing an ACME order")?;
        let mut tokens = Vec::new();
        let result = self.prove(&mut order, &mut tokens).await;
        self.challenges.remove(&tokens);
        let status = result?;
        if status != OrderStatus::Ready {
            let reason = order
                .state()
                .error
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            anyhow::bail!("the CA did not validate the domains ({status:?}) {reason}");
        }
        let key_pem = order.finalize().await.context("finalizing the ACME order")?;
        let chain_pem = order
            .poll_certificate(&RetryPolicy::new().timeout(CA_PATIENCE))
            .await
            .context("downloading the certificate")?;
        self.save_and_serve(&chain_pem, &key_pem)
    }

    /// Answers every pending authorization with HTTP-01 and waits for the order.
    async fn prove(&self, order: &mut instant_acme::Order, tokens: &mut Vec<String>) -> anyhow::Result<OrderStatus> {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.context("reading an ACME authorization")?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => anyhow::bail!("an ACME authorization is {other:?}"),
            }
            let mut challenge = authorization
                .challenge(ChallengeType::Http01)
                .context("the CA offers no http-01 challenge")?;
            self.challenges.insert(
                challenge.token.clone(),
                challenge.key_authorization().as_str().to_owned(),
            );
            tokens.push(challenge.token.clone());
            challenge.set_ready().await.context("answering an http-01 challenge")?;
        }
        order
            .poll_ready(&RetryPolicy::new().timeout(CA_PATIENCE))
            .await
            .context("waiting for the CA to validate")
    }

    /// Writes the pair (key 0600, each file replaced whole), then serves it.
    fn save_and_serve(&self, chain_pem: &str, key_pem: &str) -> anyhow::Result<CertInfo> {
        create_private_dir(&self.dir)?;
        let (cert, key) = files(&self.dir);
        let (cert_new, key_new) = (cert.with_extension("pem.new"), key.with_extension("pem.new"));
        super::write_private(&key_new, key_pem.as_bytes()).with_context(|| format!("writing {}", key_new.display()))?;
        std::fs::write(&cert_new, chain_pem).with_context(|| format!("writing {}", cert_new.display()))?;
        // Check the pair before it replaces a working one.
        Certificates::from_files(&cert_new, &key_new).context("the issued certificate")?;
        std::fs::rename(&key_new, &key)?;
        std::fs::rename(&cert_new, &cert)?;
        self.certificates.use_files(&cert, &key)?;
        let info = self
            .certificates
            .serving()
            .context("the issued certificate does not parse")?;
        tracing::info!(serial = %info.serial, not_after = info.not_after, domains = ?self.domains, "ACME certificate issued and in use");
        Ok(info)
    }
}

/// Creates `dir` readable by the owner only.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}
