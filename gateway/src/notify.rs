//! The notifier: turns mail jobs from the store into mails (one [`MailKind`]
//! each, rendered from its templates by [`crate::mail`]) and queues them for
//! delivery. A notification carries no PHI: the sender's name and practice,
//! the sender's own non-PHI note, and one link. Jobs are claimed
//! ([`store::Queue::claim_jobs`]) and composed several at a time, one
//! recipient's in order (see [`crate::workers::lanes`]).

use std::sync::Arc;
use std::time::Duration;

use store::ids::UserId;
use store::jobs::{JobKind, MailContext, MailJob};
use store::{Error, Policy, Store};
use tokio::sync::Notify;

use crate::Wakers;
use crate::best_method::Path;
use crate::mail::{
    self, ChooseRoles, ConfirmEmail, EmailChangeNotice, Envelope, ForPeople, InvoiceLine, Invoices, MailKind,
    MessageWaiting, SetPassword,
};
use crate::workers::lanes::{Item, LaneConfig, run_lanes};

/// What notifications look like.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Links start with this, e.g. `https://secure.example-dental.com`.
    pub public_url: String,
    /// The gateway's own address; notifications come from it.
    pub from_address: String,
    /// Subject of a notification; `{sender}` is replaced by the sender's name.
    pub subject_template: String,
    /// Signs what we send, when a key is configured.
    pub dkim: Option<Arc<crate::dkim::Dkim>>,
    /// Where a reply to a notification email goes, by practice.
    pub reply_to: crate::mail::ReplyTo,
    /// A practice's own `From` (by practice domain, lower case), signed with
    /// that domain's DKIM keys; others use `from_address`.
    pub practice_from: std::collections::BTreeMap<String, String>,
    /// Best-method delivery to partner domains, when configured
    /// ([`crate::best_method`]): their recipients may get the message itself.
    pub direct: Option<Arc<crate::best_method::DirectPolicy>>,
}

impl NotifyConfig {
    /// The `From` of a job's mail: its message's practice's own, else ours.
    #[must_use]
    pub fn from_for(&self, ctx: &MailContext) -> &str {
        ctx.message
            .as_ref()
            .and_then(|message| self.practice_from.get(&message.practice.domain.to_ascii_lowercase()))
            .map_or(self.from_address.as_str(), String::as_str)
    }
}

/// The mail a job asks for, with the link's lifetime from the policy. `None`
/// for a notification job without its message (the store does not hand one
/// out; the caller skips it with a log line).
#[must_use]
pub fn mail_for(ctx: &MailContext, config: &NotifyConfig, policy: &Policy) -> Option<MailKind> {
    let link = format!("{}{}", config.public_url.trim_end_matches('/'), ctx.link);
    let recipient_name = ctx.recipient.full_name.clone();
    Some(match (ctx.kind, &ctx.message) {
        (JobKind::Notify, Some(message)) => {
            let sender = message.sender.display_name().to_owned();
            let waiting = MessageWaiting {
                recipient_name,
                subject_line: config.subject_template.replace("{sender}", &sender),
                sender,
                practice: message.practice.name.clone(),
                notice: message.notice.clone(),
                link,
                reply_link: format!(
                    "{}/compose?reply={}",
                    config.public_url.trim_end_matches('/'),
                    message.id
                ),
                reply_to: config
                    .reply_to
                    .for_practice(&message.practice.domain)
                    .map(str::to_owned),
            };
            if ctx.invitation {
                MailKind::Invitation(waiting)
            } else {
                MailKind::Notification(waiting)
            }
        }
        (JobKind::Notify, None) => return None,
        (JobKind::SetPassword, _) => MailKind::SetPassword(SetPassword {
            recipient_name,
            link,
            expires_in: ForPeople(policy.set_password_ttl),
        }),
        (JobKind::ChooseRoles, _) => MailKind::ChooseRoles(ChooseRoles { recipient_name, link }),
        // The lines come from the store (`invoice_lines`).
        (JobKind::Invoices, _) => MailKind::Invoices(Invoices {
            recipient_name,
            link,
            lines: Vec::new(),
        }),
        (JobKind::ConfirmEmail, _) => MailKind::ConfirmEmail(ConfirmEmail {
            recipient_name,
            link,
            expires_in: ForPeople(policy.set_password_ttl),
        }),
        (JobKind::EmailChangeNotice, _) => MailKind::EmailChangeNotice(EmailChangeNotice { recipient_name, link }),
    })
}

