//! Wick's own engine for llama-family GGUF models (SmolLM2, TinyLlama,
//! Mistral, …) whose matrices are all in the formats of Wick's kernels
//! (Q4_1, Q8_0, Q5_0, Q4_K, Q6_K; see `crate::kernels::WeightType`).
//!
//! Why not candle's `quantized_llama` for these: candle 0.11 has no SIMD path
//! for Q4_1, grows its KV cache by concatenation every token, keeps the
//! embedding table twice and stops at 4096 positions. Here the weights stay in
//! the memory-mapped file, the KV cache is allocated once (in f16, like
//! llama.cpp's), each matrix product runs on all threads with Wick's kernels,
//! and the arithmetic follows ggml's so that greedy decoding picks llama.cpp's
//! tokens. Files with other tensor types still run on candle, as a whole
//! model (see [`crate::gguf`]).

use std::fs::File;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::GgmlDType;
use memmap2::Mmap;

use crate::gguf::Metadata;
use crate::kernels;
use crate::model::attention::{attend, rope_and_store, Heads};
use crate::model::linear::{find, matmuls, quantized_for, Job};
use crate::model::rope::Rope;
use crate::model::tensors::{weight_type, Matrix, TensorFile};
use crate::model::{for_rows, map_file, BatchRows, CausalLm, Cpu, Segment, SequenceCache};
use crate::InferenceError;

struct Layer {
    attn_norm: Vec<f32>,
    q: Matrix,
    k: Matrix,
    v: Matrix,
    o: Matrix,
    ffn_norm: Vec<f32>,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
}

struct Config {
    dim: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    ffn: usize,
    vocab: usize,
    rope_dims: usize,
    rope_base: f32,
    eps: f32,
    context: usize,
}

pub struct Llama {
    cpu: Cpu,
    map: Mmap,
    config: Config,
    embedding: Matrix,
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    output: Matrix,
}

/// Why a llama-family file cannot run on this engine (then candle runs it), if it cannot.
pub fn unsupported(content: &Content) -> Option<String> {
    for (name, info) in &content.tensor_infos {
        let ok = match info.shape.dims().len() {
            1 => info.ggml_dtype == GgmlDType::F32,
            _ => weight_type(info.ggml_dtype).is_some(),
        };
        if !ok {
            return Some(format!("{name} is {:?}", info.ggml_dtype));
        }
        if name.ends_with(".bias") || name == "rope_freqs.weight" {
            return Some(format!("{name} is not used by this engine"));
        }
    }
    None
}

impl Llama {
    /// Maps `file` and reads the model that `content` (its header) describes.
    pub fn load(content: &Content, file: &File, threads: usize) -> Result<Self, InferenceError> {
        let map = map_file(file)?;
        let md = Metadata(&content.metadata);
        let need = |key: &str| {
            md.usize(&format!("llama.{key}"))
                .ok_or_else(|| InferenceError::MissingMetadata(format!("llama.{key}")))
        };
        let float = |key: &str| {
            md.get(&format!("llama.{key}"))
                .and_then(|v| v.to_f32().ok())
        };
        let dim = need("embedding_length")?;
        let heads = need("attention.head_count")?;
        let kv_heads = md.usize("llama.attention.head_count_kv").unwrap_or(heads);
        let head_dim = dim / heads;
        let config = Config {
            dim,
            heads,
            kv_heads,
            head_dim,
            ffn: need("feed_forward_length")?,
            vocab: 0,
            rope_dims: md.usize("llama.rope.dimension_count").unwrap_or(head_dim),
            rope_base: float("rope.freq_base").unwrap_or(10_000.0),
            eps: float("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            context: md.usize("llama.context_length").unwrap_or(2048),
        };
        let file = TensorFile { content, map: &map };
        let matrix = |name: &str| file.matrix(name);
        let vector = |name: &str| file.vector(name);
        let blocks = need("block_count")?;
        let mut layers = Vec::with_capacity(blocks);
        for i in 0..blocks {
            let p = format!("blk.{i}");
            layers.push(Layer {
                attn_norm: vector(&format!("{p}.attn_norm.weight"))?,
                q: matrix(&format!("{p}.attn_q.weight"))?,
                k: matrix(&format!("{p}.attn_k.weight"))?,
                v: matrix(&format!("{p}.attn_v.weight"))?,
                o: matrix(&format!("{p}.attn_output.weight"))?,
                ffn_norm: vector(&format!("{p}.ffn_norm.weight"))?,
                gate: matrix(&format!("{p}.ffn_gate.weight"))?,
                up: matrix(&format!("{p}.ffn_up.weight"))?,
                down: matrix(&format!("{p}.ffn_down.weight"))?,
            });
        }
        let embedding = matrix("token_embd.weight")?;
        // Files with tied embeddings have no output matrix: the embedding is the output.
        let output = file.output()?;
        let config = Config {
            vocab: output.rows,
            ..config
        };
        Ok(Self {
            output_norm: vector("output_norm.weight")?,
            map,
            config,
            embedding,
            layers,
            output,
            cpu: Cpu::new(threads)?,
        })
    }
}

impl CausalLm for Llama {
    fn context_length(&self) -> usize {
        self.config.context
    }

    fn new_cache(&self) -> SequenceCache {
        let c = &self.config;
        SequenceCache::new(self.layers.len(), c.context, c.kv_heads * c.head_dim)
    }

