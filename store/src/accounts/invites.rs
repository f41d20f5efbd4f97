//! One invitation per recipient and practice: the link a notification gives
//! someone who has not registered yet is reused, message after message, until
//! it is used or nears its end, instead of a new token per message (issue 14:
//! 12,103 token rows after a benchmark). The table still keeps only the link's
//! hash; the row also keeps a random nonce from which the link is made again
//! with a key the database does not hold ([`crate::crypto::Keyring::link_secret`]).
//! An invitation serves messages of the practice it was made for only.

use base64::Engine as _;
use sqlx::Row;

use super::TokenPurpose;
use crate::crypto::{random_bytes, sha256};
use crate::ids::{MessageId, UserId};
use crate::{Auth, Result};

impl Auth<'_> {
    /// The invitation link's token for `user` to `message`: the current one for
    /// the message's practice when it has at least half of `ttl` left, else a
    /// new one valid for `ttl` seconds.
    pub async fn invitation_token(&self, user: UserId, message: &MessageId, ttl: i64) -> Result<String> {
        let now = self.now();
        let reusable = sqlx::query(
            "SELECT t.hash, t.reuse_nonce FROM tokens t
             JOIN messages first ON first.id = t.message_id
             JOIN messages this ON this.id = $3
             WHERE t.user_id = $1 AND t.purpose = $2 AND t.used_at IS NULL AND t.reuse_nonce IS NOT NULL
               AND t.expires_at >= $4 AND first.practice_id = this.practice_id
             ORDER BY t.expires_at DESC LIMIT 1",
        )
        .bind(user.0)
        .bind(TokenPurpose::Invite.as_str())
        .bind(message.as_str())
        .bind(now + ttl / 2)
        .fetch_optional(&self.db)
        .await?;
        if let Some(row) = reusable {
            let nonce: Vec<u8> = row.try_get("reuse_nonce")?;
            let token = self.link_token(&nonce);
            if sha256(token.as_bytes()) == row.try_get::<Vec<u8>, _>("hash")? {
                return Ok(token);
            }
            // Made under another key folder (a restored backup): a new one.
        }
        let nonce: [u8; 16] = random_bytes();
        let token = self.link_token(&nonce);
        sqlx::query(
            "INSERT INTO tokens (hash, purpose, user_id, message_id, created_at, expires_at, last_seen_at, reuse_nonce)
             VALUES ($1, $2, $3, $4, $5, $6, $5, $7)",
        )
        .bind(sha256(token.as_bytes()))
        .bind(TokenPurpose::Invite.as_str())
        .bind(user.0)
        .bind(message.as_str())
        .bind(now)
        .bind(now + ttl)
        .bind(nonce.to_vec())
        .execute(&self.db)
        .await?;
        Ok(token)
    }

    fn link_token(&self, nonce: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.keys.link_secret(nonce))
    }
}