/// The invoices a person paid, as the invoices mail lists them (the day paid, UTC).
async fn invoice_lines(store: &Store, user: &store::accounts::User) -> Result<Vec<InvoiceLine>, Error> {
    let invoices = store.billing().invoices_paid_by(user.id).await?;
    Ok(invoices
        .iter()
        .map(|invoice| InvoiceLine {
            label: invoice.label(),
            paid: store::clock::format_utc(invoice.paid_at).chars().take(10).collect(),
            what: format!(
                "{} ({})",
                invoice.product.label(),
                invoice.period.label().to_lowercase()
            ),
            who: if invoice.user_id == user.id {
                "you".to_owned()
            } else {
                invoice.user_email.clone()
            },
            amount: store::billing::money(invoice.amount_cents, &invoice.currency),
        })
        .collect())
}

/// A claimed job; one recipient's mails are composed in order.
struct Claimed(MailJob);

impl Item for Claimed {
    type Id = i64;
    type Lane = UserId;
    fn id(&self) -> i64 {
        self.0.id
    }
    fn lane(&self) -> UserId {
        self.0.user_id
    }
}

/// Runs forever: composes and queues the mail for every pending job,
/// `concurrency` jobs at a time. While the store fails it backs off (see
/// [`Backoff`](crate::workers::Backoff)).
pub async fn run_notifier(store: Arc<Store>, config: NotifyConfig, wakers: Wakers, concurrency: usize) {
    // The store's own signal (a job added by the portal) wakes the worker too.
    let wake = Arc::new(Notify::new());
    let relay = {
        let (store, wake, notifier) = (Arc::clone(&store), Arc::clone(&wake), Arc::clone(&wakers.notifier));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = notifier.notified() => {}
                    () = store.queue().jobs_added().notified() => {}
                }
                wake.notify_one();
            }
        })
    };
    let _relay = AbortOnDrop(relay);
    let lanes = LaneConfig {
        name: "notifier",
        concurrency,
        poll: Duration::from_secs(5),
    };
    let fetch = |room: usize| {
        let store = Arc::clone(&store);
        async move {
            let jobs = store.queue().claim_jobs(i64::try_from(room).unwrap_or(64)).await?;
            Ok(jobs.into_iter().map(Claimed).collect())
        }
    };
    let config = Arc::new(config);
    let work = |Claimed(job)| {
        let (store, config, wakers) = (Arc::clone(&store), Arc::clone(&config), wakers.clone());
        async move {
            match notify_one(&store, &config, &job).await {
                Ok(()) => wakers.delivery.notify_one(),
                Err(error) => {
                    tracing::warn!(job = job.id, %error, "cannot compose mail now; it waits");
                    let _ = store.queue().release_job(job.id).await;
                }
            }
        }
    };
    run_lanes(lanes, wake, fetch, work).await;
}

/// Stops a helper task with its worker.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Composes one claimed job's mail and queues it. An error means the store is
/// out of reach: the caller gives the job back.
async fn notify_one(store: &Store, config: &NotifyConfig, job: &MailJob) -> Result<(), Error> {
    let record = match crate::best_method::choose(store, config.direct.as_deref(), job).await? {
        Path::Direct(choice) => {
            store.queue().queue_direct(job.id, &choice).await?;
            tracing::info!(job = job.id, "direct copy queued instead of a notification");
            return Ok(());
        }
        Path::Notification { record } => record,
    };
    match store.queue().job_context(job).await {
        Ok(ctx) => {
            compose_and_queue(store, config, job.id, &ctx).await?;
            match record {
                Some(copy) => store.queue().record_notification_path(&copy).await,
                None => Ok(()),
            }
        }
        Err(Error::NotFound) => store.queue().skip_job(job.id).await,
        // It can never be composed: set aside (logged), not retried.
        Err(error) if error.is_permanent() => store.queue().park_job(job.id, &error).await,
        Err(error) => Err(error),
    }
}

