//! `GET /metrics`: Wick's counters and histograms in Prometheus' text format,
//! for a Prometheus (or anything that reads its format) to scrape.
//!
//! Recorded through the `metrics` facade: HTTP requests here (by route,
//! method and status), replies in `wick_core::telemetry` (queue, time to the
//! first token and between tokens, tokens, endings, by model), open event
//! streams in `sse`, the engine's batch sizes in `inference`, and database
//! statement times from sqlx's own statement events (`StatementTimes`).
//! With `WICK_METRICS_TOKEN` set, only `Authorization: Bearer <token>` reads it.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use subtle::ConstantTimeEq;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

use crate::ServerState;

/// Bucket bounds of the histograms in seconds: a millisecond statement to a
/// minute-long prompt.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Bucket bounds of the engine's batch sizes.
const BATCH: &[f64] = &[1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0];

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed as the `metrics` facade's on first use
/// (once per process: the in-process tests build many routers).
pub fn handle() -> &'static PrometheusHandle {
    RECORDER.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full("wick_engine_batch_size".to_owned()), BATCH)
            })
            .expect("the bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed: /metrics stays empty");
        }
        describe();
        handle
    })
}

/// The help line of every metric (promtool asks for one).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "wick_http_requests_total",
        "HTTP requests answered, by route, method and status."
    );
    describe_histogram!(
        "wick_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request's headers (a stream counts until it starts), by route and method."
    );
    describe_gauge!(
        "wick_replies_in_queue",
        "Replies running or waiting for a model, by model."
    );
    describe_histogram!(
        "wick_queue_wait_seconds",
        Unit::Seconds,
        "Time a reply waited before its model started on it, by model."
    );
    describe_histogram!(
        "wick_time_to_first_token_seconds",
        Unit::Seconds,
        "Time from a reply's start to its first token, by model."
    );
    describe_histogram!(
        "wick_time_per_output_token_seconds",
        Unit::Seconds,
        "Time between two tokens of a reply, by model."
    );
    describe_counter!(
        "wick_prompt_tokens_total",
        Unit::Count,
        "Prompt tokens read, by model."
    );
    describe_counter!(
        "wick_completion_tokens_total",
        Unit::Count,
        "Tokens written, by model."
    );
    describe_counter!(
        "wick_replies_total",
        "Replies (chat and API) ended, by model and finish reason (eos, stop, length, cancelled, error)."
    );
    describe_gauge!(
        "wick_open_streams",
        "Server-Sent Event streams open (chat replies and API streams)."
    );
    describe_histogram!(
        "wick_db_statement_duration_seconds",
        Unit::Seconds,
        "Time of one SQLite statement."
    );
    describe_histogram!(
        "wick_engine_batch_size",
        "Sequences the local engine advanced together in one forward pass."
    );
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
                "The metrics need the token set in WICK_METRICS_TOKEN (Authorization: Bearer …).\n",
            )
                .into_response();
        }
    }
    let handle = handle();
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        handle.render(),
    )
        .into_response()
}

/// Counts and times every request by the route it matched (its pattern,
/// `/c/{id}`, so ids do not make new series), its method and status.
pub async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| route_label(p.as_str()));
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(
        "wick_http_request_duration_seconds", "route" => route.clone(), "method" => method.clone()
    )
    .record(started.elapsed());
    metrics::counter!(
        "wick_http_requests_total", "route" => route, "method" => method, "status" => status
    )
    .increment(1);
    response
}

/// A route pattern as a label: a nested service's tail (`/pkg/{*rest}`) is
/// written `/pkg/*`.
fn route_label(pattern: &str) -> String {
    match pattern.find("/{*") {
        Some(at) => format!("{}/*", &pattern[..at]),
        None => pattern.to_owned(),
    }
}

/// Feeds the `wick_db_statement_duration_seconds` histogram from the event
/// sqlx writes after each statement (target `sqlx::query`, at debug level,
/// with its time in `elapsed_secs`). Installed with a filter of its own, so
/// those events reach the logs only when `WICK_LOG` asks for them.
pub struct StatementTimes;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StatementTimes {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Elapsed(Option<f64>);
        impl Visit for Elapsed {
            fn record_f64(&mut self, field: &Field, value: f64) {
                if field.name() == "elapsed_secs" {
                    self.0 = Some(value);
                }
            }
            fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
        }
        let mut elapsed = Elapsed(None);
        event.record(&mut elapsed);
        if let Some(seconds) = elapsed.0 {
            metrics::histogram!("wick_db_statement_duration_seconds").record(seconds);
        }
    }
}

/// The filter `StatementTimes` listens through.
pub fn statement_events() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new().with_target("sqlx::query", tracing::Level::DEBUG)
}

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn a_nested_tail_is_one_label() {
        assert_eq!(
            route_label("/pkg/{*__private__axum_nest_tail_param}"),
            "/pkg/*"
        );
        assert_eq!(route_label("/c/{id}"), "/c/{id}");
    }
}
