//! Changes made through one node that every node must apply to what it keeps in memory, and
//! the subscriber that receives them (and the now-playing states) from the other nodes.

use std::sync::Weak;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::wire::SharedChange;
use super::{
    Cluster, REDIS_TIMEOUT, RESUBSCRIBE_DELAY, RedisTrouble, SLOW_NOT_GONE, SUBSCRIPTION_HEARTBEAT,
};
use crate::App;
use crate::app::Inner;
use crate::service::AccountEvent;

/// How many times a change is published before it is given up (see [`Cluster::broadcast`]).
const PUBLISH_ATTEMPTS: u32 = 5;
/// The wait after the first failed publish (then 0.5, 1 and 2 s).
const PUBLISH_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// Something that changed in the database which nodes keep copies of, or react to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Change {
    /// The user's settings (their fallback color).
    Settings {
        /// Whose.
        user_id: String,
    },
    /// An overlay was changed or deleted.
    Overlay {
        /// Which.
        overlay_id: String,
    },
    /// The account was deleted (its overlays with it).
    UserDeleted {
        /// Whose.
        user_id: String,
    },
    /// The user's Spotify connection changed, or was found refused.
    Credentials {
        /// Whose.
        user_id: String,
    },
    /// The user was banned: their sessions are revoked and their `/ws` sockets closed.
    Banned {
        /// Whom.
        user_id: String,
    },
}

/// Applies a change to this node's copies (what every node does, the announcing one first).
fn apply(inner: &Inner, change: &Change) {
    match change {
        Change::Settings { user_id } => {
            inner.hot_reads.settings_changed(user_id);
            // The fallback color may be on screen: `/ws` shows the new one.
            inner.hub.display_changed(user_id);
        }
        Change::Overlay { overlay_id } => inner.hot_reads.overlay_changed(overlay_id),
        Change::UserDeleted { user_id } => {
            inner.hot_reads.user_deleted(user_id);
            // The next poll reads the database and finds the user gone: the account's Spotify
            // is not called on its behalf again.
            inner.hub.credentials_changed(user_id);
            // Open event streams look again, find the user gone and end.
            inner.hub.display_changed(user_id);
        }
        Change::Credentials { user_id } => inner.hub.credentials_changed(user_id),
        Change::Banned { user_id } => {
            // Nobody listening (no realtime layer, no open socket) is fine.
            let _ = inner.account_events.send(AccountEvent::Banned {
                user_id: user_id.clone(),
            });
        }
    }
}

/// Whether every change made on another node reaches this one (the subscription is up): the
/// node's copies of connections, fallback colors and overlays are read again much less often
/// while it does, and all of them once when it starts to (changes made before were missed).
fn changes_pushed(inner: &Inner, pushed: bool) {
    inner.hub.set_credentials_pushed(pushed);
    inner.hot_reads.set_pushed(pushed);
}

impl App {
    /// Applies `change` here, and publishes it to the other nodes when there are any (at once,
    /// without waiting for Redis).
    pub(crate) fn announce(&self, change: Change) {
        let inner = self.inner();
        apply(inner, &change);
        if let Some(cluster) = &inner.cluster {
            cluster.broadcast(change);
        }
    }
}

impl Cluster {
    fn changes_channel(&self) -> String {
        self.key("changes")
    }

