//! Every mail the gateway writes, from template files: one [`MailKind`] per
//! kind, each with a subject, a plain-text body and (where the kind has one) an
//! HTML body under `gateway/templates/mail/<kind>/`, rendered with askama (HTML
//! escaped by the file's `.html` extension). [`write`] turns a rendered mail into
//! an RFC 5322 message: `multipart/alternative` when it has HTML, header values
//! on one line (RFC 2047 encoded where not ASCII), DKIM-signed when a key is set.
//!
//! `MailKind` has no catch-all arm anywhere: a new kind does not compile until
//! it has its templates (the `templates!` macro in `kinds.rs`) and a snapshot.

use mail_builder::MessageBuilder;
use mail_builder::headers::raw::Raw;

mod duration;
mod kinds;
mod reply_to;
#[cfg(test)]
mod tests;

pub use duration::ForPeople;
pub use kinds::{
    Bounce, ChooseRoles, ConfirmEmail, EmailChangeNotice, InvoiceLine, Invoices, MessageWaiting, Quarantined,
    SetPassword,
};
pub use reply_to::ReplyTo;

/// Every kind of mail the gateway writes, with the values its templates use.
/// None of them carries PHI: a secure message's subject and body stay sealed.
#[derive(Debug, Clone)]
pub enum MailKind {
    /// A secure message waits for someone who can sign in.
    Notification(MessageWaiting),
    /// A secure message waits for someone who has no password yet: the link
    /// finishes their account.
    Invitation(MessageWaiting),
    /// The link to set a password.
    SetPassword(SetPassword),
    /// Asks a sender how new recipients relate to the practice.
    ChooseRoles(ChooseRoles),
    /// A person's invoices, to their own address.
    Invoices(Invoices),
    /// The link that confirms a new email address.
    ConfirmEmail(ConfirmEmail),
    /// Tells the current address a change of address was asked for.
    EmailChangeNotice(EmailChangeNotice),
    /// Tells a sender their mail could not be delivered (no content).
    Bounce(Bounce),
    /// Tells a sender their secure message could not be processed (no content).
    Quarantined(Quarantined),
}

/// `Auto-Submitted` (RFC 3834 §5) for mail written on our own initiative...
const AUTO_GENERATED: &str = "auto-generated";
/// ...and for mail answering one the sender sent.
const AUTO_REPLIED: &str = "auto-replied";

/// A mail ready to be put into a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The From display name, on one line.
    pub from_name: String,
    /// On one line.
    pub subject: String,
    /// Ends with a newline.
    pub text: String,
    pub html: Option<String>,
    /// The `Auto-Submitted` header's value.
    pub auto_submitted: &'static str,
    /// The `Reply-To` address, where the kind has one (notifications).
    pub reply_to: Option<String>,
}

impl MailKind {
    /// The kind's name, as its template folder and snapshot are named.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Notification(_) => "notification",
            Self::Invitation(_) => "invitation",
            Self::SetPassword(_) => "set_password",
            Self::ChooseRoles(_) => "choose_roles",
            Self::Invoices(_) => "invoices",
            Self::ConfirmEmail(_) => "confirm_email",
            Self::EmailChangeNotice(_) => "email_change_notice",
            Self::Bounce(_) => "bounce",
            Self::Quarantined(_) => "quarantined",
        }
    }

    /// Renders the kind's templates.
    ///
    /// # Errors
    /// If a template fails to render (askama reports why).
    pub fn render(&self) -> Result<Rendered, askama::Error> {
        let (from_name, parts, auto_submitted) = match self {
            Self::Notification(v) => (
                format!("{} via Sealpost", v.sender),
                kinds::notification::render(v)?,
                AUTO_GENERATED,
            ),
            Self::Invitation(v) => (
                format!("{} via Sealpost", v.sender),
                kinds::invitation::render(v)?,
                AUTO_GENERATED,
            ),
            Self::SetPassword(v) => ("Sealpost".to_owned(), kinds::set_password::render(v)?, AUTO_GENERATED),
            Self::ChooseRoles(v) => ("Sealpost".to_owned(), kinds::choose_roles::render(v)?, AUTO_GENERATED),
            Self::Invoices(v) => ("Sealpost".to_owned(), kinds::invoices::render(v)?, AUTO_GENERATED),
            Self::ConfirmEmail(v) => ("Sealpost".to_owned(), kinds::confirm_email::render(v)?, AUTO_GENERATED),
            Self::EmailChangeNotice(v) => (
                "Sealpost".to_owned(),
                kinds::email_change_notice::render(v)?,
                AUTO_GENERATED,
            ),
            Self::Bounce(v) => (
                "Mail Delivery System".to_owned(),
                kinds::bounce::render(v)?,
                AUTO_REPLIED,
            ),
            Self::Quarantined(v) => ("Sealpost".to_owned(), kinds::quarantined::render(v)?, AUTO_REPLIED),
        };
        let reply_to = match self {
            Self::Notification(v) | Self::Invitation(v) => v.reply_to.as_deref().map(one_line),
            Self::SetPassword(_)
            | Self::ChooseRoles(_)
            | Self::Invoices(_)
            | Self::ConfirmEmail(_)
            | Self::EmailChangeNotice(_)
            | Self::Bounce(_)
            | Self::Quarantined(_) => None,
        };
        let (subject, text, html) = parts;
        Ok(Rendered {
            from_name: one_line(&from_name),
            subject: one_line(&subject),
            text: format!("{}\n", text.trim_end()),
            html,
            auto_submitted,
            reply_to,
        })
    }
}

/// A header value on one line: control characters (CR, LF, tab…) become
/// spaces and runs of white space one space, so a display name or note can
/// never start a header of its own.
#[must_use]
pub fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Who a message comes from and goes to.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// Our own address (the From header's).
    pub from_address: &'a str,
    pub to: &'a str,
    /// Seconds since the epoch, for the Date header.
    pub now: i64,
}

/// Writes the RFC 5322 message for a rendered mail, signed when `dkim` is set.
#[must_use]
pub fn write(mail: &Rendered, envelope: Envelope<'_>, dkim: Option<&crate::dkim::Dkim>) -> Vec<u8> {
    let message_id = format!(
        "{}@{}",
        store::crypto::random_hex(16),
        envelope.from_address.rsplit('@').next().unwrap_or("localhost")
    );
    let mut builder = MessageBuilder::new()
        .from((mail.from_name.as_str(), envelope.from_address))
        .to(envelope.to)
        .subject(mail.subject.as_str())
        .message_id(message_id.as_str())
        .date(envelope.now)
        .header("Auto-Submitted", Raw::new(mail.auto_submitted))
        .text_body(mail.text.as_str());
    if let Some(html) = &mail.html {
        builder = builder.html_body(html.as_str());
    }
    if let Some(reply_to) = &mail.reply_to {
        builder = builder.reply_to(reply_to.as_str());
    }
    let message = builder.write_to_vec().expect("writing to a Vec cannot fail");
    match dkim {
        Some(dkim) => dkim.sign(&message),
        None => message,
    }
}
