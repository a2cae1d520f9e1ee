//! The local engine: a GGUF model on dedicated worker threads, fed requests
//! through a channel so that model work never runs on an async runtime.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::backend::{
    Backend, CancelHandle, Event, Failure, FinishReason, Generation, RequestError, Usage,
};
use crate::fit::drop_old_turns;
use crate::gguf::{self, Architecture, Metadata, Weights};
use crate::request::{ChatMessage, GenerationRequest, Prompt};
use crate::sampler::Sampler;
use crate::stop::StopFilter;
use crate::template::ChatTemplate;
use crate::tokenizer::ModelTokenizer;
use crate::InferenceError;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Threads for the model's matrix work; 0 means one per core.
    pub threads: usize,
    /// The longest prompt one request may have, in tokens: reading a prompt
    /// holds the model for everyone, so a longer one is refused before any
    /// model work, with a sentence saying so; a chat drops its oldest turns
    /// to fit it first.
    pub max_prompt_tokens: usize,
}

/// The default of [`EngineConfig::max_prompt_tokens`].
pub const DEFAULT_MAX_PROMPT_TOKENS: usize = 4096;

/// Prompt tokens per forward pass: llama.cpp's default micro-batch. Between
/// two chunks the worker checks whether the request was cancelled.
pub const PREFILL_CHUNK: usize = 512;

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            threads: 0,
            max_prompt_tokens: DEFAULT_MAX_PROMPT_TOKENS,
        }
    }
}

/// What the loaded model is.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub name: String,
    pub architecture: Architecture,
    pub context_length: usize,
    pub threads: usize,
}

struct Job {
    request: GenerationRequest,
    events: UnboundedSender<Event>,
    cancel: CancelHandle,
}

/// Everything the worker needs to run one request after another.
struct Model {
    weights: Weights,
    tokenizer: ModelTokenizer,
    template: ChatTemplate,
    context_length: usize,
    max_prompt_tokens: usize,
}

pub struct LocalEngine {
    jobs: mpsc::Sender<Job>,
    info: ModelInfo,
}

impl LocalEngine {
    /// Loads the model (blocking: call it from a blocking context) and starts its worker.
    pub fn load(path: &Path, config: EngineConfig) -> Result<Self, InferenceError> {
        let threads = if config.threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            config.threads
        };
        let loaded = gguf::load(path, threads)?;
        let md = Metadata(&loaded.metadata);
        let tokenizer = ModelTokenizer::load(path, &md)?;
        let text_of =
            |t: &Option<(u32, String)>| t.as_ref().map(|(_, s)| s.clone()).unwrap_or_default();
        // Without a template in the file: Gemma's format for Gemma's vocabulary, else ChatML.
        let source = md.string("tokenizer.chat_template").or_else(|| {
            tokenizer
                .tokenizer
                .token_to_id("<start_of_turn>")
                .map(|_| crate::template::GEMMA_FALLBACK_TEMPLATE.to_owned())
        });
        let template = ChatTemplate::new(source, text_of(&tokenizer.bos), text_of(&tokenizer.eos))?;
        let info = ModelInfo {
            path: path.to_owned(),
            name: loaded.name,
            architecture: loaded.architecture,
            context_length: loaded.context_length,
            threads,
        };
        let mut model = Model {
            weights: loaded.weights,
            tokenizer,
            template,
            context_length: loaded.context_length,
            max_prompt_tokens: config.max_prompt_tokens,
        };
        // Wick's engines run their loops on their own team of threads; candle
        // (Gemma's K-quant matrices, other llama files) parallelises with rayon:
        // a pool of our own sets its thread count without touching the
        // process-wide pool.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("wick-model-{i}"))
            .build()
            .map_err(|e| InferenceError::Threads(e.to_string()))?;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("wick-model".into())
            .spawn(move || {
                // Requests run one after another, in arrival order.
                for job in queue {
                    pool.install(|| model.run(job));
                }
            })
            .map_err(|e| InferenceError::Threads(e.to_string()))?;
        Ok(Self { jobs, info })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }
}

