//! DATA: the message streams into an encrypted spool file as it arrives; at the
//! end it is classified (secure or not), the sender is checked, and only once the
//! spool file and the database row are durable does the client get its 250.
//!
//! Only `<CRLF>.<CRLF>` ends the data (smtp-proto's receiver); a bare LF or CR
//! inside it is normalised to CRLF, so no downstream server can read a different
//! end of message than we did (SMTP smuggling).

use store::accounts::SenderRefusal;
use store::ingest::headers::{HeaderFacts, inspect};
use store::ingest::mime::{MAX_HEADER_BLOCK, MAX_MIME_DEPTH};

use super::data_phase::DataPhase;
use super::reply::{Reply, common};
use super::session::Session;
use super::state::{Next, State, Transaction};

impl Session {
    pub(super) async fn data(&mut self) {
        if self.tx.mail_from.is_none() {
            return self.reply(&common::bad_sequence("send MAIL first"));
        }
        if self.tx.rcpt_to.is_empty() {
            return self.reply(&Reply::new(554, "5.5.1", "No valid recipients"));
        }
        let mut spool = match self.server.store.queue().spool_writer().await {
            Ok(spool) => spool,
            Err(error) => {
                tracing::error!(%error, "cannot create spool file");
                return self.reply(&common::temporary_failure());
            }
        };
        let received = self.received_header(spool.id());
        if let Err(error) = spool.write(received.as_bytes()).await {
            tracing::error!(%error, "cannot write spool file");
            spool.discard().await;
            return self.reply(&common::temporary_failure());
        }
        self.state = State::Data(Box::new(DataPhase::new(Some(spool), received.len())));
        self.reply(&Reply::new(354, "", "Start mail input; end with <CRLF>.<CRLF>"));
    }

    /// Our trace header (RFC 5321 §4.4), first in the stored message.
    fn received_header(&self, id: &store::ids::MessageId) -> String {
        let with = match (self.tls, self.user.is_some()) {
            (true, true) => "ESMTPSA",
            (true, false) => "ESMTPS",
            _ => "ESMTP",
        };
        let date = mail_builder::headers::date::Date::new(self.server.store.now()).to_rfc822();
        format!(
            "Received: from {} ([{}])\r\n\tby {} (Sealpost) with {with} id {id};\r\n\t{date}\r\n",
            self.helo.as_deref().unwrap_or("unknown"),
            self.peer.ip(),
            self.server.config.hostname,
        )
    }

    pub(super) async fn ingest_data(&mut self, bytes: &mut std::slice::Iter<'_, u8>) -> Next {
        let State::Data(phase) = &mut self.state else {
            return Next::Continue;
        };
        let mut raw = Vec::with_capacity(bytes.as_slice().len());
        let done = phase.receiver.ingest(bytes, &mut raw);
        let mut data = Vec::with_capacity(raw.len() + 16);
        phase.normalize(&raw, &mut data);
        phase.size += data.len() as u64;
        if phase.size > self.server.config.max_message_size && !phase.too_big {
            phase.too_big = true;
            if let Some(spool) = phase.spool.take() {
                spool.discard().await;
            }
        }
        if !phase.too_big && !phase.failed && !phase.header_overflow {
            phase.capture_headers(&data);
            if phase.header_overflow
                && let Some(spool) = phase.spool.take()
            {
                spool.discard().await;
            }
            phase.structure.push(&data, &mut Vec::new());
            phase.attachments.push(&data);
            if let Some(spool) = phase.spool.as_mut()
                && let Err(error) = spool.write(&data).await
            {
                tracing::error!(%error, "cannot write spool file");
                phase.failed = true;
            }
        }
        if done {
            let State::Data(phase) = std::mem::replace(&mut self.state, State::Command) else {
                unreachable!()
            };
            let reply = self.end_of_data(*phase).await;
            self.reply(&reply);
            self.tx = Transaction::default();
        }
        Next::Continue
    }

    async fn end_of_data(&mut self, phase: DataPhase) -> Reply {
        if phase.too_big {
            let max = self.server.config.max_message_size;
            return Reply::new(552, "5.3.4", format!("Message too big: the limit is {max} bytes"));
        }
        if phase.header_overflow {
            let max = MAX_HEADER_BLOCK / 1024;
            return Reply::new(
                552,
                "5.3.4",
                format!("Message refused: its header block is over the {max} KiB limit; nothing was sent"),
            );
        }
        let facts = inspect(&phase.header_block, &self.server.store.policy().subject_tag);
        let (Some(spool), false) = (phase.spool, phase.failed) else {
            return common::temporary_failure();
        };
        if phase.structure.finish(&mut Vec::new()).too_deep {
            spool.discard().await;
            return Reply::new(
                554,
                "5.6.0",
                format!("Message refused: its MIME parts are nested more than {MAX_MIME_DEPTH} levels deep"),
            );
        }
        let mail_from = self.tx.mail_from.clone().unwrap_or_default();
        let (sender, thread) = match self.classify(&facts, &mail_from, &phase.header_block).await {
            Ok(classified) => classified,
            Err(reply) => {
                spool.discard().await;
                return reply;
            }
        };
        if let Some(sender) = &sender
            && let Err(reply) = super::attachments::check(
                &self.server.store,
                sender,
                &self.tx.rcpt_to,
                &phase.attachments.finish(),
            )
            .await
        {
            spool.discard().await;
            return reply;
        }
        let spooled = match spool.finish().await {
            Ok(spooled) => spooled,
            Err(error) => {
                tracing::error!(%error, "cannot finish spool file");
                return common::temporary_failure();
            }
        };
        let store = &self.server.store;
        let rcpt_to = &self.tx.rcpt_to;
        let recorded = match (&sender, &thread) {
            (Some(sender), Some(thread)) => {
                store
                    .mail()
                    .accept_thread_reply(&spooled, &mail_from, rcpt_to, sender.id, &thread.message)
                    .await
            }
            (Some(sender), None) => {
                store
                    .queue()
                    .accept_secure(&spooled, &mail_from, rcpt_to, sender.id)
                    .await
            }
            (None, _) => store.queue().accept_plain(&spooled, &mail_from, rcpt_to).await,
        };
        if let Err(error) = recorded {
            tracing::error!(%error, "cannot record spooled message");
            spooled.discard().await;
            return common::temporary_failure();
        }
        let (secure, reply, recipients) = (sender.is_some(), thread.is_some(), self.tx.rcpt_to.len());
        self.server.backlog.added(if secure { 1 } else { recipients });
        tracing::info!(id = %spooled.id, size = spooled.size, recipients, secure, reply, "message accepted");
        telemetry::metrics().accepted(self.kind.metric_name(), secure);
        if secure {
            telemetry::latency::accepted(spooled.id.as_str());
        }
        if secure {
            self.server.wakers.sealer.notify_one();
            Reply::new(250, "2.0.0", format!("Message accepted and sealed as {}", spooled.id))
        } else {
            self.server.wakers.delivery.notify_one();
            Reply::new(250, "2.0.0", format!("Message accepted for delivery as {}", spooled.id))
        }
    }

