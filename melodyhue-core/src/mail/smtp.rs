//! Delivery over SMTP with lettre.

use std::fmt;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Email, MailError, Mailer};

/// How to reach the SMTP server (`SMTP_*` variables).
///
/// `starttls` and `implicit_tls` both false is plain SMTP, meant for a relay on the same host
/// (or a local catcher); both true is refused by [`SmtpMailer::new`]. Its `Debug` output hides
/// the password.
#[derive(Clone)]
pub struct SmtpSettings {
    /// Server host name (`SMTP_HOST`); also the name its TLS certificate must carry.
    pub host: String,
    /// Server port (`SMTP_PORT`).
    pub port: u16,
    /// User name for AUTH (`SMTP_USER`); no authentication when `None`.
    pub username: Option<String>,
    /// Password for AUTH (`SMTP_PASSWORD`).
    pub password: Option<String>,
    /// Upgrade the connection with STARTTLS before anything else, and fail when the server
    /// does not offer it (`SMTP_STARTTLS`).
    pub starttls: bool,
    /// Speak TLS from the first byte, as on port 465 (`SMTP_SSL`).
    pub implicit_tls: bool,
    /// Sender address (`SMTP_FROM`).
    pub from: String,
    /// Sender display name (`SMTP_FROM_NAME`).
    pub from_name: Option<String>,
    /// Bound on the whole delivery of one message (connect, TLS, AUTH, DATA), and on each
    /// of its steps.
    pub timeout: Duration,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("starttls", &self.starttls)
            .field("implicit_tls", &self.implicit_tls)
            .field("from", &self.from)
            .field("from_name", &self.from_name)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A [`Mailer`] that delivers through an SMTP server, one connection per message.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.email)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// Checks the settings and prepares the transport; nothing is sent and no connection is
    /// opened here.
    ///
    /// # Errors
    /// [`MailError::ConflictingTls`], [`MailError::MissingHost`],
    /// [`MailError::IncompleteCredentials`], [`MailError::InvalidSender`], or
    /// [`MailError::TlsSetup`] when TLS cannot be prepared.
    pub fn new(settings: SmtpSettings) -> Result<Self, MailError> {
        if settings.starttls && settings.implicit_tls {
            return Err(MailError::ConflictingTls);
        }
        if settings.host.trim().is_empty() {
            return Err(MailError::MissingHost);
        }
        let address: Address = settings
            .from
            .trim()
            .parse()
            .map_err(|_| MailError::InvalidSender)?;
        let name = settings
            .from_name
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty());
        let from = Mailbox::new(name, address);

        let tls = if settings.implicit_tls || settings.starttls {
            let parameters =
                TlsParameters::new(settings.host.clone()).map_err(MailError::TlsSetup)?;
            if settings.implicit_tls {
                Tls::Wrapper(parameters)
            } else {
                // Required, not opportunistic: a server without STARTTLS never gets
                // credentials or a message in clear text.
                Tls::Required(parameters)
            }
        } else {
            Tls::None
        };

        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host)
            .port(settings.port)
            .tls(tls)
            .timeout(Some(settings.timeout));
        match (settings.username, settings.password) {
            (Some(username), Some(password)) => {
                builder = builder.credentials(Credentials::new(username, password));
            }
            (None, None) => {}
            _ => return Err(MailError::IncompleteCredentials),
        }

        Ok(Self {
            transport: builder.build(),
            from,
            timeout: settings.timeout,
        })
    }
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: Email) -> Result<(), MailError> {
        let to: Mailbox = email
            .to
            .trim()
            .parse()
            .map_err(|_| MailError::InvalidRecipient)?;
        // Some providers refuse mail without a Message-ID; the sender's domain keeps it
        // meaningful (lettre's default would use the container's host name).
        let message_id = format!(
            "<{:032x}@{}>",
            rand::random::<u128>(),
            self.from.email.domain()
        );
        let message = Message::builder()
            .message_id(Some(message_id))
            .from(self.from.clone())
            .to(to)
            .subject(email.subject)
            .multipart(MultiPart::alternative_plain_html(email.text, email.html))
            .map_err(MailError::Message)?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_response)) => Ok(()),
            Ok(Err(error)) => Err(MailError::Delivery(error)),
            Err(_elapsed) => Err(MailError::Timeout),
        }
    }
}