/// Renders a job's mail and queues it; a job whose mail cannot be written is
/// skipped with a log line (no PHI: the job and the kind), not retried.
async fn compose_and_queue(store: &Store, config: &NotifyConfig, job: i64, ctx: &MailContext) -> Result<(), Error> {
    let Some(mut mail) = mail_for(ctx, config, store.policy()) else {
        tracing::warn!(job, "notification job without its message: skipped");
        return store.queue().skip_job(job).await;
    };
    if let MailKind::Invoices(invoices) = &mut mail {
        invoices.lines = invoice_lines(store, &ctx.recipient).await?;
    }
    let rendered = match mail.render() {
        Ok(rendered) => rendered,
        Err(error) => {
            tracing::error!(job, kind = mail.name(), %error, "cannot render mail: job skipped");
            return store.queue().skip_job(job).await;
        }
    };
    let envelope = Envelope {
        from_address: config.from_for(ctx),
        to: &ctx.recipient.email,
        now: store.now(),
    };
    let message = mail::write(&rendered, envelope, config.dkim.as_deref());
    let queued = store
        .queue()
        .queue_mail(Some(job), &config.from_address, &ctx.recipient.email, &message)
        .await?;
    if let Some(about) = &ctx.message {
        telemetry::latency::notification_queued(about.id.as_str(), &queued);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use store::Policy;
    use store::accounts::{Practice, Profile, Role, User, UserStatus};
    use store::ids::{MessageId, PracticeId, UserId};
    use store::jobs::{JobKind, MailContext, MessageContext};

    use super::{NotifyConfig, mail_for};
    use crate::mail::MailKind;

    fn user(name: &str, email: &str) -> User {
        User {
            id: UserId(1),
            email: email.to_owned(),
            full_name: name.to_owned(),
            phone: String::new(),
            role: Role::Patient,
            practice_id: None,
            paid: false,
            user_manager: false,
            status: UserStatus::Active,
            profile: Profile::default(),
        }
    }

    fn context(kind: JobKind, with_message: bool, invitation: bool) -> MailContext {
        MailContext {
            kind,
            recipient: user("Pat Example", "pat@example.org"),
            message: with_message.then(|| MessageContext {
                id: MessageId::generate(),
                sender: user("Dr Ada Lovelace", "ada@smiles.example"),
                practice: Practice {
                    id: PracticeId(1),
                    name: "Smiles Dental".to_owned(),
                    domain: "smiles.example".to_owned(),
                },
                notice: Some("Your appointment follow-up".to_owned()),
            }),
            link: "/m/abc".to_owned(),
            invitation,
        }
    }

    fn config() -> NotifyConfig {
        NotifyConfig {
            public_url: "https://secure.example-dental.com/".to_owned(),
            from_address: "notify@example-dental.com".to_owned(),
            subject_template: "Secure message from {sender}".to_owned(),
            dkim: None,
            reply_to: crate::mail::ReplyTo {
                default: Some("no-reply@example-dental.com".to_owned()),
                by_practice: [("smiles.example".to_owned(), "frontdesk@smiles.example".to_owned())].into(),
            },
            practice_from: [("smiles.example".to_owned(), "secure@smiles.example".to_owned())].into(),
            direct: None,
        }
    }

    #[test]
    fn each_job_kind_gets_its_own_mail() {
        let policy = Policy::default();
        let name = |kind, message, invitation| {
            mail_for(&context(kind, message, invitation), &config(), &policy).map(|m| m.name())
        };
        assert_eq!(name(JobKind::Notify, true, false), Some("notification"));
        assert_eq!(name(JobKind::Notify, true, true), Some("invitation"));
        // A notification without its message is skipped, never sent as another kind.
        assert_eq!(name(JobKind::Notify, false, false), None);
        assert_eq!(name(JobKind::SetPassword, false, false), Some("set_password"));
        assert_eq!(name(JobKind::ChooseRoles, true, false), Some("choose_roles"));
        assert_eq!(name(JobKind::ConfirmEmail, false, false), Some("confirm_email"));
        assert_eq!(
            name(JobKind::EmailChangeNotice, false, false),
            Some("email_change_notice")
        );
    }

    #[test]
    fn the_link_joins_the_public_url_and_the_subject_names_the_sender() {
        let mail = mail_for(&context(JobKind::Notify, true, false), &config(), &Policy::default()).unwrap();
        let MailKind::Notification(waiting) = &mail else {
            panic!("{}", mail.name());
        };
        assert_eq!(waiting.link, "https://secure.example-dental.com/m/abc");
        assert_eq!(waiting.subject_line, "Secure message from Dr Ada Lovelace");
        assert!(
            waiting
                .reply_link
                .starts_with("https://secure.example-dental.com/compose?reply=")
        );
        // The practice's own Reply-To, not the default.
        assert_eq!(waiting.reply_to.as_deref(), Some("frontdesk@smiles.example"));
        // And its own From; mail not about a practice's message comes from ours.
        let config = config();
        assert_eq!(
            config.from_for(&context(JobKind::Notify, true, false)),
            "secure@smiles.example"
        );
        assert_eq!(
            config.from_for(&context(JobKind::SetPassword, false, false)),
            "notify@example-dental.com"
        );
    }

    #[test]
    fn the_set_password_mail_states_the_policy_lifetime() {
        let expiry = |ttl| {
            let policy = Policy {
                set_password_ttl: ttl,
                ..Policy::default()
            };
            let mail = mail_for(&context(JobKind::SetPassword, false, false), &config(), &policy).unwrap();
            mail.render().unwrap().text
        };
        assert!(expiry(86_400).contains("expires in 24 hours:"));
        assert!(expiry(7 * 86_400).contains("expires in 7 days:"));
        assert!(expiry(2 * 3600).contains("expires in 2 hours:"));
    }
}
