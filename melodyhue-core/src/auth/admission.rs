//! Admission control for password hashing: who may wait for an argon2 worker, and in which
//! order.
//!
//! A hash costs tens of milliseconds of one core and 64 MiB, and the routes that hash
//! (register, login, password change and reset) need no prior authentication, so without
//! control a few dozen bogus logins kept in flight make every real login wait seconds. Three
//! rules keep the wait of an honest client short:
//!
//! - **Per client**: a client network (see [`client_network`]) has at most
//!   [`AdmissionLimits::per_client`] requests admitted at once; beyond that it is refused at
//!   once ([`Refusal::ClientBusy`], `429`).
//! - **Bounded queue**: at most [`AdmissionLimits::queue`] hashes wait for a worker; a hash
//!   that would wait beyond that is refused at once ([`Refusal::ServerBusy`], `503`), instead
//!   of queueing for seconds.
//! - **Fair order**: waiting hashes run in order of how many requests to hash their client
//!   network made over the last minute, fewest first (ties in arrival order). When the queue
//!   is full, a newcomer from a network that asked less than the heaviest waiter takes that
//!   waiter's place, and the waiter is refused. A flood from many addresses keeps each of them
//!   busy, so a client that rarely hashes goes to the front. A flood from addresses never seen
//!   before is indistinguishable from new honest clients: it gets its share of the queue, and
//!   everyone beyond the queue is refused at once.
//!
//! Refusals are decided when a request is admitted, before it does any other work (a database
//! lookup, a throttle check), so a flood of refused requests costs next to nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use moka::sync::Cache;
use tokio::sync::oneshot;

use super::throttle::client_network;

/// How long a client network's past hashes count towards its place in the queue.
pub const USAGE_MEMORY: Duration = Duration::from_secs(60);

/// Client networks whose usage is remembered at most.
const MAX_TRACKED_CLIENTS: u64 = 100_000;

/// What a refused request is told to wait before trying again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The limits of [`HashAdmission`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Hashes running at once (the blocking threads given to argon2).
    pub workers: usize,
    /// Hashes waiting for a worker at most.
    pub queue: usize,
    /// Requests of one client network admitted at once.
    pub per_client: u32,
}

/// Why a request may not hash now. Both are answered at once, with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The client's network already has its share of requests hashing or waiting (`429`).
    #[error("Too many concurrent requests, try again shortly")]
    ClientBusy,
    /// The queue is full of clients with a better claim (`503`).
    #[error("Server busy, try again shortly")]
    ServerBusy,
}

impl Refusal {
    /// When to try again.
    pub fn retry_after(self) -> Duration {
        RETRY_AFTER
    }
}

/// The client a request is counted for: its network, or `None` when the address is unknown
/// (all such requests share one allowance).
type Client = Option<IpAddr>;

/// Grants password-hashing work under the rules of the [module documentation](self).
#[derive(Clone)]
pub struct HashAdmission {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for HashAdmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashAdmission")
            .field("limits", &self.shared.limits)
            .finish_non_exhaustive()
    }
}

struct Shared {
    limits: AdmissionLimits,
    state: Mutex<State>,
    /// Hashes admitted per client network recently (forgotten after [`USAGE_MEMORY`] idle).
    usage: Cache<Client, Arc<AtomicU64>>,
}

struct State {
    idle_workers: usize,
    waiting: Vec<Waiter>,
    admitted: HashMap<Client, u32>,
    next_ticket: u64,
}

struct Waiter {
    ticket: u64,
    priority: u64,
    grant: oneshot::Sender<Grant>,
}

enum Grant {
    Run(Worker),
    Evicted,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The best waiter (fewest recent hashes, then the oldest), taken out of the queue.
fn take_next(waiting: &mut Vec<Waiter>) -> Option<Waiter> {
    let best = waiting
        .iter()
        .enumerate()
        .min_by_key(|(_, w)| (w.priority, w.ticket))
        .map(|(i, _)| i)?;
    Some(waiting.swap_remove(best))
}

impl HashAdmission {
    /// Admission under these limits (`workers` and `queue` at least 1).
    pub fn new(limits: AdmissionLimits) -> Self {
        let limits = AdmissionLimits {
            workers: limits.workers.max(1),
            queue: limits.queue.max(1),
            per_client: limits.per_client.max(1),
        };
        HashAdmission {
            shared: Arc::new(Shared {
                limits,
                state: Mutex::new(State {
                    idle_workers: limits.workers,
                    waiting: Vec::new(),
                    admitted: HashMap::new(),
                    next_ticket: 0,
                }),
                usage: Cache::builder()
                    .max_capacity(MAX_TRACKED_CLIENTS)
                    .time_to_idle(USAGE_MEMORY)
                    .build(),
            }),
        }
    }

