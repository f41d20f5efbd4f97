//! The secure store: domain types, database, sealed blobs, envelope encryption,
//! accounts, messages and their reply threads, the mail queue and the audit log. It speaks no network
//! protocol; the gateway (SMTP) and the portal (HTTP) meet only here.
//!
//! [`Store`] opens everything and keeps what every part shares (`now`, `policy`,
//! `audit`, `close`); the rest of its surface is grouped in rooms ([`rooms`]), one
//! per domain, each made by a method and each owning the files named here:
//!
//! | room | owns | for example |
//! |---|---|---|
//! | `store.mail()` ([`Mail`]) | `messages`, `mailbox`, `threads`, `contacts`, `address_book`, `visible`, `ingest/`, `outgoing/` | `inbox`, `open_message`, `seal_spooled`, `mailbox_sync`, `send_draft`, `suggest_addresses` |
//! | `store.accounts()` ([`Accounts`]) | `accounts/{mod,manage,registration,relay_sources}.rs` | `user`, `add_practice`, `register`, `relay_sources` |
//! | `store.auth()` ([`Auth`]) | the other files of `accounts/` (sign-in, two-step, passkeys, devices, app passwords, SAML, tokens, lockout) | `begin_sign_in`, `session_user`, `verify_totp` |
//! | `store.queue()` ([`Queue`]) | `spool`, `spool_file`, `jobs`, `claims`, `outcomes`, `direct`, `accounts/sms.rs` | `accept_secure`, `claim_jobs`, `due_outbound`, `claim_sms` |
//! | `store.uploads()` ([`Uploads`]) | `uploads` | `create`, `append`, `open` (files staged for an outgoing message) |
//! | `store.audit_log()` ([`AuditLog`]) | `audit` (reading; writing is [`Store::audit`]) | `verify_audit`, `recent_audit` |
//!
//! A new method goes in the file of its room, in that file's `impl <Room><'_>`
//! block; a room reaches another as `self.queue()`. Pieces several rooms share
//! are leaves that import no other store module: [`layout`] (blob numbers, blob
//! keys, spool paths), `bundle` (a small message's pieces in one blob),
//! `sealed_stream` (reading sealed files), `spool_file` (writing
//! them), `job_kind` (adding a mail job), [`direct_copy`], [`crypto`], [`ids`], [`clock`].

pub mod accounts;
pub mod address_book;
pub mod audit;
pub mod billing;
pub mod blobs;
mod bundle;
pub mod claims;
pub mod clock;
pub mod contacts;
pub mod crypto;
pub mod db;
pub mod direct;
pub mod direct_copy;
mod error;
mod group_commit;
pub mod ids;
pub mod ingest;
mod job_kind;
pub mod jobs;
pub mod layout;
pub mod mailbox;
pub mod maintenance;
pub mod messages;
#[cfg(test)]
mod module_graph;
mod outcomes;
pub mod outgoing;
pub mod queue_admin;
pub mod redact;
pub mod rooms;
pub mod seal_attempts;
mod sealed_stream;
pub mod spool;
mod spool_file;
pub mod spool_sweep;
pub mod states;
#[cfg(test)]
mod testing;
pub mod threads;
pub mod tls_sessions;
pub mod uploads;
pub mod visible;
mod write_tx;

use std::path::PathBuf;
use std::sync::Arc;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use rooms::{Accounts, AuditLog, Auth, Billing, Mail, Maintenance, Queue, Uploads};

/// PHI (or what may be PHI) in memory. Its `Debug` prints `[sealed]` and it has no
/// `Display`, so it can't slip into a log line or an error by accident.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sealed<T>(T);

impl<T> Sealed<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The content, for an authorised view only.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Sealed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[sealed]")
    }
}

