//! An SMTP server on loopback that keeps every message it receives.
//!
//! The protocol (commands, AUTH PLAIN/LOGIN, dot-unstuffing) is handled by the `mailin`
//! state machine and the kept messages are decoded with `mail-parser`; this module only moves
//! bytes between a socket and the two.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use melodyhue_testkit::smtp::SmtpCatcher;
//!
//! let catcher = SmtpCatcher::start().await?;
//! // ... point SMTP_HOST=127.0.0.1, SMTP_PORT=catcher.port() at it and trigger a mail ...
//! let messages = catcher.wait_for_messages(1, Duration::from_secs(5)).await;
//! assert_eq!(messages[0].recipients, ["ada@example.com"]);
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mail_parser::MessageParser;
use mailin::{Action, AuthMechanism, Handler, Response, SessionBuilder, response};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// Longest command or data line accepted, CRLF included (RFC 5321 allows 1000; some clients
/// are sloppy).
const MAX_LINE_BYTES: u64 = 8 * 1024;
/// Largest message kept; bigger ones are refused with 552.
const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
/// A connection silent for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed accept.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// A message received by an [`SmtpCatcher`], with its envelope and its decoded content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaughtMessage {
    /// The envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// The envelope recipients (`RCPT TO`), in order.
    pub recipients: Vec<String>,
    /// The user name the client authenticated as, when it did.
    pub authenticated_as: Option<String>,
    /// The display name of the `From` header, decoded.
    pub from_name: Option<String>,
    /// The address of the `From` header.
    pub from_address: Option<String>,
    /// The decoded `Subject` header (empty when missing).
    pub subject: String,
    /// The decoded plain-text body (empty when missing).
    pub text: String,
    /// The decoded HTML body (empty when missing).
    pub html: String,
    /// The message as received, after dot-unstuffing.
    pub raw: Vec<u8>,
}

/// An SMTP server on `127.0.0.1` that keeps the messages it is sent. It runs on a tokio task
/// (and one per connection) until it is dropped.
///
/// Made by [`SmtpCatcher::start`] it takes mail from anyone; made by
/// [`SmtpCatcher::start_with_credentials`] it offers AUTH PLAIN and LOGIN (without TLS) and
/// takes mail only after a successful login with those credentials.
#[derive(Debug)]
pub struct SmtpCatcher {
    port: u16,
    inbox: Arc<Inbox>,
    server: JoinHandle<()>,
}

impl Drop for SmtpCatcher {
    fn drop(&mut self) {
        // The connection tasks live in a JoinSet owned by this task: they stop with it.
        self.server.abort();
    }
}

#[derive(Debug, Default)]
struct Inbox {
    messages: Mutex<Vec<CaughtMessage>>,
    arrived: Notify,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, Vec<CaughtMessage>> {
        // A panic while holding the lock cannot leave the Vec half-updated.
        self.messages.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn keep(&self, message: CaughtMessage) {
        self.lock().push(message);
        self.arrived.notify_waiters();
    }
}

#[derive(Debug)]
struct Login {
    username: String,
    password: String,
}

impl SmtpCatcher {
    /// Starts a catcher that needs no authentication, on `127.0.0.1` and a free port.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn start() -> io::Result<Self> {
        Self::bind(None).await
    }

    /// Starts a catcher that requires AUTH PLAIN or LOGIN with these credentials before it
    /// takes mail, on `127.0.0.1` and a free port.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn start_with_credentials(username: &str, password: &str) -> io::Result<Self> {
        Self::bind(Some(Login {
            username: username.to_owned(),
            password: password.to_owned(),
        }))
        .await
    }

    async fn bind(login: Option<Login>) -> io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let port = listener.local_addr()?.port();
        let inbox = Arc::new(Inbox::default());
        let server = tokio::spawn(accept_loop(
            listener,
            Arc::clone(&inbox),
            login.map(Arc::new),
        ));
        Ok(Self {
            port,
            inbox,
            server,
        })
    }

    /// The port it listens on, on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<CaughtMessage> {
        self.inbox.lock().clone()
    }

    /// Waits until at least `count` messages have been received, or `timeout` has passed,
    /// and returns every message received by then (check the length).
    pub async fn wait_for_messages(&self, count: usize, timeout: Duration) -> Vec<CaughtMessage> {
        let enough = async {
            loop {
                // Registered before looking, so a message kept in between still wakes us.
                let arrived = self.inbox.arrived.notified();
                tokio::pin!(arrived);
                arrived.as_mut().enable();
                if self.inbox.lock().len() >= count {
                    return;
                }
                arrived.await;
            }
        };
        // Reaching the timeout is not an error here: the caller asserts on what it got.
        let _ = tokio::time::timeout(timeout, enough).await;
        self.messages()
    }
}

