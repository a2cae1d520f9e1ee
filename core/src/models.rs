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

/// The default length of a chat reply from a local model, in tokens.
pub const LOCAL_CHAT_REPLY_TOKENS: usize = 512;

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
    /// model's, with what the conversation sets instead. A longer reply than
    /// the model's `max_new_tokens` is cut there, as on the inference APIs.
    pub fn params_for(&self, settings: &GenerationSettings) -> Params {
        let mut params = self.params.clone();
        if let Some(t) = settings.temperature {
            params.temperature = t;
        }
        if let Some(p) = settings.top_p {
            params.top_p = Some(p);
        }
        params.max_new_tokens = match settings.max_new_tokens {
            Some(n) => (n as usize).min(self.params.max_new_tokens.max(1)).max(1),
            None => self.chat_reply_tokens(),
        };
        params
    }

    /// Checks `settings` with the inference APIs' bounds and sentences
    /// ("temperature must be a number from 0 to 2 (got 5)").
    pub fn check(&self, settings: &GenerationSettings) -> Result<(), inference::ValidationError> {
        let mut params = self.params_for(settings);
        if let Some(n) = settings.max_new_tokens {
            // As asked, before the model's ceiling cuts it.
            params.max_new_tokens = n as usize;
        }
        params.validate()
    }

    /// How long a chat reply may be unless the conversation says otherwise:
    /// a small local model that loses its way would otherwise run on to the
    /// ceiling (a 135M model looped for 128 s to 1,024 tokens); "Continue"
    /// takes a cut reply further.
    fn chat_reply_tokens(&self) -> usize {
        if self.is_local() {
            self.params.max_new_tokens.min(LOCAL_CHAT_REPLY_TOKENS)
        } else {
            self.params.max_new_tokens
        }
    }

    /// The model's own values of the settings a conversation may change.
    pub fn defaults(&self) -> GenerationSettings {
        GenerationSettings {
            temperature: Some(self.params.temperature),
            top_p: Some(self.params.top_p.unwrap_or(1.0)),
            max_new_tokens: Some(self.chat_reply_tokens() as u32),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn model(kind: ModelKind) -> Model {
        let params = Params {
            max_new_tokens: 1024,
            ..Params::default()
        };
        let backend = Arc::new(inference::scripted::ScriptedBackend::default());
        Model::new("m", "M", kind, backend, params, 1, None)
    }

    #[test]
    fn a_local_chat_reply_is_shorter_by_default_and_never_past_the_ceiling() {
        let local = model(ModelKind::Local);
        let none = GenerationSettings::default();
        assert_eq!(local.defaults().max_new_tokens, Some(512));
        assert_eq!(local.params_for(&none).max_new_tokens, 512);
        let asked = |n| GenerationSettings {
            max_new_tokens: Some(n),
            ..GenerationSettings::default()
        };
        assert_eq!(local.params_for(&asked(800)).max_new_tokens, 800);
        assert_eq!(local.params_for(&asked(2000)).max_new_tokens, 1024);
        assert_eq!(
            local.check(&asked(9000)).unwrap_err().to_string(),
            "max_new_tokens must be from 1 to 8192 (got 9000)"
        );
        assert!(local.check(&asked(2000)).is_ok(), "cut, as the APIs do");
        // A remote model's replies go to its own ceiling.
        assert_eq!(
            model(ModelKind::OpenAi).params_for(&none).max_new_tokens,
            1024
        );
    }
}
