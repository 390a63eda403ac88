//! Serving over TCP with limits on what a client can hold (feature `server`): the accept loop
//! both frontend adapters run, given the hyper service that answers requests.
//!
//! Each connection is served by hyper (HTTP/1.1 with keep-alive, HTTP/2 with prior knowledge,
//! upgrades for `/ws`) under the app's [`ConnectionLimits`]:
//!
//! - **Header deadline.** A connection must deliver its first request's headers (HTTP/2: its
//!   preface and first request) within `HTTP_HEADER_TIMEOUT` of being accepted, so one that
//!   sends nothing, or trickles its headers, is closed. Later requests on an HTTP/1.1
//!   connection get the same time from their first byte (hyper's header read timeout).
//! - **Keep-alive timeout.** A connection with no request in flight for `HTTP_KEEP_ALIVE_TIMEOUT`
//!   is closed (HTTP/2 too). HTTP/2 connections are also pinged, and closed when a ping goes
//!   unanswered for [`HTTP2_KEEP_ALIVE`].
//! - **Connection cap.** At most `HTTP_MAX_CONNECTIONS` connections are open (upgraded
//!   WebSockets included; by default the file-descriptor limit less [`RESERVED_DESCRIPTORS`]).
//!   The loop never stops accepting: at the cap, the connection that has been idle longest
//!   (no request in flight; waiting for its first request counts) is closed to make room, the
//!   way nginx reuses keep-alive connections. When every connection has a request in flight,
//!   the new one is closed at once (shed). A slowly trickling client therefore cannot shut real
//!   clients out: its connections are always the idlest. The same happens when `accept` fails
//!   for want of file descriptors.
//!
//! - **Body deadline.** A request's body must arrive within `HTTP_BODY_TIMEOUT` of its headers
//!   (`408` otherwise; the core enforces it while reading, see [`crate::api::handle_incoming`]).
//!   A connection still receiving a body may be evicted like an idle one, so trickled bodies
//!   cannot fill the cap either.
//!
//! - **Write timeout.** A connection whose writes make no progress for `HTTP_WRITE_TIMEOUT` (the
//!   client stopped reading: its receive window and our send buffer are full) is closed, so a
//!   reader that stalls cannot hold a response (an event stream, say) and its slot for ever.
//!
//! A request is in flight until its response body has been sent whole (or dropped), so a
//! streamed body (Server-Sent Events) keeps its connection busy: never idle-closed, never
//! evicted.
//!
//! Requests being answered are never cut: only connections with no request in flight, or whose
//! request is still arriving, are closed. Each close is counted in `/metrics`
//! (`melodyhue_http_connections_closed_total{reason}`) and logged at debug level only, since it
//! is a client's doing, not a server error.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::App;
use crate::config::ConnectionLimits;
use crate::metrics::{ConnectionClose, ConnectionCounts};

/// File descriptors left for everything but client connections (database and Spotify
/// connections, SQLite files, mail, logs) when the connection cap is derived from the limit.
pub const RESERVED_DESCRIPTORS: u64 = 128;

/// The connection cap when the file-descriptor limit cannot be read (or is unlimited).
pub const FALLBACK_MAX_CONNECTIONS: usize = 10_000;

/// How often an HTTP/2 connection is pinged, and how long the answer may take.
pub const HTTP2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// Largest request head: HTTP/1.1 read buffer, HTTP/2 header list.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Concurrent streams of one HTTP/2 connection.
pub const HTTP2_MAX_STREAMS: u32 = 100;

/// How long to wait before accepting again when `accept` fails and no idle connection can be
/// closed to make room (e.g. no file descriptor left, all connections busy).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// How long to let an evicted connection release its descriptor before accepting again.
const EVICTION_PAUSE: Duration = Duration::from_millis(5);

