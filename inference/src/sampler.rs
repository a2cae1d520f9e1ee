//! Choosing the next token from the logits: greedy or sampled, with a
//! repetition penalty over the latest tokens.

use candle_core::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::utils::apply_repeat_penalty;

use crate::request::Params;
use crate::InferenceError;

pub struct Sampler {
    processor: LogitsProcessor,
    penalty: f32,
    last_n: usize,
}

impl Sampler {
    pub fn new(params: &Params) -> Self {
        let temperature = params.temperature;
        let sampling = if temperature == 0.0 {
            Sampling::ArgMax
        } else {
            match (params.top_k, params.top_p) {
                (None, None) => Sampling::All { temperature },
                (Some(k), None) => Sampling::TopK { k, temperature },
                (None, Some(p)) => Sampling::TopP { p, temperature },
                (Some(k), Some(p)) => Sampling::TopKThenTopP { k, p, temperature },
            }
        };
        Self {
            processor: LogitsProcessor::from_sampling(params.seed, sampling),
            penalty: params.repetition_penalty,
            last_n: params.repeat_last_n,
        }
    }

    /// The next token; `history` is every token so far (prompt and reply), of
    /// which the last `repeat_last_n` are penalised.
    pub fn sample(&mut self, logits: &Tensor, history: &[u32]) -> Result<u32, InferenceError> {
        let logits = if self.penalty != 1.0 && self.last_n > 0 {
            let start = history.len().saturating_sub(self.last_n);
            apply_repeat_penalty(logits, self.penalty, &history[start..])?
        } else {
            logits.clone()
        };
        Ok(self.processor.sample(&logits)?)
    }
}
