#![doc = include_str!("../README.md")]

use std::future::Future;
use std::net::SocketAddr;

use bytes::Buf;
use futures_util::{Sink, SinkExt, Stream, TryStreamExt, future};
use http::{HeaderMap, Method, Request};
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper::service::{Service, service_fn};
use hyper_util::service::TowerToHyperService;
use melodyhue_core::App;
use melodyhue_core::api::{self, ApiError, ResponseBody, ws};
use melodyhue_core::server::RequestBody;
use warp::filters::path::Tail;
use warp::filters::ws::{Message, WebSocket, Ws};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// Every MelodyHue route as one warp filter, the `/ws` WebSocket included. It matches any path
/// below where it is mounted, so put it last (or under a prefix such as `warp::path("api")`).
pub fn routes(app: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let query = || {
        warp::query::raw()
            .map(Some)
            .or(warp::any().map(|| None))
            .unify()
    };
    let ws_app = app.clone();
    // The core decides which paths are `/ws` (below where these routes are mounted).
    let websocket = warp::path::tail()
        .and_then(|tail: Tail| async move {
            if ws::is_socket_path(tail.as_str()) {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
        .and(warp::ws())
        .and(warp::header::headers_cloned())
        .and(query())
        .map(
            move |upgrade: Ws, headers: HeaderMap, query: Option<String>| {
                let app = ws_app.clone();
                let token = ws::upgrade_token(&app, &headers, query.as_deref());
                // The core's limits: a longer message or frame ends the socket.
                upgrade
                    .max_message_size(ws::MAX_MESSAGE_BYTES)
                    .max_frame_size(ws::MAX_FRAME_BYTES)
                    .on_upgrade(move |socket| {
                        ws::run_socket(app, token, websocket_messages(socket))
                    })
                    .into_response()
            },
        );
    let http = warp::any()
        .map(move || app.clone())
        .and(warp::method())
        .and(warp::path::tail())
        .and(query())
        .and(warp::header::headers_cloned())
        .and(peer())
        .and(warp::body::stream())
        .then(dispatch)
        .map(into_reply);
    websocket.or(http).unify()
}

/// The client's address under [`serve`], which passes it as a request extension.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

/// The client's address: from [`serve`], else from warp's own server.
fn peer() -> impl Filter<Extract = (Option<SocketAddr>,), Error = std::convert::Infallible> + Copy {
    warp::ext::optional::<Peer>()
        .and(warp::addr::remote())
        .map(|ours: Option<Peer>, warps: Option<SocketAddr>| ours.map(|Peer(peer)| peer).or(warps))
}

/// warp's WebSocket as a stream and sink of the core's [`ws::WsMessage`].
fn websocket_messages(
    socket: WebSocket,
) -> impl Stream<Item = Result<ws::WsMessage, warp::Error>>
+ Sink<ws::WsMessage, Error = warp::Error>
+ Unpin {
    socket
        .with(|message: ws::WsMessage| {
            future::ready(Ok::<_, warp::Error>(match message {
                ws::WsMessage::Text(text) => Message::text(text),
                ws::WsMessage::Binary(data) => Message::binary(data),
                ws::WsMessage::Ping(data) => Message::ping(data),
                ws::WsMessage::Pong(data) => Message::pong(data),
                ws::WsMessage::Close(Some((code, reason))) => Message::close_with(code, reason),
                ws::WsMessage::Close(None) => Message::close(),
            }))
        })
        .map_ok(|message: Message| {
            if let Ok(text) = message.to_str() {
                ws::WsMessage::Text(text.to_owned())
            } else if message.is_close() {
                ws::WsMessage::Close(
                    message
                        .close_frame()
                        .map(|(code, reason)| (code, reason.to_owned())),
                )
            } else if message.is_ping() {
                ws::WsMessage::Ping(message.into_bytes().to_vec())
            } else if message.is_pong() {
                ws::WsMessage::Pong(message.into_bytes().to_vec())
            } else {
                ws::WsMessage::Binary(message.into_bytes().to_vec())
            }
        })
}

/// The core's response as warp's: a whole body as one buffer, an event stream as warp's
/// streamed body (dropped, with all the stream holds, when the client goes away).
fn into_reply(response: http::Response<ResponseBody>) -> Response {
    let (parts, body) = response.into_parts();
    let body = match body.into_bytes() {
        Ok(bytes) => Response::new(bytes.into()).into_body(),
        Err(streamed) => warp::reply::stream(streamed).into_response().into_body(),
    };
    Response::from_parts(parts, body)
}

/// Rebuilds the `http::Request` warp took apart and lets the core answer it.
async fn dispatch<S, B>(
    app: App,
    method: Method,
    tail: Tail,
    query: Option<String>,
    headers: HeaderMap,
    peer: Option<SocketAddr>,
    body: S,
) -> http::Response<ResponseBody>
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let uri = match query {
        Some(query) => format!("/{}?{query}", tail.as_str()),
        None => format!("/{}", tail.as_str()),
    };
    let body = StreamBody::new(
        body.map_ok(|mut chunk| Frame::data(chunk.copy_to_bytes(chunk.remaining()))),
    );
    match Request::builder().method(method).uri(uri).body(body) {
        Ok(mut request) => {
            *request.headers_mut() = headers;
            api::handle_incoming(&app, request, peer).await
        }
        Err(_) => ApiError::BadRequest("Malformed request")
            .into_response()
            .map(ResponseBody::from),
    }
}

/// Serves MelodyHue on `listener` until `shutdown` completes, then lets open requests finish.
///
/// The [`routes`] filter as a hyper service, served by the core's accept loop
/// (`melodyhue_core::server`) under the connection limits of the app's configuration, exactly
/// as `melodyhue_hyper::serve` serves: warp's own server has no header or keep-alive timeouts
/// and stops accepting when file descriptors run out.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let routes = routes(app.clone());
    let make_service = move |peer: SocketAddr| {
        let warp = TowerToHyperService::new(warp::service(routes.clone()));
        service_fn(move |mut request: Request<RequestBody>| {
            request.extensions_mut().insert(Peer(peer));
            warp.call(request)
        })
    };
    melodyhue_core::server::serve(&app, listener, make_service, shutdown).await;
}