/// The connection cap of `limits`: `HTTP_MAX_CONNECTIONS`, else the process's soft limit of
/// open files less [`RESERVED_DESCRIPTORS`] (at least 16).
pub fn max_connections(limits: &ConnectionLimits) -> usize {
    limits.max_connections.unwrap_or_else(|| {
        file_limit()
            .map(|limit| limit.saturating_sub(RESERVED_DESCRIPTORS).max(16))
            .and_then(|cap| usize::try_from(cap).ok())
            .unwrap_or(FALLBACK_MAX_CONNECTIONS)
    })
}

#[cfg(unix)]
fn file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(not(unix))]
fn file_limit() -> Option<u64> {
    None
}

/// Serves `listener` until `shutdown` completes, then stops accepting, ends the app's event
/// streams, lets the requests in flight finish and closes idle connections (HTTP/2: `GOAWAY`).
///
/// `make_service` makes the service of one connection from the client's address. Limits come
/// from `app`'s configuration (see the [module docs](self)).
pub async fn serve<M, S, B>(
    app: &App,
    listener: TcpListener,
    make_service: M,
    shutdown: impl Future<Output = ()> + Send,
) where
    M: Fn(SocketAddr) -> S,
    S: Service<Request<RequestBody>, Response = Response<B>> + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let limits = app.config().connections;
    let cap = max_connections(&limits);
    let counts = Arc::clone(&app.inner().connections);
    let registry = Arc::new(Registry::default());
    let builder = builder(&limits);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    // Whether the last accept failed, so a run of failures is logged once.
    let mut accept_failing = false;
    tracing::debug!(max_connections = cap, "accepting connections");
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                accept_failing = false;
                pair
            }
            Err(err) if is_connection_error(&err) => continue,
            Err(err) => {
                // Most likely out of file descriptors: make room if a connection is idle.
                let pause = if registry.evict_idlest() {
                    counts.closed(ConnectionClose::Evicted);
                    EVICTION_PAUSE
                } else {
                    if !accept_failing {
                        tracing::warn!(error = %err, "cannot accept connections; retrying");
                    }
                    ACCEPT_ERROR_PAUSE
                };
                accept_failing = true;
                tokio::select! {
                    () = tokio::time::sleep(pause) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        if registry.open() >= cap {
            if registry.evict_idlest() {
                counts.closed(ConnectionClose::Evicted);
            } else {
                counts.closed(ConnectionClose::Shed);
                tracing::debug!(%peer, "connection shed: every connection is busy");
                continue;
            }
        }
        let slot = Slot::take(&registry, &counts);
        let connection = Arc::new(Connection::new());
        let registered = registry.register(&connection);
        let service = InFlightTracking {
            inner: make_service(peer),
            connection: Arc::clone(&connection),
        };
        // With upgrades, so that `/ws` can take the connection over once it is routed; the
        // socket keeps the slot until it closes.
        let served = builder
            .serve_connection_with_upgrades(
                TokioIo::new(Counted {
                    stream,
                    connection: Arc::clone(&connection),
                    _slot: slot,
                }),
                service,
            )
            .into_owned();
        let served = graceful.watch(served);
        let counts = Arc::clone(&counts);
        tokio::spawn(async move {
            if let Some(reason) = watch(served, &connection, &limits).await {
                counts.closed(reason);
                tracing::debug!(%peer, reason = ?reason, "connection closed");
            }
            // Upgraded or closed: nothing left to evict (an upgraded socket keeps its slot).
            drop(registered);
        });
    }
    drop(listener);
    // Event streams never finish by themselves: end them, or shutdown would wait for ever.
    app.inner().event_streams.close_all();
    graceful.shutdown().await;
}

/// hyper's connection settings for `limits`.
fn builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_KEEP_ALIVE)
        .keep_alive_timeout(HTTP2_KEEP_ALIVE)
        .max_concurrent_streams(HTTP2_MAX_STREAMS)
        .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX));
    builder
}

