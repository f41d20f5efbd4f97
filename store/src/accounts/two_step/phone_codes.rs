//! Phone codes for the second step: 6 digits from the system CSPRNG, stored only
//! as a salted SHA-256 hash, valid 10 minutes, single use, and void after 5 wrong
//! tries. The text that carries a code waits in a queue sealed with the store's
//! keys (see [`crate::accounts::sms`]). Against toll fraud, sending is capped per
//! user, per number and for new numbers in all, and premium-rate numbers refused.

use sqlx::Row;

use super::{Channel, CodePurpose, Method, normalize_code};
use crate::accounts::User;
use crate::accounts::phones::{international_digits, premium_rate, valid_phone};
use crate::audit::AuditEvent;
use crate::crypto::{random_bytes, sha256};
use crate::{Auth, Error, Result};

/// How long a phone code lasts (seconds).
const CODE_TTL: i64 = 10 * 60;
/// Wrong tries after which a phone code is void.
const CODE_ATTEMPTS: i64 = 5;
/// Codes one user may be sent per [`SEND_WINDOW`].
const SEND_LIMIT: i64 = 5;
const SEND_WINDOW: i64 = 15 * 60;

fn new_code() -> String {
    // 4 random bytes reduced mod 10^6: the bias (2^32 mod 10^6 values) is < 0.03 %.
    let n = u32::from_be_bytes(random_bytes::<4>()) % 1_000_000;
    format!("{n:06}")
}

fn code_hash(salt: &[u8], code: &str) -> Vec<u8> {
    let mut input = salt.to_vec();
    input.extend_from_slice(code.as_bytes());
    sha256(&input)
}

