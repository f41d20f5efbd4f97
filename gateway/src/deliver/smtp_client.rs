//! A streaming SMTP client (RFC 5321) for one connection: STARTTLS (RFC 3207) or
//! implicit TLS, AUTH PLAIN (RFC 4616), several transactions per connection
//! (RSET before each after the first), MAIL/RCPT/DATA pipelined when the server
//! offers PIPELINING (RFC 2920), and DATA with dot-stuffing applied as the
//! message streams, so a message of any size goes out in bounded memory.
//!
//! Every error says whether the connection can carry another message and
//! whether the message may be sent again at once (see [`TxError`]).

use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

use super::tls::tls_connect;
use super::{Body, Failure, Smarthost, SmarthostTls};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 5321 §4.5.3.2 suggests 5 minutes for most replies, 10 after the data.
const REPLY_TIMEOUT: Duration = Duration::from_mins(5);
const DATA_END_TIMEOUT: Duration = Duration::from_mins(10);
/// RFC 5321 §4.5.3.1.5 allows 512 octets a reply line; some servers send more.
const MAX_REPLY_LINE: u64 = 4096;
/// All the lines of one reply together (a long EHLO list fits many times).
const MAX_REPLY: usize = 64 * 1024;
/// A polite QUIT on a connection being closed gets this long.
pub(super) const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One reply: its code and its lines' text (after the code), one per line.
struct Reply {
    code: u16,
    text: String,
}

impl Reply {
    /// 4xx is a temporary failure, 5xx permanent (anything unexpected too).
    fn failure(&self) -> Failure {
        let text = format!("{} {}", self.code, self.text.replace('\n', " "));
        match self.code / 100 {
            5 => Failure::Permanent(format!("smarthost refused: {text}")),
            _ => Failure::Temporary(format!("smarthost: {text}")),
        }
    }
}

/// Why a transaction did not end in `250`.
pub(super) enum TxError {
    /// The server refused the message (an ordinary 4xx/5xx reply); the
    /// connection is fine for the next message.
    Refused(Failure),
    /// The connection is broken or closing and must be dropped. `resend`: the
    /// server cannot have taken the message (no end-of-data was written), so it
    /// may go out again at once on another connection. Without it the message
    /// is retried later: if its data went out whole but no final reply came, the
    /// server may have it already (at-least-once delivery).
    Broken { failure: Failure, resend: bool },
}

fn broken(resend: bool) -> impl Fn(Failure) -> TxError {
    move |failure| TxError::Broken { failure, resend }
}

fn io_failure(what: &str) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| Failure::Temporary(format!("smarthost {what}: {e}"))
}

/// A session, greeted and (as configured) secured and authenticated.
pub(super) struct Connection {
    io: BufStream<Box<dyn Io>>,
    /// The server offered PIPELINING.
    pipelining: bool,
    /// A transaction was started here: the next begins with RSET.
    used: bool,
}

impl Connection {
    fn new(io: Box<dyn Io>) -> Self {
        Self {
            io: BufStream::new(io),
            pipelining: false,
            used: false,
        }
    }

    /// Connects, reads the greeting, says EHLO, secures and authenticates.
    pub(super) async fn open(host: &Smarthost, helo: &str) -> Result<Self, Failure> {
        let tcp = connect(host).await?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match host.tls {
            SmarthostTls::Implicit => Box::new(tls_connect(host, tcp).await?),
            SmarthostTls::StartTls | SmarthostTls::Opportunistic | SmarthostTls::None => Box::new(tcp),
        };
        let mut client = Self::new(io);
        client.expect(REPLY_TIMEOUT, 220).await?;
        let ehlo = format!("EHLO {helo}");
        let mut capabilities = client.command(&ehlo, 250).await?;
        let offered = has_capability(&capabilities, "STARTTLS");
        let secure = match host.tls {
            SmarthostTls::StartTls => true,
            SmarthostTls::Opportunistic => offered,
            SmarthostTls::Implicit | SmarthostTls::None => false,
        };
        if secure {
            if !offered {
                return Err(Failure::Temporary(
                    "smarthost does not offer STARTTLS, which is required".into(),
                ));
            }
            client.command("STARTTLS", 220).await?;
            // Nothing may be buffered after the 220 (RFC 3207 §4.2).
            let plain = client.io.into_inner();
            client = Self::new(Box::new(tls_connect(host, plain).await?));
            // What was offered before TLS no longer counts (RFC 3207 §4.2).
            capabilities = client.command(&ehlo, 250).await?;
        }
        if let (Some(user), Some(password)) = (&host.username, &host.password) {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
            client.command(&format!("AUTH PLAIN {token}"), 235).await?;
        }
        client.pipelining = has_capability(&capabilities, "PIPELINING");
        Ok(client)
    }

