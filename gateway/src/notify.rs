//! The notifier: turns mail jobs from the store into messages (built with
//! mail-builder) and queues them for delivery. A notification carries no PHI:
//! the sender's name and practice, the sender's own non-PHI note, and one link.

use std::sync::Arc;
use std::time::Duration;

use mail_builder::MessageBuilder;
use mail_builder::headers::raw::Raw;
use store::jobs::{JobKind, MailContext};
use store::{Error, Store};

use crate::Wakers;

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
}

/// Composes one job's mail: `(subject, text, html)` plus the From display name.
pub fn compose(ctx: &MailContext, config: &NotifyConfig) -> (String, String, String, String) {
    let link = format!("{}{}", config.public_url.trim_end_matches('/'), ctx.link);
    let recipient_name = if ctx.recipient.full_name.is_empty() {
        "Hello".to_owned()
    } else {
        format!("Dear {}", ctx.recipient.full_name)
    };
    match (ctx.kind, &ctx.message) {
        (JobKind::Notify, Some(message)) => {
            let invitation = ctx.invitation;
            let sender = message.sender.display_name().to_owned();
            let practice = &message.practice.name;
            let subject = config.subject_template.replace("{sender}", &sender);
            let mut text = format!("{recipient_name},\n\n{sender} ({practice}) sent you a secure message.\n\n");
            if let Some(notice) = &message.notice {
                text.push_str(&format!("Note from {sender}: {notice}\n\n"));
            }
            if invitation {
                text.push_str(&format!(
                    "To read it, open this link and finish your free account (it takes about two minutes):\n{link}\n\n"
                ));
            } else {
                text.push_str(&format!("To read it, sign in here:\n{link}\n\n"));
            }
            text.push_str("For your privacy the message itself is not in this email. You can reply securely from the same page.\n");
            let html = html_mail(
                &subject,
                &text,
                &link,
                if invitation {
                    "Read the message"
                } else {
                    "Sign in to read"
                },
            );
            (format!("{sender} via Sealpost"), subject, text, html)
        }
        (JobKind::ChooseRoles, _) => {
            let subject = "Action needed: who are the new recipients of your secure message?".to_owned();
            let text = format!(
                "{recipient_name},\n\nYour secure message went to people you have not written to before. \
Tell us how each of them relates to your practice (patient, doctor or staff), and we will send them their invitation:\n{link}\n"
            );
            let html = html_mail(&subject, &text, &link, "Choose recipients' roles");
            ("Sealpost".to_owned(), subject, text, html)
        }
        _ => {
            let subject = "Set your Sealpost password".to_owned();
            let text = format!(
                "{recipient_name},\n\nOpen this link to set the password for your Sealpost account. It works once and expires in 24 hours:\n{link}\n\n\
If you did not ask for this, you can ignore this email.\n"
            );
            let html = html_mail(&subject, &text, &link, "Set my password");
            ("Sealpost".to_owned(), subject, text, html)
        }
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html_mail(subject: &str, text: &str, link: &str, button: &str) -> String {
    let paragraphs: String = text
        .split("\n\n")
        .filter(|p| !p.trim().is_empty() && !p.contains(link))
        .map(|p| format!("<p>{}</p>", escape(p).replace('\n', "<br>")))
        .collect();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
<body style=\"font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;font-size:16px;color:#1c2430;max-width:36rem;margin:auto;padding:1rem\">\
{paragraphs}<p><a href=\"{href}\" style=\"display:inline-block;background:#1f5fbf;color:#fff;padding:.8rem 1.4rem;border-radius:6px;text-decoration:none\">{button}</a></p>\
<p style=\"color:#5a6472;font-size:14px\">Or copy this link into your browser: {href}</p></body></html>",
        title = escape(subject),
        href = escape(link),
        button = escape(button),
    )
}

/// Builds the RFC 5322 message for a job.
pub fn build_message(ctx: &MailContext, config: &NotifyConfig, now: i64) -> Vec<u8> {
    let (from_name, subject, text, html) = compose(ctx, config);
    let message_id = format!(
        "{}@{}",
        store::crypto::random_hex(16),
        config.from_address.rsplit('@').next().unwrap_or("localhost")
    );
    let message = MessageBuilder::new()
        .from((from_name.as_str(), config.from_address.as_str()))
        .to(ctx.recipient.email.as_str())
        .subject(subject.as_str())
        .message_id(message_id.as_str())
        .date(now)
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .text_body(text)
        .html_body(html)
        .write_to_vec()
        .expect("writing to a Vec cannot fail");
    match &config.dkim {
        Some(dkim) => dkim.sign(&message),
        None => message,
    }
}

/// Runs forever: composes and queues the mail for every pending job. While the
/// store fails it backs off (see [`Backoff`](crate::workers::Backoff)).
pub async fn run_notifier(store: Arc<Store>, config: NotifyConfig, wakers: Wakers) {
    let mut backoff = crate::workers::Backoff::new("notifier");
    loop {
        match notify_pending(&store, &config, &wakers).await {
            Ok(true) => {
                backoff.succeed();
                continue;
            }
            Ok(false) => backoff.succeed(),
            Err(error) => {
                tokio::time::sleep(backoff.fail(&error)).await;
                continue;
            }
        }
        let woken = async {
            tokio::select! {
                () = wakers.notifier.notified() => {}
                () = store.queue().jobs_added().notified() => {}
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), woken).await;
    }
}

/// One pass over the pending jobs; `true` if there were any. A job that fails
/// does not stop the others; the error is returned after the pass.
async fn notify_pending(store: &Store, config: &NotifyConfig, wakers: &Wakers) -> Result<bool, Error> {
    let jobs = store.queue().pending_jobs(50).await?;
    let busy = !jobs.is_empty();
    let mut failed = None;
    for job in jobs {
        let result = match store.queue().job_context(&job).await {
            Ok(ctx) => {
                let message = build_message(&ctx, config, store.now());
                store
                    .queue()
                    .queue_mail(Some(job.id), &config.from_address, &ctx.recipient.email, &message)
                    .await
            }
            Err(Error::NotFound) => store.queue().skip_job(job.id).await,
            Err(error) => Err(error),
        };
        match result {
            Ok(()) => wakers.delivery.notify_one(),
            Err(error) => failed = Some(error),
        }
    }
    failed.map_or(Ok(busy), Err)
}
