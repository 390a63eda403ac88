//! `GET /infos/{user_id}/events`: the `/infos` answer as a live stream of Server-Sent Events
//! (WHATWG HTML, "Server-sent events"), for overlays that would otherwise poll every second.
//!
//! - Public and looked up like `/infos/{user_id}`: the same `404 User not found`, the same
//!   answer for a banned user (the overlay keeps showing, as `/infos` does).
//! - The first event, sent at once, is the current `/infos` JSON; then one event per change of
//!   what it shows (track, play state, colors, the fallback color; not the position alone),
//!   the same notion of change as `/ws`, learnt from the now-playing hub (one poll per user
//!   whatever the number of streams). The stream keeps the user watched while it is open.
//! - Every event has an `id`: a fingerprint of what it shows (the JSON without its times and
//!   position), the same on every server and across restarts. A client reconnecting with
//!   `Last-Event-ID` equal to the current state's id gets no first event (it shows that state
//!   already); any other id gets the current state at once.
//! - A comment line every `SSE_KEEP_ALIVE_INTERVAL` keeps proxies from closing an idle stream.
//! - At most `SSE_MAX_STREAMS_PER_IP` streams per client IP (`429`) and `SSE_MAX_STREAMS` in all
//!   (`503`); a stream's place is given back when the client goes away (the body is dropped).
//!   A client that stops reading is dropped by the server's `HTTP_WRITE_TIMEOUT`.
//! - The stream ends when the user is deleted (a reconnecting `EventSource` then gets `404`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::body::{PendingStream, ResponseBody};
use super::public::{infos_response, user_path_id};
use super::{ApiError, Ctx, Reply};
use crate::App;
use crate::config::EventStreamLimits;
use crate::service::now_playing::hub::Subscription;
use crate::service::{Error, NowPlaying};

/// The media type of an event stream.
pub const EVENT_STREAM: &str = "text/event-stream";

/// The request header a reconnecting `EventSource` sends with the last id it saw.
pub const LAST_EVENT_ID: &str = "last-event-id";

/// The comment sent when a stream has been quiet for `SSE_KEEP_ALIVE_INTERVAL`.
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// Open streams, per client IP and in all, and the signal that ends them all.
#[derive(Debug)]
pub(crate) struct StreamCounts {
    counts: Mutex<Counts>,
    /// `true` once the server shuts down: open streams end, so that their requests finish.
    closing: watch::Sender<bool>,
}

impl Default for StreamCounts {
    fn default() -> Self {
        StreamCounts {
            counts: Mutex::default(),
            closing: watch::Sender::new(false),
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    /// Streams by client IP (`None`: a request with no known peer, counted in the total only).
    per_ip: HashMap<IpAddr, usize>,
}

impl StreamCounts {
    /// A place for one more stream of `ip`: `429` when that IP has its share, `503` when the
    /// server has.
    fn admit(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
        limits: &EventStreamLimits,
    ) -> Result<StreamPlace, ApiError> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ip) = ip {
            if counts.per_ip.get(&ip).copied().unwrap_or(0) >= limits.max_streams_per_ip {
                return Err(ApiError::TooManyStreams);
            }
        }
        if counts.total >= limits.max_streams {
            return Err(ApiError::StreamsFull);
        }
        counts.total += 1;
        if let Some(ip) = ip {
            *counts.per_ip.entry(ip).or_insert(0) += 1;
        }
        Ok(StreamPlace {
            counts: Arc::clone(self),
            ip,
        })
    }

    /// Streams open now.
    pub(crate) fn open(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }

    /// Ends every open stream (after the event it is sending), and every stream opened from now
    /// on after its first event: the server is shutting down, and waits for requests to finish.
    /// Clients reconnect, to another server of the deployment or to this one restarted.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn close_all(&self) {
        self.closing.send_replace(true);
    }
}

/// One open stream's place under the caps, given back when dropped.
struct StreamPlace {
    counts: Arc<StreamCounts>,
    ip: Option<IpAddr>,
}

impl Drop for StreamPlace {
    fn drop(&mut self) {
        let mut counts = self
            .counts
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(ip) = self.ip {
            if let Some(count) = counts.per_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    counts.per_ip.remove(&ip);
                }
            }
        }
    }
}

/// One event: its id and its encoding on the wire.
struct Event {
    id: String,
    encoded: Bytes,
}

impl Event {
    /// The event showing `now_playing`: the `/infos` JSON as `data`, its fingerprint as `id`.
    fn of(user_id: &str, now_playing: &NowPlaying, timestamp: i64) -> Event {
        let infos = infos_response(user_id, now_playing, timestamp);
        // Byte for byte what `/infos` answers. JSON as serde writes it holds no line break, so
        // it is one `data` line.
        let data = serde_json::to_string(&infos).unwrap_or_default();
        let id = fingerprint(&mut serde_json::to_value(&infos).unwrap_or_default());
        let encoded = Bytes::from(format!("id: {id}\ndata: {data}\n\n"));
        Event { id, encoded }
    }
}

/// What an `/infos` body shows, as 16 hex digits: a SHA-256 of the body without what changes
/// all the time (the times, the answer's duration, the position).
fn fingerprint(infos: &mut serde_json::Value) -> String {
    if let Some(body) = infos.as_object_mut() {
        body.remove("timestamp");
        body.remove("processing_time_ms");
        if let Some(track) = body.get_mut("track").and_then(|t| t.as_object_mut()) {
            track.remove("timestamp");
            track.remove("progress_ms");
        }
    }
    let digest = Sha256::digest(infos.to_string().as_bytes());
    hex::encode(&digest[..8])
}

