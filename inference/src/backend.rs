//! The interface every model backend offers: a validated request in, a
//! cancellable stream of events out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;

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
    Error(String),
}

/// Cancels a generation from anywhere; the decode loop ends within one token.
#[derive(Debug, Clone, Default)]
pub struct CancelHandle(Arc<AtomicBool>);

impl CancelHandle {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
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
