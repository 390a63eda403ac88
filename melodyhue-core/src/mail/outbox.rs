//! Sending without making the request wait.

use std::fmt;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::{DisabledMailer, Email, MailError, Mailer};

/// Hands messages to a [`Mailer`], either in the background ([`Outbox::send_in_background`])
/// or awaited ([`Outbox::send_now`]). Cheap to clone; clones share the mailer and the limit.
///
/// At most [`Outbox::concurrency`] background deliveries run at once. A message handed over
/// while all of them are busy is **dropped with a warning** rather than queued: a stuck SMTP
/// server then costs a bounded amount of memory and never slows a request down, and the user
/// can ask for the mail again.
#[derive(Clone)]
pub struct Outbox {
    mailer: Arc<dyn Mailer>,
    in_flight: Arc<Semaphore>,
    concurrency: u32,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("enabled", &self.is_enabled())
            .field("concurrency", &self.concurrency)
            .field("available", &self.in_flight.available_permits())
            .finish()
    }
}

impl Outbox {
    /// Background deliveries allowed at once by [`Outbox::new`].
    pub const DEFAULT_CONCURRENCY: u32 = 16;

    /// An outbox over `mailer` with [`Outbox::DEFAULT_CONCURRENCY`].
    pub fn new(mailer: Arc<dyn Mailer>) -> Self {
        Self::with_concurrency(mailer, Self::DEFAULT_CONCURRENCY)
    }

    /// An outbox over `mailer` running at most `concurrency` background deliveries at once
    /// (at least one).
    pub fn with_concurrency(mailer: Arc<dyn Mailer>, concurrency: u32) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            mailer,
            in_flight: Arc::new(Semaphore::new(concurrency as usize)),
            concurrency,
        }
    }

    /// An outbox that sends nothing ([`DisabledMailer`]), for setups without SMTP.
    pub fn disabled() -> Self {
        Self::new(Arc::new(DisabledMailer))
    }

    /// Whether messages are really delivered (false without SMTP).
    pub fn is_enabled(&self) -> bool {
        self.mailer.is_enabled()
    }

    /// How many background deliveries may run at once.
    pub fn concurrency(&self) -> u32 {
        self.concurrency
    }

    /// Starts delivering `email` on a task of the current tokio runtime and returns at once.
    /// A failure is logged (`warn`, naming the recipient's domain, never the body), not
    /// returned. Dropped with a warning when [`Outbox::concurrency`] deliveries are already
    /// running or when called outside a tokio runtime.
    pub fn send_in_background(&self, email: Email) {
        let Ok(permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            tracing::warn!(
                recipient_domain = email.recipient_domain(),
                concurrency = self.concurrency,
                "too many mails being sent: mail dropped"
            );
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                recipient_domain = email.recipient_domain(),
                "no tokio runtime to send mail on: mail dropped"
            );
            return;
        };
        let mailer = Arc::clone(&self.mailer);
        runtime.spawn(async move {
            let recipient_domain = email.recipient_domain().to_owned();
            if let Err(error) = mailer.send(email).await {
                tracing::warn!(%recipient_domain, %error, "sending mail failed");
            }
            drop(permit);
        });
    }

    /// Delivers `email` and waits for the outcome; for callers that report it.
    ///
    /// # Errors
    /// Whatever the mailer reports (see [`MailError`]).
    pub async fn send_now(&self, email: Email) -> Result<(), MailError> {
        self.mailer.send(email).await
    }

    /// Waits until every background delivery started so far has finished (delivered or
    /// failed), e.g. before shutting down. Messages handed to
    /// [`Outbox::send_in_background`] while it waits are dropped.
    pub async fn flush(&self) {
        // The semaphore is never closed, so this only waits; holding every permit at once
        // means nothing is in flight.
        if let Ok(all) = self.in_flight.acquire_many(self.concurrency).await {
            drop(all);
        }
    }
}
