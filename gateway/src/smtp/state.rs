//! What an SMTP session is in and holds, as plain types: the state it waits
//! in, an AUTH exchange's step, the mail transaction, and what the connection
//! does next. A leaf: the session and the files per phase all use these, and
//! this module uses none of them (only the DATA phase's own state).

use super::data_phase::DataPhase;

/// What the session waits for.
pub(super) enum State {
    Command,
    Data(Box<DataPhase>),
    /// An AUTH exchange waiting for the client's next line.
    Auth(AuthStep),
}

/// The mail transaction being built (RFC 5321 §3.3).
#[derive(Debug, Default)]
pub(super) struct Transaction {
    pub mail_from: Option<String>,
    pub rcpt_to: Vec<String>,
}

/// What the connection does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    Quit,
    StartTls,
}

/// Where an AUTH exchange stands.
pub(crate) enum AuthStep {
    Plain,
    LoginUser,
    LoginPassword { user: String },
}
