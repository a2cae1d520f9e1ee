//! Model backends for Wick, with no web dependencies: the `Backend` trait,
//! request validation, the local engine for GGUF models (Wick's own forward
//! passes and kernels for llama-family files and Gemma 3, Candle for other
//! tensor types; the architecture, tokenizer and chat template read from the
//! file's metadata; sampling, UTF-8-safe streaming, worker threads off the
//! async runtime), the remote HTTP backends, and a scripted backend for tests.

pub mod backend;
pub mod engine;
mod fit;
pub mod gemma3;
pub mod gguf;
mod kernels;
mod llama;
mod memory;
mod model;
pub mod remote;
pub mod request;
pub mod sampler;
mod schedule;
pub mod scripted;
pub mod stop;
mod team;
pub mod template;
pub mod tokenizer;

pub use backend::{
    Backend, CancelHandle, Event, Failure, FailureKind, FinishReason, Generation, RequestError,
    Usage,
};
pub use engine::{EngineConfig, LocalEngine, ModelInfo};
pub use request::{ChatMessage, GenerationRequest, Params, Priority, Prompt, ValidationError};

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why a model could not be loaded or configured (at start-up), or why its
/// engine failed while computing (wrapped in [`RequestError::Engine`] then);
/// each message says what was wrong and where. What one request did wrong is
/// a [`RequestError`].
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("model file {path} does not exist (run `make model` to fetch the default model)")]
    ModelMissing { path: PathBuf },
    #[error("model file {path} could not be read: {source}")]
    ModelUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model file {path} is not a GGUF file: {detail}")]
    NotGguf { path: PathBuf, detail: String },
    #[error("model architecture {0:?} (general.architecture) is not supported; supported: llama, gemma3")]
    UnsupportedArchitecture(String),
    #[error("the model file has no {0} metadata")]
    MissingMetadata(String),
    #[error("the model file's {0} metadata is malformed: {1}")]
    BadMetadata(String, String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
    #[error("model computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("could not start the model's threads: {0}")]
    Threads(String),
    #[error("could not map the model file into memory: {0}")]
    MapFile(std::io::Error),
    #[error(
        "{tokens} tokens at position {position} do not fit the {context} positions of the model"
    )]
    Positions {
        tokens: usize,
        position: usize,
        context: usize,
    },
    #[error("token id {0} is outside the vocabulary")]
    TokenOutOfRange(usize),
    #[error("{0}")]
    Unsupported(String),
    #[error("remote model {model}: {detail}")]
    RemoteConfig { model: String, detail: String },
}

/// Opens a model file, telling a missing file (with a hint) from an unreadable one.
pub(crate) fn open_model_file(path: &Path) -> Result<File, InferenceError> {
    File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => InferenceError::ModelMissing {
            path: path.to_owned(),
        },
        _ => InferenceError::ModelUnreadable {
            path: path.to_owned(),
            source,
        },
    })
}

/// A local GGUF model file that exists and carries the GGUF magic bytes.
#[derive(Debug, Clone)]
pub struct LocalModel {
    pub path: PathBuf,
    /// The file name without `.gguf`, shown to users until the model's own metadata is read.
    pub name: String,
    pub size_bytes: u64,
}

impl LocalModel {
    /// A file name written for reading, as the chat shows a local model that
    /// the models file gives no name: `SmolLM2-135M-Instruct.Q4_1` is
    /// "SmolLM2 135M Instruct (Q4_1)". (The GGUF's `general.name` is often a
    /// training run's label — SmolLM2's is "Smollm2 135M 8k Lc100K Mix1 Ep2".)
    pub fn display_name(file_stem: &str) -> String {
        // llama.cpp's quantization names: Q4_1, Q4_K_M, IQ3_XS, F16, BF16, F32.
        let is_quant = |part: &str| {
            let p = part.to_ascii_uppercase();
            let digit_after = |prefix: &str| {
                p.strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            };
            digit_after("Q") || digit_after("IQ") || ["F16", "BF16", "F32"].contains(&p.as_str())
        };
        let (base, quant) = match file_stem.rsplit_once(['.', '-']) {
            Some((base, quant)) if is_quant(quant) => (base, Some(quant.to_ascii_uppercase())),
            _ => (file_stem, None),
        };
        let words = base.replace(['-', '_'], " ");
        let words = words.split_whitespace().collect::<Vec<_>>().join(" ");
        match quant {
            Some(q) if !words.is_empty() => format!("{words} ({q})"),
            _ => file_stem.to_owned(),
        }
    }

    /// Checks that `path` is a readable GGUF file; reads only its first four bytes.
    pub fn open(path: &Path) -> Result<Self, InferenceError> {
        let unreadable = |source| InferenceError::ModelUnreadable {
            path: path.to_owned(),
            source,
        };
        let mut file = open_model_file(path)?;
        let size_bytes = file.metadata().map_err(unreadable)?.len();
        let mut magic = [0u8; 4];
        if file.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
            return Err(InferenceError::NotGguf {
                path: path.to_owned(),
                detail: "it does not start with the bytes `GGUF`".into(),
            });
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Ok(Self {
            path: path.to_owned(),
            name,
            size_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_file(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        File::create(&path).unwrap().write_all(bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn accepts_a_file_with_the_gguf_magic() {
        let (_d, path) = temp_file(b"GGUF\x03\x00\x00\x00rest");
        let m = LocalModel::open(&path).unwrap();
        assert_eq!(m.name, "m");
        assert_eq!(m.size_bytes, 12);
    }

    #[test]
    fn rejects_other_files_and_missing_ones_with_the_path() {
        let (_d, path) = temp_file(b"PK\x03\x04zip");
        let err = LocalModel::open(&path).unwrap_err().to_string();
        assert!(err.contains("not a GGUF file"), "{err}");
        assert!(err.contains("m.gguf"), "{err}");

        let missing = path.with_file_name("nope.gguf");
        let err = LocalModel::open(&missing).unwrap_err().to_string();
        assert!(
            err.contains("does not exist") && err.contains("nope.gguf"),
            "{err}"
        );
    }

    #[test]
    fn file_names_are_written_for_reading() {
        for (stem, name) in [
            ("SmolLM2-135M-Instruct.Q4_1", "SmolLM2 135M Instruct (Q4_1)"),
            ("gemma-3-270m-q4_k_m", "gemma 3 270m (Q4_K_M)"),
            (
                "mistral-7b-instruct-v0.2.Q8_0",
                "mistral 7b instruct v0.2 (Q8_0)",
            ),
            ("tiny_model-f16", "tiny model (F16)"),
            // No quantization in the name: the name as it is.
            ("my-model", "my-model"),
        ] {
            assert_eq!(LocalModel::display_name(stem), name, "{stem}");
        }
    }
}
