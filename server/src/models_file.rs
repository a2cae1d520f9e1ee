//! The models file (`WICK_MODELS`): which models people can chat with, local
//! GGUF files and remote servers. Without it, the one local model of
//! `WICK_MODEL` is offered.
//!
//! ```toml
//! [[models]]
//! id = "llama-3.3-70b"                      # stored on conversations; keep it stable
//! name = "Llama 3.3 70B"                    # shown in the picker and on replies
//! backend = "openai"                        # local | openai | tgi
//! url = "https://router.huggingface.co/v1"
//! model = "meta-llama/Llama-3.3-70B-Instruct"
//! api_key_env = "HF_TOKEN"                  # the *name* of the variable holding the key
//! context_length = 131072
//! continue_final_message = false           # true: the server extends a reply in place (vLLM, SGLang)
//! [models.parameters]
//! temperature = 0.6
//! max_new_tokens = 1024
//! ```
//!
//! Keys are read from the environment at start-up and never stored or logged.

use std::path::{Path, PathBuf};
use std::time::Duration;

use inference::remote::RemoteConfig;
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsFile {
    /// The first model is the default for new conversations.
    pub models: Vec<Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Local,
    Openai,
    Tgi,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Openai => "openai",
            BackendKind::Tgi => "tgi",
        }
    }
}

/// One `[[models]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    pub name: Option<String>,
    pub backend: BackendKind,
    /// `local`: the GGUF file (relative paths are from the working directory).
    pub path: Option<PathBuf>,
    /// `openai`: the base URL ending before `/chat/completions`; `tgi`: the
    /// server's root, or the Inference API's root when `model` is set.
    pub url: Option<String>,
    /// The model's name on the remote server.
    pub model: Option<String>,
    pub api_key_env: Option<String>,
    pub context_length: Option<usize>,
    pub queue_depth: Option<usize>,
    /// `tgi`: the Jinja chat template that turns a conversation into the
    /// prompt (ChatML when absent), with its `bos_token` and `eos_token`.
    pub chat_template: Option<String>,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub connect_timeout_secs: Option<f64>,
    pub idle_timeout_secs: Option<f64>,
    pub load_timeout_secs: Option<f64>,
    /// `openai`: the server accepts `continue_final_message` (vLLM, SGLang),
    /// so a reply cut short can be continued; without it the chat hides
    /// Continue for this model. (Local and TGI models can always continue.)
    #[serde(default)]
    pub continue_final_message: bool,
    #[serde(default)]
    pub parameters: Parameters,
}

/// Default generation parameters of a model's chat replies.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameters {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    pub repetition_penalty: Option<f32>,
    pub max_new_tokens: Option<usize>,
    pub stop: Option<Vec<String>>,
}

/// Why the models file was refused; each message names the entry and field.
#[derive(Debug, thiserror::Error)]
pub enum ModelsFileError {
    #[error("models file {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("models file {path}: {detail}")]
    Syntax { path: PathBuf, detail: String },
    #[error("models file {path}: {entry}: {detail}")]
    Entry {
        path: PathBuf,
        entry: String,
        detail: String,
    },
}

impl ModelsFile {
    /// Reads and checks the file; the environment is asked for API keys by `lookup`.
    pub fn load(path: &Path) -> Result<Self, ModelsFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelsFileError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ModelsFileError> {
        let file: ModelsFile = toml::from_str(text).map_err(|e| ModelsFileError::Syntax {
            path: path.to_owned(),
            detail: e.to_string().trim_end().to_owned(),
        })?;
        if file.models.is_empty() {
            return Err(ModelsFileError::Syntax {
                path: path.to_owned(),
                detail: "it lists no models; add at least one [[models]] entry".into(),
            });
        }
        for (index, entry) in file.models.iter().enumerate() {
            let fail = |detail: String| ModelsFileError::Entry {
                path: path.to_owned(),
                entry: entry.label(index),
                detail,
            };
            entry.check().map_err(fail)?;
            if file.models[..index].iter().any(|e| e.id == entry.id) {
                return Err(fail(format!(
                    "id {:?} is used by an earlier entry",
                    entry.id
                )));
            }
        }
        Ok(file)
    }
}

