//! Text messages and voice calls that carry two-step codes: a pluggable
//! provider and the worker that sends what the store queued.
//!
//! Providers: `dev` writes one file per message to `<data_dir>/outbox-sms/`
//! (for development and tests); `http` posts the form fields `To`, `From`,
//! `Body` (and `Channel`) with HTTP Basic auth to a configured URL, the way
//! Twilio's Messages API and most SMS gateways take them. The code never
//! reaches a log line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use store::Store;
use store::accounts::sms::SmsMessage;

/// Something that delivers a text message or makes a voice call.
pub trait SmsProvider: Send + Sync {
    /// Sends one message; the error is for the log and must not contain the text.
    fn send<'a>(
        &'a self,
        message: &'a SmsMessage,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// Writes each message to a file in a folder.
#[derive(Debug, Clone)]
pub struct DevProvider {
    pub dir: PathBuf,
}

impl SmsProvider for DevProvider {
    fn send<'a>(
        &'a self,
        message: &'a SmsMessage,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            tokio::fs::create_dir_all(&self.dir)
                .await
                .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
            let name = format!("{}.txt", store::crypto::random_hex(8));
            let tmp = self.dir.join(format!(".{name}.tmp"));
            let body = format!(
                "To: {}\nChannel: {}\nText: {}\n",
                message.to, message.channel, message.text
            );
            tokio::fs::write(&tmp, body)
                .await
                .map_err(|e| format!("cannot write an SMS file: {e}"))?;
            tokio::fs::rename(&tmp, self.dir.join(name))
                .await
                .map_err(|e| format!("cannot write an SMS file: {e}"))
        })
    }
}

/// Posts each message to an HTTP API (Twilio-style form fields, Basic auth).
#[derive(Debug, Clone)]
pub struct HttpProvider {
    pub url: String,
    pub from: String,
    pub username: String,
    pub password: String,
    pub client: reqwest::Client,
}

impl HttpProvider {
    pub fn new(url: String, from: String, username: String, password: String) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap_or_default();
        Self {
            url,
            from,
            username,
            password,
            client,
        }
    }
}

impl SmsProvider for HttpProvider {
    fn send<'a>(
        &'a self,
        message: &'a SmsMessage,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let reply = self
                .client
                .post(&self.url)
                .basic_auth(&self.username, Some(&self.password))
                .form(&[
                    ("To", message.to.as_str()),
                    ("From", self.from.as_str()),
                    ("Body", message.text.as_str()),
                    ("Channel", message.channel.as_str()),
                ])
                .send()
                .await
                .map_err(|e| format!("SMS provider unreachable: {}", e.without_url()))?;
            if reply.status().is_success() {
                Ok(())
            } else {
                Err(format!("SMS provider answered {}", reply.status()))
            }
        })
    }
}

/// Runs forever: sends every queued text or call through `provider`. While the
/// store fails it backs off (see [`Backoff`](crate::workers::Backoff)).
pub async fn run_sms(store: Arc<Store>, provider: Arc<dyn SmsProvider>) {
    let mut backoff = crate::workers::Backoff::new("sms");
    loop {
        match send_pending(&store, provider.as_ref()).await {
            Ok(()) => {
                backoff.succeed();
                let _ = tokio::time::timeout(Duration::from_secs(5), store.queue().sms_added().notified()).await;
            }
            Err(error) => tokio::time::sleep(backoff.fail(&error)).await,
        }
    }
}

/// One pass over the queued texts and calls; a store error is returned after it.
async fn send_pending(store: &Store, provider: &dyn SmsProvider) -> Result<(), store::Error> {
    let mut failed = None;
    for job in store.queue().claim_sms(20).await? {
        let result = provider.send(job.message.expose()).await;
        telemetry::metrics().sms(result.is_ok());
        if let Err(error) = &result {
            tracing::warn!(job = job.id, %error, "cannot send a code by SMS/voice; will retry");
        } else {
            tracing::info!(job = job.id, "code sent by SMS/voice");
        }
        if let Err(error) = store.queue().sms_done(&job, result.is_ok()).await {
            failed = Some(error);
        }
    }
    failed.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dev_provider_writes_one_file_per_message() {
        let dir = tempfile::tempdir().unwrap();
        let provider = DevProvider {
            dir: dir.path().join("outbox-sms"),
        };
        let message = SmsMessage {
            to: "+1 555 010 0199".into(),
            channel: "voice".into(),
            text: "Your Sealpost code is 123456.".into(),
        };
        provider.send(&message).await.unwrap();
        provider.send(&message).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox-sms"))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(files.len(), 2);
        let text = std::fs::read_to_string(files[0].path()).unwrap();
        assert_eq!(
            text,
            "To: +1 555 010 0199\nChannel: voice\nText: Your Sealpost code is 123456.\n"
        );
    }

    #[tokio::test]
    async fn http_provider_posts_twilio_style_form_with_basic_auth() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/2010-04-01/Accounts/AC1/Messages.json",
            listener.local_addr().unwrap()
        );
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&request).contains("Body=") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0);
                request.extend_from_slice(&buf[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                .await
                .unwrap();
            String::from_utf8(request).unwrap()
        });
        let provider = HttpProvider::new(url, "+15550000000".into(), "AC1".into(), "secret".into());
        let message = SmsMessage {
            to: "+15550100199".into(),
            channel: "sms".into(),
            text: "Your Sealpost code is 123456.".into(),
        };
        provider.send(&message).await.unwrap();
        let request = server.await.unwrap();
        assert!(
            request.starts_with("POST /2010-04-01/Accounts/AC1/Messages.json"),
            "{request}"
        );
        // base64("AC1:secret")
        assert!(request.contains("authorization: Basic QUMxOnNlY3JldA=="), "{request}");
        assert!(request.contains("To=%2B15550100199&From=%2B15550000000&Body=Your+Sealpost+code+is+123456."));
    }
}