    /// Admits one request of `client`, or refuses it at once: when its network already has
    /// [`AdmissionLimits::per_client`] requests admitted ([`Refusal::ClientBusy`]), or when
    /// the queue is full of clients with an equal or better claim ([`Refusal::ServerBusy`]),
    /// so that a refused request costs no further work. Every request counts towards its
    /// network's usage, refused or not. The admission lasts until dropped.
    pub fn admit(&self, client: Option<IpAddr>) -> Result<Admission, Refusal> {
        let client = client.map(client_network);
        let priority = self
            .shared
            .usage
            .get_with(client, || Arc::new(AtomicU64::new(0)))
            .fetch_add(1, Ordering::Relaxed);
        let mut state = self.shared.state();
        let queue_full = state.idle_workers == 0
            && state.waiting.len() >= self.shared.limits.queue
            && state.waiting.iter().all(|w| w.priority <= priority);
        if queue_full {
            return Err(Refusal::ServerBusy);
        }
        let admitted = state.admitted.entry(client).or_insert(0);
        if *admitted >= self.shared.limits.per_client {
            return Err(Refusal::ClientBusy);
        }
        *admitted += 1;
        drop(state);
        Ok(Admission {
            shared: Arc::clone(&self.shared),
            client,
            priority,
        })
    }
}

/// One admitted request; it may run hashes one after the other with [`Admission::worker`].
pub struct Admission {
    shared: Arc<Shared>,
    client: Client,
    priority: u64,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

impl Admission {
    /// Waits for a worker in fair order; hold it while the hash runs. Refused at once when
    /// the queue is full of clients with an equal or better claim, or later when a better
    /// claim takes this place.
    pub async fn worker(&self) -> Result<Worker, Refusal> {
        let (receiver, evicted, ticket) = {
            let mut state = self.shared.state();
            if state.idle_workers > 0 && state.waiting.is_empty() {
                state.idle_workers -= 1;
                return Ok(Worker {
                    shared: Some(Arc::clone(&self.shared)),
                });
            }
            let mut evicted = None;
            if state.waiting.len() >= self.shared.limits.queue {
                let heaviest = state
                    .waiting
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, w)| (w.priority, w.ticket))
                    .filter(|(_, w)| w.priority > self.priority)
                    .map(|(i, _)| i)
                    .ok_or(Refusal::ServerBusy)?;
                evicted = Some(state.waiting.swap_remove(heaviest));
            }
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            let (grant, receiver) = oneshot::channel();
            state.waiting.push(Waiter {
                ticket,
                priority: self.priority,
                grant,
            });
            (receiver, evicted, ticket)
        };
        if let Some(evicted) = evicted {
            // Outside the lock: a waiter that is already gone has nothing to be told.
            let _ = evicted.grant.send(Grant::Evicted);
        }
        let mut waiting = LeaveQueueOnDrop {
            shared: &self.shared,
            ticket,
            armed: true,
        };
        let grant = receiver.await;
        waiting.armed = false;
        match grant {
            Ok(Grant::Run(worker)) => Ok(worker),
            Ok(Grant::Evicted) | Err(_) => Err(Refusal::ServerBusy),
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        if let Some(admitted) = state.admitted.get_mut(&self.client) {
            *admitted = admitted.saturating_sub(1);
            if *admitted == 0 {
                state.admitted.remove(&self.client);
            }
        }
    }
}

/// Takes a waiter out of the queue when its request is dropped while it waits (the client
/// went away), so that it holds no place.
struct LeaveQueueOnDrop<'a> {
    shared: &'a Shared,
    ticket: u64,
    armed: bool,
}

impl Drop for LeaveQueueOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared
                .state()
                .waiting
                .retain(|w| w.ticket != self.ticket);
        }
    }
}

