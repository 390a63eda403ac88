#![doc = include_str!("../README.md")]

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, TryStreamExt, future};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Body;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use melodyhue_core::App;
use melodyhue_core::api::{self, ws};
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{
    self, Message,
    handshake::server::create_response_with_body,
    protocol::{CloseFrame, Role},
};

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
///
/// A WebSocket upgrade of `/ws` is answered `101 Switching Protocols` and the socket is served
/// on a task of its own, once hyper hands the connection over (the connection must be served
/// with upgrades, as [`serve`] does).
pub async fn handle<B>(
    app: &App,
    mut request: Request<B>,
    peer: Option<SocketAddr>,
) -> Response<Full<Bytes>>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if request.uri().path().trim_end_matches('/') == "/ws" {
        // tungstenite checks the handshake (GET, Upgrade, version, key) and makes the 101.
        if let Ok(switching) = create_response_with_body(&request, || Full::new(Bytes::new())) {
            let token = ws::upgrade_token(request.headers(), request.uri().query());
            let upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(serve_socket(app.clone(), token, upgrade));
            return switching;
        }
    }
    api::handle_incoming(app, request, peer)
        .await
        .map(Full::new)
}

/// Waits for hyper to hand over the upgraded connection, then lets the core run the socket.
async fn serve_socket(app: App, token: Option<String>, upgrade: OnUpgrade) {
    let upgraded = match upgrade.await {
        Ok(upgraded) => upgraded,
        Err(err) => {
            tracing::debug!(error = %err, "WebSocket upgrade failed");
            return;
        }
    };
    let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    let messages = socket
        .with(|message: ws::WsMessage| {
            future::ready(Ok::<_, tungstenite::Error>(match message {
                ws::WsMessage::Text(text) => Message::text(text),
                ws::WsMessage::Binary(data) => Message::binary(data),
                ws::WsMessage::Ping(data) => Message::Ping(data.into()),
                ws::WsMessage::Pong(data) => Message::Pong(data.into()),
                ws::WsMessage::Close(frame) => {
                    Message::Close(frame.map(|(code, reason)| CloseFrame {
                        code: code.into(),
                        reason: reason.into(),
                    }))
                }
            }))
        })
        .map_ok(|message| match message {
            Message::Text(text) => ws::WsMessage::Text(text.as_str().to_owned()),
            Message::Binary(data) => ws::WsMessage::Binary(data.to_vec()),
            Message::Ping(data) => ws::WsMessage::Ping(data.to_vec()),
            Message::Pong(data) => ws::WsMessage::Pong(data.to_vec()),
            Message::Close(frame) => {
                ws::WsMessage::Close(frame.map(|f| (f.code.into(), f.reason.as_str().to_owned())))
            }
            Message::Frame(frame) => ws::WsMessage::Binary(frame.into_payload().to_vec()),
        });
    ws::run_socket(app, token, messages).await;
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