    /// Publishes `change` for the other nodes, in the background: tried [`PUBLISH_ATTEMPTS`]
    /// times, [`PUBLISH_RETRY`] apart and twice as long each time, since the other nodes' copies
    /// rely on the pushes (a change lost on the way would be seen only at their 10 to 15 minute
    /// re-read). A change is an invalidation, safe to apply twice: a publish that timed out may
    /// still have been delivered.
    pub(crate) fn broadcast(&self, change: Change) {
        let message = SharedChange {
            origin: self.inner.owner.clone(),
            change,
        };
        let Ok(json) = serde_json::to_string(&message) else {
            return;
        };
        let cluster = self.clone();
        let channel = self.changes_channel();
        tokio::spawn(async move {
            let mut wait = PUBLISH_RETRY;
            for attempt in 1..=PUBLISH_ATTEMPTS {
                let published: Result<i64, _> = cluster
                    .call(|mut connection| {
                        let (channel, json) = (channel.clone(), json.clone());
                        async move {
                            redis::cmd("PUBLISH")
                                .arg(channel)
                                .arg(json)
                                .query_async(&mut connection)
                                .await
                        }
                    })
                    .await;
                if published.is_ok() || attempt == PUBLISH_ATTEMPTS {
                    return;
                }
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        });
    }

    /// Receives the other nodes' now-playing states and changes for `app`'s node until the app
    /// is dropped, connecting again whenever the subscription is lost. While it is up, the node
    /// relies on it for changes (see [`changes_pushed`]).
    pub(crate) fn spawn_subscriber(&self, app: Weak<Inner>) {
        let cluster = self.clone();
        tokio::spawn(async move {
            loop {
                if app.strong_count() == 0 {
                    return;
                }
                let outcome = cluster.subscribe(&app).await;
                if let Some(inner) = app.upgrade() {
                    changes_pushed(&inner, false);
                }
                if let Err(err) = outcome {
                    cluster.mark_down(&err);
                }
                tokio::time::sleep(RESUBSCRIBE_DELAY).await;
            }
        });
    }

    /// One subscription, until it fails or the app is gone. Its connection is pinged every
    /// [`SUBSCRIPTION_HEARTBEAT`], and given up when a ping is not answered within
    /// [`SLOW_NOT_GONE`]: a connection that died without a reset reaching this node (a stalled
    /// Redis, a lost route) would otherwise wait forever, missing every change. (Not within
    /// [`REDIS_TIMEOUT`]: on a machine short of CPU, each subscription given up for a slow
    /// answer would have every connection read again.)
    async fn subscribe(&self, app: &Weak<Inner>) -> Result<(), RedisTrouble> {
        // The connection the node calls Redis on, pinged first: after a restart of Redis that
        // the subscription noticed, it is broken too, and the next real call would find out (a
        // failed claim, and the outage logged a second time). A failed ping makes the connection
        // manager connect again. Its outcome is not the subscription's, and not counted: a slow
        // or failing command connection must not keep the node from subscribing.
        let mut connection = self.inner.connection.clone();
        let ping = redis::cmd("PING");
        let _ = tokio::time::timeout(
            REDIS_TIMEOUT,
            ping.query_async::<redis::Value>(&mut connection),
        )
        .await;
        let connect = async {
            let mut pubsub = self.inner.client.get_async_pubsub().await?;
            pubsub
                .subscribe(&[self.now_playing_channel(), self.changes_channel()])
                .await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let (mut sink, mut messages) = tokio::time::timeout(REDIS_TIMEOUT, connect)
            .await
            .map_err(|_| RedisTrouble::Timeout)??
            .split();
        self.mark_up();
        match app.upgrade() {
            // Subscribed before the copies are marked: a change made from now on is heard of,
            // and one made before is read from the database.
            Some(inner) => changes_pushed(&inner, true),
            None => return Ok(()),
        }
        let heartbeat = async {
            let mut beat = tokio::time::interval(SUBSCRIPTION_HEARTBEAT);
            beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                beat.tick().await;
                if app.strong_count() == 0 {
                    return Ok(());
                }
                match tokio::time::timeout(SLOW_NOT_GONE, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => return Err::<(), _>(RedisTrouble::Redis(err)),
                    Err(_) => return Err(RedisTrouble::Timeout),
                }
            }
        };
        let now_playing = self.now_playing_channel();
        let receive = async {
            while let Some(message) = messages.next().await {
                let Some(inner) = app.upgrade() else {
                    return Ok(());
                };
                self.receive(&inner, &now_playing, &message);
            }
            // The stream ends when the connection is lost.
            Err(RedisTrouble::Lost)
        };
        tokio::select! {
            outcome = heartbeat => outcome,
            outcome = receive => outcome,
        }
    }

    /// Applies one message of the subscription: another node's now-playing state (on the
    /// `now_playing` channel) or change.
    fn receive(&self, inner: &Inner, now_playing: &str, message: &redis::Msg) {
        let Ok(payload) = message.get_payload::<String>() else {
            return;
        };
        if message.get_channel_name() == now_playing {
            if let Some((user_id, snapshot)) = self.decode_state(&payload) {
                inner.hub.apply_remote(&user_id, snapshot);
            }
            return;
        }
        match serde_json::from_str::<SharedChange>(&payload) {
            Ok(shared) if shared.origin != self.inner.owner => apply(inner, &shared.change),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "unreadable change message"),
        }
    }
}
