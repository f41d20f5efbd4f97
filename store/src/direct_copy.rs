//! What marks an outbound delivery as a *direct copy* (best-method delivery,
//! `direct.rs`): the secure message itself, for one recipient, over verified
//! TLS instead of a notification. A leaf: the queue row names the message and
//! the recipient; the body is read from the sealed message when it is sent.

use crate::ids::{MessageId, UserId};

/// The message and the recipient a direct copy is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectCopy {
    pub message: MessageId,
    pub recipient: UserId,
}
