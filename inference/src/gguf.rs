//! Reading a GGUF file's metadata and choosing the model class from it (the
//! "Auto class" idea: the file says what it is, we pick the implementation).

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama;

use crate::gemma3::Gemma3;
use crate::llama::{self, Llama};
use crate::model::{CausalLm, Segment, SequenceCache};
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

/// What one sequence has read so far.
pub enum Sequence {
    /// Its KV cache, kept outside the model (Wick's engine).
    Native(SequenceCache),
    /// Candle keeps the cache of its one sequence inside the model: a new
    /// sequence starts at position 0 and replaces it.
    Candle,
}

impl Sequence {
    /// The memory its cache holds.
    pub fn bytes(&self) -> usize {
        match self {
            Sequence::Native(cache) => cache.bytes(),
            Sequence::Candle => 0,
        }
    }

    /// The memory one position takes (0 on candle, whose cache is the model's).
    pub fn bytes_per_position(&self) -> usize {
        match self {
            Sequence::Native(cache) => cache.bytes_per_position(),
            Sequence::Candle => 0,
        }
    }

    /// A new sequence holding a copy of this one's first `positions`
    /// positions, where its cache is kept outside the model.
    pub fn copy_prefix(&self, positions: usize) -> Option<Self> {
        match self {
            Sequence::Native(cache) => Some(Sequence::Native(cache.copy_prefix(positions))),
            Sequence::Candle => None,
        }
    }
}

/// One sequence's tokens in a batch, from `position` on.
pub struct Step<'a> {
    pub sequence: &'a mut Sequence,
    pub tokens: &'a [u32],
    pub position: usize,
}

impl Weights {
    /// A new, empty sequence.
    pub fn new_sequence(&self) -> Sequence {
        match self {
            Weights::Native(m) => Sequence::Native(m.new_cache()),
            Weights::Candle(_) => Sequence::Candle,
        }
    }

    /// Whether several sequences can run in one batch and be kept between
    /// requests (Wick's engine); candle runs one sequence at a time.
    pub fn batches(&self) -> bool {
        matches!(self, Weights::Native(_))
    }

    /// Logits for the last position of `tokens`, placed at `position` in `sequence`.
    pub fn forward(
        &mut self,
        sequence: &mut Sequence,
        tokens: &[u32],
        position: usize,
    ) -> Result<Tensor, InferenceError> {
        let mut batch = [Step {
            sequence,
            tokens,
            position,
        }];
        let mut logits = self.forward_batch(&mut batch)?;
        Ok(logits.remove(0))
    }

    /// The logits after each step's last token, all steps in one pass (on
    /// candle, a batch is one step).
    pub fn forward_batch(&mut self, batch: &mut [Step<'_>]) -> Result<Vec<Tensor>, InferenceError> {
        let to_tensor = |logits: Vec<f32>| {
            let n = logits.len();
            Tensor::from_vec(logits, n, &Device::Cpu)
        };
        match self {
            Weights::Native(m) => {
                let mut segments = Vec::with_capacity(batch.len());
                for step in batch.iter_mut() {
                    let Sequence::Native(cache) = &mut *step.sequence else {
                        return Err(InferenceError::Unsupported(
                            "a candle sequence was given to Wick's engine".into(),
                        ));
                    };
                    segments.push(Segment {
                        cache,
                        tokens: step.tokens,
                        position: step.position,
                    });
                }
                let logits = m.forward(&mut segments)?;
                Ok(logits
                    .into_iter()
                    .map(to_tensor)
                    .collect::<Result<_, _>>()?)
            }
            Weights::Candle(m) => {
                let [step] = batch else {
                    return Err(InferenceError::Unsupported(
                        "candle runs one sequence at a time".into(),
                    ));
                };
                let input = Tensor::new(step.tokens, &Device::Cpu)?.unsqueeze(0)?;
                Ok(vec![m.forward(&input, step.position)?.squeeze(0)?])
            }
        }
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
