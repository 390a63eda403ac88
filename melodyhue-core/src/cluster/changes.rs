//! Changes made through one node that every node must apply to what it keeps in memory, and
//! the subscriber that receives them (and the now-playing states) from the other nodes.

use std::sync::Weak;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::wire::SharedChange;
use super::{Cluster, RESUBSCRIBE_DELAY};
use crate::App;
use crate::app::Inner;
use crate::service::AccountEvent;

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

    /// Publishes `change` for the other nodes, in the background (bounded by the call timeout).
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
            let _: Result<i64, _> = cluster
                .call(|mut connection| async move {
                    redis::cmd("PUBLISH")
                        .arg(channel)
                        .arg(json)
                        .query_async(&mut connection)
                        .await
                })
                .await;
        });
    }

    /// Receives the other nodes' now-playing states and changes for `app`'s node until the app
    /// is dropped, connecting again whenever the subscription is lost.
    pub(crate) fn spawn_subscriber(&self, app: Weak<Inner>) {
        let cluster = self.clone();
        tokio::spawn(async move {
            loop {
                if app.strong_count() == 0 {
                    return;
                }
                if let Err(err) = cluster.subscribe(&app).await {
                    cluster.mark_down(&err);
                }
                tokio::time::sleep(RESUBSCRIBE_DELAY).await;
            }
        });
    }

    /// One subscription, until it fails or the app is gone.
    async fn subscribe(&self, app: &Weak<Inner>) -> Result<(), super::RedisTrouble> {
        let connect = async {
            let mut pubsub = self.inner.client.get_async_pubsub().await?;
            pubsub
                .subscribe(&[self.now_playing_channel(), self.changes_channel()])
                .await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::time::timeout(super::REDIS_TIMEOUT, connect)
            .await
            .map_err(|_| super::RedisTrouble::Timeout)??;
        self.mark_up();
        let now_playing = self.now_playing_channel();
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let Some(inner) = app.upgrade() else {
                return Ok(());
            };
            let Ok(payload) = message.get_payload::<String>() else {
                continue;
            };
            if message.get_channel_name() == now_playing {
                if let Some((user_id, snapshot)) = self.decode_state(&payload) {
                    inner.hub.apply_remote(&user_id, snapshot);
                }
            } else {
                match serde_json::from_str::<SharedChange>(&payload) {
                    Ok(shared) if shared.origin != self.inner.owner => {
                        apply(&inner, &shared.change);
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "unreadable change message"),
                }
            }
        }
        // The stream ends when the connection is lost.
        Err(super::RedisTrouble::Lost)
    }
}
