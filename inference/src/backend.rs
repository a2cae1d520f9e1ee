//! The interface every model backend offers: a validated request in, a
//! cancellable stream of events out.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use crate::request::{GenerationRequest, ValidationError};
use crate::InferenceError;

/// Why one request failed or could not start; the model itself is fine.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// A parameter is out of bounds; the message names it.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The prompt does not fit the model's context window.
    #[error("the prompt is {prompt_tokens} tokens long; the model's context window is {context_length} tokens")]
    ContextOverflow {
        prompt_tokens: usize,
        context_length: usize,
    },
    /// The prompt is longer than this server lets one request be (the
    /// operator's `max_prompt_tokens`), however long the model's window: a
    /// long prefill holds the model for everyone. The message is for the
    /// person who wrote the prompt.
    #[error(
        "This message is {} tokens long; this model accepts at most {} tokens of conversation. \
         Shorten it or start a new conversation.",
        thousands(*prompt_tokens),
        thousands(*max_prompt_tokens)
    )]
    PromptTooLong {
        prompt_tokens: usize,
        max_prompt_tokens: usize,
    },
    /// This backend cannot do what was asked (a raw prompt to a chat-only server).
    #[error("{0}")]
    Unsupported(String),
    /// The model's worker thread is gone.
    #[error("the model worker has stopped")]
    WorkerStopped,
    /// The engine failed (tokenizer, chat template, computation): Wick's fault.
    #[error(transparent)]
    Engine(#[from] InferenceError),
}

/// `8030` as "8,030", for messages people read.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

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
    /// The prompt's tokens; for a generation cancelled while the local
    /// engine was still reading the prompt, those it had read.
    pub prompt_tokens: usize,
    /// Of the prompt's tokens, those found in the local engine's prefix cache
    /// (read earlier, by this conversation's previous turn or another request
    /// that started the same way) rather than computed for this request.
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    /// Seconds spent on the prompt (prefill) and on decoding the reply.
    pub prompt_seconds: f64,
    pub decode_seconds: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The request waits for a place among the sequences the local model
    /// generates at once: `ahead` requests are before it. Sent when it is
    /// queued and whenever the number changes; never terminal.
    Waiting { ahead: usize },
    /// Progress through the prompt: `done` of its `total` tokens are in the
    /// model's cache. Sent after each chunk of the prefill (a long prompt
    /// takes a while before the first token); never terminal.
    Prefill { done: usize, total: usize },
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

impl Event {
    /// Whether this is the generation's last event (`Done` or `Error`).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Event::Done { .. } | Event::Error(_))
    }
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

impl FailureKind {
    /// The HTTP status an API answers with when a request fails this way
    /// before its response has started.
    pub fn http_status(self) -> u16 {
        match self {
            FailureKind::ContextOverflow | FailureKind::BadRequest => 400,
            FailureKind::Internal => 500,
            FailureKind::Unauthorized | FailureKind::NotFound => 502,
            FailureKind::RateLimited => 429,
            FailureKind::Unavailable => 503,
            FailureKind::Timeout => 504,
        }
    }
}

/// Why a generation failed, in words for the person who asked. Internal
/// detail (an engine error, a vanished worker) never goes in `message`: it is
/// logged where the failure is made ([`Failure::internal`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    /// For `RateLimited`: seconds the server asked to wait (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl Failure {
    /// What people are told when Wick itself failed; the detail is in the log.
    pub const INTERNAL_MESSAGE: &'static str =
        "Something went wrong on the server while writing this reply. Please try again.";

    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A failure of Wick's own: `detail` goes to the log (`tracing::error!`),
    /// the person asking gets [`Failure::INTERNAL_MESSAGE`].
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(detail = %detail, "generation failed");
        Self::new(FailureKind::Internal, Self::INTERNAL_MESSAGE)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<&RequestError> for Failure {
    /// The caller's mistakes keep their message (it names what to change);
    /// everything else is internal: logged, and told as a generic sentence.
    fn from(e: &RequestError) -> Self {
        use RequestError as E;
        match e {
            E::ContextOverflow { .. } | E::PromptTooLong { .. } => {
                Failure::new(FailureKind::ContextOverflow, e.to_string())
            }
            E::Invalid(_) | E::Unsupported(_) => {
                Failure::new(FailureKind::BadRequest, e.to_string())
            }
            _ => Failure::internal(e),
        }
    }
}

/// Cancels a generation from anywhere; the local engine stops within one
/// token (or one chunk of the prompt), and a remote request is dropped at
/// once (async code can await `cancelled`).
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
///
/// Its events always end with exactly one terminal event (`Done` or `Error`):
/// when the backend's side goes away without one (a worker thread that died,
/// a task that panicked), the generation reports an internal failure itself,
/// so no consumer ever ends in silence.
pub struct Generation {
    events: UnboundedReceiver<Event>,
    pub cancel: CancelHandle,
    /// The terminal event has been handed out; nothing follows it.
    ended: bool,
}

impl Generation {
    /// A generation reading the events a backend sends on the other end of `events`.
    pub fn new(events: UnboundedReceiver<Event>, cancel: CancelHandle) -> Self {
        Self {
            events,
            cancel,
            ended: false,
        }
    }

    /// The next event, waiting on the calling thread (for command-line use).
    pub fn blocking_next(&mut self) -> Option<Event> {
        let event = if self.ended {
            None
        } else {
            self.events.blocking_recv()
        };
        self.seen(event)
    }

    /// The next event, for async callers.
    pub async fn next(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        if self.ended {
            return Poll::Ready(None);
        }
        self.events.poll_recv(cx).map(|event| self.seen(event))
    }

    /// Notes a terminal event, and stands in for the one a vanished backend never sent.
    fn seen(&mut self, event: Option<Event>) -> Option<Event> {
        match event {
            Some(ref e) if !e.is_terminal() => event,
            Some(_) => {
                self.ended = true;
                event
            }
            None => {
                self.ended = true;
                Some(Event::Error(Failure::internal(
                    "the model's worker stopped without finishing the reply",
                )))
            }
        }
    }
}

impl futures::Stream for Generation {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.get_mut().poll_event(cx)
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub trait Backend: Send + Sync {
    /// Validates `request` and starts generating; errors here mean nothing started.
    fn generate(&self, request: GenerationRequest) -> Result<Generation, RequestError>;
}