impl Auth<'_> {
    /// Sends a code by text or voice: to the registered phone, or while setting
    /// up (`CodePurpose::Enrol`) to `phone`. Earlier codes of the same purpose
    /// become void. Against toll fraud: never to a premium-rate number; at most
    /// 5 codes per user per 15 minutes, `codes_per_number_per_hour` to any one
    /// number, and `enrol_codes_per_hour` to new numbers in all.
    pub async fn send_code(
        &self,
        user: &User,
        purpose: CodePurpose,
        channel: Channel,
        phone: Option<&str>,
        client: &str,
    ) -> Result<()> {
        let phone = match (purpose, phone) {
            (CodePurpose::Enrol, Some(phone)) => phone.trim().to_owned(),
            _ => self.two_step(user.id).await?.phone,
        };
        if !valid_phone(&phone) {
            return Err(Error::invalid(
                "Please enter a phone number we can reach you at, like +1 555 123 4567.",
            ));
        }
        let two_step = &self.policy.two_step;
        if premium_rate(&phone, &two_step.denied_prefixes) {
            return Err(Error::invalid(
                "We can't send codes to premium-rate numbers. Please enter a mobile or landline number, or use an authenticator app.",
            ));
        }
        let destination =
            international_digits(&phone).unwrap_or_else(|| phone.chars().filter(char::is_ascii_digit).collect());
        let now = self.now();
        let recent: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM two_step_codes WHERE user_id = $1 AND created_at > $2")
                .bind(user.id.0)
                .bind(now - SEND_WINDOW)
                .fetch_one(&self.db)
                .await?
                .try_get("n")?;
        if recent >= SEND_LIMIT {
            return Err(Error::invalid(
                "We have sent you several codes already. Please wait 15 minutes before asking for another.",
            ));
        }
        let to_number: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM two_step_codes WHERE destination = $1 AND created_at > $2")
                .bind(&destination)
                .bind(now - 3600)
                .fetch_one(&self.db)
                .await?
                .try_get("n")?;
        if to_number >= two_step.codes_per_number_per_hour {
            return Err(Error::invalid(
                "This number has been sent several codes in the last hour. Please wait an hour, or use an authenticator app.",
            ));
        }
        if purpose == CodePurpose::Enrol {
            let enrolling: i64 =
                sqlx::query("SELECT COUNT(*) AS n FROM two_step_codes WHERE purpose = 'enrol' AND created_at > $1")
                    .bind(now - 3600)
                    .fetch_one(&self.db)
                    .await?
                    .try_get("n")?;
            if enrolling >= two_step.enrol_codes_per_hour {
                tracing::warn!(
                    limit = two_step.enrol_codes_per_hour,
                    "two-step: hourly cap on codes to new numbers reached"
                );
                return Err(Error::invalid(
                    "We are sending many codes right now and have paused codes to new numbers. Please try again in an hour, or use an authenticator app.",
                ));
            }
        }
        let code = new_code();
        let salt = random_bytes::<16>();
        let text = format!("Your Sealpost code is {code}. It expires in 10 minutes. Never share it.");
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE two_step_codes SET used_at = $1 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL")
            .bind(now)
            .bind(user.id.0)
            .bind(purpose.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO two_step_codes (user_id, purpose, phone, salt, code_hash, created_at, expires_at, destination)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(user.id.0)
        .bind(purpose.as_str())
        .bind(&phone)
        .bind(salt.to_vec())
        .bind(code_hash(&salt, &code))
        .bind(now)
        .bind(now + CODE_TTL)
        .bind(&destination)
        .execute(&mut *tx)
        .await?;
        self.queue().queue_sms(&mut tx, user.id, &phone, channel, &text).await?;
        tx.commit().await?;
        self.queue().signal_sms();
        self.audit(AuditEvent {
            actor: &format!("user:{}", user.id),
            action: "two_step.code_sent",
            object: channel.as_str(),
            client,
        })
        .await
    }

    /// Checks a phone code. Returns the number it was sent to. Wrong, expired,
    /// used and exhausted codes all fail alike ([`Error::AuthFailed`]).
    pub async fn verify_code(&self, user: &User, purpose: CodePurpose, code: &str, client: &str) -> Result<String> {
        let code = normalize_code(code);
        let now = self.now();
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "SELECT id, phone, salt, code_hash, attempts FROM two_step_codes
             WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
             ORDER BY id DESC LIMIT 1",
        )
        .bind(user.id.0)
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let mut outcome = Err(Error::AuthFailed);
        if let Some(row) = row {
            let id: i64 = row.try_get("id")?;
            let salt: Vec<u8> = row.try_get("salt")?;
            let stored: Vec<u8> = row.try_get("code_hash")?;
            let attempts: i64 = row.try_get::<i64, _>("attempts")? + 1;
            let matches = code.len() == 6 && attempts <= CODE_ATTEMPTS && code_hash(&salt, &code) == stored;
            let spent = matches || attempts >= CODE_ATTEMPTS;
            sqlx::query("UPDATE two_step_codes SET attempts = $1, used_at = $2 WHERE id = $3")
                .bind(attempts)
                .bind(spent.then_some(now))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if matches {
                outcome = Ok(row.try_get::<String, _>("phone")?);
            }
        }
        tx.commit().await?;
        self.two_step_outcome(user, "phone", outcome.is_ok(), client).await?;
        outcome
    }

    /// Confirms a phone with an enrolment code: the number the code went to
    /// becomes the registered phone and phone codes the user's method.
    pub async fn confirm_phone(&self, user: &User, code: &str, client: &str) -> Result<()> {
        let phone = self.verify_code(user, CodePurpose::Enrol, code, client).await?;
        sqlx::query("UPDATE users SET phone = $1, two_step_method = 'phone' WHERE id = $2")
            .bind(phone)
            .bind(user.id.0)
            .execute(&self.db)
            .await?;
        self.two_step_enrolled(user, Method::Phone, client).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..50).map(|_| new_code()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.chars().all(|d| d.is_ascii_digit()))
        );
        assert!(codes.len() > 40, "random codes rarely repeat");
        let salt = [1u8; 16];
        assert_ne!(code_hash(&salt, "123456"), code_hash(&[2u8; 16], "123456"));
        assert_eq!(normalize_code(" 123 456 "), "123456");
    }
}
