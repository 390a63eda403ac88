//! Sending without making the request wait, fairly between recipients.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{DisabledMailer, Email, MailError, Mailer};
use crate::model::canonical_email;

/// Hands messages to a [`Mailer`], either in the background ([`Outbox::send_in_background`])
/// or awaited ([`Outbox::send_now`]). Cheap to clone; clones share the mailer and the queue.
///
/// Background messages wait in a queue with one lane per recipient, served in turn, by at most
/// [`Outbox::concurrency`] deliveries at once: a recipient with many messages waiting delays
/// nobody else's. A lane holds at most [`Outbox::MAX_QUEUED_PER_RECIPIENT`] messages and the
/// queue [`Outbox::MAX_QUEUED`]; a message beyond either is dropped (the user can ask again),
/// so a flood or a stuck SMTP server costs bounded memory and never slows a request. Drops
/// are counted ([`Outbox::stats`], `/metrics`) and logged at most once a minute, with the
/// count since the last line.
#[derive(Clone)]
pub struct Outbox {
    mailer: Arc<dyn Mailer>,
    shared: Arc<Shared>,
    concurrency: u32,
}

struct Shared {
    queue: Mutex<FairQueue>,
    /// Messages queued or being delivered; `flush` waits for zero.
    outstanding: watch::Sender<usize>,
    counters: Counters,
    drop_log: Mutex<DropLog>,
}

#[derive(Default)]
struct FairQueue {
    lanes: HashMap<String, VecDeque<Email>>,
    /// Recipients with messages waiting, in the order they are served.
    turns: VecDeque<String>,
    queued: usize,
    workers: u32,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    dropped_recipient_full: AtomicU64,
    dropped_queue_full: AtomicU64,
    refused_address: AtomicU64,
    refused_ip: AtomicU64,
}

#[derive(Default)]
struct DropLog {
    last: Option<Instant>,
    unlogged: u64,
}

/// What an [`Outbox`] did since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Background messages the mail server accepted.
    pub sent: u64,
    /// Background messages whose delivery failed.
    pub failed: u64,
    /// Messages dropped because their recipient already had a full lane.
    pub dropped_recipient_full: u64,
    /// Messages dropped because the whole queue was full (or no runtime could send them).
    pub dropped_queue_full: u64,
    /// Requests refused because the recipient's budget was spent ([`Outbox::count_refusal`]).
    pub refused_address: u64,
    /// Requests refused because the client IP's budget was spent.
    pub refused_ip: u64,
}

/// Which budget refused a mail-sending request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The recipient's.
    Address,
    /// The client IP's.
    Ip,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("enabled", &self.is_enabled())
            .field("concurrency", &self.concurrency)
            .field("outstanding", &*self.shared.outstanding.borrow())
            .finish()
    }
}

/// How long drops are only counted after a logged one.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(60);

impl Outbox {
    /// Background deliveries allowed at once by [`Outbox::new`].
    pub const DEFAULT_CONCURRENCY: u32 = 16;
    /// Messages one recipient may have waiting.
    pub const MAX_QUEUED_PER_RECIPIENT: usize = 3;
    /// Messages the whole queue holds.
    pub const MAX_QUEUED: usize = 1024;

    /// An outbox over `mailer` with [`Outbox::DEFAULT_CONCURRENCY`].
    pub fn new(mailer: Arc<dyn Mailer>) -> Self {
        Self::with_concurrency(mailer, Self::DEFAULT_CONCURRENCY)
    }

