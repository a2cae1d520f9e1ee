//! The one way Wick answers with Server-Sent Events, for the chat's reply
//! stream and every inference API: the same headers and the same keep-alive.

use std::convert::Infallible;
use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};

/// Keep-alive comments stop proxies and browsers from closing a quiet stream
/// (a long prompt can take a while before the first token).
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// `events` as a `text/event-stream` response: not cached, not buffered by
/// proxies (nginx reads `X-Accel-Buffering`), with a keep-alive comment every
/// [`KEEP_ALIVE`].
pub fn sse<S>(events: S) -> Response
where
    S: Stream<Item = Event> + Send + 'static,
{
    // Counted open from here until the response (and so the stream) is dropped.
    let open = OpenStream::new();
    let events = events.map(move |event| {
        let _open = &open;
        Ok::<_, Infallible>(event)
    });
    (
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)),
    )
        .into_response()
}

/// One open event stream, for the `wick_open_streams` gauge.
struct OpenStream;

impl OpenStream {
    fn new() -> Self {
        metrics::gauge!("wick_open_streams").increment(1.0);
        OpenStream
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        metrics::gauge!("wick_open_streams").decrement(1.0);
    }
}
