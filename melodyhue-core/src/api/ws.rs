//! The `/ws` realtime channel as functions over messages: adapters perform the upgrade and
//! convert their library's frames to [`WsMessage`]; everything else happens here.
//!
//! The socket is authenticated by the access token (header, cookie, or `token` /
//! `access_token` query parameter); without a valid one it is closed with code 4401. It then
//! follows the user's own now-playing state: a `now_playing` message at once and whenever what
//! it shows changes (any detail of the track, the play state, the colors; not the position
//! alone), all from the now-playing hub (never one poll per socket). A ban sends
//! `force_logout` and closes with 4401.

use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use http::HeaderMap;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use super::public::{ColorView, PaletteView, TrackView};
use super::{ACCESS_COOKIE, bearer_token, cookie_value};
use crate::App;
use crate::service::{AccountEvent, NowPlaying};

/// The close code of an unauthenticated or banned socket.
pub const CLOSE_UNAUTHORIZED: u16 = 4401;

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

/// The access token of an upgrade request: `Authorization: Bearer`, the access cookie, or
/// the `token` / `access_token` query parameter.
pub fn upgrade_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    bearer_token(headers)
        .or_else(|| cookie_value(headers, ACCESS_COOKIE))
        .or_else(|| {
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .find(|(k, v)| (k == "token" || k == "access_token") && !v.is_empty())
                .map(|(_, v)| v.into_owned())
        })
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

/// Serves one upgraded socket until it closes. `token` comes from [`upgrade_token`].
pub async fn run_socket<S, E>(app: App, token: Option<String>, mut socket: S)
where
    S: Stream<Item = Result<WsMessage, E>> + Sink<WsMessage> + Unpin,
{
    let principal = match token {
        Some(token) => app.authenticate(&token).await.ok(),
        None => None,
    };
    let Some(principal) = principal else {
        let _ = socket
            .send(WsMessage::Close(Some((
                CLOSE_UNAUTHORIZED,
                "unauthorized".into(),
            ))))
            .await;
        return;
    };
    let user_id = principal.user.id;
    let mut events = app.account_events();
    let mut subscription = app.inner().hub.subscribe(&user_id);
    let mut ban_check = tokio::time::interval(BAN_RECHECK);
    ban_check.tick().await;
    // The current state first, then every change of what it shows. The hub only wakes us on
    // such changes, but the first poll's result may equal what was sent first.
    let mut send_state = true;
    let mut last_sent: Option<NowPlaying> = None;
    loop {
        if send_state {
            send_state = false;
            let Ok(state) = app.now_playing(&user_id).await else {
                break;
            };
            if !last_sent
                .as_ref()
                .is_some_and(|last| last.shows_same(&state))
            {
                let text = now_playing_message(&state, app.now().timestamp());
                if socket.send(WsMessage::Text(text)).await.is_err() {
                    return;
                }
                last_sent = Some(state);
            }
        }
        tokio::select! {
            changed = subscription.updates.changed() => {
                if changed.is_err() {
                    // The feed stopped (the user is gone); a new subscription restarts it.
                    subscription = app.inner().hub.subscribe(&user_id);
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
                if app.ensure_not_banned(&user_id).await.is_err() {
                    kick(&mut socket).await;
                    return;
                }
            }
            // Pings are answered by the WebSocket libraries; other client frames mean nothing.
            incoming = socket.next() => match incoming {
                Some(Ok(WsMessage::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(WsMessage::Close(None)).await;
}

async fn kick<S: Sink<WsMessage> + Unpin>(socket: &mut S) {
    let _ = socket.send(WsMessage::Text(force_logout_message())).await;
    let _ = socket
        .send(WsMessage::Close(Some((
            CLOSE_UNAUTHORIZED,
            "banned".into(),
        ))))
        .await;
}
