//! `GET /api/messages/{id}/stream`: a reply's events as Server-Sent Events.
//!
//! Each event carries `id: <seq>`; a client that reconnects with
//! `Last-Event-ID` (browsers do so by themselves) or `?after=<seq>` gets exactly
//! the events after that one, then the live tail, which always ends with one
//! `end` or `failed` event. Someone else's reply, or one this server is not
//! generating, is a 404.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde::Deserialize;
use wick_types::ReplyEvent;

use crate::sse::sse;
use crate::ServerState;

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
    let user = match wick_core::session::user_from_headers(state.chat().pool(), &headers).await {
        Ok(user) => user,
        Err(e) => {
            tracing::error!(error = %e, "session lookup failed");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on the server.",
            );
        }
    };
    let task = match (user, state.chat().generations().get(&id)) {
        (Some(user), Some(task)) if task.user == user => task,
        _ => return error(StatusCode::NOT_FOUND, "This reply is not being generated."),
    };
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or(query.after)
        .unwrap_or(0);
    sse(task
        .events_after(after)
        .map(|(seq, event)| to_sse(seq, &event)))
}

fn to_sse(seq: u64, event: &ReplyEvent) -> Event {
    Event::default()
        .id(seq.to_string())
        .event(event.name())
        .data(event.data())
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
