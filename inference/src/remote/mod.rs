//! Remote backends: a model served elsewhere, over HTTP, streamed back as the
//! same [`Event`]s the local engine produces.
//!
//! Two wire formats: OpenAI-compatible chat completions (HF's router, TGI's
//! Messages API, vLLM, llama.cpp's server, Ollama) and the Hugging Face
//! Inference API / TGI `generate_stream` (`{inputs, parameters}`, the prompt
//! rendered here with the model's chat template). Each request runs as a task
//! on the async runtime (it only waits on the network); cancelling drops the
//! upstream request at once, which closes its connection.

mod openai;
mod tgi;
mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::RequestError;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::backend::{Backend, CancelHandle, Event, Failure, FailureKind, Generation, Usage};
use crate::request::{ChatMessage, GenerationRequest, Prompt};
use crate::template::ChatTemplate;
use crate::{FinishReason, InferenceError};

/// Where a remote model lives and how long to wait for it.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// The server's base URL: `https://router.huggingface.co/v1` for OpenAI-compatible
    /// servers, `http://host:8080` for TGI, `https://api-inference.huggingface.co` for
    /// the serverless Inference API.
    pub base_url: String,
    /// The model's name on that server.
    pub model: Option<String>,
    pub api_key: Option<String>,
    /// The environment variable the key came from, named in the log (never to users).
    pub api_key_env: Option<String>,
    pub connect_timeout: Duration,
    /// The longest silence accepted: before the response starts, and between two events.
    pub idle_timeout: Duration,
    /// How long to keep retrying while the server answers 503 (a model loading).
    pub load_timeout: Duration,
    /// The model's context window in tokens, when known: older turns are dropped
    /// (by an estimate of the length, the tokenizer being remote) to fit it.
    pub context_length: Option<usize>,
}

impl RemoteConfig {
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            model: None,
            api_key: None,
            api_key_env: None,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            load_timeout: Duration::from_secs(300),
            context_length: None,
        }
    }
}

/// How prompts reach the server.
enum Protocol {
    /// `POST {base}/chat/completions` with the messages; the server applies its template.
    OpenAi,
    /// `POST {base}/generate_stream`, or `POST {base}/models/{model}` with
    /// `"stream": true` when a model is named; the prompt is rendered here.
    Tgi(Arc<ChatTemplate>),
}

/// A model on another server.
pub struct RemoteBackend {
    config: Arc<RemoteConfig>,
    protocol: Protocol,
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl RemoteBackend {
    /// An OpenAI-compatible server. Must be called inside a Tokio runtime,
    /// which then runs the requests.
    pub fn openai(config: RemoteConfig) -> Result<Self, InferenceError> {
        if config.model.is_none() {
            return Err(config_error(
                &config,
                "an OpenAI-compatible server needs the model's name",
            ));
        }
        Self::new(config, Protocol::OpenAi)
    }

    /// A TGI server or the Hugging Face Inference API, with the chat template
    /// that turns a conversation into the model's prompt.
    pub fn tgi(config: RemoteConfig, template: ChatTemplate) -> Result<Self, InferenceError> {
        Self::new(config, Protocol::Tgi(Arc::new(template)))
    }

    fn new(config: RemoteConfig, protocol: Protocol) -> Result<Self, InferenceError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| config_error(&config, "remote backends need a Tokio runtime"))?;
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("wick/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| config_error(&config, &e.to_string()))?;
        Ok(Self {
            config: Arc::new(config),
            protocol,
            client,
            runtime,
        })
    }

    /// The URL and JSON body of a request.
    fn request(
        &self,
        request: &GenerationRequest,
    ) -> Result<(String, serde_json::Value), RequestError> {
        let base = &self.config.base_url;
        match (&self.protocol, &request.prompt) {
            (Protocol::OpenAi, Prompt::Chat(messages)) => {
                let messages = self.fit(messages, request)?;
                let model = self.config.model.as_deref().unwrap_or_default();
                Ok((
                    format!("{base}/chat/completions"),
                    openai::body(model, &messages, &request.params, request.continue_final),
                ))
            }
            (Protocol::OpenAi, Prompt::Raw(_)) => Err(RequestError::Unsupported(
                "an OpenAI-compatible chat server takes messages, not a raw prompt".into(),
            )),
            (Protocol::Tgi(template), _) => tgi_request(&self.config, template, request),
        }
    }

