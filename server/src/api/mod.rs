//! The inference APIs Wick serves for its own model, so that the clients people
//! already use work against it: OpenAI-compatible (`/v1/models`,
//! `/v1/chat/completions`) and the Hugging Face Inference API / TGI
//! (`/models/{id}`, `/generate`, `/generate_stream`, `/info`). Requests share
//! the chat's queue and its limits.

pub mod auth;
pub mod openai;
pub mod openapi;
pub mod tgi;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::Event as SseEvent;
use axum::response::Response;
use futures::StreamExt;
use inference::{
    Event, Failure, FailureKind, FinishReason, Generation, GenerationRequest, Usage,
    ValidationError,
};
use wick_core::{Model, Slot};

use crate::ServerState;

/// What a client is told of a fault on our side (the detail is logged).
pub const INTERNAL: &str = "Something went wrong on the server; please try again.";

/// Adds `Retry-After: seconds` to a refusal that has one.
pub fn retry_after(response: &mut Response, seconds: Option<u64>) {
    if let Some(seconds) = seconds {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    }
}

/// Why a generation did not start.
pub enum StartError {
    /// A parameter is out of bounds; the message names it.
    Invalid(ValidationError),
    /// The queue is full, or a quota of the caller is used up: the sentence,
    /// and the seconds after which to try again (for `Retry-After`).
    Busy(String, Option<u64>),
    /// The caller may not use the model (the sentence names it).
    Forbidden(String),
    /// A fault on our side, logged where it happened.
    Internal,
    /// The model worker is gone, or the backend refused the request.
    Failed(Failure),
}

/// A generation holding its place in the queue until it ends.
pub struct Running {
    generation: Generation,
    /// The place in the model's queue, given back when the reply ends.
    slot: Slot,
    /// Where the caller's usage is recorded.
    pool: sqlx::SqlitePool,
    /// Its queue wait, token times and ending, for `/metrics`.
    timer: wick_core::telemetry::ReplyTimer,
}

/// A generation that ran to its end.
pub struct Finished {
    pub text: String,
    /// Each token's id (None for text flushed at the end) and text.
    pub tokens: Vec<(Option<u32>, String)>,
    pub finish: FinishReason,
    pub usage: Usage,
}

/// The local model with id `id` (the APIs serve local models only: proxying
/// remote ones would hand out the team's API keys to every token holder).
pub fn local_model(state: &ServerState, id: &str) -> Option<Arc<Model>> {
    state.chat().models().local().find(|m| m.id == id).cloned()
}

/// The ids of the local models, for "does not exist" messages and listings.
pub fn local_ids(state: &ServerState) -> Vec<String> {
    let models = state.chat().models();
    models.local().map(|m| m.id.clone()).collect()
}

/// The first local model, for the routes that name none (`/generate`).
pub fn first_local(state: &ServerState) -> Option<Arc<Model>> {
    state.chat().models().local().next().cloned()
}

/// Why a request's body was refused before it became a request: its media
/// type, its size, or JSON that does not fit the request's shape.
#[derive(Debug)]
pub struct BodyError {
    pub status: StatusCode,
    pub message: String,
    /// The field the message is about, as a path (`max_tokens`,
    /// `parameters.temperature`, `messages[0].content`).
    pub field: Option<String>,
}

/// Whether the body is declared as JSON (`application/json`, any parameters,
/// or an `application/*+json` type).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| {
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        })
}

