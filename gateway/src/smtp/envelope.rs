//! MAIL FROM and RCPT TO: who may send, and to whom (never an open relay).

use smtp_proto::{MailFrom, RcptTo};

use super::ListenerKind;
use super::reply::{Reply, common};
use super::session::Session;

impl Session {
    pub(super) async fn mail(&mut self, from: MailFrom<String>) {
        if self.helo.is_none() {
            return self.reply(&common::bad_sequence("send EHLO first"));
        }
        if self.tx.mail_from.is_some() {
            return self.reply(&common::bad_sequence("nested MAIL command"));
        }
        if self.kind == ListenerKind::Submission && self.user.is_none() {
            let text = if self.tls {
                "Authentication required"
            } else {
                "Must issue a STARTTLS command first, then AUTH"
            };
            return self.reply(&Reply::new(530, "5.7.0", text));
        }
        let max = self.server.config.max_message_size;
        if u64::try_from(from.size).unwrap_or(u64::MAX) > max {
            return self.reply(&Reply::new(
                552,
                "5.3.4",
                format!("Message size exceeds the limit of {max} bytes"),
            ));
        }
        if let Some(reply) = self.server.backlog.refusal(&self.server.store).await {
            return self.reply(&reply);
        }
        let address = if from.address.is_empty() {
            String::new()
        } else {
            match store::accounts::normalize_email(&from.address) {
                Ok(address) => address,
                Err(_) => return self.reply(&Reply::new(501, "5.1.7", "Bad sender address syntax")),
            }
        };
        self.tx.mail_from = Some(address);
        self.reply(&Reply::new(250, "2.1.0", "Sender OK"));
    }

    pub(super) fn rcpt(&mut self, to: RcptTo<String>) {
        if self.tx.mail_from.is_none() {
            return self.reply(&common::bad_sequence("send MAIL first"));
        }
        if !self.trusted && self.user.is_none() {
            return self.reply(&Reply::new(
                550,
                "5.7.1",
                "Relaying denied: this gateway only relays for its practices' mail systems and signed-in users",
            ));
        }
        if self.tx.rcpt_to.len() >= self.server.config.max_recipients {
            return self.reply(&Reply::new(
                452,
                "4.5.3",
                "Too many recipients; send the rest in another message",
            ));
        }
        let Ok(address) = store::accounts::normalize_email(&to.address) else {
            return self.reply(&Reply::new(501, "5.1.3", "Bad recipient address syntax"));
        };
        if !self.tx.rcpt_to.contains(&address) {
            self.tx.rcpt_to.push(address);
        }
        self.reply(&Reply::new(250, "2.1.5", "Recipient OK"));
    }
}
