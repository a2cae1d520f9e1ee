//! Reading a GGUF file's metadata and choosing the model class from it (the
//! "Auto class" idea: the file says what it is, we pick the implementation).

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama;

use crate::gemma3::Gemma3;
use crate::llama::{self, Llama};
use crate::model::CausalLm;
use crate::InferenceError;

/// Architectures Wick can run, by `general.architecture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Llama and its family (SmolLM2, TinyLlama, Mistral).
    Llama,
    /// Google's Gemma 3.
    Gemma3,
}

impl Architecture {
    pub fn from_gguf_name(name: &str) -> Result<Self, InferenceError> {
        match name {
            "llama" => Ok(Self::Llama),
            "gemma3" => Ok(Self::Gemma3),
            other => Err(InferenceError::UnsupportedArchitecture(other.to_owned())),
        }
    }
}

/// Typed access to the metadata of an open GGUF file.
pub struct Metadata<'a>(pub &'a HashMap<String, Value>);

impl Metadata<'_> {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    pub fn string(&self, key: &str) -> Option<String> {
        self.get(key).and_then(|v| v.to_string().ok()).cloned()
    }

    /// An unsigned integer of any stored width.
    pub fn usize(&self, key: &str) -> Option<usize> {
        let v = self.get(key)?;
        v.to_u32()
            .map(|n| n as usize)
            .or_else(|_| v.to_u64().map(|n| n as usize))
            .or_else(|_| v.to_i32().map(|n| n as usize))
            .ok()
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(|v| v.to_bool().ok())
    }

    pub fn strings(&self, key: &str) -> Result<Vec<String>, InferenceError> {
        let values = self
            .get(key)
            .ok_or_else(|| InferenceError::MissingMetadata(key.to_owned()))?
            .to_vec()
            .map_err(|e| InferenceError::BadMetadata(key.to_owned(), e.to_string()))?;
        values
            .iter()
            .map(|v| {
                v.to_string()
                    .cloned()
                    .map_err(|e| InferenceError::BadMetadata(key.to_owned(), e.to_string()))
            })
            .collect()
    }

    pub fn ints(&self, key: &str) -> Option<Vec<i64>> {
        let values = self.get(key)?.to_vec().ok()?;
        values
            .iter()
            .map(|v| {
                v.to_i32()
                    .map(i64::from)
                    .or_else(|_| v.to_u32().map(i64::from))
                    .ok()
            })
            .collect()
    }
}

/// The network itself, behind one forward function.
pub enum Weights {
    /// Wick's own engine: Gemma 3, and llama-family files whose matrices are
    /// all in the formats of its kernels.
    Native(Box<dyn CausalLm>),
    /// Candle's quantized llama, for llama-family files with other tensor types.
    Candle(Box<quantized_llama::ModelWeights>),
}

impl Weights {
    /// Logits for the last position of `tokens`, placed at `position` in the sequence.
    /// Position 0 starts a new sequence (the cache is replaced).
    pub fn forward(&mut self, tokens: &[u32], position: usize) -> Result<Tensor, InferenceError> {
        let logits = match self {
            Weights::Native(m) => m.forward(tokens, position)?,
            Weights::Candle(m) => {
                let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
                return Ok(m.forward(&input, position)?.squeeze(0)?);
            }
        };
        let n = logits.len();
        Ok(Tensor::from_vec(logits, n, &Device::Cpu)?)
    }
}

/// A loaded GGUF model: its weights and what its metadata says about it.
pub struct LoadedGguf {
    pub architecture: Architecture,
    pub name: String,
    /// The usable context: the file's declared length, capped by the implementation.
    pub context_length: usize,
    pub weights: Weights,
    pub metadata: HashMap<String, Value>,
}

/// Opens a GGUF, reads `general.architecture` and loads the matching model,
/// which computes on `threads` threads.
pub fn load(path: &Path, threads: usize) -> Result<LoadedGguf, InferenceError> {
    let mut file = crate::open_model_file(path)?;
    let content = Content::read(&mut file).map_err(|e| InferenceError::NotGguf {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    let md = Metadata(&content.metadata);
    let arch_name = md
        .string("general.architecture")
        .ok_or_else(|| InferenceError::MissingMetadata("general.architecture".into()))?;
    let architecture = Architecture::from_gguf_name(&arch_name)?;
    let declared = md
        .usize(&format!("{arch_name}.context_length"))
        .unwrap_or(2048);

    let name = md.string("general.name").unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let metadata = content.metadata.clone();
    let (weights, context_length) = match architecture {
        Architecture::Gemma3 => {
            let model = Gemma3::load(&content, &mut file, threads)?;
            let n = model.context_length();
            (Weights::Native(Box::new(model)), n)
        }
        Architecture::Llama => match llama::unsupported(&content) {
            None => {
                let model = Llama::load(&content, &file, threads)?;
                let n = model.context_length();
                (Weights::Native(Box::new(model)), n)
            }
            Some(why) => {
                tracing::info!("running {} on candle: {why}", path.display());
                let model =
                    quantized_llama::ModelWeights::from_gguf(content, &mut file, &Device::Cpu)?;
                // Candle's quantized llama precomputes rotary tables for 4096 positions.
                (
                    Weights::Candle(Box::new(model)),
                    declared.min(quantized_llama::MAX_SEQ_LEN),
                )
            }
        },
    };
    Ok(LoadedGguf {
        architecture,
        name,
        context_length,
        weights,
        metadata,
    })
}

/// The chat template a GGUF carries (`tokenizer.chat_template`), reading only
/// its metadata: for remote servers that run the same model and need the
/// prompt rendered here.
pub fn chat_template(path: &Path) -> Result<Option<String>, InferenceError> {
    let mut file = crate::open_model_file(path)?;
    let content = Content::read(&mut file).map_err(|e| InferenceError::NotGguf {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    Ok(Metadata(&content.metadata).string("tokenizer.chat_template"))
}
