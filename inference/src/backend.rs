//! The interface every model backend offers: a validated request in, a
//! cancellable stream of events out.

use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use crate::request::GenerationRequest;
use crate::InferenceError;

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn (eos or an end-of-turn token).
    Eos,
    /// A stop sequence was reached.
    Stop,
    /// `max_new_tokens` (or the context window) was reached.
    Length,
    /// The caller cancelled, or stopped listening.
    Cancelled,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Eos => "eos",
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Seconds spent on the prompt (prefill) and on decoding the reply.
    pub prompt_seconds: f64,
    pub decode_seconds: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A generated token and the text it completes. The text may be empty (a
    /// character split across tokens, or text held back as a possible stop
    /// sequence) and is always whole UTF-8. `id` is `None` for text flushed at
    /// the end.
    Token { id: Option<u32>, text: String },
    /// The last event of a successful generation.
    Done { finish: FinishReason, usage: Usage },
    /// The last event when generation failed part-way.
    Error(Failure),
}

/// What kind of failure ended a generation, so that callers can answer with
/// the right status (a too-long prompt is the caller's doing, a refused API key
/// the operator's, a cut connection nobody's) without reading the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The prompt does not fit the model's context window.
    ContextOverflow,
    /// The model server rejected the request as malformed (HTTP 400/422).
    BadRequest,
    /// The model server refused the API key (HTTP 401/403).
    Unauthorized,
    /// The model server does not know the model (HTTP 404).
    NotFound,
    /// The model server asks to slow down (HTTP 429).
    RateLimited,
    /// The model server is down or still loading the model (HTTP 503, refused connection).
    Unavailable,
    /// The model server took too long to connect or to send the next token.
    Timeout,
    /// Anything else that went wrong on the way or in the model.
    Internal,
}

/// Why a generation failed, in words for the person who asked.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    /// For `RateLimited`: seconds the server asked to wait (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<&crate::InferenceError> for Failure {
    fn from(e: &crate::InferenceError) -> Self {
        let kind = match e {
            crate::InferenceError::ContextOverflow { .. } => FailureKind::ContextOverflow,
            crate::InferenceError::Invalid(_) => FailureKind::BadRequest,
            _ => FailureKind::Internal,
        };
        Failure::new(kind, e.to_string())
    }
}

/// Cancels a generation from anywhere; the decode loop ends within one token,
/// and a remote request is dropped at once (async code can await `cancelled`).
#[derive(Debug, Clone, Default)]
pub struct CancelHandle(CancellationToken);

impl CancelHandle {
    pub fn cancel(&self) {
        self.0.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves once `cancel` has been called.
    pub async fn cancelled(&self) {
        self.0.cancelled().await
    }
}

/// A running generation: its events, and a way to cancel it. Dropping it
/// cancels too.
pub struct Generation {
    pub events: UnboundedReceiver<Event>,
    pub cancel: CancelHandle,
}

impl Generation {
    /// The next event, waiting on the calling thread (for command-line use).
    pub fn blocking_next(&mut self) -> Option<Event> {
        self.events.blocking_recv()
    }

    /// The next event, for async callers.
    pub async fn next(&mut self) -> Option<Event> {
        self.events.recv().await
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub trait Backend: Send + Sync {
    /// Validates `request` and starts generating; errors here mean nothing started.
    fn generate(&self, request: GenerationRequest) -> Result<Generation, InferenceError>;
}