pub(super) async fn infos_events(cx: &Ctx<'_>, id: &str) -> Reply {
    let id = user_path_id(id)?;
    let app = cx.app;
    let streams = app.now_playing().event_streams();
    let place = streams.admit(cx.client_ip(), &app.config().events)?;
    let closing = streams.closing.subscribe();
    // Looked up (and watched) as `/infos` does: an unknown user is `404` here.
    let now_playing = app.now_playing().of(id).await?;
    let mut subscription = app.now_playing().subscribe(id);
    // A change between the read above and the subscription is caught by one more look.
    subscription.updates.mark_changed();
    let first = Event::of(id, &now_playing, app.now().timestamp());
    let known = last_event_id(&cx.headers).is_some_and(|last| last == first.id);
    let period = app.config().events.keep_alive_interval;
    let mut keep_alive = tokio::time::interval_at(Instant::now() + period, period);
    keep_alive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let stream = EventStream {
        app: app.clone(),
        user_id: id.to_owned(),
        subscription,
        keep_alive,
        closing,
        last_id: first.id,
        next: (!known).then_some(first.encoded),
        _place: place,
    };
    let chunks = futures_util::stream::unfold(stream, EventStream::next_chunk);
    let mut response = http::Response::new(Bytes::new());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(EVENT_STREAM));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // nginx would otherwise buffer the stream (and deliver events late, in batches).
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    PendingStream::attach(&mut response, ResponseBody::stream(chunks));
    Ok(response)
}

/// The `Last-Event-ID` a reconnecting client sent, when it is text.
fn last_event_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(LAST_EVENT_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// One open stream: what it follows and what it holds (its place, the user's subscription),
/// all dropped with the response body when the client goes away.
struct EventStream {
    app: App,
    user_id: String,
    subscription: Subscription,
    keep_alive: Interval,
    /// The server's shutdown (see [`StreamCounts::close_all`]).
    closing: watch::Receiver<bool>,
    /// The id of the state the client shows.
    last_id: String,
    /// A chunk ready to send.
    next: Option<Bytes>,
    _place: StreamPlace,
}

impl EventStream {
    /// The next chunk to send (an event or a keep-alive comment), waiting for one; `None` ends
    /// the stream (the user is gone, or the server shuts down).
    async fn next_chunk(mut self) -> Option<(Bytes, Self)> {
        loop {
            if let Some(chunk) = self.next.take() {
                self.keep_alive.reset();
                return Some((chunk, self));
            }
            tokio::select! {
                changed = self.subscription.updates.changed() => {
                    if changed.is_err() {
                        // The feed stopped (the user may be gone); a new subscription restarts it.
                        self.subscription = self.app.now_playing().subscribe(&self.user_id);
                    }
                    match self.app.now_playing().of(&self.user_id).await {
                        Ok(now_playing) => {
                            let event =
                                Event::of(&self.user_id, &now_playing, self.app.now().timestamp());
                            if event.id != self.last_id {
                                self.last_id = event.id;
                                self.next = Some(event.encoded);
                            }
                        }
                        Err(Error::NotFound(_)) => return None,
                        // The database does not answer: the client keeps what it shows, and
                        // the next change looks again.
                        Err(_) => {}
                    }
                }
                _ = self.keep_alive.tick() => self.next = Some(Bytes::from_static(KEEP_ALIVE)),
                () = closed(&mut self.closing) => return None,
            }
        }
    }
}

/// Waits until the server shuts down (see [`StreamCounts::close_all`]).
async fn closed(closing: &mut watch::Receiver<bool>) {
    loop {
        let closed = *closing.borrow_and_update();
        if closed {
            return;
        }
        if closing.changed().await.is_err() {
            // The app is gone: the stream ends with its connection.
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(per_ip: usize, total: usize) -> EventStreamLimits {
        EventStreamLimits {
            max_streams_per_ip: per_ip,
            max_streams: total,
            keep_alive_interval: Duration::from_secs(15),
        }
    }

    #[test]
    fn places_are_capped_per_ip_and_in_all_and_given_back() {
        let counts = Arc::new(StreamCounts::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let limits = limits(2, 3);
        let first = counts.admit(Some(a), &limits).unwrap();
        let _second = counts.admit(Some(a), &limits).unwrap();
        assert!(matches!(
            counts.admit(Some(a), &limits),
            Err(ApiError::TooManyStreams)
        ));
        let _third = counts.admit(Some(b), &limits).unwrap();
        assert!(matches!(
            counts.admit(None, &limits),
            Err(ApiError::StreamsFull)
        ));
        drop(first);
        assert_eq!(counts.open(), 2);
        let _again = counts.admit(Some(a), &limits).unwrap();
    }

    #[test]
    fn the_fingerprint_leaves_times_and_position_out() {
        let body = |timestamp: i64, progress: u64, name: &str| {
            serde_json::json!({
                "color": {"hex": "#123456"}, "timestamp": timestamp, "processing_time_ms": 0.5,
                "track": {"name": name, "progress_ms": progress, "timestamp": timestamp},
            })
        };
        let id = fingerprint(&mut body(1, 10, "A"));
        assert_eq!(id.len(), 16);
        assert_eq!(id, fingerprint(&mut body(2, 20_000, "A")));
        assert_ne!(id, fingerprint(&mut body(1, 10, "B")));
    }
}
