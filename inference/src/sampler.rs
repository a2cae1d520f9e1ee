//! Choosing the next token from the logits: greedy or sampled, with a
//! repetition penalty over the latest tokens.
//!
//! Every value validation accepts is handled: a temperature or a top-p so
//! small that only the likeliest token could be drawn is greedy, and logits
//! that the temperature or the penalty would push past `f32`'s range are
//! decided greedily rather than turned into NaN.

use candle_core::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::utils::apply_repeat_penalty;

use crate::request::Params;
use crate::InferenceError;

/// Below this temperature sampling is greedy: the likeliest token's odds
/// over the next are e^(gap / temperature), certainty for any gap that is not
/// a rounding error (candle's own cut-off for "no temperature").
const GREEDY_BELOW: f64 = 1e-7;

pub struct Sampler {
    processor: LogitsProcessor,
    /// The temperature, when sampling; `None` is greedy.
    temperature: Option<f64>,
    penalty: f32,
    last_n: usize,
}

impl Sampler {
    pub fn new(params: &Params) -> Self {
        let temperature = params.temperature;
        // A top-p that rounds to 0 in f32 (candle's type for it) keeps only
        // the likeliest token: greedy. Candle would read 0 as "no top-p".
        let top_p_only_top = params.top_p.is_some_and(|p| p as f32 <= 0.0);
        // NaN (refused by validation) counts as greedy too.
        let sampled = temperature >= GREEDY_BELOW;
        let greedy = !sampled || top_p_only_top;
        let sampling = if greedy {
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
            temperature: (!greedy).then_some(temperature),
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
        if let Some(temperature) = self.temperature {
            let values: Vec<f32> = logits.to_vec1()?;
            // Candle divides by the temperature in f32 and then takes the
            // softmax: an infinite logit (a tiny penalty, a tiny temperature)
            // makes every probability NaN. Such a distribution is all on its
            // largest logit anyway.
            let largest = values.iter().fold(0f64, |m, v| m.max(f64::from(v.abs())));
            let finite = values.iter().all(|v| v.is_finite());
            if finite && largest / temperature < f64::from(f32::MAX) / 2.0 {
                if let Ok(token) = self.processor.sample(&logits) {
                    return Ok(token);
                }
            }
            return Ok(argmax(&values));
        }
        Ok(self.processor.sample(&logits)?)
    }
}

/// The index of the largest value, the first on a tie; NaN never wins.
fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] || values[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn logits(values: &[f32]) -> Tensor {
        Tensor::from_slice(values, values.len(), &Device::Cpu).unwrap()
    }

    /// Every extreme that validation lets through gives a token, never an
    /// error or a panic; the extremes that mean "only the likeliest token"
    /// give it. (Before: temperature 1e-300 failed with NaN weights, and
    /// top-p 1e-300 sampled from the whole distribution.)
    #[test]
    fn extreme_values_sample_without_failing() {
        let temperatures = [
            0.0,
            f64::from_bits(1), // the smallest subnormal
            f64::MIN_POSITIVE,
            1e-300,
            1e-30,
            1e-8,
            1e-7,
            1e-3,
            1.0,
            2.0,
        ];
        let top_ps = [
            None,
            Some(f64::MIN_POSITIVE),
            Some(1e-300),
            Some(1e-45),
            Some(1e-9),
            Some(0.5),
            Some(1.0),
        ];
        let top_ks = [None, Some(1), Some(2), Some(usize::MAX)];
        let penalties = [1.0f32, f32::MIN_POSITIVE, 1e-30, 10.0];
        let cases = [
            vec![1.0, 5.0, 2.0, -3.0],
            vec![30.0, 30.0, -30.0, 0.0],
            vec![f32::MAX, 0.0, -f32::MAX, 1.0],
            vec![0.0, 0.0, 0.0, 0.0],
        ];
        for &temperature in &temperatures {
            for &top_p in &top_ps {
                for &top_k in &top_ks {
                    for &repetition_penalty in &penalties {
                        let params = Params {
                            temperature,
                            top_p,
                            top_k,
                            repetition_penalty,
                            ..Params::default()
                        };
                        assert_eq!(params.validate(), Ok(()), "{params:?}");
                        let mut sampler = Sampler::new(&params);
                        for values in &cases {
                            let token = sampler
                                .sample(&logits(values), &[0, 1, 2])
                                .unwrap_or_else(|e| panic!("{params:?} {values:?}: {e}"));
                            assert!((token as usize) < values.len());
                            let only_top = temperature < 1e-7
                                || top_k == Some(1)
                                || top_p.is_some_and(|p| p < 1e-30);
                            if only_top && repetition_penalty == 1.0 {
                                assert_eq!(token, argmax(values), "{params:?} on {values:?}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn argmax_takes_the_first_largest_and_never_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5, 0.2]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, f32::INFINITY]), 1);
    }
}