/// Runs one connection until it ends, or until it has had no request in flight for longer than
/// its limits allow, or until it is evicted. Returns why the server ended it, if it did.
async fn watch<F, E>(
    served: F,
    connection: &Connection,
    limits: &ConnectionLimits,
) -> Option<ConnectionClose>
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut served = std::pin::pin!(served);
    loop {
        let (deadline, _) = connection.deadline(limits);
        tokio::select! {
            ended = &mut served => {
                return ended.err().map(|err| {
                    tracing::debug!(error = %err, "connection ended with an error");
                    ConnectionClose::Error
                });
            }
            () = tokio::time::sleep_until(deadline) => {
                // The deadline may have moved since (a request came); look again.
                let (deadline, reason) = connection.deadline(limits);
                if deadline <= Instant::now() {
                    return Some(reason);
                }
            }
            () = connection.evicted.notified() => return None,
            // A write just blocked: its deadline may be the nearest.
            () = connection.write_blocked.notified() => {}
        }
    }
}

/// One open connection, as the eviction and the timeouts see it.
struct Connection {
    accepted: Instant,
    /// Requests whose response is not produced yet.
    in_flight: AtomicU32,
    /// Requests whose body has not arrived whole yet.
    receiving: AtomicU32,
    /// Whether any request has arrived.
    served: AtomicBool,
    /// When the last request in flight finished, in milliseconds since `accepted`.
    idle_since_ms: AtomicU64,
    evicted: Notify,
    /// Since when a write has been waiting for the client to read, in milliseconds since
    /// `accepted`, plus one; 0 while writes go through.
    write_blocked_since: AtomicU64,
    /// Signalled when a write starts to wait.
    write_blocked: Notify,
}

impl Connection {
    fn new() -> Self {
        Connection {
            accepted: Instant::now(),
            in_flight: AtomicU32::new(0),
            receiving: AtomicU32::new(0),
            served: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
            evicted: Notify::new(),
            write_blocked_since: AtomicU64::new(0),
            write_blocked: Notify::new(),
        }
    }

    /// Milliseconds since `accepted`.
    fn elapsed_ms(&self) -> u64 {
        let elapsed = Instant::now().saturating_duration_since(self.accepted);
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    /// Notes the outcome of a write (or flush) to the socket: a pending one starts the write
    /// timeout, unless one is already waiting; a completed one ends it.
    fn wrote<T>(&self, polled: &Poll<T>) {
        if polled.is_pending() {
            let since = self.elapsed_ms().saturating_add(1);
            if self
                .write_blocked_since
                .compare_exchange(0, since, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.write_blocked.notify_one();
            }
        } else {
            self.write_blocked_since.store(0, Ordering::Release);
        }
    }

    /// When a write waiting for the client gives up, if one is waiting.
    fn write_deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        match self.write_blocked_since.load(Ordering::Acquire) {
            0 => None,
            since => Some(self.accepted + Duration::from_millis(since - 1) + limits.write_timeout),
        }
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// Whether closing the connection cuts no request being answered: it is idle, or its
    /// request is still arriving.
    fn is_evictable(&self) -> bool {
        self.is_idle() || self.receiving.load(Ordering::Acquire) > 0
    }

    fn idle_since(&self) -> Instant {
        self.accepted + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire))
    }

    /// When the connection will have been idle too long, or its blocked write will give up,
    /// and what that deadline is. While a request is in flight there is no idle deadline; the
    /// answer is then one keep-alive period away, to look again.
    fn deadline(&self, limits: &ConnectionLimits) -> (Instant, ConnectionClose) {
        let idle = self.idle_deadline(limits);
        match self.write_deadline(limits) {
            Some(write) if write <= idle.0 => (write, ConnectionClose::WriteTimeout),
            _ => idle,
        }
    }

    /// [`Connection::deadline`] leaving blocked writes aside.
    fn idle_deadline(&self, limits: &ConnectionLimits) -> (Instant, ConnectionClose) {
        if !self.is_idle() {
            return (
                Instant::now() + limits.keep_alive_timeout,
                ConnectionClose::KeepAliveTimeout,
            );
        }
        if self.served.load(Ordering::Acquire) {
            (
                self.idle_since() + limits.keep_alive_timeout,
                ConnectionClose::KeepAliveTimeout,
            )
        } else {
            (
                self.accepted + limits.header_timeout,
                ConnectionClose::HeaderTimeout,
            )
        }
    }
}

