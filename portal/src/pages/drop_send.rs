//! Sending a Secure Drop: files to one recipient without writing a message.
//! A drop IS a secure message with attachments — the same roles, file types,
//! sizes and lifecycle — handed to the store as a draft
//! (`store.mail().send_draft`), whether it comes from the portal's `/drop`
//! page or from `sealpost drop` through `POST /api/drops`. The optional note
//! is the secure message's text (sealed; it may name a patient), never the
//! notification's, which goes by ordinary email.

use store::accounts::{Relationship, User};
use store::ids::MessageId;
use store::outgoing::{Draft, DraftProblem};
use store::uploads::UploadId;

use crate::AppState;

/// The most files one drop carries.
pub const MAX_FILES: usize = 100;

/// A drop as asked for.
#[derive(Debug, Default)]
pub struct DropRequest {
    /// One address.
    pub to: String,
    /// The recipient's relationship, needed when the address is new.
    pub role: Option<Relationship>,
    /// The sealed note (may be empty).
    pub note: String,
    /// Finished uploads of the sender's.
    pub uploads: Vec<UploadId>,
}

/// Why a drop was not sent (nothing was).
#[derive(Debug)]
pub enum DropRefusal {
    /// Bad input, in words for the sender.
    Invalid(String),
    /// The address is new: say how the sender knows them.
    NeedsRole(String),
    /// A free account may not write to `address`.
    FreeAccount { address: String, practices: Vec<String> },
    /// Anything else (not found, a failure on our side).
    Store(store::Error),
}

impl From<store::Error> for DropRefusal {
    fn from(error: store::Error) -> Self {
        match error {
            store::Error::Invalid(text) | store::Error::Conflict(text) => Self::Invalid(text),
            other => Self::Store(other),
        }
    }
}

impl DropRequest {
    /// The recipient, checked to be exactly one address.
    fn recipient(&self) -> Result<String, DropRefusal> {
        // The address book may leave a separator after the address it filled in.
        let to = self.to.trim().trim_end_matches([',', ';']).trim();
        if to.is_empty() {
            return Err(DropRefusal::Invalid(
                "Say who gets the files (one email address).".to_owned(),
            ));
        }
        if to.contains([',', ';', '\n', ' ']) {
            return Err(DropRefusal::Invalid(
                "A Secure Drop goes to one recipient: enter one email address.".to_owned(),
            ));
        }
        Ok(to.to_ascii_lowercase())
    }

    /// The draft this drop sends.
    fn draft(&self) -> Result<Draft, DropRefusal> {
        let to = self.recipient()?;
        let count = self.uploads.len();
        if count == 0 {
            return Err(DropRefusal::Invalid("Add at least one file to send.".to_owned()));
        }
        if count > MAX_FILES {
            return Err(DropRefusal::Invalid(format!(
                "A Secure Drop carries at most {MAX_FILES} files."
            )));
        }
        let subject = if count == 1 {
            "Secure Drop: 1 file".to_owned()
        } else {
            format!("Secure Drop: {count} files")
        };
        let body = if self.note.trim().is_empty() {
            "Files sent with Secure Drop.".to_owned()
        } else {
            self.note.trim().replace("\r\n", "\n")
        };
        Ok(Draft {
            roles: self.role.map(|r| vec![(to.clone(), r)]).unwrap_or_default(),
            to: vec![to],
            subject: store::Sealed::new(subject),
            body: store::Sealed::new(body),
            ..Draft::default()
        })
    }
}

/// Sends `request` from `sender`: checks it as compose does, opens the
/// finished uploads, sends, and removes the staged uploads. Returns the new
/// message's id.
pub async fn send_drop(
    state: &AppState,
    sender: &User,
    request: &DropRequest,
    client: &str,
) -> Result<MessageId, DropRefusal> {
    let draft = request.draft()?;
    let refusal = |problem: DraftProblem| match problem {
        DraftProblem::NoRecipients => DropRefusal::Invalid("Say who gets the files (one email address).".to_owned()),
        DraftProblem::NeedsRoles(mut addresses) => DropRefusal::NeedsRole(addresses.pop().unwrap_or_default()),
        DraftProblem::FreeAccount { address, practices } => DropRefusal::FreeAccount { address, practices },
    };
    if let Err(problem) = state.store.mail().check_draft(sender, &draft).await? {
        return Err(refusal(problem));
    }
    let mut seen: Vec<&UploadId> = Vec::new();
    let mut files = Vec::with_capacity(request.uploads.len());
    for id in &request.uploads {
        if seen.contains(&id) {
            continue;
        }
        seen.push(id);
        files.push(state.store.uploads().open(sender, id).await?);
    }
    let host = state.config.message_id_host();
    let sent = match state
        .store
        .mail()
        .send_draft(sender, &draft, files, &host, client)
        .await?
    {
        Ok(id) => id,
        Err(problem) => return Err(refusal(problem)),
    };
    for id in seen {
        if let Err(error) = state.store.uploads().discard(sender, id).await {
            tracing::warn!(%error, "portal: a drop's staged upload was not removed (the sweeper will)");
        }
    }
    state.config.spooled.notify_one();
    tracing::info!(message = %sent, files = request.uploads.len(), "portal: secure drop sent");
    Ok(sent)
}
