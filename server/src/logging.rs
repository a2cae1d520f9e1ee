//! Wick's logs: text for people or JSON for log shippers (`WICK_LOG_FORMAT`),
//! on stderr, and an id for every request (`X-Request-Id`) that its log
//! lines carry and its response returns.
//!
//! A request's line says its method, path (never its query, which can hold
//! what someone searched for), status and time; no log line holds message
//! text.

use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::classify::ServerErrorsFailureClass;
use tracing::Span;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{Config, LogFormat};
use crate::ServerState;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A request's id: the one its trusted proxy gave (`X-Request-Id`), or one
/// made here.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Installs the process's logger, and the database statement timer that
/// feeds `/metrics`.
pub fn init(config: &Config) {
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr; stdout carries only the "serving at" line that scripts read.
    let logs = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(crate::metrics::StatementTimes.with_filter(crate::metrics::statement_events()))
        .init();
}

/// Gives the request its id before anything logs: the proxy's, when the
/// peer is a trusted proxy and the id is a plain token (letters, digits,
/// `-`, `_`, `.`, at most 64); else a new one. The response carries it back.
pub async fn request_id(
    State(state): State<ServerState>,
    mut request: Request,
    next: Next,
) -> Response {
    let from_proxy = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| state.proxies.trusts(peer.ip()));
    let given = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| from_proxy && is_plain_id(id))
        .map(str::to_owned);
    let id = given.unwrap_or_else(new_id);
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.headers_mut().insert(REQUEST_ID, value.clone());
        request.extensions_mut().insert(RequestId(id));
        let mut response = next.run(request).await;
        response.headers_mut().insert(REQUEST_ID, value);
        response
    } else {
        next.run(request).await
    }
}

fn is_plain_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// 16 random bytes, in hex.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The span every line logged while answering a request sits in.
pub fn request_span(request: &Request) -> Span {
    let id = request
        .extensions()
        .get::<RequestId>()
        .map_or("-", |r| r.0.as_str());
    tracing::info_span!(
        "request",
        request_id = id,
        method = %request.method(),
        path = request.uri().path(),
    )
}

/// The request's line, once its response starts.
pub fn answered(response: &Response, latency: Duration, _: &Span) {
    tracing::info!(
        status = response.status().as_u16(),
        ms = latency.as_millis() as u64,
        "answered"
    );
}

/// A server error's line (the response's line says the status too).
pub fn failed(class: ServerErrorsFailureClass, latency: Duration, _: &Span) {
    tracing::warn!(%class, ms = latency.as_millis() as u64, "failed");
}

#[cfg(test)]
mod tests {
    use super::is_plain_id;

    #[test]
    fn only_plain_ids_are_taken() {
        assert!(is_plain_id("f3a1-9c.b_2"));
        assert!(!is_plain_id(""));
        assert!(!is_plain_id("a b"));
        assert!(!is_plain_id("id\n{\"forged\":1}"));
        assert!(!is_plain_id(&"a".repeat(65)));
    }
}