/// The connections that can be evicted (open, not upgraded), and the number of open slots.
#[derive(Default)]
struct Registry {
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    open: AtomicU64,
}

impl Registry {
    fn open(&self) -> usize {
        usize::try_from(self.open.load(Ordering::Acquire)).unwrap_or(usize::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Lists a connection as evictable until the returned guard is dropped.
    fn register(self: &Arc<Self>, connection: &Arc<Connection>) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, Arc::clone(connection));
        Registered {
            id,
            registry: Arc::clone(self),
        }
    }

    /// Tells the connection idle longest to close, and forgets it: one without a request in
    /// flight, else one still receiving a request. `false` when every connection is answering a
    /// request.
    fn evict_idlest(&self) -> bool {
        let mut connections = self.lock();
        let idlest = connections
            .iter()
            .filter(|(_, c)| c.is_evictable())
            .min_by_key(|(_, c)| (!c.is_idle(), c.idle_since()))
            .map(|(id, _)| *id);
        match idlest.and_then(|id| connections.remove(&id)) {
            Some(connection) => {
                connection.evicted.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A connection's entry in the [`Registry`], removed when dropped.
struct Registered {
    id: u64,
    registry: Arc<Registry>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

/// A connection's place under the cap, held by its socket (so an upgraded WebSocket keeps it):
/// released when the socket closes.
struct Slot {
    registry: Arc<Registry>,
    counts: Arc<ConnectionCounts>,
}

impl Slot {
    fn take(registry: &Arc<Registry>, counts: &Arc<ConnectionCounts>) -> Slot {
        registry.open.fetch_add(1, Ordering::AcqRel);
        counts.opened();
        Slot {
            registry: Arc::clone(registry),
            counts: Arc::clone(counts),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.open.fetch_sub(1, Ordering::AcqRel);
        self.counts.released();
    }
}

/// A TCP stream that holds its connection's [`Slot`] and tells its [`Connection`] when writes
/// wait for the client.
struct Counted {
    stream: TcpStream,
    connection: Arc<Connection>,
    _slot: Slot,
}

impl Counted {
    fn stream(self: Pin<&mut Self>) -> Pin<&mut TcpStream> {
        Pin::new(&mut self.get_mut().stream)
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.connection.wrote(&polled);
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        this.connection.wrote(&polled);
        polled
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.connection.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A connection's service, marking the connection busy while a request is answered.
struct InFlightTracking<S> {
    inner: S,
    connection: Arc<Connection>,
}

impl<S, B> Service<Request<Incoming>> for InFlightTracking<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>>,
{
    type Response = Response<ResponseInFlight<B>>;
    type Error = S::Error;
    type Future = InFlight<S::Future>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let busy = Busy::new(&self.connection);
        let request = request.map(|body| RequestBody::new(body, &self.connection));
        InFlight {
            busy: Some(busy),
            future: Box::pin(self.inner.call(request)),
        }
    }
}

/// A request body as [`serve`] hands it to the service: hyper's, marking its connection as
/// receiving (so evictable) until the body has arrived whole.
pub struct RequestBody {
    inner: Incoming,
    receiving: Option<Receiving>,
}

impl RequestBody {
    fn new(inner: Incoming, connection: &Arc<Connection>) -> Self {
        let receiving = (!inner.is_end_stream()).then(|| Receiving::new(connection));
        RequestBody { inner, receiving }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) || this.inner.is_end_stream() {
            this.receiving = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body still arriving on a connection.
struct Receiving(Arc<Connection>);

impl Receiving {
    fn new(connection: &Arc<Connection>) -> Self {
        connection.receiving.fetch_add(1, Ordering::AcqRel);
        Receiving(Arc::clone(connection))
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        self.0.receiving.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request's answer being made; the connection is busy until it is ready (or dropped), and
/// then until its body has been sent.
struct InFlight<F> {
    future: Pin<Box<F>>,
    busy: Option<Busy>,
}

impl<F, B, E> Future for InFlight<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseInFlight<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let ready = ready!(self.future.as_mut().poll(cx));
        let busy = self.busy.take();
        Poll::Ready(ready.map(|response| response.map(|inner| ResponseInFlight { inner, busy })))
    }
}

/// A response body being sent: its request stays in flight until the body ends or is dropped
/// (a streamed body may last as long as the client listens).
struct ResponseInFlight<B> {
    inner: B,
    busy: Option<Busy>,
}

impl<B: Body + Unpin> Body for ResponseInFlight<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) || this.inner.is_end_stream() {
            this.busy = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One request in flight on a connection.
struct Busy {
    connection: Option<Arc<Connection>>,
}

impl Busy {
    fn new(connection: &Arc<Connection>) -> Self {
        connection.served.store(true, Ordering::Release);
        connection.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy {
            connection: Some(Arc::clone(connection)),
        }
    }

    fn finish(&mut self) {
        if let Some(connection) = self.connection.take() {
            let idle_for = Instant::now().saturating_duration_since(connection.accepted);
            connection.idle_since_ms.store(
                u64::try_from(idle_for.as_millis()).unwrap_or(u64::MAX),
                Ordering::Release,
            );
            connection.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Errors of one incoming connection, which say nothing about the listener.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            max_connections: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_connections_state() {
        let connection = Arc::new(Connection::new());
        let (deadline, reason) = connection.deadline(&limits());
        assert_eq!(reason, ConnectionClose::HeaderTimeout);
        assert_eq!(deadline, connection.accepted + Duration::from_secs(10));

        let mut busy = Busy::new(&connection);
        assert!(!connection.is_idle());
        tokio::time::advance(Duration::from_secs(30)).await;
        busy.finish();
        drop(busy);
        assert!(connection.is_idle());
        let (deadline, reason) = connection.deadline(&limits());
        assert_eq!(reason, ConnectionClose::KeepAliveTimeout);
        assert_eq!(deadline, connection.accepted + Duration::from_secs(90));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_waiting_for_the_client_sets_the_nearest_deadline() {
        let connection = Arc::new(Connection::new());
        let _busy = Busy::new(&connection);
        tokio::time::advance(Duration::from_secs(1)).await;
        connection.wrote(&Poll::<()>::Pending);
        tokio::time::advance(Duration::from_secs(3)).await;
        // Still the same wait: it started a second in.
        connection.wrote(&Poll::<()>::Pending);
        let (deadline, reason) = connection.deadline(&limits());
        assert_eq!(reason, ConnectionClose::WriteTimeout);
        assert_eq!(deadline, connection.accepted + Duration::from_secs(11));
        connection.wrote(&Poll::Ready(()));
        let (_, reason) = connection.deadline(&limits());
        assert_eq!(reason, ConnectionClose::KeepAliveTimeout);
    }

    #[test]
    fn eviction_picks_the_idlest_connection_and_spares_busy_ones() {
        let registry = Arc::new(Registry::default());
        let counts = Arc::new(ConnectionCounts::default());
        let old = Arc::new(Connection::new());
        let busy = Arc::new(Connection::new());
        let _busy_request = Busy::new(&busy);
        let _slots = [
            Slot::take(&registry, &counts),
            Slot::take(&registry, &counts),
        ];
        let _listed = [registry.register(&busy), registry.register(&old)];
        assert_eq!(registry.open(), 2);
        assert!(registry.evict_idlest(), "the idle connection is evicted");
        assert!(!registry.evict_idlest(), "the busy one is not");
        let receiving = Receiving::new(&busy);
        let _relisted = registry.register(&busy);
        assert!(
            registry.evict_idlest(),
            "one still receiving its request is"
        );
        drop(receiving);
        drop(_slots);
        assert_eq!(registry.open(), 0);
    }

    #[test]
    fn the_cap_comes_from_the_setting_or_the_file_limit() {
        let mut limits = limits();
        limits.max_connections = Some(7);
        assert_eq!(max_connections(&limits), 7);
        limits.max_connections = None;
        assert!(max_connections(&limits) >= 16);
    }
}
