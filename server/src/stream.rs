//! `GET /api/messages/{id}/stream`: a reply's events as Server-Sent Events.
//!
//! Each event carries `id: <seq>`; a client that reconnects with
//! `Last-Event-ID` (browsers do so by themselves) or `?after=<seq>` gets exactly
//! the events after that one, then the live tail. Someone else's reply, or one
//! this server is not generating, is a 404.

use std::convert::Infallible;
use std::time::Duration;

use app::data::stream as wire;
use app::generation::StreamEvent;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde::Deserialize;

use crate::ServerState;

/// Keep-alive comments stop proxies and browsers from closing a quiet stream
/// (a long prompt can take a while before the first token).
const KEEP_ALIVE: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    after: Option<u64>,
}

pub async fn reply_stream(
    State(state): State<ServerState>,
    Path(id): Path<String>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> Response {
    let user = match app::session::user_from_headers(&state.app.pool, &headers).await {
        Ok(user) => user,
        Err(e) => {
            tracing::error!(error = %e, "session lookup failed");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on the server.",
            );
        }
    };
    let task = match (user, state.app.generations.get(&id)) {
        (Some(user), Some(task)) if task.user == user => task,
        _ => return error(StatusCode::NOT_FOUND, "This reply is not being generated."),
    };
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or(query.after)
        .unwrap_or(0);
    let events = task
        .events_after(after)
        .map(|(seq, event)| Ok::<_, Infallible>(to_sse(seq, event)));
    (
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            // nginx and similar proxies would otherwise buffer the stream into bursts.
            (
                HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)),
    )
        .into_response()
}

fn to_sse(seq: u64, event: StreamEvent) -> Event {
    let event_with_id = Event::default().id(seq.to_string());
    let built = match event {
        StreamEvent::Token(text) => event_with_id.event("token").json_data(wire::Token { text }),
        StreamEvent::End {
            finish_reason,
            prompt_tokens,
            completion_tokens,
        } => event_with_id.event("end").json_data(wire::End {
            finish_reason,
            prompt_tokens,
            completion_tokens,
        }),
        StreamEvent::Failed(message) => event_with_id
            .event("failed")
            .json_data(wire::Failed { message }),
    };
    built.expect("stream events are plain serialisable data")
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
