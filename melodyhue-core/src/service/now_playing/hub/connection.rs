//! The hub's copy of each user's Spotify connection, and the access tokens it gets with it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::polling::{PollFailure, classify};
use super::{HubInner, lock};
use crate::clock::{jittered_lifetime, random_part};
use crate::service::PUSHED_COPY_LIFETIME;
use crate::spotify::{AppCredentials, SpotifyError};

/// How often the hub re-reads a user's credentials from the database while changes are not
/// pushed to it (they may change on another server, or the user may be deleted): after this,
/// plus a random part of up to half of it drawn at each read (see [`credentials_lifetime`]).
const CREDENTIALS_TTL: Duration = Duration::from_secs(60);
/// Access tokens are renewed this long before Spotify says they expire, plus a random part of
/// up to a tenth of their lifetime (the tokens got after a start all expire within one polling
/// interval: one hour later, their renewals are spread over six minutes rather than one poll).
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// Token refreshes one poll may make while its refresh tokens turn out stale.
const MAX_REFRESH_ATTEMPTS: usize = 3;
/// How long a refused refresh token is kept before it is cleared: another server may have
/// just used it and be storing its successor.
const REFUSAL_GRACE: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct AccessToken {
    token: String,
    expires_at: Instant,
}

/// A refresh token as the database holds it.
#[derive(Clone)]
struct StoredToken {
    plain: String,
    /// The encrypted value: what a compare-and-set expects.
    encrypted: String,
}

/// The hub's single copy of a user's Spotify connection. Every change of a token goes here
/// at once, so no poll ever uses an older copy.
#[derive(Clone)]
struct Connection {
    app: AppCredentials,
    /// The refresh token the database holds.
    stored: StoredToken,
    /// A newer refresh token from Spotify that could not be stored yet (the database was
    /// unavailable): it is used, and stored again at the next check.
    unsaved: Option<String>,
    /// Until when the copy is used without reading the database; `None` makes the next use
    /// read it.
    fresh_until: Option<Instant>,
    access: Option<AccessToken>,
}

impl Connection {
    /// The newest refresh token.
    fn refresh_token(&self) -> &str {
        self.unsaved.as_deref().unwrap_or(&self.stored.plain)
    }

    fn is_fresh(&self) -> bool {
        self.fresh_until.is_some_and(|until| Instant::now() < until)
    }

    fn valid_access_token(&self) -> Option<&str> {
        self.access
            .as_ref()
            .filter(|access| access.expires_at > Instant::now())
            .map(|access| access.token.as_str())
    }
}

/// A user's connection, and how many times their credentials changed: a poll that read the
/// connection before a change must not write back a copy that hides it.
#[derive(Default)]
pub(super) struct ConnectionSlot {
    generation: u64,
    connection: Option<Connection>,
}

/// The user's credentials changed: the next use of their connection reads the database, and a
/// poll that read the connection before does not write back a copy that hides the change.
pub(super) fn credentials_changed(hub: &HubInner, user_id: &str) {
    let mut connections = lock(&hub.connections);
    let slot = connections.entry(user_id.to_owned()).or_default();
    slot.generation += 1;
    if let Some(connection) = &mut slot.connection {
        connection.fresh_until = None;
    }
}

/// What a poll read a connection at: the user's generation, and the hub's (which moves when
/// changes start or stop being pushed, for every user, those without a slot yet included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Generation {
    user: u64,
    hub: u64,
}

/// The user's connection as the hub knows it, with the generation it was read at.
fn connection_of(hub: &HubInner, user_id: &str) -> (Generation, Option<Connection>) {
    let connections = lock(&hub.connections);
    let (user, connection) = connections
        .get(user_id)
        .map_or((0, None), |slot| (slot.generation, slot.connection.clone()));
    let hub = hub.connections_epoch.load(Ordering::Acquire);
    (Generation { user, hub }, connection)
}

/// Puts back the connection a poll worked with. When the credentials changed meanwhile (or
/// changes started or stopped being pushed), the copy is marked for a fresh read, so the
/// change is seen before the next call.
fn keep_connection(
    hub: &HubInner,
    user_id: &str,
    generation: Generation,
    mut connection: Connection,
) {
    let mut connections = lock(&hub.connections);
    let now = Generation {
        user: connections.get(user_id).map_or(0, |slot| slot.generation),
        hub: hub.connections_epoch.load(Ordering::Acquire),
    };
    if now != generation {
        connection.fresh_until = None;
    }
    connections
        .entry(user_id.to_owned())
        .or_default()
        .connection = Some(connection);
}

