//! A backend that plays a script instead of running a model: tokens, pauses,
//! an ending, a failure, or a worker that vanishes mid-reply. It lets the
//! layers above (the generation runtime, the server functions, the routes) be
//! tested in process, deterministically and in milliseconds, including what
//! the model was asked and failures on cue. It honours cancellation like the
//! real backends: within one step.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::backend::{
    Backend, CancelHandle, Event, Failure, FinishReason, Generation, RequestError, Usage,
};
use crate::request::GenerationRequest;

/// One step of a script.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Say the request waits with this many ahead (as the local engine does).
    Waiting(usize),
    /// Report progress through the prompt: done of total tokens.
    Prefill(usize, usize),
    /// Emit a token with this text.
    Token(String),
    /// Wait this long (cancellation ends the wait at once).
    Pause(Duration),
    /// End successfully for this reason.
    Done(FinishReason),
    /// End with this failure.
    Fail(Failure),
    /// Vanish without a final event, as a model worker that died would.
    Vanish,
}

impl Step {
    pub fn token(text: &str) -> Self {
        Step::Token(text.to_owned())
    }

    pub fn pause_ms(ms: u64) -> Self {
        Step::Pause(Duration::from_millis(ms))
    }
}

/// Plays scripts: each request takes the next queued script, or the default
/// one when none is queued. A script that runs out without an ending ends with
/// `Eos`. Background requests (titles) play their own script (by default
/// none: an empty answer) and are recorded apart, so they never take a
/// script meant for a reply.
#[derive(Debug, Clone, Default)]
pub struct ScriptedBackend(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    default: Mutex<Vec<Step>>,
    queued: Mutex<VecDeque<Vec<Step>>>,
    received: Mutex<Vec<GenerationRequest>>,
    background: Mutex<Vec<Step>>,
    background_received: Mutex<Vec<GenerationRequest>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ScriptedBackend {
    /// A backend whose every request plays `default`.
    pub fn new(default: Vec<Step>) -> Self {
        let backend = Self::default();
        *lock(&backend.0.default) = default;
        backend
    }

    /// The script of the next request (then the default again).
    pub fn push(&self, script: Vec<Step>) {
        lock(&self.0.queued).push_back(script);
    }

    /// Every request received so far, in order (background ones apart).
    pub fn requests(&self) -> Vec<GenerationRequest> {
        lock(&self.0.received).clone()
    }

    /// The script of every background request from now on.
    pub fn set_background(&self, script: Vec<Step>) {
        *lock(&self.0.background) = script;
    }

    /// Every background request received so far, in order.
    pub fn background_requests(&self) -> Vec<GenerationRequest> {
        lock(&self.0.background_received).clone()
    }
}

impl Backend for ScriptedBackend {
    fn generate(&self, request: GenerationRequest) -> Result<Generation, RequestError> {
        request.validate()?;
        let prompt_tokens = match &request.prompt {
            crate::Prompt::Chat(messages) => messages.len(),
            crate::Prompt::Raw(text) => text.split_whitespace().count(),
        };
        let script = if request.priority == crate::Priority::Background {
            lock(&self.0.background_received).push(request);
            lock(&self.0.background).clone()
        } else {
            lock(&self.0.received).push(request);
            lock(&self.0.queued)
                .pop_front()
                .unwrap_or_else(|| lock(&self.0.default).clone())
        };
        let (events, receiver) = unbounded_channel();
        let cancel = CancelHandle::default();
        tokio::spawn(play(script, events, cancel.clone(), prompt_tokens));
        Ok(Generation::new(receiver, cancel))
    }
}

async fn play(
    script: Vec<Step>,
    events: UnboundedSender<Event>,
    cancel: CancelHandle,
    prompt_tokens: usize,
) {
    let mut completion_tokens = 0;
    let done = |finish, completion_tokens| Event::Done {
        finish,
        usage: Usage {
            prompt_tokens,
            completion_tokens,
            ..Usage::default()
        },
    };
    for step in script {
        if cancel.is_cancelled() {
            let _ = events.send(done(FinishReason::Cancelled, completion_tokens));
            return;
        }
        match step {
            Step::Waiting(ahead) => {
                let _ = events.send(Event::Waiting { ahead });
            }
            Step::Prefill(done, total) => {
                let _ = events.send(Event::Prefill { done, total });
            }
            Step::Token(text) => {
                completion_tokens += 1;
                let id = Some(completion_tokens as u32);
                let _ = events.send(Event::Token { id, text });
            }
            Step::Pause(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = cancel.cancelled() => {
                        let _ = events.send(done(FinishReason::Cancelled, completion_tokens));
                        return;
                    }
                }
            }
            Step::Done(finish) => {
                let _ = events.send(done(finish, completion_tokens));
                return;
            }
            Step::Fail(failure) => {
                let _ = events.send(Event::Error(failure));
                return;
            }
            Step::Vanish => return,
        }
    }
    let _ = events.send(done(FinishReason::Eos, completion_tokens));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChatMessage, Params, Prompt};

    fn request() -> GenerationRequest {
        GenerationRequest {
            prompt: Prompt::Chat(vec![ChatMessage::new("user", "hi")]),
            params: Params::default(),
            drop_old_turns: true,
            continue_final: false,
            priority: crate::Priority::Normal,
        }
    }

    async fn play_all(generation: &mut Generation) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = generation.next().await {
            out.push(e);
        }
        out
    }

    #[tokio::test]
    async fn plays_tokens_then_the_ending_and_records_the_request() {
        let backend = ScriptedBackend::new(vec![Step::token("a"), Step::token("b")]);
        backend.push(vec![Step::token("x"), Step::Done(FinishReason::Length)]);
        let events = play_all(&mut backend.generate(request()).unwrap()).await;
        assert_eq!(events.len(), 2);
        assert!(
            matches!(&events[1], Event::Done { finish: FinishReason::Length, usage } if usage.completion_tokens == 1)
        );
        // The queue is used up: the default plays, ending with Eos.
        let events = play_all(&mut backend.generate(request()).unwrap()).await;
        assert!(matches!(
            &events[2],
            Event::Done {
                finish: FinishReason::Eos,
                ..
            }
        ));
        assert_eq!(backend.requests(), vec![request(), request()]);
    }

    #[tokio::test]
    async fn a_vanished_worker_still_ends_the_generation_with_an_internal_failure() {
        let backend = ScriptedBackend::new(vec![Step::token("a"), Step::Vanish]);
        let events = play_all(&mut backend.generate(request()).unwrap()).await;
        assert_eq!(events.len(), 2, "{events:?}");
        match &events[1] {
            Event::Error(f) => {
                assert_eq!(f.kind, crate::FailureKind::Internal);
                assert_eq!(f.message, Failure::INTERNAL_MESSAGE);
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn cancelling_ends_a_pause_at_once() {
        let backend =
            ScriptedBackend::new(vec![Step::token("a"), Step::Pause(Duration::from_secs(60))]);
        let mut generation = backend.generate(request()).unwrap();
        assert!(matches!(generation.next().await, Some(Event::Token { .. })));
        generation.cancel.cancel();
        let end = tokio::time::timeout(Duration::from_secs(5), generation.next())
            .await
            .expect("cancel ends the pause");
        assert!(matches!(
            end,
            Some(Event::Done {
                finish: FinishReason::Cancelled,
                ..
            })
        ));
        assert_eq!(generation.next().await, None);
    }
}