    /// Drops the oldest turns when the conversation would not fit the context
    /// window, counting about three characters per token (a safe side for
    /// English and code; the real tokenizer lives on the server).
    fn fit(
        &self,
        messages: &[ChatMessage],
        request: &GenerationRequest,
    ) -> Result<Vec<ChatMessage>, InferenceError> {
        fit(&self.config, messages, request)
    }
}

/// The URL and JSON body of a request to a TGI server: a conversation fitted
/// and rendered with the model's template, or a raw prompt as it is.
fn tgi_request(
    config: &RemoteConfig,
    template: &ChatTemplate,
    request: &GenerationRequest,
) -> Result<(String, serde_json::Value), RequestError> {
    let base = &config.base_url;
    let inputs = match &request.prompt {
        // Messages read as text: the server tokenizes the prompt with its
        // special tokens, so markers typed in a message are broken first.
        Prompt::Chat(messages) if request.continue_final => {
            template.render_for_server_continuing(&fit(config, messages, request)?)?
        }
        Prompt::Chat(messages) => {
            template.render_for_server(&fit(config, messages, request)?, true)?
        }
        Prompt::Raw(text) => text.clone(),
    };
    Ok(match &config.model {
        Some(model) => (
            format!("{base}/models/{model}"),
            tgi::body(&inputs, &request.params, true),
        ),
        None => (
            format!("{base}/generate_stream"),
            tgi::body(&inputs, &request.params, false),
        ),
    })
}

/// See [`RemoteBackend::fit`].
fn fit(
    config: &RemoteConfig,
    messages: &[ChatMessage],
    request: &GenerationRequest,
) -> Result<Vec<ChatMessage>, InferenceError> {
    match config.context_length {
        Some(context) if request.drop_old_turns => {
            let room = request.params.max_new_tokens.min(context / 4);
            let estimate = |m: &ChatMessage| m.content.chars().count() / 3 + 4;
            crate::fit::drop_old_turns(
                messages,
                context.saturating_sub(room),
                |m| Ok(estimate(m)),
                |m| Ok(m.iter().map(estimate).sum()),
            )
        }
        _ => Ok(messages.to_vec()),
    }
}

impl Backend for RemoteBackend {
    fn generate(&self, request: GenerationRequest) -> Result<Generation, RequestError> {
        request.validate()?;
        if let (Protocol::Tgi(template), Prompt::Chat(_)) = (&self.protocol, &request.prompt) {
            // Fitting and rendering a long conversation is CPU work: it runs
            // on a blocking thread, never on one of the runtime's workers.
            let (events, receiver) = unbounded_channel();
            let cancel = CancelHandle::default();
            let (config, template) = (self.config.clone(), template.clone());
            let client = self.client.clone();
            let running = cancel.clone();
            self.runtime.spawn(async move {
                let max_new_tokens = request.params.max_new_tokens;
                let prepared = tokio::task::spawn_blocking({
                    let config = config.clone();
                    move || tgi_request(&config, &template, &request)
                })
                .await;
                let (url, body) = match prepared {
                    Ok(Ok(prepared)) => prepared,
                    Ok(Err(e)) => {
                        let _ = events.send(Event::Error(Failure::from(&e)));
                        return;
                    }
                    Err(e) => {
                        let _ = events.send(Event::Error(Failure::internal(e)));
                        return;
                    }
                };
                let job = Job {
                    config,
                    client,
                    url,
                    body,
                    openai: false,
                    limits: Limits::new(max_new_tokens),
                };
                run(job, events, running).await;
            });
            return Ok(Generation::new(receiver, cancel));
        }
        let (url, body) = self.request(&request)?;
        let job = Job {
            config: self.config.clone(),
            client: self.client.clone(),
            url,
            body,
            openai: matches!(self.protocol, Protocol::OpenAi),
            limits: Limits::new(request.params.max_new_tokens),
        };
        let (events, receiver) = unbounded_channel();
        let cancel = CancelHandle::default();
        self.runtime.spawn(run(job, events, cancel.clone()));
        Ok(Generation::new(receiver, cancel))
    }
}

fn config_error(config: &RemoteConfig, detail: &str) -> InferenceError {
    InferenceError::RemoteConfig {
        model: config
            .model
            .clone()
            .unwrap_or_else(|| config.base_url.clone()),
        detail: detail.to_owned(),
    }
}

/// One request to send, and how to read its answer.
struct Job {
    config: Arc<RemoteConfig>,
    client: reqwest::Client,
    url: String,
    body: serde_json::Value,
    openai: bool,
    limits: Limits,
}