    /// Whether the server offered PIPELINING.
    pub(super) fn pipelining(&self) -> bool {
        self.pipelining
    }

    /// Reads one reply (all its lines). Silence, a closed connection or a
    /// reply past the limits (a line over [`MAX_REPLY_LINE`], a reply over
    /// [`MAX_REPLY`]: a server cannot make us hold more) is a temporary failure.
    async fn reply(&mut self, wait: Duration) -> Result<Reply, Failure> {
        let mut text = String::new();
        let mut code;
        loop {
            let mut line = String::new();
            let mut limited = (&mut self.io).take(MAX_REPLY_LINE);
            let read = tokio::time::timeout(wait, limited.read_line(&mut line))
                .await
                .map_err(|_| Failure::Temporary("smarthost timed out".into()))?
                .map_err(io_failure("read"))?;
            if read == 0 || line.len() < 4 {
                return Err(Failure::Temporary("smarthost closed the connection".into()));
            }
            if !line.ends_with('\n') || text.len() + line.len() > MAX_REPLY {
                return Err(Failure::Temporary("smarthost sent a reply longer than allowed".into()));
            }
            code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(line.get(4..).unwrap_or_default().trim_end());
            if line.as_bytes()[3] != b'-' {
                break;
            }
        }
        Ok(Reply { code, text })
    }

    /// Reads one reply, which must be of the class of `expect`.
    async fn expect(&mut self, wait: Duration, expect: u16) -> Result<String, Failure> {
        let reply = self.reply(wait).await?;
        if reply.code / 100 == expect / 100 {
            Ok(reply.text)
        } else {
            Err(reply.failure())
        }
    }

    async fn write_line(&mut self, line: &str) -> Result<(), Failure> {
        self.io.write_all(line.as_bytes()).await.map_err(io_failure("write"))?;
        self.io.write_all(b"\r\n").await.map_err(io_failure("write"))
    }

    async fn flush(&mut self) -> Result<(), Failure> {
        self.io.flush().await.map_err(io_failure("write"))
    }

    async fn command(&mut self, line: &str, expect: u16) -> Result<String, Failure> {
        self.write_line(line).await?;
        self.flush().await?;
        self.expect(REPLY_TIMEOUT, expect).await
    }