/// Whether changes of connections made on other nodes reach this hub as they happen
/// ([`NowPlayingHub::credentials_changed`](super::NowPlayingHub::credentials_changed)), which
/// decides how long a copy is used without reading the database (see [`credentials_lifetime`]).
/// When they start to again, every copy is read again before its next use: changes made
/// meanwhile were not heard of. When they stop, no copy is used longer than an unpushed one.
/// Either way, a poll in flight does not keep the copy it read before as fresh (the hub's
/// generation moves, under the lock its polls read and keep their copies under).
pub(super) fn set_credentials_pushed(hub: &HubInner, pushed: bool) {
    let mut connections = lock(&hub.connections);
    let was = hub.credentials_pushed.swap(pushed, Ordering::AcqRel);
    if was == pushed && !pushed {
        return;
    }
    hub.connections_epoch.fetch_add(1, Ordering::AcqRel);
    for slot in connections.values_mut() {
        if let Some(connection) = &mut slot.connection {
            connection.fresh_until = if pushed {
                None
            } else {
                let unpushed = Instant::now() + credentials_lifetime(false);
                connection.fresh_until.map(|until| until.min(unpushed))
            };
        }
    }
}

/// The right to poll the user has just come to this node: the node that polled before may
/// have rotated the refresh token since this node's copy was read, so the copy is read again
/// before its next use (rather than trying the dead token and recovering from its refusal).
pub(super) fn read_again(hub: &HubInner, user_id: &str) {
    if let Some(connection) = lock(&hub.connections)
        .get_mut(user_id)
        .and_then(|slot| slot.connection.as_mut())
    {
        connection.fresh_until = None;
    }
}

fn forget_connection(hub: &HubInner, user_id: &str) {
    if let Some(slot) = lock(&hub.connections).get_mut(user_id) {
        slot.connection = None;
    }
}

/// Reads the user's credentials from the store and merges them with the hub's copy: while the
/// database still holds the token the copy was built on, the copy (its access token, a newer
/// token not yet stored) stays, and the unstored token is stored now; a different token in the
/// database is newer and replaces the copy.
async fn load_connection(
    hub: &HubInner,
    user_id: &str,
    cached: Option<Connection>,
) -> Result<Connection, PollFailure> {
    let stored = hub
        .store
        .spotify_credentials(user_id)
        .await
        .map_err(|_| PollFailure::Transient)?
        .ok_or(PollFailure::Gone)?;
    let (Some(client_id), Some(secret), Some(refresh)) = (
        stored.client_id,
        stored.client_secret_encrypted,
        stored.refresh_token_encrypted,
    ) else {
        return Err(PollFailure::Disconnected);
    };
    let decrypt = |value: &str| {
        hub.secrets.decrypt(value).map_err(|_| {
            tracing::warn!(%user_id, "stored Spotify secret does not decrypt with ENCRYPTION_KEY");
            PollFailure::Disconnected
        })
    };
    let app = AppCredentials {
        client_id,
        client_secret: decrypt(&secret)?,
    };
    let mut connection = match cached.filter(|c| c.stored.encrypted == refresh) {
        Some(cached) => Connection { app, ..cached },
        None => Connection {
            app,
            stored: StoredToken {
                plain: decrypt(&refresh)?,
                encrypted: refresh,
            },
            unsaved: None,
            fresh_until: None,
            access: None,
        },
    };
    if connection.unsaved.is_some() && !store_unsaved(hub, user_id, &mut connection).await {
        // Someone stored another token since: it is newer than ours.
        return Box::pin(load_connection(hub, user_id, None)).await;
    }
    let pushed = hub.credentials_pushed.load(Ordering::Acquire);
    connection.fresh_until = Some(Instant::now() + credentials_lifetime(pushed));
    Ok(connection)
}

/// How long a copy of the credentials just read is used: [`CREDENTIALS_TTL`] (while changes
/// are `pushed`, see [`set_credentials_pushed`]: [`PUSHED_COPY_LIFETIME`]) to 1.5 times it, at
/// random. The users polled since a start were all read within one polling interval; with one
/// fixed lifetime they would all be read again within one interval at each round (in the
/// cluster bench, nearly all of the `/color` tail fell in those seconds, and at
/// [`CREDENTIALS_TTL`] the re-reads were the largest part of a node's database work), where a
/// random one spreads the reads over half a lifetime, and further apart at each round.
fn credentials_lifetime(pushed: bool) -> Duration {
    let ttl = if pushed {
        PUSHED_COPY_LIFETIME
    } else {
        CREDENTIALS_TTL
    };
    jittered_lifetime(ttl)
}

/// Stores the connection's unsaved refresh token in place of the stored one, by
/// compare-and-set. `false` when the database holds another token; a database that cannot be
/// reached keeps the token unsaved (`true`).
async fn store_unsaved(hub: &HubInner, user_id: &str, connection: &mut Connection) -> bool {
    let Some(newer) = connection.unsaved.clone() else {
        return true;
    };
    let encrypted = hub.secrets.encrypt(&newer);
    match hub
        .store
        .replace_spotify_refresh_token(
            user_id,
            &connection.stored.encrypted,
            Some(&encrypted),
            chrono::Utc::now(),
        )
        .await
    {
        Ok(true) => {
            connection.stored = StoredToken {
                plain: newer,
                encrypted,
            };
            connection.unsaved = None;
            true
        }
        Ok(false) => false,
        Err(err) => {
            tracing::warn!(%user_id, error = %err, "could not store Spotify's new refresh token; kept in memory and retried");
            true
        }
    }
}