/// A worker held for one hash; dropping it hands the worker to the next waiter.
pub struct Worker {
    /// `None` once handed on (or for a worker that was never granted).
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        loop {
            let next = {
                let mut state = shared.state();
                match take_next(&mut state.waiting) {
                    Some(next) => next,
                    None => {
                        state.idle_workers += 1;
                        return;
                    }
                }
            };
            let worker = Worker {
                shared: Some(Arc::clone(&shared)),
            };
            match next.grant.send(Grant::Run(worker)) {
                Ok(()) => return,
                // That waiter is gone: take the worker back and offer it to the next one.
                Err(Grant::Run(mut worker)) => {
                    worker.shared = None;
                }
                Err(Grant::Evicted) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;

    use super::*;

    fn admission(workers: usize, queue: usize, per_client: u32) -> HashAdmission {
        HashAdmission::new(AdmissionLimits {
            workers,
            queue,
            per_client,
        })
    }

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    /// Polls `future` once.
    async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
    }

    /// Polls `future` once (so that it joins the queue) and returns it, still pending.
    async fn started<F: Future + Unpin>(mut future: F) -> F {
        assert!(poll_once(&mut future).await.is_pending());
        future
    }

    #[tokio::test]
    async fn a_client_network_has_a_bounded_share() {
        let gate = admission(1, 8, 2);
        let _a = gate.admit(ip(1)).unwrap();
        let _b = gate.admit(ip(1)).unwrap();
        assert_eq!(gate.admit(ip(1)).unwrap_err(), Refusal::ClientBusy);
        assert!(gate.admit(ip(2)).is_ok());
        drop(_a);
        assert!(gate.admit(ip(1)).is_ok());
        // IPv6 addresses of one /64 are one client.
        let v6 = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let _c = gate.admit(v6("2001:db8::1")).unwrap();
        let _d = gate.admit(v6("2001:db8::2")).unwrap();
        assert_eq!(
            gate.admit(v6("2001:db8::3")).unwrap_err(),
            Refusal::ClientBusy
        );
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let gate = admission(1, 2, 10);
        let a = gate.admit(ip(1)).unwrap();
        let running = a.worker().await.unwrap();
        let (b, c, d) = (
            gate.admit(ip(1)).unwrap(),
            gate.admit(ip(1)).unwrap(),
            gate.admit(ip(1)).unwrap(),
        );
        let wait_b = started(Box::pin(b.worker())).await;
        let wait_c = started(Box::pin(c.worker())).await;
        assert_eq!(d.worker().await.unwrap_err(), Refusal::ServerBusy);
        // Once the queue is full, a request with no better claim is refused at admission,
        // before it does any work.
        assert_eq!(gate.admit(ip(1)).unwrap_err(), Refusal::ServerBusy);
        drop(running);
        let worker_b = wait_b.await.unwrap();
        drop(worker_b);
        assert!(wait_c.await.is_ok());
    }

    #[tokio::test]
    async fn light_clients_go_first_and_take_a_heavy_clients_place() {
        let gate = admission(1, 2, 10);
        // The heavy network asked twice before; the light one never.
        drop(gate.admit(ip(9)).unwrap());
        drop(gate.admit(ip(9)).unwrap());
        let holder = gate.admit(ip(3)).unwrap();
        let running = holder.worker().await.unwrap();
        let (heavy_a, heavy_b) = (gate.admit(ip(9)).unwrap(), gate.admit(ip(9)).unwrap());
        let wait_a = started(Box::pin(heavy_a.worker())).await;
        let wait_b = started(Box::pin(heavy_b.worker())).await;
        let light = gate.admit(ip(1)).unwrap();
        let wait_light = started(Box::pin(light.worker())).await;
        // The newest heavy waiter lost its place to the light client...
        assert_eq!(wait_b.await.unwrap_err(), Refusal::ServerBusy);
        // ... which runs next, before the older heavy waiter.
        drop(running);
        let mut wait_a = wait_a;
        assert!(poll_once(&mut wait_a).await.is_pending());
        let light_worker = wait_light.await.unwrap();
        drop(light_worker);
        assert!(wait_a.await.is_ok());
        // An equal claim never takes a place.
        let gate = admission(1, 1, 10);
        let first = gate.admit(ip(1)).unwrap();
        let _running = first.worker().await.unwrap();
        let second = gate.admit(ip(2)).unwrap();
        let _waiting = started(Box::pin(second.worker())).await;
        assert_eq!(gate.admit(ip(3)).unwrap_err(), Refusal::ServerBusy);
    }

    #[tokio::test]
    async fn a_waiter_that_goes_away_frees_its_place_and_its_worker() {
        let gate = admission(1, 1, 10);
        let a = gate.admit(ip(1)).unwrap();
        let running = a.worker().await.unwrap();
        let b = gate.admit(ip(2)).unwrap();
        let waiting = started(Box::pin(b.worker())).await;
        drop(waiting);
        // The place is free again...
        let c = gate.admit(ip(3)).unwrap();
        let d = gate.admit(ip(4)).unwrap();
        let wait_c = started(Box::pin(c.worker())).await;
        drop(running);
        assert!(wait_c.await.is_ok());
        assert!(d.worker().await.is_ok());
    }
}
