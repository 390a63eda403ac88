//! The `/ws` realtime channel as functions over messages: adapters perform the upgrade and
//! convert their library's frames to [`WsMessage`]; everything else happens here.
//!
//! The socket is authenticated by the access token (header, cookie, or `token` /
//! `access_token` query parameter); without a valid one it is closed with code 4401. It then
//! follows the user's own now-playing state: a `now_playing` message at once and whenever what
//! it shows changes (any detail of the track, the play state, the colors; not the position
//! alone), all from the now-playing hub (never one poll per socket). A ban sends
//! `force_logout` and closes with 4401.
//!
//! What one socket may hold is bounded: clients have nothing to say, so a message or frame over
//! [`MAX_MESSAGE_BYTES`] ends the socket (adapters set this in their WebSocket library); a user
//! has at most `WS_MAX_SOCKETS_PER_USER` sockets (one more is closed with
//! [`CLOSE_TOO_MANY_SOCKETS`]); a socket is pinged every `WS_PING_INTERVAL` and closed with
//! [`CLOSE_PING_TIMEOUT`] when nothing came back in a whole interval; a message that cannot be
//! written within [`WRITE_TIMEOUT`] (a client that does not read) ends the socket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use http::HeaderMap;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use super::public::{ColorView, PaletteView, TrackView};
use super::{ACCESS_COOKIE, bearer_token, cookie_value, csrf};
use crate::App;
use crate::service::{AccountEvent, Error, NowPlaying};

/// The close code of an unauthenticated or banned socket.
pub const CLOSE_UNAUTHORIZED: u16 = 4401;

/// The close code of a socket over its user's `WS_MAX_SOCKETS_PER_USER` (like HTTP's 429).
pub const CLOSE_TOO_MANY_SOCKETS: u16 = 4429;

/// The close code of a socket that answered no ping for a whole `WS_PING_INTERVAL` (like
/// HTTP's 408).
pub const CLOSE_PING_TIMEOUT: u16 = 4408;

/// The close code of a socket that cannot be served now because the database is unavailable:
/// RFC 6455's registered "Try Again Later" (the web frontend reconnects on its own).
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// Largest message a client may send, in bytes; clients' messages are ignored, so this only
/// bounds the memory one socket can hold. Adapters give it to their WebSocket library, which
/// ends the socket on a longer message.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024;

/// Largest frame a client may send, in bytes (see [`MAX_MESSAGE_BYTES`]).
pub const MAX_FRAME_BYTES: usize = MAX_MESSAGE_BYTES;

/// How long writing one message may take before the socket is given up.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a socket we close waits for the client's close frame before it is dropped anyway.
pub const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often an open socket re-checks that its user is not banned (bans made on another
/// server, or events missed).
const BAN_RECHECK: Duration = Duration::from_secs(30);

/// A WebSocket message, independent of the WebSocket library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    /// A text frame.
    Text(String),
    /// A binary frame (ignored).
    Binary(Vec<u8>),
    /// A ping.
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// A close frame with its code and reason.
    Close(Option<(u16, String)>),
}

/// Whether `path` is the `/ws` route, read as the route table reads every path (trailing and
/// doubled slashes, percent-encoding). Both adapters take a WebSocket upgrade by this test, so
/// a path that is `/ws` for one is `/ws` for the other.
pub fn is_socket_path(path: &str) -> bool {
    super::path_segments(path) == ["ws"]
}

/// The access token of an upgrade request: `Authorization: Bearer`, the `token` /
/// `access_token` query parameter, or the access cookie. The cookie counts only when the
/// upgrade comes from an allowed origin (see `DECISIONS.md`, cross-site requests): a foreign
/// page may open a socket in the browser of a signed-in user, and the browser sends the cookie.
pub fn upgrade_token(app: &App, headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    bearer_token(headers)
        .or_else(|| {
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .find(|(k, v)| (k == "token" || k == "access_token") && !v.is_empty())
                .map(|(_, v)| v.into_owned())
        })
        .or_else(|| {
            cookie_value(headers, ACCESS_COOKIE)
                .filter(|_| csrf::origin_allowed(app.config(), headers))
        })
}

/// Open sockets per user, within `WS_MAX_SOCKETS_PER_USER`.
#[derive(Debug, Default)]
pub(crate) struct SocketCounts(Mutex<HashMap<String, usize>>);

impl SocketCounts {
    /// A place for one more socket of `user_id`, or `None` when they have `max` already.
    fn admit(self: &Arc<Self>, user_id: &str, max: usize) -> Option<SocketPlace> {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(user_id.to_owned()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(SocketPlace {
            counts: Arc::clone(self),
            user_id: user_id.to_owned(),
        })
    }
}

/// One open socket of a user, given back when dropped.
struct SocketPlace {
    counts: Arc<SocketCounts>,
    user_id: String,
}

impl Drop for SocketPlace {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.user_id) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.user_id);
            }
        }
    }
}

#[derive(Serialize)]
struct NowPlayingMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    color: ColorView,
    track: TrackView<'a>,
    palette: Option<PaletteView>,
    text_color: ColorView,
}

fn now_playing_message(now_playing: &NowPlaying, timestamp: i64) -> String {
    let message = NowPlayingMessage {
        kind: "now_playing",
        color: now_playing.color.into(),
        track: TrackView::of(now_playing.track.as_ref(), timestamp),
        palette: now_playing.palette.map(PaletteView::from),
        text_color: now_playing.text_color.into(),
    };
    serde_json::to_string(&message).unwrap_or_default()
}

