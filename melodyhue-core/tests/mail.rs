//! Outgoing mail over real sockets: `SmtpMailer` and `Outbox` against the loopback
//! `SmtpCatcher`, dead and silent servers, and the templates.
// A test binary: a failed unwrap in a helper is a failed test.
#![allow(clippy::unwrap_used)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use melodyhue_core::mail::{
    DisabledMailer, Email, MailError, Mailer, Outbox, SmtpMailer, SmtpSettings, templates,
};
use melodyhue_testkit::smtp::SmtpCatcher;
use tokio::net::TcpListener;
use tracing_subscriber::fmt::MakeWriter;

const WAIT: Duration = Duration::from_secs(10);
const TOKEN: &str = "Zm9vYmFy-secret_TOKEN";

fn settings(port: u16) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".to_owned(),
        port,
        username: None,
        password: None,
        starttls: false,
        implicit_tls: false,
        from: "no-reply@melodyhue.test".to_owned(),
        from_name: Some("MelodyHue Équipe".to_owned()),
        timeout: WAIT,
    }
}

fn reset_link() -> String {
    format!("https://app.melodyhue.test/auth/reset?token={TOKEN}")
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
async fn dead_port() -> u16 {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    listener.local_addr().unwrap().port()
}

/// A listener that completes TCP handshakes (the kernel does) but never says a word.
async fn silent_server() -> TcpListener {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap()
}

/// Log lines written while the guard lives, on this thread (tests run on a current-thread
/// runtime, so spawned tasks log here too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        (logs.clone(), tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn smtp_mailer_delivers_a_multipart_message() {
    let catcher = SmtpCatcher::start().await.unwrap();
    let mailer = SmtpMailer::new(settings(catcher.port())).unwrap();

    mailer
        .send(templates::password_reset("ada@example.com", &reset_link()))
        .await
        .unwrap();

    let messages = catcher.wait_for_messages(1, WAIT).await;
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.mail_from, "no-reply@melodyhue.test");
    assert_eq!(message.recipients, ["ada@example.com"]);
    assert_eq!(message.authenticated_as, None);
    assert_eq!(message.from_name.as_deref(), Some("MelodyHue Équipe"));
    assert_eq!(
        message.from_address.as_deref(),
        Some("no-reply@melodyhue.test")
    );
    assert_eq!(message.subject, "Reset your MelodyHue password");
    assert!(message.text.contains(&reset_link()), "{}", message.text);
    assert!(
        message.html.contains(&format!("href=\"{}\"", reset_link())),
        "{}",
        message.html
    );
    let raw = String::from_utf8_lossy(&message.raw).to_ascii_lowercase();
    assert!(raw.contains("multipart/alternative"), "{raw}");
    assert!(raw.contains("text/plain"), "{raw}");
    assert!(raw.contains("text/html"), "{raw}");
    assert!(
        raw.lines()
            .any(|line| line.starts_with("message-id: <") && line.ends_with("@melodyhue.test>")),
        "{raw}"
    );
}

#[tokio::test]
async fn lines_starting_with_a_dot_survive_the_trip() {
    let catcher = SmtpCatcher::start().await.unwrap();
    let mailer = SmtpMailer::new(settings(catcher.port())).unwrap();
    let text = "first line\r\n.starts with a dot\r\n..two dots\r\n.\r\nlast line\r\n";

    mailer
        .send(Email {
            to: "bob@example.org".to_owned(),
            subject: "Dots".to_owned(),
            text: text.to_owned(),
            html: "<p>dots</p>".to_owned(),
        })
        .await
        .unwrap();

    let messages = catcher.wait_for_messages(1, WAIT).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].text.replace("\r\n", "\n"),
        text.replace("\r\n", "\n")
    );
    assert_eq!(messages[0].recipients, ["bob@example.org"]);
}

#[tokio::test]
async fn smtp_mailer_authenticates_with_the_credentials() {
    let catcher = SmtpCatcher::start_with_credentials("mailer", "s3cret pass")
        .await
        .unwrap();
    let mut good = settings(catcher.port());
    good.username = Some("mailer".to_owned());
    good.password = Some("s3cret pass".to_owned());
    let mailer = SmtpMailer::new(good.clone()).unwrap();

    mailer
        .send(templates::twofa_disable(
            "ada@example.com",
            "https://x.test/d?token=t",
        ))
        .await
        .unwrap();

    let messages = catcher.wait_for_messages(1, WAIT).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].authenticated_as.as_deref(), Some("mailer"));

    let mut bad = good;
    bad.password = Some("wrong".to_owned());
    let error = SmtpMailer::new(bad)
        .unwrap()
        .send(templates::twofa_disable(
            "ada@example.com",
            "https://x.test/d?token=t",
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, MailError::Delivery(_)), "{error:?}");
    assert!(!error.to_string().contains("wrong"), "{error}");

    let mut anonymous = settings(catcher.port());
    anonymous.username = None;
    let error = SmtpMailer::new(anonymous)
        .unwrap()
        .send(templates::twofa_disable(
            "ada@example.com",
            "https://x.test/d?token=t",
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, MailError::Delivery(_)), "{error:?}");
    assert_eq!(catcher.messages().len(), 1);
}