    /// Sends one message to one recipient. With PIPELINING, RSET (on a used
    /// connection), MAIL, RCPT and DATA go out in one write and their replies
    /// are read after; without it, one command at a time.
    pub(super) async fn send(&mut self, from: &str, to: &str, mut body: Body) -> Result<(), TxError> {
        let mut commands = Vec::with_capacity(4);
        if std::mem::replace(&mut self.used, true) {
            commands.push(("RSET".to_owned(), 250));
        }
        commands.push((format!("MAIL FROM:<{from}>"), 250));
        commands.push((format!("RCPT TO:<{to}>"), 250));
        commands.push(("DATA".to_owned(), 354));
        // Nothing of this message is past the server yet: a broken connection
        // until the end of the data means sending again is safe.
        let early = broken(true);
        let mut refused = None;
        let mut data_accepted = false;
        if self.pipelining {
            for (line, _) in &commands {
                self.write_line(line).await.map_err(&early)?;
            }
            self.flush().await.map_err(&early)?;
        }
        for (line, expect) in &commands {
            if !self.pipelining {
                self.write_line(line).await.map_err(&early)?;
                self.flush().await.map_err(&early)?;
            }
            let reply = self.reply(REPLY_TIMEOUT).await.map_err(&early)?;
            if reply.code == 421 {
                // The server is closing the session (often: idle too long).
                return Err(early(reply.failure()));
            }
            if reply.code / 100 == expect / 100 {
                data_accepted = *expect == 354;
                continue;
            }
            if line == "RSET" {
                // A session that cannot be reset cannot be trusted with a message.
                return Err(early(reply.failure()));
            }
            refused.get_or_insert_with(|| reply.failure());
            if !self.pipelining {
                break; // the commands after this one were never sent
            }
        }
        if let Some(failure) = refused {
            if data_accepted {
                // DATA was taken although MAIL or RCPT was refused: leave without
                // an end-of-data, which would send an empty message.
                return Err(TxError::Broken { failure, resend: false });
            }
            return Err(TxError::Refused(failure));
        }
        let mut stuffer = DotStuffer::default();
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            // On an error the connection drops without the final dot, so the
            // server discards the partial message; the error is the queue's
            // (an unreadable file), so there is no point in sending again now.
            let chunk = chunk.map_err(broken(false))?;
            out.clear();
            stuffer.push(&chunk, &mut out);
            self.io
                .write_all(&out)
                .await
                .map_err(io_failure("write"))
                .map_err(&early)?;
        }
        out.clear();
        stuffer.finish(&mut out);
        // From the first byte of the end-of-data on, the server may have the
        // message: any failure now means a later retry, never an immediate one.
        let late = broken(false);
        self.io
            .write_all(&out)
            .await
            .map_err(io_failure("write"))
            .map_err(&late)?;
        self.flush().await.map_err(&late)?;
        let reply = self.reply(DATA_END_TIMEOUT).await.map_err(&late)?;
        match reply.code {
            250..=259 => Ok(()),
            421 => Err(late(reply.failure())),
            _ => Err(TxError::Refused(reply.failure())),
        }
    }

    /// Ends the session politely (the reply does not matter).
    pub(super) async fn quit(mut self) {
        let _ = tokio::time::timeout(QUIT_TIMEOUT, self.command("QUIT", 221)).await;
    }
}

/// Connects to the host's addresses in turn (as resolved for MX delivery), or
/// to its name resolved by the system (a smarthost).
async fn connect(host: &Smarthost) -> Result<TcpStream, Failure> {
    let timed_out = || Failure::Temporary("connection timed out".into());
    if host.connect_to.is_empty() {
        return tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.host.as_str(), host.port)))
            .await
            .map_err(|_| timed_out())?
            .map_err(io_failure("connect"));
    }
    let mut last = timed_out();
    for address in &host.connect_to {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((*address, host.port))).await {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(e)) => last = io_failure("connect")(e),
            Err(_) => last = timed_out(),
        }
    }
    Err(last)
}

/// Whether an EHLO reply's text names `keyword` as one of its extensions.
fn has_capability(ehlo: &str, keyword: &str) -> bool {
    // The first line greets; each other line is an extension and its parameters.
    ehlo.lines().skip(1).any(|line| {
        line.split_ascii_whitespace()
            .next()
            .is_some_and(|word| word.eq_ignore_ascii_case(keyword))
    })
}

/// Dot-stuffing (RFC 5321 §4.5.2) and the end-of-data line, streaming.
#[derive(Debug)]
struct DotStuffer {
    line_start: bool,
    last: [u8; 2],
}

impl Default for DotStuffer {
    fn default() -> Self {
        Self {
            line_start: true,
            last: [b'\r', b'\n'],
        }
    }
}

impl DotStuffer {
    fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for &b in data {
            if self.line_start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            self.line_start = b == b'\n';
            self.last = [self.last[1], b];
        }
    }

    fn finish(self, out: &mut Vec<u8>) {
        if self.last != [b'\r', b'\n'] {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::DotStuffer;

    fn stuff(pieces: &[&[u8]]) -> Vec<u8> {
        let mut stuffer = DotStuffer::default();
        let mut out = Vec::new();
        for piece in pieces {
            stuffer.push(piece, &mut out);
        }
        stuffer.finish(&mut out);
        out
    }

    #[test]
    fn stuffs_leading_dots_across_pieces_and_ends_data() {
        assert_eq!(
            stuff(&[b".hidden\r\nline\r", b"\n.", b"\r\n"]),
            b"..hidden\r\nline\r\n..\r\n.\r\n"
        );
        assert_eq!(stuff(&[b"no final newline"]), b"no final newline\r\n.\r\n");
        assert_eq!(stuff(&[]), b".\r\n");
    }
}
