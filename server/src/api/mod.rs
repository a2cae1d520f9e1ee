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

use axum::http::StatusCode;
use axum::response::sse::Event as SseEvent;
use axum::response::Response;
use futures::StreamExt;
use inference::{
    Event, Failure, FailureKind, FinishReason, Generation, GenerationRequest, Usage,
    ValidationError,
};
use wick_core::{Model, Slot};

use crate::ServerState;

/// Why a generation did not start.
pub enum StartError {
    /// A parameter is out of bounds; the message names it.
    Invalid(ValidationError),
    /// The queue is full.
    Busy(String),
    /// The model worker is gone, or the backend refused the request.
    Failed(Failure),
}

/// A generation holding its place in the queue until it ends.
pub struct Running {
    generation: Generation,
    /// The place in the model's queue, given back when the reply ends.
    slot: Slot,
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

/// Validates `request` and starts it in `model`'s queue, shared with the chat.
pub fn start(
    state: &ServerState,
    model: &Arc<Model>,
    request: GenerationRequest,
) -> Result<Running, StartError> {
    request.validate().map_err(StartError::Invalid)?;
    let slot = state
        .chat()
        .generations()
        .reserve(model)
        .map_err(|busy| StartError::Busy(busy.to_string()))?;
    let generation = model.backend.generate(request).map_err(|e| match e {
        inference::RequestError::Invalid(v) => StartError::Invalid(v),
        // Internal detail is logged by `Failure::from`; the client gets a sentence.
        other => StartError::Failed(Failure::from(&other)),
    })?;
    Ok(Running { generation, slot })
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
            match event {
                Event::Token { id, text } => tokens.push((id, text)),
                Event::Prefill { .. } => {}
                Event::Done { finish, usage } => {
                    let text = tokens.iter().map(|(_, t)| t.as_str()).collect();
                    return Ok(Finished {
                        text,
                        tokens,
                        finish,
                        usage,
                    });
                }
                Event::Error(e) => return Err(e),
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
        let Running { generation, slot } = self;
        let mut slot = Some(slot);
        let events = generation.flat_map(move |event| {
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
