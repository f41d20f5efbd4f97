//! A harness that drives one signed-in IMAP session with arbitrary client
//! bytes, for the `imap_command` fuzz target (`fuzz/`) and the bounded
//! random-input test below. It opens a real store in a given folder, with a
//! practice, a sender, a recipient with an app password and two sealed
//! messages (one plain, one with nested and embedded MIME parts).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use store::accounts::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ImapConfig, ImapServer, Session};

const RECIPIENT: &str = "bob@fuzz.example";

/// A message with a multipart inside a multipart and an embedded message.
const NESTED: &[u8] = b"From: Ada <ada@fuzz.example>\r\nTo: bob@fuzz.example\r\nSubject: nested\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\nContent-Type: text/plain\r\n\r\nplain\r\n--i\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--i--\r\n--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: text/plain\r\n\r\ninner body\r\n--o\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--o--\r\n";
const PLAIN: &[u8] = b"From: Ada <ada@fuzz.example>\r\nTo: bob@fuzz.example\r\nSubject: plain\r\n\r\nHello Bob.\r\n";

/// A store with mail in it, and an IMAP server over it.
pub struct Harness {
    server: Arc<ImapServer>,
    login: Vec<u8>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").finish_non_exhaustive()
    }
}

impl Harness {
    /// Sets everything up in `dir` (which must outlive the harness).
    ///
    /// # Panics
    /// If the store cannot be opened or filled: the harness is for tests.
    pub async fn new(dir: &Path) -> Self {
        let (store, ada) = crate::fuzz_store::practice_with_ada(dir).await;
        let (bob, _) = store
            .accounts()
            .add_practice_user(RECIPIENT, "Bob", Role::Staff, "fuzz.example", false, false)
            .await
            .expect("recipient");
        let password = store
            .auth()
            .create_app_password(&bob, "fuzz", "fuzz")
            .await
            .expect("app password");
        for mail in [PLAIN, NESTED] {
            let mut writer = store.queue().spool_writer().await.expect("spool");
            writer.write(mail).await.expect("spool write");
            let spooled = writer.finish().await.expect("spooled");
            store
                .queue()
                .accept_secure(&spooled, "ada@fuzz.example", &[RECIPIENT.to_owned()], ada.id)
                .await
                .expect("accepted");
            store.mail().seal_spooled(&spooled.id).await.expect("sealed");
        }
        let server = ImapServer::new(store, ImapConfig::default(), acceptor());
        let login = format!("L LOGIN {RECIPIENT} \"{password}\"\r\nS SELECT INBOX\r\n").into_bytes();
        Self { server, login }
    }

    /// The store the server reads.
    pub fn store(&self) -> &Arc<store::Store> {
        &self.server.store
    }

    /// Runs a session that signs in and selects INBOX, then reads `input`
    /// and logs out; returns everything the server wrote.
    ///
    /// # Panics
    /// If the session takes over 20 seconds: a hang is a finding.
    pub async fn run(&self, input: &[u8]) -> Vec<u8> {
        let (mut client, mut server_end) = tokio::io::duplex(1 << 16);
        let peer: SocketAddr = "127.0.0.1:4143".parse().expect("an address");
        let mut session = Session::new(Arc::clone(&self.server), peer, true);
        let serve = async move {
            let _ = session.run(&mut server_end, true).await;
        };
        let mut script = self.login.clone();
        script.extend_from_slice(input);
        script.extend_from_slice(b"\r\nZ LOGOUT\r\n");
        let talk = async move {
            let (mut read, mut write) = tokio::io::split(&mut client);
            let send = async move {
                let _ = write.write_all(&script).await;
                let _ = write.shutdown().await;
            };
            let mut out = Vec::new();
            let receive = read.read_to_end(&mut out);
            let ((), _) = tokio::join!(send, receive);
            out
        };
        let both = async { tokio::join!(serve, talk).1 };
        tokio::time::timeout(Duration::from_secs(20), both)
            .await
            .expect("the session ends within 20 s")
    }
}

