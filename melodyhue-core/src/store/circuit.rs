//! The SQL stores' circuit breaker: once the database is known to be down, calls fail at once
//! instead of each waiting out the pool's acquire timeout, and a background probe closes the
//! circuit again as soon as the database answers.
//!
//! The circuit opens on a failure that says the server is unreachable or going away (connection
//! refused or reset, TLS failure, PostgreSQL's class 08 and shutdown codes, MySQL's "gone
//! away"), and on a pool timeout while the pool was not full (it could not open a connection).
//! A pool timeout with every connection busy is load, not an outage, and leaves it closed.
//! While open, every call fails with [`StoreError::Unavailable`](super::StoreError) caused by
//! [`CircuitOpen`]; the probe runs `SELECT 1` at once and then every [`PROBE_INTERVAL`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::sql::{Pool, is_outage};

/// How often the probe asks an unavailable database again.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The cause of the `Unavailable` errors of an open circuit.
#[derive(Debug, thiserror::Error)]
#[error("database unavailable (circuit open until it answers again)")]
pub struct CircuitOpen;

/// Whether the database is known to be down.
#[derive(Debug, Default)]
pub(crate) struct Circuit {
    open: AtomicBool,
    /// When it opened, for the log line that says it closed.
    opened_at: Mutex<Option<Instant>>,
}

impl Circuit {
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// The error every call gets while the circuit is open.
    pub(crate) fn open_error() -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            CircuitOpen,
        ))
    }

    /// Opens the circuit when `err` says the database is down, and starts the probe.
    pub(crate) fn observe(self: &Arc<Self>, pool: &Pool, err: &sqlx::Error) {
        if !is_outage(pool, err) || self.open.swap(true, Ordering::AcqRel) {
            return;
        }
        *self
            .opened_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        tracing::warn!(
            error = %err,
            "database unavailable: answering 503 at once until it answers again"
        );
        tokio::spawn(probe(pool.clone(), Arc::downgrade(self)));
    }

    fn close(&self) {
        let opened_at = self
            .opened_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.open.store(false, Ordering::Release);
        let down_ms = opened_at.map_or(0, |at| at.elapsed().as_millis());
        tracing::warn!(down_ms, "database available again");
    }
}

/// Asks the database until it answers, then closes the circuit. Ends early when the store is
/// gone or closed.
async fn probe(pool: Pool, circuit: Weak<Circuit>) {
    loop {
        let answered = tokio::time::timeout(PROBE_TIMEOUT, pool.ping()).await;
        let Some(circuit) = circuit.upgrade() else {
            return;
        };
        if matches!(answered, Ok(Ok(()))) {
            circuit.close();
            return;
        }
        if pool.is_closed() {
            return;
        }
        drop(circuit);
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}