impl Entry {
    /// How messages name the entry: its position and id.
    pub fn label(&self, index: usize) -> String {
        format!("models[{index}] (id {:?})", self.id)
    }

    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.id.clone())
    }

    fn check(&self) -> Result<(), String> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 100
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c));
        if !id_ok {
            return Err("field `id` must be 1 to 100 letters, digits or - _ . : /".into());
        }
        let has = |field: &Option<String>| field.as_deref().is_some_and(|v| !v.trim().is_empty());
        match self.backend {
            BackendKind::Local => {
                if self.path.is_none() {
                    return Err(
                        "field `path` (the GGUF file) is required for backend \"local\"".into(),
                    );
                }
                for (field, set) in [("url", self.url.is_some()), ("model", self.model.is_some())] {
                    if set {
                        return Err(format!(
                            "field `{field}` is for remote backends, not \"local\""
                        ));
                    }
                }
            }
            BackendKind::Openai | BackendKind::Tgi => {
                let Some(url) = self.url.as_deref().filter(|_| has(&self.url)) else {
                    return Err(format!(
                        "field `url` is required for backend {:?}",
                        self.backend.as_str()
                    ));
                };
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "field `url` must start with http:// or https:// (got {url:?})"
                    ));
                }
                if self.backend == BackendKind::Openai && !has(&self.model) {
                    return Err("field `model` (the model's name on the server) is required for backend \"openai\"".into());
                }
                if self.path.is_some() {
                    return Err("field `path` is for backend \"local\"".into());
                }
            }
        }
        if self.backend != BackendKind::Tgi {
            for (field, set) in [
                ("chat_template", self.chat_template.is_some()),
                ("bos_token", self.bos_token.is_some()),
                ("eos_token", self.eos_token.is_some()),
            ] {
                if set {
                    return Err(format!("field `{field}` is only for backend \"tgi\" (the others apply their own template)"));
                }
            }
        }
        if self.continue_final_message && self.backend != BackendKind::Openai {
            return Err("field `continue_final_message` is only for backend \"openai\" (local and tgi models always continue)".into());
        }
        if self.context_length == Some(0) {
            return Err("field `context_length` must be at least 1".into());
        }
        if self.queue_depth == Some(0) {
            return Err("field `queue_depth` must be at least 1".into());
        }
        for (field, value) in [
            ("connect_timeout_secs", self.connect_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("load_timeout_secs", self.load_timeout_secs),
        ] {
            if let Some(v) = value {
                if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
                    return Err(format!(
                        "field `{field}` must be a number of seconds from 0 to 86400 (got {v})"
                    ));
                }
            }
        }
        if let Some(env) = &self.api_key_env {
            if env.is_empty() || !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "field `api_key_env` must name an environment variable (got {env:?})"
                ));
            }
        }
        Ok(())
    }

    /// The parameters of chat replies: the entry's own over `defaults`.
    pub fn params(&self, defaults: &inference::Params) -> Result<inference::Params, String> {
        let p = &self.parameters;
        let mut params = defaults.clone();
        if let Some(t) = p.temperature {
            params.temperature = t;
        }
        if p.top_p.is_some() {
            params.top_p = p.top_p;
        }
        if p.top_k.is_some() {
            params.top_k = p.top_k;
        }
        if let Some(r) = p.repetition_penalty {
            params.repetition_penalty = r;
        }
        if let Some(n) = p.max_new_tokens {
            params.max_new_tokens = n;
        }
        if let Some(stop) = &p.stop {
            params.stop = stop.clone();
        }
        params.validate().map_err(|e| format!("parameters.{e}"))?;
        Ok(params)
    }

    /// Where a remote model lives; the key is read from the environment now.
    pub fn remote_config(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<RemoteConfig, String> {
        let mut config = RemoteConfig::new(self.url.clone().unwrap_or_default());
        config.model = self.model.clone().filter(|m| !m.trim().is_empty());
        if let Some(var) = &self.api_key_env {
            match env(var).filter(|k| !k.trim().is_empty()) {
                Some(key) => config.api_key = Some(key.trim().to_owned()),
                None => {
                    return Err(format!(
                        "field `api_key_env` names {var}, which is not set in the environment"
                    ))
                }
            }
            config.api_key_env = Some(var.clone());
        }
        let seconds =
            |v: Option<f64>, default: Duration| v.map_or(default, Duration::from_secs_f64);
        config.connect_timeout = seconds(self.connect_timeout_secs, config.connect_timeout);
        config.idle_timeout = seconds(self.idle_timeout_secs, config.idle_timeout);
        config.load_timeout = seconds(self.load_timeout_secs, config.load_timeout);
        config.context_length = self.context_length;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ModelsFile, String> {
        ModelsFile::parse(Path::new("models.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_file_parses() {
        let file = parse(
            r#"
            [[models]]
            id = "local"
            backend = "local"
            path = "models/m.gguf"

            [[models]]
            id = "hf/llama"
            name = "Llama"
            backend = "openai"
            url = "https://router.huggingface.co/v1"
            model = "meta-llama/Llama-3.3-70B-Instruct"
            api_key_env = "HF_TOKEN"
            context_length = 8192
            [models.parameters]
            temperature = 0.2
            stop = ["</s>"]
            "#,
        )
        .unwrap();
        assert_eq!(file.models.len(), 2);
        let remote = &file.models[1];
        assert_eq!(remote.display_name(), "Llama");
        let params = remote.params(&inference::Params::default()).unwrap();
        assert_eq!((params.temperature, params.stop.len()), (0.2, 1));
        let config = remote
            .remote_config(|var| (var == "HF_TOKEN").then(|| "hf_secret".to_owned()))
            .unwrap();
        assert_eq!(config.api_key.as_deref(), Some("hf_secret"));
        assert_eq!(config.context_length, Some(8192));
        let missing = remote.remote_config(|_| None).unwrap_err();
        assert!(
            missing.contains("HF_TOKEN") && missing.contains("not set"),
            "{missing}"
        );
    }

    #[test]
    fn bad_entries_are_named_with_their_field() {
        let cases = [
            ("[[models]]\nid = \"a\"\nbackend = \"openai\"\nmodel = \"m\"\n", "models[0] (id \"a\"): field `url` is required"),
            ("[[models]]\nid = \"a\"\nbackend = \"openai\"\nurl = \"http://x/v1\"\n", "field `model`"),
            ("[[models]]\nid = \"a\"\nbackend = \"local\"\n", "field `path`"),
            ("[[models]]\nid = \"a\"\nbackend = \"tgi\"\nurl = \"ftp://x\"\n", "must start with http"),
            ("[[models]]\nid = \"a b\"\nbackend = \"local\"\npath = \"m\"\n", "field `id`"),
            ("[[models]]\nid = \"a\"\nbackend = \"local\"\npath = \"m\"\n[[models]]\nid = \"a\"\nbackend = \"local\"\npath = \"n\"\n", "models[1] (id \"a\"): id \"a\" is used"),
            ("[[models]]\nid = \"a\"\nbackend = \"cloud\"\n", "unknown variant `cloud`"),
            ("[[models]]\nid = \"a\"\nbackend = \"local\"\npath = \"m\"\ntemprature = 1\n", "unknown field `temprature`"),
            ("[[models]]\nid = \"a\"\nbackend = \"openai\"\nurl = \"http://x\"\nmodel = \"m\"\nchat_template = \"x\"\n", "only for backend \"tgi\""),
            ("models = []\n", "lists no models"),
        ];
        for (text, want) in cases {
            let err = parse(text)
                .err()
                .unwrap_or_else(|| panic!("accepted: {text}"));
            assert!(err.contains(want), "{err}\n  wanted: {want}");
            assert!(err.starts_with("models file models.toml"), "{err}");
        }
        let file = parse("[[models]]\nid = \"a\"\nbackend = \"local\"\npath = \"m\"\n[models.parameters]\ntemperature = 9\n").unwrap();
        let err = file.models[0]
            .params(&inference::Params::default())
            .unwrap_err();
        assert!(err.contains("parameters.temperature"), "{err}");
    }
}
