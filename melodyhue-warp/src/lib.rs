#![doc = include_str!("../README.md")]

use std::future::Future;
use std::net::SocketAddr;

use bytes::{Buf, Bytes};
use futures_util::{Stream, TryStreamExt};
use http::{HeaderMap, Method, Request};
use http_body_util::StreamBody;
use hyper::body::Frame;
use melodyhue_core::App;
use melodyhue_core::api::{self, ApiError};
use warp::filters::path::Tail;
use warp::{Filter, Rejection};

/// Every MelodyHue route as one warp filter. It matches any path below where it is mounted,
/// so put it last (or under a prefix such as `warp::path("api")`).
pub fn routes(
    app: App,
) -> impl Filter<Extract = (http::Response<Bytes>,), Error = Rejection> + Clone {
    let query = warp::query::raw()
        .map(Some)
        .or(warp::any().map(|| None))
        .unify();
    warp::any()
        .map(move || app.clone())
        .and(warp::method())
        .and(warp::path::tail())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
        .and(warp::body::stream())
        .then(dispatch)
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
) -> http::Response<Bytes>
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
        Err(_) => ApiError::BadRequest("Malformed request").into_response(),
    }
}

/// Serves MelodyHue on `listener` until `shutdown` completes, then lets open requests finish.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    warp::serve(routes(app))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}