/// A TLS acceptor with a throwaway self-signed certificate (sessions here run
/// as if TLS were already on, so it is never used).
fn acceptor() -> tokio_rustls::TlsAcceptor {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let key = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).expect("key");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("certificate and key match");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, BufReader};

    use super::*;

    /// A signed-in session waiting for its next command says `* BYE
    /// [UNAVAILABLE]` and ends when stopping is asked for, letting go of its
    /// shutdown handle.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopping_server_says_bye_between_commands() {
        let dir = tempfile::tempdir().unwrap();
        let harness = Harness::new(dir.path()).await;
        let (trigger, shutdown) = crate::shutdown::channel();
        let (client, mut server_end) = tokio::io::duplex(1 << 16);
        let peer: SocketAddr = "127.0.0.1:4143".parse().unwrap();
        let mut session = Session::new(Arc::clone(&harness.server), peer, true);
        session.shutdown = Some(shutdown);
        let serve = tokio::spawn(async move { session.run(&mut server_end, true).await.unwrap() });
        let mut reader = BufReader::new(client);
        reader.get_mut().write_all(&harness.login).await.unwrap();
        let mut line = String::new();
        while !line.starts_with("S ") {
            line.clear();
            assert!(
                reader.read_line(&mut line).await.unwrap() > 0,
                "the session ended early"
            );
        }
        assert!(line.starts_with("S OK"), "{line}");
        trigger.request();
        let mut rest = String::new();
        reader.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "* BYE [UNAVAILABLE] Server shutting down; try again later\r\n");
        assert!(matches!(serve.await.unwrap(), super::super::session::Next::Close));
        assert!(trigger.stop(Duration::from_mins(1)).await);
    }

    /// Commands a client might send, as material for the random inputs.
    const PIECES: &[&[u8]] = &[
        b"a FETCH 1:* (BODYSTRUCTURE)\r\n",
        b"a FETCH 2 (BODY.PEEK[1.2] BODY.PEEK[2.HEADER] BODY[2.1] BODY.PEEK[3.MIME])\r\n",
        b"a UID FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n",
        b"a FETCH * (BODY.PEEK[2.HEADER.FIELDS.NOT (TO)]<0.10> BODY[TEXT]<3.4>)\r\n",
        b"a LIST \"\" *\r\n",
        b"a LIST \"\" %%%*%q\r\n",
        b"a STORE 1 +FLAGS (\\Seen)\r\n",
        b"a SEARCH UNSEEN\r\n",
        b"a STATUS INBOX (MESSAGES UNSEEN)\r\n",
        b"a EXAMINE Sent\r\n",
        b"a SELECT INBOX\r\n",
        b"a NOOP\r\n",
        b"a IDLE\r\nDONE\r\n",
        b"a APPEND INBOX {5}\r\nhello\r\n",
        b"a FETCH 1 (BODY[",
        b"{99999999}\r\n",
        b"* ( ) [ ] < > \" \\ % { }",
        b"\r\n",
    ];

    use crate::fuzz_store::xorshift as next;

    /// 300 random inputs (splices of real commands and random bytes) through a
    /// signed-in session: each ends with the LOGOUT answered, nothing panics
    /// and nothing hangs. The fuzz target does the same without a bound.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn random_command_input_never_breaks_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let harness = Harness::new(dir.path()).await;
        let out = harness.run(b"a FETCH 1:* (BODYSTRUCTURE BODY.PEEK[1.2])\r\n").await;
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("L OK") && text.contains("a OK FETCH completed"), "{text}");
        assert!(
            text.contains("\"alternative\"") && text.contains("<p>html</p>"),
            "{text}"
        );
        let mut state = 0x5EA1_7057_u64;
        for round in 0..300 {
            let mut input = Vec::new();
            for _ in 0..(next(&mut state) % 6) {
                let piece = PIECES[usize::try_from(next(&mut state) % PIECES.len() as u64).unwrap()];
                if next(&mut state).is_multiple_of(4) {
                    let cut = usize::try_from(next(&mut state) % (piece.len() as u64 + 1)).unwrap();
                    input.extend_from_slice(&piece[..cut]);
                } else {
                    input.extend_from_slice(piece);
                }
                for _ in 0..(next(&mut state) % 3) {
                    input.push(u8::try_from(next(&mut state) & 0xff).unwrap());
                }
            }
            let out = harness.run(&input).await;
            let text = String::from_utf8_lossy(&out);
            assert!(text.starts_with("* OK"), "round {round}: {input:?} -> {text}");
        }
    }
}
