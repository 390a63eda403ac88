#![doc = include_str!("../README.md")]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::{SinkExt, TryStreamExt, future};
use http::{Request, Response};
use hyper::body::Body;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use melodyhue_core::App;
use melodyhue_core::api::{self, ResponseBody, ws};
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{
    self, Message,
    handshake::server::create_response_with_body,
    protocol::{CloseFrame, Role, WebSocketConfig},
};

/// tungstenite's read buffer, allocated whole for every socket (128 KiB by default): clients
/// send nothing worth a larger one.
const WEBSOCKET_READ_BUFFER: usize = 2 * ws::MAX_MESSAGE_BYTES;

/// Answers one request with MelodyHue. Call it from your own hyper service.
///
/// Any body type works: at most 64 KiB of it is read, and a longer body is answered `413`
/// without being buffered whole. `peer` is the client's socket address, when known (it is the
/// client IP for login throttling unless `TRUST_PROXY` is set).
///
/// The response body is the core's [`ResponseBody`]: one complete buffer, which hyper sends
/// with a `Content-Length`, or for an event stream (`/infos/{user_id}/events`) chunks sent as
/// they come until the client goes away.
///
/// A WebSocket upgrade of `/ws` is answered `101 Switching Protocols` and the socket is served
/// on a task of its own, once hyper hands the connection over (the connection must be served
/// with upgrades, as [`serve`] does).
pub async fn handle<B>(
    app: &App,
    mut request: Request<B>,
    peer: Option<SocketAddr>,
) -> Response<ResponseBody>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if ws::is_socket_path(request.uri().path()) {
        // tungstenite checks the handshake (GET, Upgrade, version, key) and makes the 101.
        if let Ok(switching) =
            create_response_with_body(&request, || ResponseBody::from(Bytes::new()))
        {
            let token = ws::upgrade_token(app, request.headers(), request.uri().query());
            let upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(serve_socket(app.clone(), token, upgrade));
            return switching;
        }
    }
    api::handle_incoming(app, request, peer).await
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
    // The core's limits: a longer message or frame ends the socket.
    let config = WebSocketConfig::default()
        .read_buffer_size(WEBSOCKET_READ_BUFFER)
        .max_message_size(Some(ws::MAX_MESSAGE_BYTES))
        .max_frame_size(Some(ws::MAX_FRAME_BYTES));
    let socket =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
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
/// HTTP/1.1 with keep-alive and HTTP/2 with prior knowledge, under the connection limits of the
/// app's configuration (`melodyhue_core::server`: header and keep-alive timeouts, a connection
/// cap that never stops accepting).
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let service_app = app.clone();
    let make_service = move |peer: SocketAddr| {
        let app = service_app.clone();
        service_fn(move |request| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(handle(&app, request, Some(peer)).await) }
        })
    };
    melodyhue_core::server::serve(&app, listener, make_service, shutdown).await;
}