impl Backend for LocalEngine {
    fn generate(&self, request: GenerationRequest) -> Result<Generation, RequestError> {
        request.validate()?;
        let (events, receiver) = unbounded_channel();
        let cancel = CancelHandle::default();
        self.jobs
            .send(Job {
                request,
                events,
                cancel: cancel.clone(),
            })
            .map_err(|_| RequestError::WorkerStopped)?;
        Ok(Generation::new(receiver, cancel))
    }
}

impl Model {
    fn run(&mut self, job: Job) {
        let events = job.events.clone();
        if let Err(e) = self.generate(job) {
            let _ = events.send(Event::Error(Failure::from(&e)));
        }
    }

    /// The prompt's token ids: a conversation through the chat template (its
    /// messages read as plain text), or raw text (which may name special
    /// tokens: API callers write whole prompts).
    fn prompt_ids(&self, request: &GenerationRequest) -> Result<Vec<u32>, InferenceError> {
        match &request.prompt {
            Prompt::Chat(messages) if request.drop_old_turns => {
                self.fitted_chat_ids(messages, request.params.max_new_tokens)
            }
            Prompt::Chat(messages) => self.chat_ids(messages),
            Prompt::Raw(text) => {
                let mut ids = Vec::new();
                if self.tokenizer.add_bos {
                    ids.extend(self.tokenizer.bos.as_ref().map(|(id, _)| *id));
                }
                ids.extend(self.tokenizer.encode(text)?);
                Ok(ids)
            }
        }
    }