/// A valid access token for the user: the hub's, or a new one (always a new one when `renew`).
pub(super) async fn access_token(
    hub: &HubInner,
    user_id: &str,
    renew: bool,
) -> Result<String, PollFailure> {
    let (generation, cached) = connection_of(hub, user_id);
    let mut connection = match cached {
        Some(connection) if connection.is_fresh() => connection,
        cached => match (load_connection(hub, user_id, cached.clone()).await, cached) {
            (Ok(connection), _) => connection,
            // The database is unreachable: what the hub knows still works with Spotify (and
            // the database is read again at the next poll).
            (Err(PollFailure::Transient), Some(cached)) => cached,
            (Err(failure), _) => {
                if matches!(failure, PollFailure::Disconnected | PollFailure::Gone) {
                    forget_connection(hub, user_id);
                }
                return Err(failure);
            }
        },
    };
    if renew {
        connection.access = None;
    }
    let outcome = match connection.valid_access_token() {
        Some(token) => Ok(token.to_owned()),
        None => refresh(hub, user_id, &mut connection).await,
    };
    if matches!(outcome, Err(PollFailure::Disconnected)) {
        // Refused app or cleared token: what the database holds decides, next time.
        connection.fresh_until = None;
    }
    keep_connection(hub, user_id, generation, connection);
    outcome
}

/// Gets a new access token with the newest refresh token. A rotated refresh token replaces
/// the hub's copy at once and the stored one by compare-and-set; a refused one is dropped, and
/// cleared from the store only while it is the stored one. The refresh is tried again (a few
/// times) with whatever token is newer.
async fn refresh(
    hub: &HubInner,
    user_id: &str,
    connection: &mut Connection,
) -> Result<String, PollFailure> {
    for _ in 0..MAX_REFRESH_ATTEMPTS {
        let grant = match hub
            .client
            .refresh(&connection.app, connection.refresh_token())
            .await
        {
            Ok(grant) => grant,
            Err(SpotifyError::InvalidGrant) => {
                if connection.unsaved.take().is_some() {
                    // The unstored token failed; the stored one is another credential.
                    continue;
                }
                tokio::time::sleep(REFUSAL_GRACE).await;
                match hub
                    .store
                    .replace_spotify_refresh_token(
                        user_id,
                        &connection.stored.encrypted,
                        None,
                        chrono::Utc::now(),
                    )
                    .await
                {
                    Ok(true) => {
                        tracing::info!(%user_id, "Spotify refresh token refused (invalid_grant); disconnecting");
                        return Err(PollFailure::Disconnected);
                    }
                    // A newer token was stored meanwhile: try that one.
                    Ok(false) => *connection = load_connection(hub, user_id, None).await?,
                    Err(err) => {
                        tracing::warn!(%user_id, error = %err, "could not forget the refused refresh token");
                        return Err(PollFailure::Transient);
                    }
                }
                continue;
            }
            Err(other) => return Err(classify(other)),
        };
        if let Some(rotated) = grant
            .refresh_token
            .filter(|t| t != connection.refresh_token())
        {
            connection.unsaved = Some(rotated);
            if !store_unsaved(hub, user_id, connection).await {
                // The database holds a token stored after ours was read (a new connection):
                // it wins, and the grant of ours is not used.
                *connection = load_connection(hub, user_id, None).await?;
                continue;
            }
        }
        let lifetime = grant
            .expires_in
            .saturating_sub(TOKEN_MARGIN + random_part(0.1, grant.expires_in))
            .max(Duration::from_secs(1));
        connection.access = Some(AccessToken {
            token: grant.access_token.clone(),
            expires_at: Instant::now() + lifetime,
        });
        return Ok(grant.access_token);
    }
    Err(PollFailure::Transient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_lifetimes_spread_over_half_the_ttl() {
        for (pushed, ttl) in [(false, CREDENTIALS_TTL), (true, PUSHED_COPY_LIFETIME)] {
            let lifetimes: Vec<Duration> = (0..200).map(|_| credentials_lifetime(pushed)).collect();
            let range = ttl..ttl.mul_f64(1.5);
            assert!(lifetimes.iter().all(|lifetime| range.contains(lifetime)));
            // Drawn, not fixed: both halves of the range come up.
            let middle = ttl.mul_f64(1.25);
            assert!(lifetimes.iter().any(|lifetime| *lifetime < middle));
            assert!(lifetimes.iter().any(|lifetime| *lifetime >= middle));
        }
    }
}
