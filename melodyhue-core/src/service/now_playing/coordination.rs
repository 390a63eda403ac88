//! How the now-playing hub shares its work with other nodes: which node polls a user, and how
//! the others learn what it saw. The hub alone (one node) needs none of it; `crate::cluster`
//! implements it over Redis.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::hub::Snapshot;

/// Proof that this node holds the right to poll one user, for as long as the coordinator
/// says; what it shares is checked against it (a fencing token: a node that lost the right
/// while paused cannot overwrite the state of the node that took it over).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollLease {
    /// The fencing token: strictly increasing each time a user's right to poll changes hands.
    pub fence: u64,
    /// Until when the right surely holds, on this node's clock (counted from before the
    /// request that took or renewed it was sent): the holder polls again without asking while
    /// enough of it is left.
    pub holds_until: Instant,
}

/// The answer of [`PollCoordinator::claim`].
#[derive(Debug, Clone)]
pub enum Claim {
    /// This node polls now; `None` when the coordinator cannot be reached (the node then polls
    /// on its own, and shares nothing).
    Poll(Option<PollLease>),
    /// Another node polls the user (or the whole cluster waits out a `429`): show `latest`
    /// when known, and claim again after `retry_in`.
    Follow {
        /// The latest snapshot the polling node shared, if any.
        latest: Option<Snapshot>,
        /// When to claim again.
        retry_in: Duration,
    },
}

/// Coordinates the hubs of several nodes. Every method bounds its own time: a coordinator that
/// cannot be reached answers at once (see [`Claim::Poll`]`(None)`), never an error.
#[async_trait]
pub trait PollCoordinator: Send + Sync + 'static {
    /// Whether this node polls `user_id` now; for the holder, also a renewal of its lease
    /// (the hub claims before a poll unless the lease it holds runs long enough, and during a
    /// poll that runs late).
    async fn claim(&self, user_id: &str) -> Claim;

    /// After a poll under `lease`: shares `snapshot` with the other nodes (`changed`: whether
    /// it shows something new, which is announced; otherwise only kept), and renews the lease.
    /// The renewed lease, `None` when it was lost meanwhile or the coordinator could not be
    /// reached (the next poll then claims first).
    async fn share(
        &self,
        user_id: &str,
        lease: PollLease,
        snapshot: &Snapshot,
        changed: bool,
    ) -> Option<PollLease>;

    /// No node polls the user for `wait`: a `429`'s `Retry-After`, or the pause after a refused
    /// connection (as one node waits before trying it again).
    async fn hold(&self, user_id: &str, lease: PollLease, wait: Duration);

    /// The user's connection was changed by hand: a hold on the user ends, as one node ends the
    /// user's wait on a credentials change.
    async fn lift_hold(&self, user_id: &str);

    /// This node stops polling the user (nobody watches here any more): another node may take
    /// over once `due_in` (the time left until the next poll was due) has passed.
    async fn release(&self, user_id: &str, lease: PollLease, due_in: Duration);

    /// The user's Spotify connection was found refused (`invalid_grant`, unknown app): the other
    /// nodes drop their copy of it.
    fn disconnected(&self, user_id: &str);
}
