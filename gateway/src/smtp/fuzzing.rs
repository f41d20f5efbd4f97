//! A harness that drives one SMTP session with arbitrary client bytes, for the
//! `smtp_session` fuzz target (`fuzz/`) and the bounded random-input test
//! below: the real [`Session`] over an in-memory pipe (no network) against a
//! real store with a practice, a paid doctor and a recipient. The input's
//! first byte picks the listener and the stream (commands, or a message body
//! after a fixed `EHLO`/`MAIL`/`RCPT`/`DATA`), its second how small the pipe
//! is, so the session sees the bytes cut at every boundary.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use store::accounts::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ListenerKind, Session, SmtpConfig, SmtpServer};

/// The envelope the DATA stream runs under: a paid sender of the practice to a
/// new recipient, relayed from a trusted address.
const ENVELOPE: &[u8] =
    b"EHLO fuzz.example\r\nMAIL FROM:<ada@fuzz.example>\r\nRCPT TO:<pat@patient.example>\r\nDATA\r\n";

/// What a session is fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Command lines on the relay listener from a trusted address.
    RelayCommands,
    /// Command lines on the relay listener from an untrusted address.
    UntrustedCommands,
    /// Command lines on the submission listener.
    SubmissionCommands,
    /// A message body after `DATA` (then `.` and `QUIT`).
    Data,
}

/// A store with a practice in it, and an SMTP server over it.
pub struct Harness {
    server: Arc<SmtpServer>,
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
        let (store, _) = crate::fuzz_store::practice_with_ada(dir).await;
        store
            .accounts()
            .add_practice_user("bob@fuzz.example", "Bob", Role::Staff, "fuzz.example", false, false)
            .await
            .expect("staff");
        let config = SmtpConfig {
            hostname: "mx.fuzz.example".into(),
            max_message_size: 1 << 20,
            ..SmtpConfig::default()
        };
        let server = SmtpServer::new(store, config, None, crate::Wakers::default());
        Self { server }
    }

    /// Splits a fuzz input into what it drives: the stream, the pipe size
    /// and the client's bytes.
    pub fn decode(input: &[u8]) -> (Stream, usize, &[u8]) {
        let (mode, size, rest) = match input {
            [mode, size, rest @ ..] => (*mode, *size, rest),
            [mode] => (*mode, 0, &[][..]),
            [] => (0, 0, &[][..]),
        };
        let stream = match mode % 4 {
            0 => Stream::RelayCommands,
            1 => Stream::UntrustedCommands,
            2 => Stream::SubmissionCommands,
            _ => Stream::Data,
        };
        // 0 is a roomy pipe; otherwise 1 to 255 bytes at a time.
        let size = if size == 0 { 1 << 16 } else { usize::from(size) };
        (stream, size, rest)
    }

    /// Runs one session with `input` (see [`Harness::decode`]); returns
    /// everything the server wrote.
    ///
    /// # Panics
    /// If the session takes over 20 seconds: a hang is a finding.
    pub async fn run(&self, input: &[u8]) -> Vec<u8> {
        let (stream, size, bytes) = Self::decode(input);
        let (peer, kind) = match stream {
            Stream::UntrustedCommands => ("192.0.2.7:4025", ListenerKind::Relay),
            Stream::SubmissionCommands => ("127.0.0.1:4587", ListenerKind::Submission),
            Stream::RelayCommands | Stream::Data => ("127.0.0.1:4025", ListenerKind::Relay),
        };
        let peer: SocketAddr = peer.parse().expect("an address");
        let mut script = Vec::with_capacity(bytes.len() + ENVELOPE.len() + 16);
        if stream == Stream::Data {
            script.extend_from_slice(ENVELOPE);
            script.extend_from_slice(bytes);
            script.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
        } else {
            script.extend_from_slice(bytes);
            script.extend_from_slice(b"\r\nQUIT\r\n");
        }
        let (mut client, mut server_end) = tokio::io::duplex(size);
        let mut session = Session::new(Arc::clone(&self.server), peer, kind);
        let serve = async move {
            let _ = session.run(&mut server_end).await;
            session.abort_transaction().await;
        };
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

/// Every reply line the server wrote is `DDD-text` or `DDD text` with a
/// known first digit, and ends with CRLF.
///
/// # Panics
/// On a malformed reply: the client would misread it.
pub fn assert_replies_well_formed(out: &[u8]) {
    for line in out.split_inclusive(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line);
        assert!(line.ends_with(b"\r\n"), "reply line without CRLF: {text:?}");
        assert!(
            line.len() >= 5
                && matches!(line[0], b'2'..=b'5')
                && line[1..3].iter().all(u8::is_ascii_digit)
                && matches!(line[3], b' ' | b'-'),
            "malformed reply line: {text:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Material for the random inputs: commands and message pieces.
    const PIECES: &[&[u8]] = &[
        b"EHLO a.example\r\n",
        b"HELO a\r\n",
        b"MAIL FROM:<ada@fuzz.example> SIZE=100 BODY=8BITMIME\r\n",
        b"MAIL FROM:<>\r\n",
        b"RCPT TO:<bob@fuzz.example>\r\n",
        b"RCPT TO:<\"q\\\"x\"@example.com> NOTIFY=NEVER\r\n",
        b"DATA\r\n",
        b"BDAT 5 LAST\r\nhello",
        b"AUTH PLAIN AGFkYQB4\r\n",
        b"AUTH LOGIN\r\n",
        b"STARTTLS\r\n",
        b"RSET\r\n",
        b"NOOP\r\n",
        b"VRFY bob\r\n",
        b"Subject: [secure] hi\r\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n",
        b"Content-Transfer-Encoding: base64\r\n\r\n=====\r\n",
        b"\r\n.\r\n",
        b"..\r\n",
        b"\r\n",
        b"\n",
    ];

    use crate::fuzz_store::xorshift as next;

    /// 300 random inputs in every mode and pipe size: every session ends, every
    /// reply is well formed, nothing panics.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn random_session_input_never_breaks_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let harness = Harness::new(dir.path()).await;
        let out = harness
            .run(b"\x03\x07Subject: [secure] results\r\nFrom: ada@fuzz.example\r\n\r\nHello.")
            .await;
        let text = String::from_utf8_lossy(&out);
        assert_replies_well_formed(&out);
        // EHLO, MAIL, RCPT, then the message itself: accepted, and QUIT answered.
        assert_eq!(text.lines().filter(|l| l.starts_with("250 ")).count(), 4, "{text}");
        assert!(text.contains("\r\n354 ") && text.contains("\r\n221 "), "{text}");
        let mut state = 0x5EA1_5A17_u64;
        for _ in 0..300 {
            let mut input = vec![
                u8::try_from(next(&mut state) & 0xff).unwrap(),
                u8::try_from(next(&mut state) & 0xff).unwrap(),
            ];
            for _ in 0..(next(&mut state) % 8) {
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
            // Every input ends the session (else `run` panics after 20 s) with
            // well-formed replies; the input may end inside DATA or AUTH, so
            // the closing QUIT is not always read as a command.
            assert_replies_well_formed(&out);
        }
    }
}
