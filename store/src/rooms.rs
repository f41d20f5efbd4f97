//! The rooms of the store: its public surface grouped by domain, so a reader
//! finds the room for a change from its name (`store.mail().inbox(…)`,
//! `store.accounts().user(…)`, `store.auth().sign_in(…)`, `store.queue().due_outbound(…)`,
//! `store.audit_log().verify_audit()`, `store.maintenance().begin_rotation()`).
//!
//! A room is a borrowed view of the one [`Store`]: it costs nothing to make, and
//! it derefs to the store, so a room's methods reach the database, the keys and
//! the clock as `self.db`, `self.keys`, `self.now()`, and the other rooms as
//! `self.queue()`. Which file belongs to which room is the file's path (see
//! `store/src/lib.rs`). The few things every room shares — `now`, `policy`,
//! `audit` (every room writes the audit log), `open`, `close` — stay on `Store`.

use std::ops::Deref;

use crate::Store;

/// Messages and what people see of them: sealing spooled mail, inboxes, the
/// IMAP mailbox, threads, contacts and the address book (`messages`,
/// `mailbox`, `threads`, `contacts`, `address_book`, `visible`, `ingest`).
#[derive(Debug)]
pub struct Mail<'a> {
    store: &'a Store,
}

/// Practices and their people: practices, domains and relay sources, users,
/// invitations and registration, and what a User Manager may change
/// (`accounts/{mod,manage,registration,relay_sources}.rs`).
#[derive(Debug)]
pub struct Accounts<'a> {
    store: &'a Store,
}

/// Proving who someone is: passwords and sessions, second steps, passkeys,
/// remembered devices, app passwords for mail clients, SSO, add-in keys, link
/// tokens and lockout (the other files of `accounts/`).
#[derive(Debug)]
pub struct Auth<'a> {
    store: &'a Store,
}

/// Work waiting to be done: the inbound spool, mail jobs, the outbound queue and
/// the text-message queue (`spool`, `spool_file`, `jobs`, `claims`, `accounts/sms.rs`).
#[derive(Debug)]
pub struct Queue<'a> {
    store: &'a Store,
}

/// Files sent from the portal before their message exists: resumable,
/// sealed as they arrive, owned by their uploader (`uploads`).
#[derive(Debug)]
pub struct Uploads<'a> {
    store: &'a Store,
}

/// Plans and billing: what was bought, for whom, by whom, invoices and the
/// payment provider's events (`billing/`).
#[derive(Debug)]
pub struct Billing<'a> {
    store: &'a Store,
}

/// Reading and checking the audit chain (`audit.rs`; writing it is
/// [`Store::audit`], which every room does).
#[derive(Debug)]
pub struct AuditLog<'a> {
    store: &'a Store,
}

/// Looking after the store itself: key rotation, backups and the audit export
/// (`maintenance/`), run by admin commands beside a running server.
#[derive(Debug)]
pub struct Maintenance<'a> {
    store: &'a Store,
}

impl Store {
    /// Messages, mailboxes, threads and contacts.
    pub fn mail(&self) -> Mail<'_> {
        Mail { store: self }
    }

    /// Practices, users, invitations and relay sources.
    pub fn accounts(&self) -> Accounts<'_> {
        Accounts { store: self }
    }

    /// Passwords, sessions, second steps, passkeys, app passwords and SSO.
    pub fn auth(&self) -> Auth<'_> {
        Auth { store: self }
    }

    /// The spool, mail jobs, the outbound queue and queued texts.
    pub fn queue(&self) -> Queue<'_> {
        Queue { store: self }
    }

    /// Staged uploads for outgoing messages.
    pub fn uploads(&self) -> Uploads<'_> {
        Uploads { store: self }
    }

    /// Plans, invoices and payment events.
    pub fn billing(&self) -> Billing<'_> {
        Billing { store: self }
    }

    /// Reading and verifying the audit chain.
    pub fn audit_log(&self) -> AuditLog<'_> {
        AuditLog { store: self }
    }

    /// Key rotation, backups and the audit export.
    pub fn maintenance(&self) -> Maintenance<'_> {
        Maintenance { store: self }
    }
}

impl Deref for Mail<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store
    }
}

impl Deref for Accounts<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store
    }
}

impl Deref for Auth<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store
    }
}

impl Deref for Queue<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store
    }
}

impl Deref for Maintenance<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store
    }
}

impl Deref for Uploads<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store
    }
}

impl Deref for Billing<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store
    }
}

impl Deref for AuditLog<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store
    }
}

// The queue's signals outlive the room handle they are asked through (a worker
// keeps `store.queue().jobs_added()` while it waits), so they borrow the store.
impl<'a> Queue<'a> {
    /// Signalled whenever mail jobs are committed, so the notifier need not poll.
    pub fn jobs_added(&self) -> &'a tokio::sync::Notify {
        &self.store.jobs_added
    }

    /// Signalled whenever a text or call is queued.
    pub fn sms_added(&self) -> &'a tokio::sync::Notify {
        &self.store.sms_added
    }
}
