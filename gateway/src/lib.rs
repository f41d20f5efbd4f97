//! The mail edge of Sealpost: SMTP in (relay and submission listeners),
//! classification of secure mail, the workers that seal spooled messages and
//! compose notifications (every mail from the templates in [`mail`]), outbound
//! delivery (Maildir outbox or smarthost) with DKIM signing, the IMAP server
//! that lets a mail client read the secure mailbox, and the SMS worker that
//! sends two-step codes by text message or voice call. It talks to the portal
//! only through the store.

pub mod best_method;
pub mod deliver;
pub mod dkim;
pub mod dsn;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz_store;
pub mod imap;
pub mod limits;
pub mod mail;
pub mod notify;
pub mod shutdown;
pub mod sms;
pub mod smtp;
mod strip;
pub mod tlsrpt;
pub mod workers;

use std::sync::Arc;

use tokio::sync::Notify;

/// Wake-up calls between the stages, so work moves on at once instead of at the
/// next poll. Every worker also polls, so a lost wake-up only delays.
#[derive(Clone, Default, Debug)]
pub struct Wakers {
    /// A secure message was spooled.
    pub sealer: Arc<Notify>,
    /// Mail jobs were added.
    pub notifier: Arc<Notify>,
    /// Mail was queued for delivery.
    pub delivery: Arc<Notify>,
}
