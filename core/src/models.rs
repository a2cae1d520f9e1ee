//! The models people can chat with: the local one and any remote ones from
//! the models file, each with its backend, its default parameters and its own
//! queue limit (a remote server takes many requests at once; the local model
//! writes one reply at a time).

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use inference::{Backend, Params};
use wick_types::{GenerationSettings, ModelOption};

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// A GGUF file run in this process.
    Local,
    /// An OpenAI-compatible server.
    OpenAi,
    /// A TGI server or the Hugging Face Inference API.
    Tgi,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Local => "local",
            ModelKind::OpenAi => "openai",
            ModelKind::Tgi => "tgi",
        }
    }
}

pub struct Model {
    /// Stored on conversations and replies; stable across restarts.
    pub id: String,
    /// What people see in the picker and on each reply.
    pub name: String,
    pub kind: ModelKind,
    pub backend: Arc<dyn Backend>,
    /// Parameters of chat replies (the seed is drawn per reply unless fixed).
    pub params: Params,
    /// Replies generating or waiting at once; one more is refused as busy.
    pub queue_depth: usize,
    /// The context window in tokens, when known.
    pub context_length: Option<usize>,
    /// Whether a reply cut short can be extended in place: always for local
    /// and TGI models (Wick renders their prompt), for an OpenAI-compatible
    /// server only where the models file says it accepts
    /// `continue_final_message` (vLLM, SGLang).
    pub can_continue: bool,
    /// Replies not yet finished, queued or running.
    pub(crate) unfinished: AtomicUsize,
}

impl Model {
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        kind: ModelKind,
        backend: Arc<dyn Backend>,
        params: Params,
        queue_depth: usize,
        context_length: Option<usize>,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            kind,
            backend,
            params,
            queue_depth,
            context_length,
            can_continue: kind != ModelKind::OpenAi,
            unfinished: AtomicUsize::new(0),
        }
    }

    /// The parameters of a reply in a conversation with `settings`: the
    /// model's, with what the conversation sets instead.
    pub fn params_for(&self, settings: &GenerationSettings) -> Params {
        let mut params = self.params.clone();
        if let Some(t) = settings.temperature {
            params.temperature = t;
        }
        if let Some(p) = settings.top_p {
            params.top_p = Some(p);
        }
        if let Some(n) = settings.max_new_tokens {
            params.max_new_tokens = n as usize;
        }
        params
    }

    /// The model's own values of the settings a conversation may change.
    pub fn defaults(&self) -> GenerationSettings {
        GenerationSettings {
            temperature: Some(self.params.temperature),
            top_p: Some(self.params.top_p.unwrap_or(1.0)),
            max_new_tokens: Some(self.params.max_new_tokens as u32),
        }
    }

    pub fn is_local(&self) -> bool {
        self.kind == ModelKind::Local
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("queue_depth", &self.queue_depth)
            .finish()
    }
}

/// All configured models; the first is the default for new conversations.
#[derive(Clone, Debug)]
pub struct Models(Arc<Vec<Arc<Model>>>);

impl Models {
    /// `models` must not be empty; the first one is the default.
    pub fn new(models: Vec<Model>) -> Self {
        assert!(!models.is_empty(), "at least one model is configured");
        Self(Arc::new(models.into_iter().map(Arc::new).collect()))
    }

    pub fn default_model(&self) -> &Arc<Model> {
        &self.0[0]
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Model>> {
        self.0.iter().find(|m| m.id == id)
    }

    /// The conversation's model, or the default when it is no longer configured.
    pub fn get_or_default(&self, id: &str) -> &Arc<Model> {
        self.get(id).unwrap_or_else(|| self.default_model())
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Model>> {
        self.0.iter()
    }

    /// The models served by the inference APIs: the local ones.
    pub fn local(&self) -> impl Iterator<Item = &Arc<Model>> {
        self.0.iter().filter(|m| m.is_local())
    }

    /// The display name of a model id (the id itself when no longer configured).
    pub fn name_of(&self, id: &str) -> String {
        self.get(id)
            .map_or_else(|| id.to_owned(), |m| m.name.clone())
    }

    pub fn options(&self) -> Vec<ModelOption> {
        self.0
            .iter()
            .map(|m| ModelOption {
                id: m.id.clone(),
                name: m.name.clone(),
            })
            .collect()
    }
}