/// Lifetimes and rules the store enforces (seconds unless named otherwise).
#[derive(Debug, Clone)]
pub struct Policy {
    /// Messages self-destruct this many days after sending (a practice may
    /// set its own, `messages/lifecycle.rs`).
    pub retention_days: i64,
    /// The sender or the practice's User Manager extends or shortens a
    /// message's life by this many days at a time...
    pub extend_step_days: i64,
    /// ...and keeps it at most this many days after it was sent.
    pub max_retention_days: i64,
    pub invite_ttl: i64,
    pub set_password_ttl: i64,
    /// How long the set-password link printed by `sealpost user add` lasts.
    pub staff_setup_ttl: i64,
    /// A portal session ends after this long without a request...
    pub session_idle: i64,
    /// ...and after this long in any case.
    pub session_max: i64,
    /// The subject tag that marks a message secure, e.g. `[secure]`.
    pub subject_tag: String,
    /// Consecutive failed sign-ins that pause sign-in for an address (15 minutes,
    /// doubling with each lockout in a row; a password reset lifts it at once).
    pub max_failed_signins: i64,
    /// Failed sign-ins one client address may make per `client_failure_window`.
    pub client_failure_limit: u32,
    pub client_failure_window: i64,
    pub passwords: accounts::passwords::PasswordRules,
    pub two_step: accounts::two_step::TwoStepPolicy,
    /// Attachment types, size per message, and when staged uploads are swept.
    pub uploads: uploads::UploadRules,
    pub billing: billing::BillingSettings,
    /// The country of phone numbers written without `+` (`accounts.default_phone_country`).
    pub default_phone_country: accounts::phone_number::PhoneCountry,
    /// Seconds a claimed mail job, and a claimed delivery, stay with the node
    /// that claimed them (`claims.rs`).
    pub job_lease: i64,
    pub delivery_lease: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            retention_days: 30,
            extend_step_days: 30,
            max_retention_days: 365,
            invite_ttl: 30 * 86_400,
            set_password_ttl: 86_400,
            staff_setup_ttl: 7 * 86_400,
            session_idle: 30 * 60,
            session_max: 12 * 3600,
            subject_tag: "[secure]".into(),
            max_failed_signins: 5,
            client_failure_limit: 20,
            client_failure_window: 15 * 60,
            passwords: accounts::passwords::PasswordRules::default(),
            two_step: accounts::two_step::TwoStepPolicy::default(),
            uploads: uploads::UploadRules::default(),
            billing: billing::BillingSettings::default(),
            default_phone_country: accounts::phone_number::PhoneCountry::default(),
            job_lease: claims::JOB_LEASE,
            delivery_lease: claims::OUTBOUND_LEASE,
        }
    }
}

/// Where the store keeps things.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub database_url: String,
    pub blobs_url: String,
    /// Holds the spool and the key-encryption keys.
    pub data_dir: PathBuf,
    pub policy: Policy,
}

/// The store. Cheap to share: wrap in an `Arc`.
pub struct Store {
    pub(crate) db: sqlx::AnyPool,
    /// For writes that may be lost in a power cut without harm (`db::connect_lazy`).
    pub(crate) lazy_db: sqlx::AnyPool,
    pub(crate) dialect: db::Dialect,
    pub(crate) blobs: blobs::Blobs,
    pub(crate) keys: crypto::Keyring,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) data_dir: PathBuf,
    /// This node's name (`<data_dir>/node-id`): several nodes may share one
    /// database, each with its own spool (`claims.rs`).
    pub(crate) node: String,
    pub(crate) policy: Policy,
    audit_lock: tokio::sync::Mutex<()>,
    pub(crate) throttle: accounts::throttle::ClientThrottle,
    /// Password hashes verified so far (argon2 runs, dummy ones included).
    pub(crate) password_checks: std::sync::atomic::AtomicU64,
    jobs_added: tokio::sync::Notify,
    mail_changed: tokio::sync::watch::Sender<u64>,
    sms_added: tokio::sync::Notify,
    /// Spool rows, seals, queued mails and delivery outcomes waiting for
    /// their group commit (`group_commit.rs`).
    pub(crate) group: group_commit::GroupCommit,
    /// This process's writers, one at a time on `SQLite` (`write_tx.rs`).
    write_gate: write_tx::WriteGate,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dialect", &self.dialect)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (and migrates) the database, the blob store and the keyring.
    pub async fn open(config: StoreConfig, clock: Arc<dyn Clock>) -> Result<Arc<Self>> {
        std::fs::create_dir_all(&config.data_dir)?;
        let (db, dialect) = db::connect(&config.database_url).await?;
        db::migrate(&db, dialect).await?;
        let lazy_db = db::connect_lazy(&config.database_url, &db, dialect).await?;
        let blobs = blobs::Blobs::connect(&config.blobs_url)?;
        let keys = crypto::Keyring::load_or_create(&config.data_dir.join("keys"))?;
        let node = claims::node_id(&config.data_dir)?;
        let store = Self {
            db,
            lazy_db,
            dialect,
            blobs,
            keys,
            clock,
            data_dir: config.data_dir,
            node,
            policy: config.policy,
            audit_lock: tokio::sync::Mutex::new(()),
            throttle: accounts::throttle::ClientThrottle::default(),
            password_checks: std::sync::atomic::AtomicU64::new(0),
            jobs_added: tokio::sync::Notify::new(),
            mail_changed: tokio::sync::watch::Sender::new(0),
            sms_added: tokio::sync::Notify::new(),
            group: group_commit::GroupCommit::default(),
            write_gate: write_tx::WriteGate::default(),
        };
        Ok(Arc::new(store))
    }

    /// Now, by the store's clock (Unix seconds).
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub(crate) fn signal_jobs(&self) {
        self.jobs_added.notify_one();
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Closes the database pool (flushes `SQLite`'s WAL on the last connection).
    pub async fn close(&self) {
        self.lazy_db.close().await;
        self.db.close().await;
    }
}
