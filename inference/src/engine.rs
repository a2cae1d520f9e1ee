//! The local engine: a GGUF model on dedicated worker threads, fed requests
//! through a channel so that model work never runs on an async runtime.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::backend::{
    Backend, CancelHandle, Event, Failure, FinishReason, Generation, RequestError, Usage,
};
use crate::gguf::{self, Architecture, Metadata, Weights};
use crate::request::{ChatMessage, GenerationRequest, Prompt};
use crate::sampler::Sampler;
use crate::stop::StopFilter;
use crate::template::ChatTemplate;
use crate::tokenizer::ModelTokenizer;
use crate::InferenceError;

#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// Threads for the model's matrix work; 0 means one per core.
    pub threads: usize,
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

    /// The prompt's token ids: a conversation through the chat template, or raw text.
    fn prompt_ids(&self, request: &GenerationRequest) -> Result<Vec<u32>, InferenceError> {
        match &request.prompt {
            Prompt::Chat(messages) if request.drop_old_turns => {
                self.fitted_chat_ids(messages, request.params.max_new_tokens)
            }
            Prompt::Chat(messages) => {
                let text = self.template.render(messages, true)?;
                self.tokenizer.encode(&text)
            }
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

    /// A conversation's ids after dropping its oldest turns until it fits with
    /// room for a reply (up to a quarter of the window).
    fn fitted_chat_ids(
        &self,
        messages: &[ChatMessage],
        max_new: usize,
    ) -> Result<Vec<u32>, InferenceError> {
        let room = max_new.min(self.context_length / 4);
        let budget = self.context_length.saturating_sub(room);
        let mut ids = Vec::new();
        drop_old_turns(messages, budget, |m| {
            ids = self.tokenizer.encode(&self.template.render(m, true)?)?;
            Ok(ids.len())
        })?;
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
        let mut logits = self.weights.forward(&prompt, 0)?;
        let prompt_seconds = started.elapsed().as_secs_f64();
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

/// The turns of `messages` that fit in `budget` tokens as counted by `count`
/// (which is called last on the turns returned): the oldest go first. System
/// messages and the newest message always stay; an assistant turn left at the
/// front goes too, since chat templates expect a user turn first. When even
/// that is too long, the result is still returned and the caller reports the
/// overflow.
pub(crate) fn drop_old_turns(
    messages: &[ChatMessage],
    budget: usize,
    mut count: impl FnMut(&[ChatMessage]) -> Result<usize, InferenceError>,
) -> Result<Vec<ChatMessage>, InferenceError> {
    let mut kept = messages.to_vec();
    let first_turn = |m: &[ChatMessage]| m.iter().position(|m| m.role != "system");
    while count(&kept)? > budget {
        match first_turn(&kept) {
            Some(i) if i + 1 < kept.len() => {
                kept.remove(i);
                while let Some(j) = first_turn(&kept) {
                    if kept[j].role == "assistant" && j + 1 < kept.len() {
                        kept.remove(j);
                    } else {
                        break;
                    }
                }
            }
            _ => break,
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(turns: &[(&str, &str)]) -> Vec<ChatMessage> {
        turns
            .iter()
            .map(|(r, c)| ChatMessage::new(*r, *c))
            .collect()
    }

    /// One "token" per character, to make budgets easy to reason about.
    fn chars(m: &[ChatMessage]) -> Result<usize, InferenceError> {
        Ok(m.iter().map(|m| m.content.len()).sum())
    }

    #[test]
    fn a_conversation_that_fits_is_kept_whole() {
        let c = chat(&[("system", "sys"), ("user", "aaaa"), ("assistant", "bbbb")]);
        assert_eq!(drop_old_turns(&c, 100, chars).unwrap(), c);
    }

    #[test]
    fn the_oldest_turns_go_first_never_the_system_prompt_or_the_newest() {
        let c = chat(&[
            ("system", "sys"),
            ("user", "u1u1u1"),
            ("assistant", "a1a1a1"),
            ("user", "u2u2"),
            ("assistant", "a2a2"),
            ("user", "u3"),
        ]);
        // 3 + 4 + 4 + 2 = 13: the first exchange goes, user first, and the
        // assistant turn that would then lead goes with it.
        let kept = drop_old_turns(&c, 13, chars).unwrap();
        assert_eq!(
            kept,
            chat(&[
                ("system", "sys"),
                ("user", "u2u2"),
                ("assistant", "a2a2"),
                ("user", "u3")
            ])
        );
        // Too small for anything but the system prompt and the newest message.
        let kept = drop_old_turns(&c, 1, chars).unwrap();
        assert_eq!(kept, chat(&[("system", "sys"), ("user", "u3")]));
    }
}
