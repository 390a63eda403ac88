//! The fake's cover images: registering them (plain, slow, endless, redirecting) and serving
//! `/images/{name}`.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::server::{Body, api_error, empty};
use super::{Endpoint, FakeSpotify, Shared};

/// Chunk size of an endless image.
const ENDLESS_CHUNK_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub(super) struct FakeImage {
    delay: Duration,
    body: ImageBody,
}

#[derive(Clone)]
enum ImageBody {
    Bytes { bytes: Bytes, content_type: String },
    Endless { content_type: String },
    Redirect { location: String },
}

impl FakeSpotify {
    /// Serves `bytes` at `/images/{name}` with `content_type`; returns the image's URL.
    pub fn add_image(&self, name: &str, bytes: Vec<u8>, content_type: &str) -> String {
        self.add_image_body(
            name,
            Duration::ZERO,
            ImageBody::Bytes {
                bytes: bytes.into(),
                content_type: content_type.to_owned(),
            },
        )
    }

    /// Like [`FakeSpotify::add_image`], but the answer starts only after `delay`.
    pub fn add_slow_image(
        &self,
        name: &str,
        bytes: Vec<u8>,
        content_type: &str,
        delay: Duration,
    ) -> String {
        self.add_image_body(
            name,
            delay,
            ImageBody::Bytes {
                bytes: bytes.into(),
                content_type: content_type.to_owned(),
            },
        )
    }

    /// Serves at `/images/{name}` an image that never ends (chunked, no `Content-Length`):
    /// a client that reads it all never finishes. Returns the image's URL.
    pub fn add_endless_image(&self, name: &str, content_type: &str) -> String {
        self.add_image_body(
            name,
            Duration::ZERO,
            ImageBody::Endless {
                content_type: content_type.to_owned(),
            },
        )
    }

    /// Answers `/images/{name}` with `302 Found` to `location`. Returns the image's URL.
    pub fn add_image_redirect(&self, name: &str, location: &str) -> String {
        self.add_image_body(
            name,
            Duration::ZERO,
            ImageBody::Redirect {
                location: location.to_owned(),
            },
        )
    }

    fn add_image_body(&self, name: &str, delay: Duration, body: ImageBody) -> String {
        self.shared
            .lock()
            .images
            .insert(name.to_owned(), FakeImage { delay, body });
        format!(
            "{}/images/{}",
            self.url,
            utf8_percent_encode(name, NON_ALPHANUMERIC)
        )
    }
}

pub(super) async fn image(shared: &Shared, name: &str) -> Response<Body> {
    let image = {
        let mut state = shared.lock();
        state.count(Endpoint::Image);
        state.images.get(name).cloned()
    };
    let Some(image) = image else {
        return api_error(StatusCode::NOT_FOUND, "Image not found");
    };
    tokio::time::sleep(image.delay).await;
    let (status, content_type, body) = match image.body {
        ImageBody::Bytes {
            bytes,
            content_type,
        } => (StatusCode::OK, content_type, Full::new(bytes).boxed()),
        ImageBody::Endless { content_type } => {
            let chunk = Bytes::from(vec![0u8; ENDLESS_CHUNK_BYTES]);
            let frames = futures_util::stream::repeat_with(move || {
                Ok::<_, Infallible>(Frame::data(chunk.clone()))
            });
            (
                StatusCode::OK,
                content_type,
                StreamBody::new(frames).boxed(),
            )
        }
        ImageBody::Redirect { location } => {
            let mut response = empty(StatusCode::FOUND);
            if let Ok(location) = location.parse() {
                response.headers_mut().insert(header::LOCATION, location);
            }
            return response;
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Ok(content_type) = content_type.parse() {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}