fn force_logout_message() -> String {
    serde_json::json!({"type": "force_logout", "reason": "banned"}).to_string()
}

/// Sends one message within [`WRITE_TIMEOUT`]; `false` when the socket is done for.
async fn send<S: Sink<WsMessage> + Unpin>(socket: &mut S, message: WsMessage) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, socket.send(message)).await,
        Ok(Ok(()))
    )
}

/// Closes the socket from our side: sends a close frame, then waits (at most
/// [`CLOSE_HANDSHAKE_TIMEOUT`]) for the client's close frame that answers it, so the connection
/// ends only after both sides have sent one (RFC 6455, sections 5.5.1 and 7.1.1). Dropping the
/// socket right after our frame would reset a client whose answer arrives a moment later, and
/// the browser would report an unclean close. `frame` is `None` for a close without a code.
async fn close<S, E>(socket: &mut S, frame: Option<(u16, &str)>)
where
    S: Stream<Item = Result<WsMessage, E>> + Sink<WsMessage> + Unpin,
{
    let frame = frame.map(|(code, reason)| (code, reason.to_owned()));
    if !send(socket, WsMessage::Close(frame)).await {
        return;
    }
    // Whatever the client still sends before its close frame is of no interest.
    let answered = async {
        while let Some(Ok(message)) = socket.next().await {
            if matches!(message, WsMessage::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE_TIMEOUT, answered).await;
}

/// Serves one upgraded socket until it closes. `token` comes from [`upgrade_token`].
pub async fn run_socket<S, E>(app: App, token: Option<String>, mut socket: S)
where
    S: Stream<Item = Result<WsMessage, E>> + Sink<WsMessage> + Unpin,
{
    let authenticated = match token {
        Some(token) => app.accounts().authenticate(&token).await,
        None => Err(Error::Unauthorized("Invalid token")),
    };
    let principal = match authenticated {
        Ok(principal) => principal,
        // Not the client's fault: it should come back, not sign out.
        Err(Error::Unavailable(_)) => {
            close(
                &mut socket,
                Some((CLOSE_TRY_AGAIN_LATER, "try again later")),
            )
            .await;
            return;
        }
        Err(_) => {
            close(&mut socket, Some((CLOSE_UNAUTHORIZED, "unauthorized"))).await;
            return;
        }
    };
    let user_id = principal.user.id;
    let limits = app.config().websocket;
    let Some(_place) = app
        .now_playing()
        .sockets()
        .admit(&user_id, limits.max_sockets_per_user)
    else {
        close(
            &mut socket,
            Some((CLOSE_TOO_MANY_SOCKETS, "too many sockets")),
        )
        .await;
        return;
    };
    let mut events = app.account_events();
    let mut subscription = app.now_playing().subscribe(&user_id);
    let mut ban_check = tokio::time::interval(BAN_RECHECK);
    ban_check.tick().await;
    let mut ping = tokio::time::interval(limits.ping_interval);
    ping.tick().await;
    // Whether the client sent anything (a pong, at least) since the last ping.
    let mut heard = true;
    // The current state first, then every change of what it shows. The hub only wakes us on
    // such changes, but the first poll's result may equal what was sent first.
    let mut send_state = true;
    let mut last_sent: Option<NowPlaying> = None;
    loop {
        if send_state {
            send_state = false;
            let Ok(state) = app.now_playing().of(&user_id).await else {
                break;
            };
            if !last_sent
                .as_ref()
                .is_some_and(|last| last.shows_same(&state))
            {
                let text = now_playing_message(&state, app.now().timestamp());
                if !send(&mut socket, WsMessage::Text(text)).await {
                    return;
                }
                last_sent = Some(state);
            }
        }
        tokio::select! {
            changed = subscription.updates.changed() => {
                if changed.is_err() {
                    // The feed stopped (the user is gone); a new subscription restarts it.
                    subscription = app.now_playing().subscribe(&user_id);
                }
                send_state = true;
            }
            event = events.recv() => match event {
                Ok(AccountEvent::Banned { user_id: banned }) if banned == user_id => {
                    kick(&mut socket).await;
                    return;
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            _ = ban_check.tick() => {
                // Only a ban ends the socket; an unreachable database is asked again later.
                if let Err(Error::Banned) = app.ensure_not_banned(&user_id).await {
                    kick(&mut socket).await;
                    return;
                }
            }
            _ = ping.tick() => {
                if !heard {
                    close(&mut socket, Some((CLOSE_PING_TIMEOUT, "ping timeout"))).await;
                    return;
                }
                heard = false;
                if !send(&mut socket, WsMessage::Ping(Vec::new())).await {
                    return;
                }
            }
            // Pings are answered by the WebSocket libraries; other client frames mean nothing,
            // but show the client is there.
            incoming = socket.next() => match incoming {
                Some(Ok(WsMessage::Close(_))) => {
                    // The WebSocket library has queued the echo of the client's close frame
                    // (RFC 6455, section 5.5.1); closing the sink sends it.
                    let _ = tokio::time::timeout(WRITE_TIMEOUT, socket.close()).await;
                    return;
                }
                Some(Err(_)) | None => return,
                Some(Ok(_)) => heard = true,
            },
        }
    }
    close(&mut socket, None).await;
}

async fn kick<S, E>(socket: &mut S)
where
    S: Stream<Item = Result<WsMessage, E>> + Sink<WsMessage> + Unpin,
{
    if send(socket, WsMessage::Text(force_logout_message())).await {
        close(socket, Some((CLOSE_UNAUTHORIZED, "banned"))).await;
    }
}
