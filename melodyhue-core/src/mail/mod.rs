//! Outgoing mail: the [`Mailer`] trait, SMTP with lettre ([`SmtpMailer`]), a mailer that sends
//! nothing for setups without SMTP ([`DisabledMailer`]), the [`Outbox`] that sends in the
//! background, fairly between recipients, so that no request waits on SMTP, the [`budget`]s
//! of mail per address and per client IP, and the message [`templates`].
//!
//! ```no_run
//! use std::time::Duration;
//! use melodyhue_core::mail::{Outbox, SmtpMailer, SmtpSettings, templates};
//!
//! # async fn demo() -> Result<(), melodyhue_core::mail::MailError> {
//! let mailer = SmtpMailer::new(SmtpSettings {
//!     host: "smtp.example.com".into(),
//!     port: 587,
//!     username: Some("melodyhue".into()),
//!     password: Some("app-password".into()),
//!     starttls: true,
//!     implicit_tls: false,
//!     from: "no-reply@example.com".into(),
//!     from_name: Some("MelodyHue".into()),
//!     timeout: Duration::from_secs(10),
//! })?;
//! let outbox = Outbox::new(std::sync::Arc::new(mailer));
//! outbox.send_in_background(templates::password_reset(
//!     "ada@example.com",
//!     "https://melodyhue.example/auth/reset?token=abc",
//! ));
//! # Ok(())
//! # }
//! ```

pub mod budget;
mod outbox;
mod smtp;
pub mod templates;

use std::fmt;

pub use budget::{BudgetKey, LocalMailBudget, MailBudget, MailLimits};
pub use outbox::{Outbox, OutboxStats, Refusal};
pub use smtp::{SmtpMailer, SmtpSettings};

/// One message to one recipient, with a plain-text and an HTML version of the same content
/// (sent as `multipart/alternative`).
///
/// Its `Debug` output leaves the bodies out: they carry one-time links.
#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    /// The recipient's address, e.g. `ada@example.com`.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("text", &format_args!("<{} bytes>", self.text.len()))
            .field("html", &format_args!("<{} bytes>", self.html.len()))
            .finish()
    }
}

impl Email {
    /// The domain of the recipient's address (what logs may name instead of the address).
    pub fn recipient_domain(&self) -> &str {
        self.to
            .rsplit_once('@')
            .map_or("(no domain)", |(_, domain)| domain.trim_end_matches('>'))
    }
}

/// Why a message could not be sent. Messages never contain a password, a link or a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// `starttls` and `implicit_tls` were both asked for; a connection uses one or the other.
    #[error("SMTP STARTTLS and implicit TLS (SSL) cannot both be enabled")]
    ConflictingTls,
    /// The SMTP host is empty.
    #[error("the SMTP host is empty")]
    MissingHost,
    /// A user name without a password, or a password without a user name.
    #[error("the SMTP user name and password must be given together")]
    IncompleteCredentials,
    /// The configured sender is not a valid address.
    #[error("the SMTP sender address is not a valid email address")]
    InvalidSender,
    /// The recipient is not a valid address.
    #[error("the recipient address is not a valid email address")]
    InvalidRecipient,
    /// TLS could not be set up for the SMTP host.
    #[error("SMTP TLS setup failed: {0}")]
    TlsSetup(lettre::transport::smtp::Error),
    /// The message could not be assembled.
    #[error("the message could not be built: {0}")]
    Message(lettre::error::Error),
    /// The SMTP exchange failed: connection refused, TLS handshake, authentication, or the
    /// server refused the message.
    #[error("SMTP delivery failed: {0}")]
    Delivery(lettre::transport::smtp::Error),
    /// The SMTP exchange did not finish within the configured timeout.
    #[error("SMTP delivery timed out")]
    Timeout,
}

/// Something that delivers [`Email`]s.
#[async_trait::async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Delivers one message, returning once the server has accepted it (or it failed).
    async fn send(&self, email: Email) -> Result<(), MailError>;

    /// Whether this mailer really delivers messages; `false` for [`DisabledMailer`].
    fn is_enabled(&self) -> bool {
        true
    }
}

/// The mailer used when no SMTP server is configured: it sends nothing, logs a warning that
/// names only the recipient's domain, and reports success so that the request still succeeds.
#[derive(Debug, Clone, Copy, Default)]
pub struct DisabledMailer;

#[async_trait::async_trait]
impl Mailer for DisabledMailer {
    async fn send(&self, email: Email) -> Result<(), MailError> {
        tracing::warn!(
            recipient_domain = email.recipient_domain(),
            "SMTP is not configured (SMTP_HOST unset): mail not sent"
        );
        Ok(())
    }

    fn is_enabled(&self) -> bool {
        false
    }
}
