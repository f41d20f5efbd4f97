//! The states a message, a recipient's copy and an outbound delivery pass
//! through, as types. Each is stored as the same text as ever (no data
//! migration); text that is none of them is corrupt data, reported as
//! [`Error::Corrupt`], never a panic.

use crate::{Error, Result};

/// Where a sealed message is in its life (`messages.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// Readable by its sender and recipients until it expires.
    Sealed,
    /// The sender deleted it for everyone: its data key is destroyed.
    Deleted,
    /// Past its retention: its data key is destroyed.
    Expired,
}

impl MessageState {
    pub const ALL: [Self; 3] = [Self::Sealed, Self::Deleted, Self::Expired];

    /// The text stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sealed => "sealed",
            Self::Deleted => "deleted",
            Self::Expired => "expired",
        }
    }

    /// Reads a stored state; any other text is corrupt data.
    pub fn parse(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or(Error::Corrupt("message state"))
    }
}

/// A recipient's copy of a message (`message_recipients.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientState {
    /// The sender has not yet chosen how this recipient relates to the
    /// practice: no notification, and the recipient does not see it.
    AwaitingRole,
    /// Notified (or being notified): the recipient sees it.
    Notify,
}

impl RecipientState {
    pub const ALL: [Self; 2] = [Self::AwaitingRole, Self::Notify];

    /// The text stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingRole => "awaiting_role",
            Self::Notify => "notify",
        }
    }

    /// Reads a stored state; any other text is corrupt data.
    pub fn parse(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or(Error::Corrupt("recipient state"))
    }
}

/// One queued delivery (`outbound.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundState {
    /// Waiting for its next attempt.
    Queued,
    /// Delivered.
    Sent,
    /// Failed for good (a bounce was queued where one is due).
    Failed,
}

impl OutboundState {
    pub const ALL: [Self; 3] = [Self::Queued, Self::Sent, Self::Failed];

    /// The text stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }

    /// Reads a stored state; any other text is corrupt data.
    pub fn parse(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or(Error::Corrupt("outbound state"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_keep_their_stored_text_and_unknown_text_is_corrupt() {
        let stored = |all: Vec<&'static str>| all.join(",");
        assert_eq!(
            stored(MessageState::ALL.iter().map(|s| s.as_str()).collect()),
            "sealed,deleted,expired"
        );
        assert_eq!(
            stored(RecipientState::ALL.iter().map(|s| s.as_str()).collect()),
            "awaiting_role,notify"
        );
        assert_eq!(
            stored(OutboundState::ALL.iter().map(|s| s.as_str()).collect()),
            "queued,sent,failed"
        );
        for state in MessageState::ALL {
            assert_eq!(MessageState::parse(state.as_str()).unwrap(), state);
        }
        for state in RecipientState::ALL {
            assert_eq!(RecipientState::parse(state.as_str()).unwrap(), state);
        }
        for state in OutboundState::ALL {
            assert_eq!(OutboundState::parse(state.as_str()).unwrap(), state);
        }
        assert!(matches!(
            MessageState::parse("Sealed"),
            Err(Error::Corrupt("message state"))
        ));
        assert!(matches!(
            RecipientState::parse(""),
            Err(Error::Corrupt("recipient state"))
        ));
        assert!(matches!(
            OutboundState::parse("sending"),
            Err(Error::Corrupt("outbound state"))
        ));
    }
}