#[tokio::test]
async fn send_in_background_delivers() {
    let catcher = SmtpCatcher::start().await.unwrap();
    let outbox = Outbox::new(Arc::new(SmtpMailer::new(settings(catcher.port())).unwrap()));
    assert!(outbox.is_enabled());

    outbox.send_in_background(templates::password_reset("ada@example.com", &reset_link()));
    outbox.send_in_background(templates::twofa_disable(
        "bob@example.org",
        "https://app.melodyhue.test/auth/2fa/disable?token=other",
    ));

    let messages = catcher.wait_for_messages(2, WAIT).await;
    assert_eq!(messages.len(), 2);
    let mut subjects: Vec<_> = messages
        .iter()
        .map(|message| (message.recipients.clone(), message.subject.clone()))
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            (
                vec!["ada@example.com".to_owned()],
                "Reset your MelodyHue password".to_owned()
            ),
            (
                vec!["bob@example.org".to_owned()],
                "Disable two-factor authentication on MelodyHue".to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn smtp_down_is_an_error_now_and_a_log_line_in_the_background() {
    let port = dead_port().await;
    let mut unreachable = settings(port);
    unreachable.timeout = Duration::from_secs(2);
    let mailer = Arc::new(SmtpMailer::new(unreachable).unwrap());

    let error = mailer
        .send(templates::password_reset("ada@example.com", &reset_link()))
        .await
        .unwrap_err();
    assert!(matches!(error, MailError::Delivery(_)), "{error:?}");

    let (logs, _guard) = Logs::capture();
    let outbox = Outbox::new(mailer);
    assert!(
        outbox
            .send_now(templates::password_reset("ada@example.com", &reset_link()))
            .await
            .is_err()
    );
    outbox.send_in_background(templates::password_reset("ada@example.com", &reset_link()));
    outbox.flush().await;

    let logs = logs.text();
    assert!(logs.contains("sending mail failed"), "{logs}");
    assert!(logs.contains("example.com"), "{logs}");
    assert!(!logs.contains(TOKEN), "{logs}");
    assert!(!logs.contains("ada@"), "{logs}");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let server = silent_server().await;
    let mut silent = settings(server.local_addr().unwrap().port());
    silent.timeout = Duration::from_millis(300);
    let mailer = SmtpMailer::new(silent).unwrap();

    let error = mailer
        .send(templates::password_reset("ada@example.com", &reset_link()))
        .await
        .unwrap_err();
    let timed_out = match &error {
        MailError::Timeout => true,
        MailError::Delivery(inner) => inner.is_timeout(),
        _ => false,
    };
    assert!(timed_out, "{error:?}");
}

#[tokio::test]
async fn one_recipient_cannot_monopolise_the_outbox() {
    let server = silent_server().await;
    let mut silent = settings(server.local_addr().unwrap().port());
    silent.timeout = Duration::from_millis(300);
    let outbox = Outbox::with_concurrency(Arc::new(SmtpMailer::new(silent).unwrap()), 1);
    let (logs, _guard) = Logs::capture();

    // A flood for one address fills its lane (3 waiting); the rest is dropped, counted, and
    // logged once rather than line by line.
    for _ in 0..6 {
        outbox.send_in_background(templates::password_reset("ada@example.com", &reset_link()));
    }
    // Another recipient still gets their turn.
    outbox.send_in_background(templates::password_reset("bob@example.org", &reset_link()));
    outbox.flush().await;

    let stats = outbox.stats();
    assert_eq!(stats.dropped_recipient_full, 3);
    assert_eq!(stats.dropped_queue_full, 0);
    assert_eq!((stats.sent, stats.failed), (0, 4));
    let logs = logs.text();
    assert_eq!(logs.matches("mails dropped").count(), 1, "{logs}");
    assert!(logs.contains("recipient_domain=example.org"), "{logs}");
    assert!(logs.contains("sending mail failed"), "{logs}");
    assert!(!logs.contains(TOKEN), "{logs}");
}

#[tokio::test]
async fn the_disabled_mailer_sends_nothing_and_says_so() {
    let (logs, _guard) = Logs::capture();
    let outbox = Outbox::disabled();
    assert!(!outbox.is_enabled());
    assert!(!DisabledMailer.is_enabled());

    outbox
        .send_now(templates::password_reset("ada@example.com", &reset_link()))
        .await
        .unwrap();
    outbox.send_in_background(templates::twofa_disable("bob@example.org", &reset_link()));
    outbox.flush().await;

    let logs = logs.text();
    assert!(logs.contains("SMTP is not configured"), "{logs}");
    assert!(logs.contains("example.com"), "{logs}");
    assert!(logs.contains("example.org"), "{logs}");
    assert!(!logs.contains(TOKEN), "{logs}");
    assert!(!logs.contains("ada@"), "{logs}");
    assert!(!logs.contains("bob@"), "{logs}");
}

#[tokio::test]
async fn starttls_required_never_falls_back_to_plaintext() {
    // The catcher does not offer STARTTLS.
    let catcher = SmtpCatcher::start().await.unwrap();
    let mut tls = settings(catcher.port());
    tls.starttls = true;
    tls.username = Some("mailer".to_owned());
    tls.password = Some("s3cret".to_owned());

    let error = SmtpMailer::new(tls)
        .unwrap()
        .send(templates::password_reset("ada@example.com", &reset_link()))
        .await
        .unwrap_err();
    assert!(matches!(error, MailError::Delivery(_)), "{error:?}");
    assert!(catcher.messages().is_empty());
}

#[tokio::test]
async fn implicit_tls_never_speaks_plaintext() {
    let catcher = SmtpCatcher::start().await.unwrap();
    let mut tls = settings(catcher.port());
    tls.implicit_tls = true;

    let error = SmtpMailer::new(tls)
        .unwrap()
        .send(templates::password_reset("ada@example.com", &reset_link()))
        .await
        .unwrap_err();
    assert!(matches!(error, MailError::Delivery(_)), "{error:?}");
    assert!(catcher.messages().is_empty());
}

#[test]
fn bad_settings_are_refused() {
    let mut both = settings(25);
    both.starttls = true;
    both.implicit_tls = true;
    assert!(matches!(
        SmtpMailer::new(both),
        Err(MailError::ConflictingTls)
    ));

    let mut no_host = settings(25);
    no_host.host = " ".to_owned();
    assert!(matches!(
        SmtpMailer::new(no_host),
        Err(MailError::MissingHost)
    ));

    let mut half = settings(25);
    half.username = Some("mailer".to_owned());
    assert!(matches!(
        SmtpMailer::new(half),
        Err(MailError::IncompleteCredentials)
    ));

    let mut bad_from = settings(25);
    bad_from.from = "not an address".to_owned();
    assert!(matches!(
        SmtpMailer::new(bad_from),
        Err(MailError::InvalidSender)
    ));

    let mut starttls = settings(587);
    starttls.starttls = true;
    assert!(SmtpMailer::new(starttls).is_ok());
    let mut implicit = settings(465);
    implicit.implicit_tls = true;
    assert!(SmtpMailer::new(implicit).is_ok());
}

#[tokio::test]
async fn an_invalid_recipient_is_refused_before_connecting() {
    let catcher = SmtpCatcher::start().await.unwrap();
    let mailer = SmtpMailer::new(settings(catcher.port())).unwrap();
    for to in ["", "no-at-sign", "a@b.test\r\nBcc: eve@evil.test"] {
        let error = mailer
            .send(templates::password_reset(to, &reset_link()))
            .await
            .unwrap_err();
        assert!(matches!(error, MailError::InvalidRecipient), "{error:?}");
    }
    assert!(catcher.messages().is_empty());
}

#[test]
fn debug_output_hides_the_password_and_the_bodies() {
    let mut with_password = settings(25);
    with_password.username = Some("mailer".to_owned());
    with_password.password = Some("hunter2-password".to_owned());
    let shown = format!("{with_password:?}");
    assert!(!shown.contains("hunter2-password"), "{shown}");
    assert!(shown.contains("mailer"), "{shown}");

    let email = templates::password_reset("ada@example.com", &reset_link());
    let shown = format!("{email:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("Reset your MelodyHue password"), "{shown}");
}

#[test]
fn templates_put_the_link_in_both_parts_and_escape_it_in_html() {
    let link = "https://x.test/r?token=a&b=\"<script>'";
    for email in [
        templates::password_reset("ada@example.com", link),
        templates::twofa_disable("ada@example.com", link),
    ] {
        assert_eq!(email.to, "ada@example.com");
        assert!(email.text.contains(link), "{}", email.text);
        assert!(!email.html.contains("<script>"), "{}", email.html);
        assert!(
            email
                .html
                .contains("href=\"https://x.test/r?token=a&amp;b=&quot;&lt;script&gt;'\""),
            "{}",
            email.html
        );
    }
    assert_eq!(
        templates::password_reset("a@b.test", link).subject,
        "Reset your MelodyHue password"
    );
    assert_eq!(
        templates::twofa_disable("a@b.test", link).subject,
        "Disable two-factor authentication on MelodyHue"
    );
}

#[test]
fn recipient_domain_names_only_the_domain() {
    let email = |to: &str| Email {
        to: to.to_owned(),
        subject: String::new(),
        text: String::new(),
        html: String::new(),
    };
    assert_eq!(email("ada@example.com").recipient_domain(), "example.com");
    assert_eq!(
        email("Ada <ada@example.com>").recipient_domain(),
        "example.com"
    );
    assert_eq!(email("nobody").recipient_domain(), "(no domain)");
}

/// One SMTP client exchange by hand: send a line, read the (possibly multi-line) reply code.
struct RawClient {
    reader: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl RawClient {
    async fn connect(port: u16) -> (Self, u16) {
        let stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        let (reader, writer) = stream.into_split();
        let mut client = Self {
            reader: tokio::io::BufReader::new(reader),
            writer,
        };
        let greeting = client.reply().await;
        (client, greeting)
    }

    async fn reply(&mut self) -> u16 {
        use tokio::io::AsyncBufReadExt;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).await.unwrap();
            assert!(line.len() >= 4, "short reply {line:?}");
            // "250-..." continues, "250 ..." ends a reply.
            if line.as_bytes()[3] == b' ' {
                return line[..3].parse().unwrap();
            }
        }
    }

    async fn send(&mut self, line: &str) -> u16 {
        self.write(line).await;
        self.reply().await
    }

    async fn write(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt;
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_catcher_speaks_smtp_by_hand() {
    let catcher = SmtpCatcher::start().await.unwrap();
    let (mut client, greeting) = RawClient::connect(catcher.port()).await;
    assert_eq!(greeting, 220);
    assert_eq!(client.send("HELO client.test").await, 250);
    assert_eq!(client.send("NOOP").await, 250);
    assert_eq!(client.send("MAIL FROM:<dropped@sender.test>").await, 250);
    assert_eq!(client.send("RSET").await, 250);
    assert_eq!(client.send("RCPT TO:<early@example.com>").await, 503);
    assert_eq!(client.send("MAIL FROM:<kept@sender.test>").await, 250);
    assert_eq!(client.send("RCPT TO:<one@example.com>").await, 250);
    assert_eq!(client.send("RCPT TO:<two@example.org>").await, 250);
    assert_eq!(client.send("DATA").await, 354);
    for line in [
        "Subject: =?utf-8?q?caf=C3=A9?=",
        "Content-Type: text/plain; charset=utf-8",
        "",
        "..a stuffed dot",
        "plain line",
    ] {
        client.write(line).await;
    }
    assert_eq!(client.send(".").await, 250);
    assert_eq!(client.send("QUIT").await, 221);

    let messages = catcher.wait_for_messages(1, WAIT).await;
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.mail_from, "kept@sender.test");
    assert_eq!(message.recipients, ["one@example.com", "two@example.org"]);
    assert_eq!(message.subject, "café");
    assert_eq!(
        message.text.replace("\r\n", "\n"),
        ".a stuffed dot\nplain line\n"
    );
}

#[tokio::test]
async fn the_catcher_takes_auth_login_and_refuses_strangers() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let catcher = SmtpCatcher::start_with_credentials("mailer", "s3cret")
        .await
        .unwrap();

    let (mut stranger, _) = RawClient::connect(catcher.port()).await;
    assert_eq!(stranger.send("EHLO client.test").await, 250);
    let refused = stranger.send("MAIL FROM:<a@sender.test>").await;
    assert!((500..600).contains(&refused), "{refused}");
    assert_eq!(stranger.send("AUTH LOGIN").await, 334);
    assert_eq!(stranger.send(&b64("mailer")).await, 334);
    assert_eq!(stranger.send(&b64("wrong")).await, 535);

    let (mut client, _) = RawClient::connect(catcher.port()).await;
    assert_eq!(client.send("EHLO client.test").await, 250);
    assert_eq!(client.send("AUTH LOGIN").await, 334);
    assert_eq!(client.send(&b64("mailer")).await, 334);
    assert_eq!(client.send(&b64("s3cret")).await, 235);
    assert_eq!(client.send("MAIL FROM:<a@sender.test>").await, 250);
    assert_eq!(client.send("RCPT TO:<b@example.com>").await, 250);
    assert_eq!(client.send("DATA").await, 354);
    client.write("Subject: hi").await;
    client.write("").await;
    client.write("body").await;
    assert_eq!(client.send(".").await, 250);

    let messages = catcher.wait_for_messages(1, WAIT).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].authenticated_as.as_deref(), Some("mailer"));
    assert_eq!(messages[0].subject, "hi");
}
