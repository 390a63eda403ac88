//! [`ResponseBody`]: what the core answers with, one buffer or a stream of chunks, so that
//! both frontends send a streamed answer (Server-Sent Events) the same way, through
//! [`http_body::Body`].

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use futures_util::stream::BoxStream;
use http::Response;
use http_body::{Frame, SizeHint};
use sync_wrapper::SyncStream;

/// The body of a response of the core: one buffer (sent with a `Content-Length`), or a stream
/// of chunks sent as they come (`Transfer-Encoding: chunked` on HTTP/1.1) until it ends or the
/// client goes away; dropping the body drops the stream and whatever it holds.
///
/// It is an [`http_body::Body`] for hyper, and a [`Stream`] of chunks for frameworks that
/// take one (warp's `reply::stream`); [`ResponseBody::into_bytes`] gives a whole body back.
pub struct ResponseBody(Kind);

enum Kind {
    /// The whole body; `None` once sent, or when empty.
    Full(Option<Bytes>),
    /// Chunks to send as they come. `SyncStream` makes it `Sync` (some frameworks want that)
    /// without asking it of the stream, which is only ever polled through `&mut`.
    Stream(SyncStream<BoxStream<'static, Bytes>>),
}

impl ResponseBody {
    /// A body streaming `chunks` as they come.
    pub fn stream(chunks: impl Stream<Item = Bytes> + Send + 'static) -> Self {
        ResponseBody(Kind::Stream(SyncStream::new(Box::pin(chunks))))
    }

    /// The whole body, or the body itself back when it streams.
    pub fn into_bytes(self) -> Result<Bytes, Self> {
        match self.0 {
            Kind::Full(bytes) => Ok(bytes.unwrap_or_default()),
            streaming => Err(ResponseBody(streaming)),
        }
    }

    /// Whether the body streams (rather than being one buffer).
    pub fn is_stream(&self) -> bool {
        matches!(self.0, Kind::Stream(_))
    }
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> Self {
        ResponseBody(Kind::Full((!bytes.is_empty()).then_some(bytes)))
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Kind::Full(bytes) => f.debug_tuple("Full").field(bytes).finish(),
            Kind::Stream(_) => f.write_str("Stream"),
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.get_mut().0 {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(chunks) => Pin::new(chunks)
                .poll_next(cx)
                .map(|chunk| chunk.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.0, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}

impl Stream for ResponseBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        http_body::Body::poll_frame(self, cx)
            .map(|frame| frame.and_then(|f| f.map(|f| f.into_data().ok()).transpose()))
    }
}

/// A streamed body waiting in a response's extensions, from the handler that made it to
/// [`into_response_body`]: the routing table answers `Response<Bytes>` (see
/// [`super::handle`]), and `http`'s extensions must be `Clone`, hence the shared slot.
#[derive(Clone)]
pub(super) struct PendingStream(Arc<Mutex<Option<ResponseBody>>>);

impl PendingStream {
    /// Attaches `body` to `response`, whose own body is then ignored.
    pub(super) fn attach(response: &mut Response<Bytes>, body: ResponseBody) {
        response
            .extensions_mut()
            .insert(PendingStream(Arc::new(Mutex::new(Some(body)))));
    }
}

/// The response with its final body: the streamed one a handler attached, else its bytes.
pub(super) fn into_response_body(response: Response<Bytes>) -> Response<ResponseBody> {
    let (mut parts, bytes) = response.into_parts();
    let streamed = parts
        .extensions
        .remove::<PendingStream>()
        .and_then(|pending| {
            pending
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        });
    Response::from_parts(parts, streamed.unwrap_or_else(|| bytes.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn whole_bodies_have_an_exact_size_and_streams_none() {
        let whole = ResponseBody::from(Bytes::from_static(b"hello"));
        assert_eq!(http_body::Body::size_hint(&whole).exact(), Some(5));
        assert_eq!(whole.collect().await.unwrap().to_bytes(), "hello");
        assert!(ResponseBody::from(Bytes::new()).is_end_stream());
        let chunks = futures_util::stream::iter([Bytes::from("a"), Bytes::from("b")]);
        let streamed = ResponseBody::stream(chunks);
        assert_eq!(http_body::Body::size_hint(&streamed).exact(), None);
        assert!(streamed.is_stream());
        assert_eq!(streamed.collect().await.unwrap().to_bytes(), "ab");
    }

    #[test]
    fn an_attached_stream_replaces_the_bytes() {
        let mut response = Response::new(Bytes::from_static(b"ignored"));
        PendingStream::attach(
            &mut response,
            ResponseBody::stream(futures_util::stream::empty()),
        );
        assert!(into_response_body(response).body().is_stream());
        let plain = into_response_body(Response::new(Bytes::from_static(b"kept")));
        assert_eq!(
            plain.into_body().into_bytes().unwrap(),
            Bytes::from_static(b"kept")
        );
    }
}