    fn forward(&mut self, batch: &mut [Segment<'_>]) -> Result<Vec<Vec<f32>>, InferenceError> {
        let c = &self.config;
        let mut rows = BatchRows::of(batch, c.context)?;
        let n = rows.total;
        let map: &[u8] = &self.map;
        let (dim, kv_dim) = (c.dim, c.kv_heads * c.head_dim);

        let mut x = vec![0f32; n * dim];
        for (t, &token) in batch.iter().flat_map(|s| s.tokens).enumerate() {
            self.embedding
                .dequantize_row(map, token as usize, &mut x[t * dim..(t + 1) * dim])?;
        }
        let ropes: Vec<Rope> = batch
            .iter()
            .map(|s| Rope::new(c.rope_dims, c.rope_base, false, s.position, s.tokens.len()))
            .collect();
        let heads = Heads {
            heads: c.heads,
            kv_heads: c.kv_heads,
            head_dim: c.head_dim,
            scale: 1.0 / (c.head_dim as f32).sqrt(),
            window: None,
        };
        let mut normed = vec![0f32; n * dim];
        let layer_count = self.layers.len();
        for (li, layer) in self.layers.iter().enumerate() {
            // Attention.
            for t in 0..n {
                let r = t * dim..(t + 1) * dim;
                kernels::rms_norm(&x[r.clone()], &layer.attn_norm, c.eps, &mut normed[r]);
            }
            let mut q = vec![0f32; n * dim];
            let mut k = vec![0f32; n * kv_dim];
            let mut v = vec![0f32; n * kv_dim];
            {
                let a = quantized_for(
                    self.cpu.kernels,
                    layer.q.ty,
                    &[layer.k.ty, layer.v.ty],
                    &normed,
                    &rows.lengths,
                    dim,
                );
                matmuls(
                    &mut self.cpu,
                    map,
                    &mut [
                        Job::new(&layer.q, find(&a, &layer.q), &mut q),
                        Job::new(&layer.k, find(&a, &layer.k), &mut k),
                        Job::new(&layer.v, find(&a, &layer.v), &mut v),
                    ],
                );
            }
            rope_and_store(batch, &rows, li, &heads, &ropes, &mut q, &mut k, &v);
            let attn = attend(&mut self.cpu, &heads, batch, li, &q);
            let mut o = vec![0f32; n * dim];
            let a = self
                .cpu
                .kernels
                .quantize(layer.o.ty.activation_type(), &attn, n, dim)
                .grouped(&rows.lengths);
            matmuls(&mut self.cpu, map, &mut [Job::new(&layer.o, &a, &mut o)]);
            // After the attention's output matrix (as llama.cpp does: the number
            // of rows decides how some matrices are computed), the last layer
            // goes on with each segment's last token alone: it alone gives logits.
            if li + 1 == layer_count {
                rows.keep_last(&mut o, dim);
                rows.keep_last(&mut x, dim);
                rows = rows.last_rows();
                normed.truncate(rows.total * dim);
            }
            let m = rows.total;
            for (x, o) in x.iter_mut().zip(&o) {
                *x += o;
            }

            // Feed-forward.
            for t in 0..m {
                let r = t * dim..(t + 1) * dim;
                kernels::rms_norm(&x[r.clone()], &layer.ffn_norm, c.eps, &mut normed[r]);
            }
            let mut gate = vec![0f32; m * c.ffn];
            let mut up = vec![0f32; m * c.ffn];
            {
                let a = quantized_for(
                    self.cpu.kernels,
                    layer.gate.ty,
                    &[layer.up.ty],
                    &normed,
                    &rows.lengths,
                    dim,
                );
                matmuls(
                    &mut self.cpu,
                    map,
                    &mut [
                        Job::new(&layer.gate, find(&a, &layer.gate), &mut gate),
                        Job::new(&layer.up, find(&a, &layer.up), &mut up),
                    ],
                );
            }
            let mut h = vec![0f32; m * c.ffn];
            let ffn = c.ffn;
            for_rows(&mut self.cpu, &mut h, ffn, &|t, h| {
                let r = t * ffn..(t + 1) * ffn;
                kernels::swiglu(&gate[r.clone()], &up[r], h);
            });
            let mut down = vec![0f32; m * dim];
            let a = self
                .cpu
                .kernels
                .quantize(layer.down.ty.activation_type(), &h, m, c.ffn)
                .grouped(&rows.lengths);
            matmuls(
                &mut self.cpu,
                map,
                &mut [Job::new(&layer.down, &a, &mut down)],
            );
            for (x, d) in x.iter_mut().zip(&down) {
                *x += d;
            }
        }
        // `x` now holds each segment's last row.
        let m = batch.len();
        let mut normed = vec![0f32; m * dim];
        for t in 0..m {
            let r = t * dim..(t + 1) * dim;
            kernels::rms_norm(&x[r.clone()], &self.output_norm, c.eps, &mut normed[r]);
        }
        let mut logits = vec![0f32; m * c.vocab];
        let a = self
            .cpu
            .kernels
            .quantize(self.output.ty.activation_type(), &normed, m, dim)
            .grouped(&vec![1; m]);
        matmuls(
            &mut self.cpu,
            map,
            &mut [Job::new(&self.output, &a, &mut logits)],
        );
        Ok(logits.chunks_exact(c.vocab).map(<[f32]>::to_vec).collect())
    }
}