/// How much of a reply is read, whatever the server sends: a server that
/// ignores `max_tokens` (or never stops) cannot make Wick store more than was
/// asked for, nor hold an unbounded body in memory.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Pieces of text (tokens, or chunks of a few) forwarded at most; the
    /// reply then ends with [`FinishReason::Length`].
    tokens: usize,
    /// Bytes of text forwarded at most: six per token (tokens average about
    /// four bytes) and some slack.
    text_bytes: usize,
    /// Bytes of the response body read at most (events with their JSON, or
    /// a whole answer).
    body_bytes: usize,
}

impl Limits {
    fn new(max_new_tokens: usize) -> Self {
        let tokens = max_new_tokens.max(1);
        Self {
            tokens,
            text_bytes: tokens.saturating_mul(6).saturating_add(1024),
            body_bytes: tokens.saturating_mul(2048).saturating_add(256 * 1024),
        }
    }
}

/// What one event of the stream (or a whole answer) said.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Chunk {
    pub text: Option<String>,
    /// Reasoning text streamed apart from the answer (OpenAI-style servers).
    pub reasoning: Option<String>,
    pub token_id: Option<u32>,
    pub finish: Option<FinishReason>,
    /// Prompt and completion tokens, as the server counted them.
    pub usage: Option<(usize, usize)>,
    /// The last event: `[DONE]`, or TGI's event carrying `generated_text`.
    pub done: bool,
}

#[derive(Default)]
struct Progress {
    tokens: usize,
    /// Bytes of text forwarded.
    bytes: usize,
    usage: Option<(usize, usize)>,
    started: Option<Instant>,
    /// Inside reasoning text: a `<think>` was sent and not yet closed.
    thinking: bool,
}

impl Progress {
    /// The text to pass on for a piece of reasoning and of answer: reasoning
    /// goes inside `<think>…</think>`, closed when the answer starts.
    fn weave(&mut self, reasoning: Option<String>, text: Option<String>) -> Option<String> {
        let mut out = String::new();
        if let Some(r) = reasoning.filter(|r| !r.is_empty()) {
            if !self.thinking {
                self.thinking = true;
                out.push_str("<think>");
            }
            out.push_str(&r);
        }
        if let Some(t) = text.filter(|t| !t.is_empty()) {
            if self.thinking {
                self.thinking = false;
                out.push_str("</think>\n\n");
            }
            out.push_str(&t);
        }
        (!out.is_empty()).then_some(out)
    }

    fn usage(&self) -> Usage {
        let (prompt_tokens, completion_tokens) = self.usage.unwrap_or((0, self.tokens));
        Usage {
            prompt_tokens,
            cached_tokens: 0,
            completion_tokens,
            prompt_seconds: 0.0,
            decode_seconds: self.started.map_or(0.0, |s| s.elapsed().as_secs_f64()),
        }
    }
}

async fn run(job: Job, events: UnboundedSender<Event>, cancel: CancelHandle) {
    let mut progress = Progress::default();
    let end = tokio::select! {
        biased;
        // Leaving the select drops the request future and with it the connection.
        _ = cancel.cancelled() => Ok(FinishReason::Cancelled),
        _ = events.closed() => return,
        end = job.stream(&events, &mut progress) => end,
    };
    let last = match end {
        Ok(finish) => Event::Done {
            finish,
            usage: progress.usage(),
        },
        Err(failure) => Event::Error(failure),
    };
    let _ = events.send(last);
}

impl Job {
    fn server(&self) -> &str {
        &self.config.base_url
    }

