#![doc = include_str!("../README.md")]

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Body;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use melodyhue_core::App;
use melodyhue_core::api;
use tokio::net::TcpListener;

/// How long to stop accepting after the listener fails for want of resources (e.g. file
/// descriptors), so the loop does not spin while connections close.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Answers one request with MelodyHue. Call it from your own hyper service.
///
/// Any body type works: at most 64 KiB of it is read, and a longer body is answered `413`
/// without being buffered whole. `peer` is the client's socket address, when known (it is the
/// client IP for login throttling unless `TRUST_PROXY` is set).
///
/// The response body is [`Full`]: the core answers with one complete buffer, which hyper
/// sends with a `Content-Length`.
pub async fn handle<B>(
    app: &App,
    request: Request<B>,
    peer: Option<SocketAddr>,
) -> Response<Full<Bytes>>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    api::handle_incoming(app, request, peer)
        .await
        .map(Full::new)
}

/// Serves MelodyHue on `listener` until `shutdown` completes, then stops accepting and lets
/// open requests finish.
///
/// HTTP/1.1 with keep-alive (and HTTP/2 with prior knowledge, as warp's server does).
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The timer makes hyper's header read timeout apply, so a client that never finishes
    // its request headers cannot hold a connection, or a graceful shutdown, forever.
    builder.http1().keep_alive(true).timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) if is_connection_error(&err) => continue,
            Err(err) => {
                tracing::error!(error = %err, "cannot accept connections; pausing");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let app = app.clone();
        let service = service_fn(move |request| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(handle(&app, request, Some(peer)).await) }
        });
        // With upgrades, so that `/ws` can take the connection over once it is routed.
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
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