    fn chat_ids(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, InferenceError> {
        let pieces = self.template.render_pieces(messages, true)?;
        self.tokenizer.encode_pieces(&pieces)
    }

    /// A conversation's ids after dropping its oldest turns until it fits
    /// the prompt cap and the window with room for a reply (up to a quarter
    /// of the window).
    fn fitted_chat_ids(
        &self,
        messages: &[ChatMessage],
        max_new: usize,
    ) -> Result<Vec<u32>, InferenceError> {
        let room = max_new.min(self.context_length / 4);
        let budget = self
            .context_length
            .saturating_sub(room)
            .min(self.max_prompt_tokens);
        let mut ids = Vec::new();
        drop_old_turns(
            messages,
            budget,
            |m| Ok::<_, InferenceError>(self.tokenizer.encode_text(&m.content)?.len()),
            |m| {
                ids = self.chat_ids(m)?;
                Ok(ids.len())
            },
        )?;
        Ok(ids)
    }

    fn generate(&mut self, job: Job) -> Result<(), RequestError> {
        let Job {
            request,
            events,
            cancel,
        } = job;
        // A request cancelled while it waited in the queue costs no model work.
        if cancel.is_cancelled() || events.is_closed() {
            let _ = events.send(Event::Done {
                finish: FinishReason::Cancelled,
                usage: Usage::default(),
            });
            return Ok(());
        }
        let params = &request.params;
        let prompt = self.prompt_ids(&request)?;
        if prompt.len() > self.max_prompt_tokens {
            return Err(RequestError::PromptTooLong {
                prompt_tokens: prompt.len(),
                max_prompt_tokens: self.max_prompt_tokens,
            });
        }
        if prompt.len() >= self.context_length {
            return Err(RequestError::ContextOverflow {
                prompt_tokens: prompt.len(),
                context_length: self.context_length,
            });
        }
        // Clip the reply to what fits in the context window.
        let max_new = params
            .max_new_tokens
            .min(self.context_length - prompt.len());
        let mut sampler = Sampler::new(params);
        let mut stop = StopFilter::new(params.stop.clone());
        let mut decoder = self.tokenizer.tokenizer.decode_stream(true);

        let started = Instant::now();
        let stopped = || cancel.is_cancelled() || events.is_closed();
        let weights = &mut self.weights;
        let prefilled = prefill(
            &prompt,
            PREFILL_CHUNK,
            |chunk, position| weights.forward(chunk, position),
            |done| {
                if done > 0 {
                    let _ = events.send(Event::Prefill {
                        done,
                        total: prompt.len(),
                    });
                }
                !stopped()
            },
        )?;
        let prompt_seconds = started.elapsed().as_secs_f64();
        let mut logits = match prefilled {
            Prefilled::Logits(logits) => logits,
            Prefilled::Stopped { done } => {
                let usage = Usage {
                    prompt_tokens: done,
                    prompt_seconds,
                    ..Usage::default()
                };
                let _ = events.send(Event::Done {
                    finish: FinishReason::Cancelled,
                    usage,
                });
                return Ok(());
            }
        };
        let decode_started = Instant::now();

        let mut history = prompt.clone();
        let mut generated = 0usize;
        let finish = loop {
            if cancel.is_cancelled() || events.is_closed() {
                break FinishReason::Cancelled;
            }
            let next = sampler.sample(&logits, &history)?;
            if !params.ignore_eos && self.tokenizer.stop_ids.contains(&next) {
                break FinishReason::Eos;
            }
            generated += 1;
            history.push(next);
            let piece = decoder
                .step(next)
                .map_err(|e| InferenceError::Tokenizer(e.to_string()))?
                .unwrap_or_default();
            let (text, stopped) = stop.push(&piece);
            let _ = events.send(Event::Token {
                id: Some(next),
                text,
            });
            if stopped {
                break FinishReason::Stop;
            }
            if generated >= max_new {
                break FinishReason::Length;
            }
            logits = self.weights.forward(&[next], history.len() - 1)?;
        };
        if finish != FinishReason::Stop {
            let rest = stop.finish();
            if !rest.is_empty() {
                let _ = events.send(Event::Token {
                    id: None,
                    text: rest,
                });
            }
        }
        let usage = Usage {
            prompt_tokens: prompt.len(),
            completion_tokens: generated,
            prompt_seconds,
            decode_seconds: decode_started.elapsed().as_secs_f64(),
        };
        let _ = events.send(Event::Done { finish, usage });
        Ok(())
    }
}

/// How a prefill ended.
enum Prefilled<T> {
    /// The logits after the whole prompt.
    Logits(T),
    /// Stopped (cancelled, or nobody listening) after `done` tokens.
    Stopped { done: usize },
}

/// Runs `prompt` through `forward` in chunks of `chunk` tokens (the logits of
/// the last chunk are the prompt's: each chunk extends the model's cache).
/// `go_on` is asked before each chunk, with the tokens done so far, and
/// stops the prefill when it answers false.
fn prefill<T, E>(
    prompt: &[u32],
    chunk: usize,
    mut forward: impl FnMut(&[u32], usize) -> Result<T, E>,
    mut go_on: impl FnMut(usize) -> bool,
) -> Result<Prefilled<T>, E> {
    let mut done = 0;
    let mut logits = None;
    for piece in prompt.chunks(chunk.max(1)) {
        if !go_on(done) {
            return Ok(Prefilled::Stopped { done });
        }
        logits = Some(forward(piece, done)?);
        done += piece.len();
    }
    // Told of the end too (for progress), though nothing is left to stop.
    go_on(done);
    Ok(match logits {
        Some(logits) => Prefilled::Logits(logits),
        None => Prefilled::Stopped { done },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prompt of 2,000 tokens is read in 4 chunks, each placed after the
    /// last; a stop asked for after the first chunk ends it there, with no
    /// more model work.
    #[test]
    fn prefill_goes_in_chunks_and_stops_between_them() {
        let prompt: Vec<u32> = (0..2000).collect();
        let mut calls = Vec::new();
        let out = prefill(
            &prompt,
            512,
            |chunk: &[u32], position| {
                calls.push((chunk[0], chunk.len(), position));
                Ok::<_, ()>(position + chunk.len())
            },
            |_| true,
        )
        .unwrap();
        assert!(matches!(out, Prefilled::Logits(2000)));
        assert_eq!(
            calls,
            [
                (0, 512, 0),
                (512, 512, 512),
                (1024, 512, 1024),
                (1536, 464, 1536)
            ]
        );

        let mut calls = 0;
        let mut progress = Vec::new();
        let out = prefill(
            &prompt,
            512,
            |_: &[u32], _| {
                calls += 1;
                Ok::<_, ()>(())
            },
            |done| {
                progress.push(done);
                // The caller cancels on hearing of the first chunk.
                done == 0
            },
        )
        .unwrap();
        assert!(matches!(out, Prefilled::Stopped { done: 512 }));
        assert_eq!(calls, 1);
        assert_eq!(progress, [0, 512]);
    }
}