    /// Sends the request and forwards the reply's tokens until the last event.
    async fn stream(
        &self,
        events: &UnboundedSender<Event>,
        progress: &mut Progress,
    ) -> Result<FinishReason, Failure> {
        let response = self.connect().await?;
        progress.started = Some(Instant::now());
        if !wire::is_event_stream(&response) {
            // Some servers answer a stream request with the whole reply.
            let (body, whole) = self.read_capped(response, self.limits.body_bytes).await?;
            if !whole {
                return Err(wire::upstream(
                    &self.config,
                    FailureKind::Internal,
                    "The model server sent a much longer answer than was asked for, so Wick stopped reading it. Try again, or choose another model.".into(),
                    &format!("a whole answer longer than {} bytes", self.limits.body_bytes),
                ));
            }
            let chunk = self.parse_whole(&body)?;
            let text = progress.weave(chunk.reasoning, chunk.text);
            let complete = self.forward(text, chunk.token_id, events, progress);
            progress.usage = chunk.usage.or(progress.usage);
            if !complete {
                return Ok(FinishReason::Length);
            }
            return Ok(chunk.finish.unwrap_or(FinishReason::Eos));
        }
        // The body is read up to its limit; past it the stream simply ends.
        let limit = self.limits.body_bytes;
        let over = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let past_limit = over.clone();
        let body = response.bytes_stream().scan(0usize, move |read, chunk| {
            if let Ok(bytes) = &chunk {
                *read += bytes.len();
                if *read > limit {
                    past_limit.store(true, std::sync::atomic::Ordering::Relaxed);
                    return futures::future::ready(None);
                }
            }
            futures::future::ready(Some(chunk))
        });
        let mut stream = Box::pin(body.eventsource());
        let mut finish = None;
        loop {
            let event = match self.idle(stream.next()).await? {
                Some(Ok(event)) => event,
                None if over.load(std::sync::atomic::Ordering::Relaxed) => {
                    self.stopped_reading(progress);
                    return Ok(FinishReason::Length);
                }
                // The end of the body without `[DONE]`: fine once the finish reason came.
                None => return finish.ok_or_else(|| self.cut("the stream ended early")),
                Some(Err(e)) => {
                    return finish.ok_or_else(|| self.cut(e));
                }
            };
            if event.event == "error" {
                return Err(wire::stream_error(&event.data, &self.config));
            }
            if event.data.trim().is_empty() {
                continue;
            }
            let chunk = if self.openai {
                openai::parse_chunk(&event.data, &self.config)?
            } else {
                tgi::parse_event(&event.data, &self.config)?
            };
            let text = progress.weave(chunk.reasoning, chunk.text);
            if !self.forward(text, chunk.token_id, events, progress) {
                // More than was asked for: the rest is not read.
                self.stopped_reading(progress);
                return Ok(FinishReason::Length);
            }
            progress.usage = chunk.usage.or(progress.usage);
            finish = chunk.finish.or(finish);
            if chunk.done {
                return Ok(finish.unwrap_or(FinishReason::Eos));
            }
        }
    }