    /// Secure or not, and who sends it: a marked message needs a secure sender;
    /// an unmarked one that replies to a secure conversation is secure too
    /// (see `thread.rs`); anything else is ordinary mail. Relayed mail must
    /// first pass the tenant check when one is configured.
    async fn classify(
        &self,
        facts: &HeaderFacts,
        mail_from: &str,
        header_block: &[u8],
    ) -> Result<(Option<store::accounts::User>, Option<store::threads::Thread>), Reply> {
        self.check_tenant(header_block)?;
        if facts.is_secure() {
            let sender = self.secure_sender(facts, mail_from).await?;
            if let Some(practice) = sender.practice_id {
                self.check_practice_source(&sender, practice, true, header_block)
                    .await?;
            }
            return Ok((Some(sender), None));
        }
        let Some(thread) = self.secure_thread(header_block).await? else {
            self.ordinary_sender(facts, mail_from).await?;
            return Ok((None, None));
        };
        let sender = self.thread_sender(facts.from.as_deref(), mail_from, &thread).await?;
        let practice = sender.practice_id.unwrap_or(thread.practice_id);
        self.check_practice_source(&sender, practice, false, header_block)
            .await?;
        Ok((Some(sender), Some(thread)))
    }

    /// Ordinary mail from a signed-in session: only a paid practice user may send
    /// it through the gateway, and only as themselves. A free account (a patient,
    /// another practice's doctor) signs in to reply in secure conversations, not to
    /// use the gateway as a mail server for everything else. Relayed mail comes
    /// from the practice's own mail system, which vouches for its senders.
    /// A practice's SMTP AUTH relay account relays like its trusted relay, for
    /// senders in the practice's domains only.
    async fn ordinary_sender(&self, facts: &HeaderFacts, mail_from: &str) -> Result<(), Reply> {
        let Some(user) = &self.user else {
            return Ok(());
        };
        if self
            .relay_account_allows(&[facts.from.as_deref().unwrap_or(mail_from), mail_from])
            .await?
        {
            return Ok(());
        }
        if user.may_send_secure().is_err() {
            return Err(Reply::new(
                550,
                "5.7.1",
                "Mail refused: this account may send only replies in its secure conversations",
            ));
        }
        let address = facts.from.as_deref().unwrap_or(mail_from);
        if address != user.email || (!mail_from.is_empty() && mail_from != user.email) {
            return Err(Reply::new(
                550,
                "5.7.1",
                format!("Mail refused: the sender address is not yours ({})", user.email),
            ));
        }
        Ok(())
    }

    /// Only a paid user of a known practice may send secure mail, and a signed-in
    /// user only as themselves; then `check_practice_source` (`tenant.rs`) makes
    /// sure this mail system may send for that practice.
    async fn secure_sender(&self, facts: &HeaderFacts, mail_from: &str) -> Result<store::accounts::User, Reply> {
        let address = facts.from.clone().unwrap_or_else(|| mail_from.to_owned());
        let relay_account = self.relay_account_allows(&[&address, mail_from]).await?;
        if let Some(user) = &self.user
            && !relay_account
            && address != user.email
        {
            return Err(Reply::new(
                550,
                "5.7.1",
                format!(
                    "Secure mail refused: the From address {address} is not yours ({})",
                    user.email
                ),
            ));
        }
        let refusal = match self.server.store.accounts().secure_sender(&address).await {
            Ok(Ok(user)) if relay_account && user.practice_id != self.relay_for => {
                return Err(Reply::new(
                    550,
                    "5.7.1",
                    format!("Secure mail refused: {address} is not a user of this relay account's practice"),
                ));
            }
            Ok(Ok(user)) => return Ok(user),
            Ok(Err(refusal)) => refusal,
            Err(error) => {
                tracing::error!(%error, "cannot look up sender");
                return Err(common::temporary_failure());
            }
        };
        let why = match refusal {
            SenderRefusal::Unknown => "is not a Sealpost user; ask your practice's IT admin to add you",
            SenderRefusal::NotPracticeUser => "is not a member of a practice, so it cannot send secure mail",
            SenderRefusal::NotPaid => "needs a paid Sealpost account to send secure mail",
        };
        Err(Reply::new(
            550,
            "5.7.1",
            format!("Secure mail refused: {address} {why}"),
        ))
    }
}