/// The body of a POST to the inference APIs, once its media type is checked.
///
/// An anonymous request (`WICK_API_ALLOW_ANONYMOUS`) must say
/// `Content-Type: application/json`: any web page can make a browser send a
/// `text/plain` or form body to another site without asking, but not a JSON
/// one (that needs a CORS preflight, which Wick never grants), so the check
/// keeps other sites' pages from driving generations. A request with a valid
/// token may leave the type out, as `curl -d` and many scripts do: a page on
/// another site cannot add an `Authorization` header without that preflight.
pub fn body(
    caller: auth::Caller,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, BodyError> {
    if caller == auth::Caller::Anonymous && !is_json(headers) {
        let got = headers
            .get(header::CONTENT_TYPE)
            .map(|v| format!("`{}`", String::from_utf8_lossy(v.as_bytes())))
            .unwrap_or_else(|| "no content type".into());
        return Err(BodyError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: format!(
                "The request body must be JSON, sent with `Content-Type: application/json` (got {got})."
            ),
            field: None,
        });
    }
    body.map_err(|e| BodyError {
        status: e.status(),
        message: e.body_text(),
        field: None,
    })
}

/// Reads `body` as `T`, naming the field a type error is about
/// (`max_tokens: invalid value: integer `-5`, expected u64`).
pub fn from_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
    de.end().map_err(|e| BodyError {
        status: StatusCode::BAD_REQUEST,
        message: format!("The request body is not valid JSON: {e}"),
        field: None,
    })?;
    Ok(value)
}

/// Reads an already parsed JSON value as `T`, naming the field a type error is about.
pub fn from_value<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, BodyError> {
    serde_path_to_error::deserialize(value).map_err(json_error)
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> BodyError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let syntax = !matches!(inner.classify(), serde_json::error::Category::Data);
    let (message, field) = if syntax {
        (format!("The request body is not valid JSON: {inner}"), None)
    } else if path.is_empty() || path == "." {
        (format!("The request body is not valid: {inner}"), None)
    } else {
        (format!("{path}: {inner}"), Some(path))
    };
    BodyError {
        status: StatusCode::BAD_REQUEST,
        message,
        field,
    }
}

/// The longest reply an API request may ask of `model`: its configured
/// `max_new_tokens` (`WICK_MAX_NEW_TOKENS`, or the models file's). A request
/// asking for more is served up to this ceiling, ending with finish reason
/// `length`, as when a reply reaches its own limit.
pub fn clamp_new_tokens(model: &Model, asked: Option<u64>, default: usize) -> usize {
    let ceiling = model.params.max_new_tokens;
    asked
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        .unwrap_or(default)
        .min(ceiling)
}

/// Validates `request` and starts it in `model`'s queue, shared with the
/// chat, after the same rules as the chat's: the caller may use the model
/// and has quota left.
pub async fn start(
    state: &ServerState,
    model: &Arc<Model>,
    request: GenerationRequest,
    caller: auth::Caller,
) -> Result<Running, StartError> {
    use wick_core::ChatError;
    request.validate().map_err(StartError::Invalid)?;
    let slot = state
        .chat()
        .admit(model, caller.requester())
        .await
        .map_err(|e| match e {
            ChatError::Busy(busy) => StartError::Busy(busy.to_string(), None),
            ChatError::Quota(q) => {
                StartError::Busy(q.message, Some(q.retry_after.as_secs().max(1)))
            }
            e @ ChatError::ModelClosed(_) => StartError::Forbidden(e.to_string()),
            other => {
                tracing::error!(error = %other, "could not admit an API request");
                StartError::Internal
            }
        })?;
    let generation = model.backend.generate(request).map_err(|e| match e {
        inference::RequestError::Invalid(v) => StartError::Invalid(v),
        // Internal detail is logged by `Failure::from`; the client gets a sentence.
        other => StartError::Failed(Failure::from(&other)),
    })?;
    slot.streams(generation.cancel.clone());
    Ok(Running {
        timer: wick_core::telemetry::ReplyTimer::start(&model.id),
        generation,
        slot,
        pool: state.chat().pool().clone(),
    })
}

/// Whether a failure was caused by the request (a prompt longer than the
/// context window) rather than by the server.
pub fn is_context_overflow(failure: &Failure) -> bool {
    failure.kind == FailureKind::ContextOverflow
}

