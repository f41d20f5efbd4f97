//! The values each kind of mail shows, and the template files that show them:
//! `templates!` gives a kind its subject, text and (optionally) HTML templates
//! under `gateway/templates/mail/`, and a `render` that fills all of them.

use super::ForPeople;

/// A secure message waits (a notification or an invitation). No PHI: who sent
/// it, their practice, the sender's own note and the link.
#[derive(Debug, Clone)]
pub struct MessageWaiting {
    /// The recipient's full name; empty if we don't know it.
    pub recipient_name: String,
    /// The sender's display name.
    pub sender: String,
    pub practice: String,
    /// The sender's note for the recipient (never the message's subject).
    pub notice: Option<String>,
    /// The whole link, `public_url` included.
    pub link: String,
    /// The subject, from `outbound.notification_subject` with the sender's name.
    pub subject_line: String,
    /// Where to reply securely: the whole link (`/compose?reply=ID`), which
    /// asks the recipient to sign in first.
    pub reply_link: String,
    /// The `Reply-To` the practice set (`outbound.practice_reply_to` or
    /// `outbound.notification_reply_to`); `None`: replies go to `From`.
    pub reply_to: Option<String>,
}

/// The link to set a password.
#[derive(Debug, Clone)]
pub struct SetPassword {
    pub recipient_name: String,
    pub link: String,
    /// How long the link works (`Policy::set_password_ttl`).
    pub expires_in: ForPeople,
}

/// The link that confirms a new email address (sent to that address).
#[derive(Debug, Clone)]
pub struct ConfirmEmail {
    pub recipient_name: String,
    pub link: String,
    /// How long the link works (`Policy::set_password_ttl`).
    pub expires_in: ForPeople,
}

/// Tells the current address that a change of address was asked for.
#[derive(Debug, Clone)]
pub struct EmailChangeNotice {
    pub recipient_name: String,
    /// The profile page, where the change can be cancelled.
    pub link: String,
}

/// Asks a sender how new recipients relate to the practice.
#[derive(Debug, Clone)]
pub struct ChooseRoles {
    pub recipient_name: String,
    pub link: String,
}

/// One invoice in the invoices mail (no PHI: plan, who it is for, amount).
#[derive(Debug, Clone)]
pub struct InvoiceLine {
    /// `INV-000042`.
    pub label: String,
    /// The day it was paid, e.g. `2026-12-02`.
    pub paid: String,
    /// `SecureMail (monthly)`.
    pub what: String,
    /// `you`, or the address of the user it was bought for.
    pub who: String,
    /// `$10.00 USD`.
    pub amount: String,
}

/// "Email me my invoices": the invoices a person paid, to their own address.
#[derive(Debug, Clone)]
pub struct Invoices {
    pub recipient_name: String,
    /// The invoices page (`/account/invoices`), whole.
    pub link: String,
    pub lines: Vec<InvoiceLine>,
}

/// A mail we could not deliver, told to its sender.
#[derive(Debug, Clone)]
pub struct Bounce {
    /// The address we could not deliver to.
    pub rcpt: String,
    /// What the remote server said, or why we gave up.
    pub reason: String,
    /// This gateway's host name.
    pub hostname: String,
    /// Still being tried (a "delayed" notice), not given up.
    pub delayed: bool,
}

/// A secure message that could not be processed, told to its sender.
#[derive(Debug, Clone)]
pub struct Quarantined {
    /// When it arrived, written for people (UTC).
    pub received: String,
    /// The message's reference, for the administrator.
    pub reference: String,
}

/// What a kind's templates render to: subject, text, HTML.
pub(super) type Parts = (String, String, Option<String>);

/// `templates!(module, Values, "subject path", "text path" [, "html path"])`:
/// template structs over `&Values` (fields reached through `Deref`) and
/// `module::render(&Values) -> Parts`. The HTML template also sees `title`,
/// the rendered subject.
macro_rules! templates {
    (@html $values:ident, $subject:ident) => {
        None
    };
    (@html $values:ident, $subject:ident, $html:tt) => {
        Some(Html { values: $values, title: &super::super::one_line(&$subject) }.render()?)
    };
    ($module:ident, $values:ty, $subject:tt, $text:tt $(, $html:tt)?) => {
        pub(super) mod $module {
            use askama::Template;

            #[allow(unused_imports)]
            use super::*;

            #[derive(Template)]
            #[template(path = $subject)]
            struct Subject<'a>(&'a $values);

            #[derive(Template)]
            #[template(path = $text)]
            struct Text<'a>(&'a $values);

            impl std::ops::Deref for Subject<'_> {
                type Target = $values;
                fn deref(&self) -> &$values {
                    self.0
                }
            }

            impl std::ops::Deref for Text<'_> {
                type Target = $values;
                fn deref(&self) -> &$values {
                    self.0
                }
            }

            $(
                #[derive(Template)]
                #[template(path = $html)]
                struct Html<'a> {
                    values: &'a $values,
                    title: &'a str,
                }

                impl std::ops::Deref for Html<'_> {
                    type Target = $values;
                    fn deref(&self) -> &$values {
                        self.values
                    }
                }
            )?

            pub(in crate::mail) fn render(values: &$values) -> Result<Parts, askama::Error> {
                let subject = Subject(values).render()?;
                let text = Text(values).render()?;
                let html = templates!(@html values, subject $(, $html)?);
                Ok((subject, text, html))
            }
        }
    };
}

templates!(
    notification,
    MessageWaiting,
    "mail/notification/subject.txt",
    "mail/notification/text.txt",
    "mail/notification/html.html"
);
templates!(
    invitation,
    MessageWaiting,
    "mail/invitation/subject.txt",
    "mail/invitation/text.txt",
    "mail/invitation/html.html"
);
templates!(
    set_password,
    SetPassword,
    "mail/set_password/subject.txt",
    "mail/set_password/text.txt",
    "mail/set_password/html.html"
);
templates!(
    choose_roles,
    ChooseRoles,
    "mail/choose_roles/subject.txt",
    "mail/choose_roles/text.txt",
    "mail/choose_roles/html.html"
);
templates!(
    invoices,
    Invoices,
    "mail/invoices/subject.txt",
    "mail/invoices/text.txt",
    "mail/invoices/html.html"
);
templates!(
    confirm_email,
    ConfirmEmail,
    "mail/confirm_email/subject.txt",
    "mail/confirm_email/text.txt",
    "mail/confirm_email/html.html"
);
templates!(
    email_change_notice,
    EmailChangeNotice,
    "mail/email_change_notice/subject.txt",
    "mail/email_change_notice/text.txt",
    "mail/email_change_notice/html.html"
);
// Bounces and quarantine notices are plain text, as delivery reports are.
templates!(bounce, Bounce, "mail/bounce/subject.txt", "mail/bounce/text.txt");
templates!(
    quarantined,
    Quarantined,
    "mail/quarantined/subject.txt",
    "mail/quarantined/text.txt"
);