    /// An outbox over `mailer` running at most `concurrency` background deliveries at once
    /// (at least one).
    pub fn with_concurrency(mailer: Arc<dyn Mailer>, concurrency: u32) -> Self {
        Self {
            mailer,
            shared: Arc::new(Shared {
                queue: Mutex::new(FairQueue::default()),
                outstanding: watch::Sender::new(0),
                counters: Counters::default(),
                drop_log: Mutex::new(DropLog::default()),
            }),
            concurrency: concurrency.max(1),
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

    /// The counts so far.
    pub fn stats(&self) -> OutboxStats {
        let c = &self.shared.counters;
        OutboxStats {
            sent: c.sent.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped_recipient_full: c.dropped_recipient_full.load(Ordering::Relaxed),
            dropped_queue_full: c.dropped_queue_full.load(Ordering::Relaxed),
            refused_address: c.refused_address.load(Ordering::Relaxed),
            refused_ip: c.refused_ip.load(Ordering::Relaxed),
        }
    }

    /// Counts a mail-sending request that a budget refused (for [`Outbox::stats`]).
    pub fn count_refusal(&self, refusal: Refusal) {
        let counter = match refusal {
            Refusal::Address => &self.shared.counters.refused_address,
            Refusal::Ip => &self.shared.counters.refused_ip,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Queues `email` for delivery on the current tokio runtime and returns at once. A failure
    /// is counted and logged (`warn`, naming the recipient's domain, never the body), not
    /// returned. Dropped (and counted) when the recipient's lane or the queue is full, or when
    /// called outside a tokio runtime.
    pub fn send_in_background(&self, email: Email) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.dropped(&self.shared.counters.dropped_queue_full, "no tokio runtime");
            return;
        };
        let lane = canonical_email(&email.to);
        let start_worker = {
            let mut queue = self.queue();
            let waiting = queue.lanes.get(&lane).map_or(0, VecDeque::len);
            if waiting >= Self::MAX_QUEUED_PER_RECIPIENT {
                drop(queue);
                self.dropped(
                    &self.shared.counters.dropped_recipient_full,
                    "recipient has too many mails waiting",
                );
                return;
            }
            if queue.queued >= Self::MAX_QUEUED {
                drop(queue);
                self.dropped(&self.shared.counters.dropped_queue_full, "mail queue full");
                return;
            }
            if waiting == 0 {
                queue.turns.push_back(lane.clone());
            }
            queue.lanes.entry(lane).or_default().push_back(email);
            queue.queued += 1;
            self.shared.outstanding.send_modify(|n| *n += 1);
            let start = queue.workers < self.concurrency;
            if start {
                queue.workers += 1;
            }
            start
        };
        if start_worker {
            let outbox = self.clone();
            runtime.spawn(async move { outbox.work().await });
        }
    }

    /// Delivers queued messages, one lane after the other, until the queue is empty.
    async fn work(self) {
        loop {
            let next = {
                let mut queue = self.queue();
                let next = queue.pop();
                if next.is_none() {
                    queue.workers -= 1;
                }
                next
            };
            let Some(email) = next else { return };
            let recipient_domain = email.recipient_domain().to_owned();
            match self.mailer.send(email).await {
                Ok(()) => {
                    self.shared.counters.sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    self.shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%recipient_domain, %error, "sending mail failed");
                }
            }
            self.shared.outstanding.send_modify(|n| *n -= 1);
        }
    }

    fn queue(&self) -> MutexGuard<'_, FairQueue> {
        // The queue's invariants hold between statements; a panic elsewhere cannot break them.
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn dropped(&self, counter: &AtomicU64, why: &'static str) {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut log = self
            .shared
            .drop_log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        log.unlogged += 1;
        let now = Instant::now();
        if log
            .last
            .is_none_or(|last| now.duration_since(last) >= DROP_LOG_INTERVAL)
        {
            tracing::warn!(
                dropped = log.unlogged,
                last_reason = why,
                "mails dropped (counted in melodyhue_mail_messages_total); next report in a minute at the earliest"
            );
            log.last = Some(now);
            log.unlogged = 0;
        }
    }

    /// Delivers `email` and waits for the outcome; for callers that report it.
    ///
    /// # Errors
    /// Whatever the mailer reports (see [`MailError`]).
    pub async fn send_now(&self, email: Email) -> Result<(), MailError> {
        self.mailer.send(email).await
    }

    /// Waits until every message queued so far, and any queued meanwhile, is delivered or
    /// failed, e.g. before shutting down.
    pub async fn flush(&self) {
        let mut outstanding = self.shared.outstanding.subscribe();
        // The sender lives in `self`, so the channel cannot close while this waits.
        let _ = outstanding.wait_for(|n| *n == 0).await;
    }
}

impl FairQueue {
    /// The next message: the first of the lane whose turn it is; that lane then goes last.
    fn pop(&mut self) -> Option<Email> {
        let lane = self.turns.pop_front()?;
        let messages = self.lanes.get_mut(&lane)?;
        let email = messages.pop_front();
        if messages.is_empty() {
            self.lanes.remove(&lane);
        } else {
            self.turns.push_back(lane);
        }
        self.queued -= usize::from(email.is_some());
        email
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(to: &str, n: usize) -> Email {
        Email {
            to: to.into(),
            subject: format!("{n}"),
            text: String::new(),
            html: String::new(),
        }
    }

    #[test]
    fn lanes_take_turns() {
        let mut queue = FairQueue::default();
        for (to, n) in [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("c", 1), ("b", 2)] {
            if !queue.lanes.contains_key(to) {
                queue.turns.push_back(to.into());
            }
            queue
                .lanes
                .entry(to.into())
                .or_default()
                .push_back(mail(to, n));
            queue.queued += 1;
        }
        let order: Vec<String> = std::iter::from_fn(|| queue.pop())
            .map(|m| format!("{}{}", m.to, m.subject))
            .collect();
        assert_eq!(order, ["a1", "b1", "c1", "a2", "b2", "a3"]);
        assert_eq!(queue.queued, 0);
        assert!(queue.lanes.is_empty());
    }
}