/// The status of an API answer for a failure before the response started;
/// the one mapping both API shapes use.
pub fn failure_status(failure: &Failure) -> StatusCode {
    StatusCode::from_u16(failure.kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl Running {
    /// Waits for the whole reply.
    pub async fn finish(mut self) -> Result<Finished, Failure> {
        let mut tokens = Vec::new();
        // A generation always ends with `Done` or `Error`; `None` cannot come first.
        while let Some(event) = self.generation.next().await {
            self.timer.observe(&event);
            match event {
                Event::Token { id, text } => tokens.push((id, text)),
                Event::Prefill { .. } | Event::Waiting { .. } => {}
                Event::Done { finish, usage } => {
                    record_usage(&self.pool, &self.slot, &usage, 0).await;
                    let text = tokens.iter().map(|(_, t)| t.as_str()).collect();
                    return Ok(Finished {
                        text,
                        tokens,
                        finish,
                        usage,
                    });
                }
                Event::Error(e) => {
                    let none = Usage::default();
                    record_usage(&self.pool, &self.slot, &none, tokens.len()).await;
                    return Err(e);
                }
            }
        }
        Err(Failure::internal(
            "the generation's stream ended without a final event",
        ))
    }

    /// Streams the reply as Server-Sent Events, each model event turned into
    /// zero or more SSE events by `map`. The generation always ends with a
    /// terminal event (a vanished worker is reported as a failure), so every
    /// stream ends with the API's own ending or error, never in silence. When
    /// the client goes away the response is dropped, and with it the
    /// generation, which cancels it.
    pub fn into_sse(
        self,
        mut map: impl FnMut(Event) -> Vec<SseEvent> + Send + 'static,
    ) -> Response {
        let Running {
            generation,
            slot,
            pool,
            mut timer,
        } = self;
        let mut meter = Meter {
            pool,
            user: slot.user(),
            model: slot.model().id.clone(),
            produced: 0,
            recorded: false,
        };
        let mut slot = Some(slot);
        let events = generation.flat_map(move |event| {
            timer.observe(&event);
            match &event {
                Event::Token { .. } => meter.produced += 1,
                Event::Done { usage, .. } => meter.record(*usage),
                Event::Error(_) => meter.record(Usage::default()),
                _ => {}
            }
            if event.is_terminal() {
                // Free the queue place before the client sees the end, so its
                // next request is not told the server is busy.
                slot.take();
            }
            futures::stream::iter(map(event))
        });
        crate::sse::sse(events)
    }
}

/// Adds a finished request's tokens to its caller's usage (a user's token;
/// the operator's key and anonymous callers have no usage). A failed request
/// counts the `produced` tokens it streamed.
async fn record_usage(pool: &sqlx::SqlitePool, slot: &Slot, usage: &Usage, produced: usize) {
    if let Some(user) = slot.user() {
        record(
            pool.clone(),
            user,
            slot.model().id.clone(),
            *usage,
            produced,
        )
        .await;
    }
}

/// Counts an API stream's tokens and adds them to its caller's usage once:
/// at its end event, or, when the client goes away first (the stream, and
/// with it the meter, is dropped), with the tokens streamed until then.
struct Meter {
    pool: sqlx::SqlitePool,
    user: Option<i64>,
    model: String,
    produced: usize,
    recorded: bool,
}

impl Meter {
    fn record(&mut self, usage: Usage) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        let Some(user) = self.user else {
            return;
        };
        // A stream's callback cannot wait: the write runs on its own task.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(record(
                self.pool.clone(),
                user,
                self.model.clone(),
                usage,
                self.produced,
            ));
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.record(Usage::default());
    }
}

async fn record(pool: sqlx::SqlitePool, user: i64, model: String, usage: Usage, produced: usize) {
    let completion = usage.completion_tokens.max(produced) as i64;
    let prompt = usage.prompt_tokens as i64;
    if let Err(e) = wick_core::db::team::record_usage(&pool, user, &model, prompt, completion).await
    {
        tracing::warn!(user, error = %e, "could not record an API request's usage");
    }
}