    /// Forwards a piece of the reply, within the limits: false when the
    /// reply already had all it may have (the piece is then dropped, or cut
    /// to the room left).
    fn forward(
        &self,
        text: Option<String>,
        id: Option<u32>,
        events: &UnboundedSender<Event>,
        progress: &mut Progress,
    ) -> bool {
        let Some(mut text) = text.filter(|t| !t.is_empty()) else {
            return true;
        };
        if progress.tokens >= self.limits.tokens || progress.bytes >= self.limits.text_bytes {
            return false;
        }
        let room = self.limits.text_bytes - progress.bytes;
        let whole = text.len() <= room;
        if !whole {
            let mut end = room;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        progress.tokens += 1;
        progress.bytes += text.len();
        if !text.is_empty() {
            let _ = events.send(Event::Token { id, text });
        }
        whole
    }

    /// Notes in the log that a server sent more than was asked for.
    fn stopped_reading(&self, progress: &Progress) {
        tracing::warn!(
            server = %wire::redact(self.server(), self.config.api_key.as_deref()),
            tokens = progress.tokens,
            bytes = progress.bytes,
            "the model server sent more than the reply's limit; stopped reading it"
        );
    }

    /// The body, read up to `cap` bytes (the rest is never received), and
    /// whether that was all of it.
    async fn read_capped(
        &self,
        mut response: reqwest::Response,
        cap: usize,
    ) -> Result<(String, bool), Failure> {
        let mut body = Vec::new();
        let mut whole = true;
        while let Some(chunk) = self
            .idle(response.chunk())
            .await?
            .map_err(|e| self.cut(e))?
        {
            let room = cap - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                whole = false;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok((String::from_utf8_lossy(&body).into_owned(), whole))
    }

    fn parse_whole(&self, body: &str) -> Result<Chunk, Failure> {
        let value: serde_json::Value =
            serde_json::from_str(body).map_err(|_| wire::unreadable(&self.config, body))?;
        wire::check_error_object(&value, &self.config)?;
        Ok(if self.openai {
            openai::parse_whole(&value)
        } else {
            tgi::parse_whole(&value)
        })
    }

    /// Sends the request; while the server answers 503 (a model loading), waits
    /// as long as it estimates and tries again, within `load_timeout`.
    async fn connect(&self) -> Result<reqwest::Response, Failure> {
        let started = Instant::now();
        loop {
            let mut request = self
                .client
                .post(&self.url)
                .header(reqwest::header::ACCEPT, "text/event-stream")
                .json(&self.body);
            if let Some(key) = &self.config.api_key {
                request = request.bearer_auth(key);
            }
            let response = self
                .idle(request.send())
                .await?
                .map_err(|e| wire::send_failure(&e, &self.config))?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let retry_after = wire::retry_after(&response);
            // An error body is read up to a cap: its words only go to the log.
            let body = match self.read_capped(response, wire::ERROR_BODY_CAP).await {
                Ok((body, _)) => body,
                Err(f) if f.kind == FailureKind::Timeout => return Err(f),
                Err(_) => String::new(),
            };
            if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                let wait = wire::estimated_time(&body)
                    .or(retry_after.map(Duration::from_secs))
                    .unwrap_or(Duration::from_secs(2))
                    .clamp(Duration::from_millis(100), Duration::from_secs(60));
                if started.elapsed() + wait <= self.config.load_timeout {
                    tracing_wait(
                        &wire::redact(self.server(), self.config.api_key.as_deref()),
                        wait,
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            return Err(wire::status_failure(
                status,
                &body,
                retry_after,
                &self.config,
                started.elapsed(),
            ));
        }
    }

    /// Waits for `future`, at most the idle timeout.
    async fn idle<T>(&self, future: impl std::future::Future<Output = T>) -> Result<T, Failure> {
        let limit = self.config.idle_timeout;
        tokio::time::timeout(limit, future).await.map_err(|_| {
            wire::upstream(
                &self.config,
                FailureKind::Timeout,
                format!(
                    "The model server sent nothing for {} s, so the reply was cut off there. Try again.",
                    limit.as_secs_f64()
                ),
                "idle_timeout_secs passed without a byte",
            )
        })
    }

    fn cut(&self, cause: impl std::fmt::Display) -> Failure {
        wire::upstream(
            &self.config,
            FailureKind::Unavailable,
            "The connection to the model server was lost before the reply finished. The text so far is kept; Retry asks again.".into(),
            &cause.to_string(),
        )
    }
}

/// Waiting is normal while a model loads, but worth a line in the log.
fn tracing_wait(server: &str, wait: Duration) {
    tracing::info!(
        server,
        wait_seconds = wait.as_secs_f64(),
        "the model server is loading the model (HTTP 503); retrying"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_drops_old_turns_only_with_a_context_length() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let long = "word ".repeat(300); // ~500 estimated tokens
        let messages = vec![
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", long.as_str()),
            ChatMessage::new("assistant", long.as_str()),
            ChatMessage::new("user", "And now?"),
        ];
        let request = GenerationRequest {
            prompt: Prompt::Chat(messages.clone()),
            params: crate::Params {
                max_new_tokens: 64,
                ..Default::default()
            },
            drop_old_turns: true,
            continue_final: false,
            priority: crate::Priority::Normal,
        };
        let mut config = RemoteConfig::new("http://127.0.0.1:9/v1/");
        config.model = Some("m".into());
        assert_eq!(config.base_url, "http://127.0.0.1:9/v1");
        let backend = RemoteBackend::openai(config.clone()).unwrap();
        assert_eq!(backend.fit(&messages, &request).unwrap(), messages);

        config.context_length = Some(512);
        let backend = RemoteBackend::openai(config).unwrap();
        let kept = backend.fit(&messages, &request).unwrap();
        let roles: Vec<_> = kept.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user"]);
        assert_eq!(kept[1].content, "And now?");
    }

    #[test]
    fn an_openai_backend_needs_a_model_name_and_messages() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let err = RemoteBackend::openai(RemoteConfig::new("http://x/v1"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("model's name"), "{err}");
        let mut config = RemoteConfig::new("http://x/v1");
        config.model = Some("m".into());
        let backend = RemoteBackend::openai(config).unwrap();
        let raw = GenerationRequest {
            prompt: Prompt::Raw("hi".into()),
            params: Default::default(),
            drop_old_turns: false,
            continue_final: false,
            priority: crate::Priority::Normal,
        };
        let err = backend.request(&raw).err().unwrap();
        assert!(err.to_string().contains("raw prompt"), "{err}");
    }
}
