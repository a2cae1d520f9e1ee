//! The local engine: a GGUF model on dedicated worker threads, fed requests
//! through a channel so that model work never runs on an async runtime.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::backend::{Backend, CancelHandle, Event, Generation, RequestError};
use crate::fit::{drop_old_turns, TokenCounts};
use crate::gguf::{self, Architecture, Metadata, Weights};
use crate::request::{ChatMessage, GenerationRequest, Prompt, ValidationError};
use crate::template::ChatTemplate;
use crate::tokenizer::ModelTokenizer;
use crate::InferenceError;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Threads for the model's matrix work; 0 means one per core.
    pub threads: usize,
    /// The longest prompt one request may have, in tokens: a longer one is
    /// refused before any model work, with a sentence saying so; a chat drops
    /// its oldest turns to fit it first.
    pub max_prompt_tokens: usize,
    /// Sequences generated at once, each advancing one token per batched
    /// forward pass; more requests wait in arrival order.
    pub parallel: usize,
    /// Memory for the KV caches kept after replies (the prefix cache), in
    /// bytes; `None` is room for `parallel` prompts of `max_prompt_tokens`.
    pub kv_cache_bytes: Option<usize>,
    /// How long a kept cache may go unused before it is released (and, once
    /// none is left, the memory given back to the system); `None` keeps it
    /// until a newer one needs its room.
    pub kv_cache_idle: Option<std::time::Duration>,
}

/// The default of [`EngineConfig::kv_cache_idle`]: a conversation's next
/// turn within five minutes reads only its new tokens.
pub const DEFAULT_KV_CACHE_IDLE: std::time::Duration = std::time::Duration::from_secs(300);

/// The default of [`EngineConfig::max_prompt_tokens`].
pub const DEFAULT_MAX_PROMPT_TOKENS: usize = 4096;

/// The default of [`EngineConfig::parallel`].
pub const DEFAULT_PARALLEL: usize = 4;

/// Prompt tokens per forward pass (llama.cpp's default micro-batch): a
/// newcomer's prompt is read a chunk per step, so the replies already running
/// wait at most one chunk for their next token, and Stop is heard between chunks.
pub const PREFILL_CHUNK: usize = 512;

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            threads: 0,
            max_prompt_tokens: DEFAULT_MAX_PROMPT_TOKENS,
            parallel: DEFAULT_PARALLEL,
            kv_cache_bytes: None,
            kv_cache_idle: Some(DEFAULT_KV_CACHE_IDLE),
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

pub(crate) struct Job {
    pub(crate) request: GenerationRequest,
    pub(crate) events: UnboundedSender<Event>,
    pub(crate) cancel: CancelHandle,
}

/// Everything the worker needs to run requests.
pub(crate) struct Model {
    pub(crate) weights: Weights,
    pub(crate) prompts: Prompts,
}

/// What turns a request into the model's tokens and back.
pub(crate) struct Prompts {
    pub(crate) tokenizer: ModelTokenizer,
    template: ChatTemplate,
    pub(crate) context_length: usize,
    max_prompt_tokens: usize,
    /// Message contents' token counts, for fitting long conversations.
    counts: TokenCounts,
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
        let model = Model {
            weights: loaded.weights,
            prompts: Prompts {
                tokenizer,
                template,
                context_length: loaded.context_length,
                max_prompt_tokens: config.max_prompt_tokens,
                counts: TokenCounts::default(),
            },
        };
        // Candle's llama keeps one sequence inside the model: one at a time.
        let parallel = if model.weights.batches() {
            config.parallel.max(1)
        } else {
            1
        };
        let kv_budget = config.kv_cache_bytes.unwrap_or_else(|| {
            parallel * config.max_prompt_tokens * model.weights.new_sequence().bytes_per_position()
        });
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
        let kv_idle = config.kv_cache_idle;
        std::thread::Builder::new()
            .name("wick-model".into())
            .spawn(move || {
                pool.install(|| crate::schedule::run(model, queue, parallel, kv_budget, kv_idle))
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

impl Prompts {
    /// The prompt's token ids: a conversation through the chat template (its
    /// messages read as plain text), or raw text (which may name special
    /// tokens: API callers write whole prompts).
    pub(crate) fn prompt_ids(
        &self,
        request: &GenerationRequest,
    ) -> Result<Vec<u32>, InferenceError> {
        match &request.prompt {
            Prompt::Chat(messages) if request.drop_old_turns => self.fitted_chat_ids(
                messages,
                request.params.max_new_tokens,
                request.continue_final,
            ),
            Prompt::Chat(messages) => self.chat_ids(messages, request.continue_final),
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

    fn chat_ids(
        &self,
        messages: &[ChatMessage],
        continue_final: bool,
    ) -> Result<Vec<u32>, InferenceError> {
        let pieces = if continue_final {
            self.template.continuation_pieces(messages)?
        } else {
            self.template.render_pieces(messages, true)?
        };
        self.tokenizer.encode_pieces(&pieces)
    }

    /// A conversation's ids after dropping its oldest turns until it fits
    /// the prompt cap and the window with room for a reply (up to a quarter
    /// of the window).
    fn fitted_chat_ids(
        &self,
        messages: &[ChatMessage],
        max_new: usize,
        continue_final: bool,
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
            |m| {
                self.counts.get(&m.content, |text| {
                    Ok::<_, InferenceError>(self.tokenizer.encode_text(text)?.len())
                })
            },
            |m| {
                ids = self.chat_ids(m, continue_final)?;
                Ok(ids.len())
            },
        )?;
        Ok(ids)
    }

    /// The request's prompt, checked against the prompt cap and the window.
    pub(crate) fn checked_prompt(
        &self,
        request: &GenerationRequest,
    ) -> Result<Vec<u32>, RequestError> {
        let prompt = self.prompt_ids(request)?;
        if prompt.is_empty() {
            // Text the tokenizer reads as nothing: no token to start from.
            return Err(ValidationError::EmptyPrompt.into());
        }
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
        Ok(prompt)
    }
}