async fn accept_loop(listener: TcpListener, inbox: Arc<Inbox>, login: Option<Arc<Login>>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let session = serve_connection(stream, peer.ip(), Arc::clone(&inbox), login.clone());
                    connections.spawn(async move {
                        if let Err(error) = session.await {
                            tracing::debug!(%error, "SMTP catcher: connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // E.g. out of file descriptors: pause rather than spin.
                    tracing::debug!(%error, "SMTP catcher: accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            // Reap finished connections so that the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: IpAddr,
    inbox: Arc<Inbox>,
    login: Option<Arc<Login>>,
) -> io::Result<()> {
    let mut builder = SessionBuilder::new("melodyhue-smtp-catcher");
    if login.is_some() {
        builder
            .enable_auth(AuthMechanism::Plain)
            .enable_auth(AuthMechanism::Login)
            // Loopback only, and the point is to test AUTH without certificates.
            .insecure_enable_plaintext_auth();
    }
    let mut session = builder.build(peer, Recorder::new(inbox, login));

    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    writer.write_all(&session.greeting().buffer()?).await?;

    let mut line = Vec::with_capacity(512);
    loop {
        line.clear();
        let mut limited = (&mut reader).take(MAX_LINE_BYTES);
        let read = limited.read_until(b'\n', &mut line);
        let read = tokio::time::timeout(IDLE_TIMEOUT, read)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client idle"))??;
        if read == 0 {
            return Ok(());
        }
        if !line.ends_with(b"\n") {
            // Either the client closed mid-line or the line is too long: nothing sensible
            // can follow.
            writer.write_all(b"500 Line too long\r\n").await?;
            return Ok(());
        }
        let reply = session.process(&line);
        let bytes = reply.buffer()?;
        match reply.action {
            Action::NoReply => {}
            Action::Reply => writer.write_all(&bytes).await?,
            // STARTTLS is never offered, so an upgrade cannot be asked for; close either way.
            Action::Close | Action::UpgradeTls => {
                writer.write_all(&bytes).await?;
                return Ok(());
            }
        }
    }
}

/// The `mailin` handler of one connection: checks logins and keeps the messages.
struct Recorder {
    inbox: Arc<Inbox>,
    login: Option<Arc<Login>>,
    authenticated_as: Option<String>,
    mail_from: String,
    recipients: Vec<String>,
    data: Vec<u8>,
    too_big: bool,
}

impl Recorder {
    fn new(inbox: Arc<Inbox>, login: Option<Arc<Login>>) -> Self {
        Self {
            inbox,
            login,
            authenticated_as: None,
            mail_from: String::new(),
            recipients: Vec::new(),
            data: Vec::new(),
            too_big: false,
        }
    }

    fn authenticate(&mut self, username: &str, password: &str) -> Response {
        match &self.login {
            Some(login) if login.username == username && login.password == password => {
                self.authenticated_as = Some(username.to_owned());
                response::AUTH_OK
            }
            _ => response::INVALID_CREDENTIALS,
        }
    }
}

impl Handler for Recorder {
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.mail_from = from.to_owned();
        self.recipients = to.to_vec();
        self.data.clear();
        self.too_big = false;
        response::OK
    }

    fn data(&mut self, line: &[u8]) -> io::Result<()> {
        // Refused at the end of DATA: an error now would be a reply in the middle of it.
        if self.data.len() + line.len() > MAX_MESSAGE_BYTES {
            self.too_big = true;
        } else if !self.too_big {
            self.data.extend_from_slice(line);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let raw = std::mem::take(&mut self.data);
        if self.too_big {
            return response::NO_STORAGE;
        }
        self.inbox.keep(decode(
            std::mem::take(&mut self.mail_from),
            std::mem::take(&mut self.recipients),
            self.authenticated_as.clone(),
            raw,
        ));
        response::OK
    }

    fn auth_plain(&mut self, _authorization_id: &str, username: &str, password: &str) -> Response {
        self.authenticate(username, password)
    }

    fn auth_login(&mut self, username: &str, password: &str) -> Response {
        self.authenticate(username, password)
    }
}

fn decode(
    mail_from: String,
    recipients: Vec<String>,
    authenticated_as: Option<String>,
    raw: Vec<u8>,
) -> CaughtMessage {
    let parsed = MessageParser::default().parse(&raw);
    let parsed = parsed.as_ref();
    let from = parsed.and_then(|message| message.from()?.first());
    let body = |part: Option<Cow<'_, str>>| part.map(Cow::into_owned).unwrap_or_default();
    CaughtMessage {
        mail_from,
        recipients,
        authenticated_as,
        from_name: from.and_then(|from| from.name()).map(str::to_owned),
        from_address: from.and_then(|from| from.address()).map(str::to_owned),
        subject: parsed
            .and_then(|message| message.subject())
            .unwrap_or_default()
            .to_owned(),
        text: body(parsed.and_then(|message| message.body_text(0))),
        html: body(parsed.and_then(|message| message.body_html(0))),
        raw,
    }
}
