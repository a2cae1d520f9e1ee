//! Gemma 3, the second architecture: the same parts as Wick's llama engine
//! (matrices read in place from the mapped file, f16 KV cache, ggml's
//! attention order; see [`crate::model`]) plus what Gemma adds — embeddings
//! scaled by √dim, RMS norms on queries and keys and after attention and
//! feed-forward, NeoX rotary embeddings with a local base on sliding-window
//! layers, GELU — following llama.cpp's `gemma3` graph.
//!
//! Matrices in a format Wick's kernels do not have run through candle's
//! quantized matrix product, matrix by matrix (none in the Q4_K_M file, whose
//! Q5_0, Q8_0, Q4_K and Q6_K matrices all run on Wick's kernels).
//! candle's own `quantized_gemma3` is not used: in candle 0.11.1 it applies
//! SiLU where Gemma uses GELU, skips the sliding window when decoding, and
//! precomputes rotary tables for 131072 positions in every layer.

use std::fs::File;

use candle_core::quantized::gguf_file::Content;
use memmap2::Mmap;

use crate::gguf::Metadata;
use crate::kernels;
use crate::model::attention::{attend, rope_and_store, Heads};
use crate::model::linear::{forward_many, matmuls, Job, Linear};
use crate::model::rope::Rope;
use crate::model::tensors::{Matrix, TensorFile};
use crate::model::{for_rows, map_file, BatchRows, CausalLm, Cpu, Segment, SequenceCache};
use crate::InferenceError;

/// Gemma 3 27B's number of layers. llama.cpp tells the 27B model by it
/// (`LLM_TYPE_27B`) and scales its queries by `1/√(dim / heads)` instead of
/// `1/√head_dim` (the two differ there: 5376 / 32 = 168, head_dim 128).
const GEMMA3_27B_LAYERS: usize = 62;

struct Layer {
    attn_norm: Vec<f32>,
    q: Linear,
    k: Linear,
    v: Linear,
    q_norm: Vec<f32>,
    k_norm: Vec<f32>,
    o: Linear,
    post_attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    gate: Linear,
    up: Linear,
    down: Linear,
    post_ffn_norm: Vec<f32>,
    /// Sliding-window layers see 512 positions back and use the local rotary base.
    sliding: bool,
}

pub struct Gemma3 {
    cpu: Cpu,
    map: Mmap,
    dim: usize,
    ffn: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    eps: f32,
    rope_global: f32,
    rope_local: f32,
    window: usize,
    query_scale: f32,
    softcap: Option<f32>,
    context: usize,
    embedding: Matrix,
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    output: Matrix,
}

impl Gemma3 {
    pub fn load(
        content: &Content,
        reader: &mut File,
        threads: usize,
    ) -> Result<Self, InferenceError> {
        let map = map_file(reader)?;
        let md = Metadata(&content.metadata);
        let need = |key: &str| {
            md.usize(&format!("gemma3.{key}"))
                .ok_or_else(|| InferenceError::MissingMetadata(format!("gemma3.{key}")))
        };
        let float = |key: &str| {
            md.get(&format!("gemma3.{key}"))
                .and_then(|v| v.to_f32().ok())
        };
        let dim = need("embedding_length")?;
        let heads = need("attention.head_count")?;
        let kv_heads = md.usize("gemma3.attention.head_count_kv").unwrap_or(heads);
        let head_dim = need("attention.key_length")?;
        let blocks = need("block_count")?;
        let context = md.usize("gemma3.context_length").unwrap_or(32768);
        // llama.cpp: every sixth layer is global, the others slide; the 27B
        // model scales queries by its embedding width per head instead.
        let pattern = md
            .usize("gemma3.attention.sliding_window_pattern")
            .unwrap_or(6);
        let query_scale = if blocks == GEMMA3_27B_LAYERS {
            1.0 / ((dim / heads) as f32).sqrt()
        } else {
            1.0 / (head_dim as f32).sqrt()
        };

        let file = TensorFile { content, map: &map };
        let mut layers = Vec::with_capacity(blocks);
        for i in 0..blocks {
            let p = format!("blk.{i}");
            let mut weight =
                |name: &str| Linear::load(&file, reader, &format!("{p}.{name}.weight"));
            let (q, k, v, o) = (
                weight("attn_q")?,
                weight("attn_k")?,
                weight("attn_v")?,
                weight("attn_output")?,
            );
            let (gate, up, down) = (weight("ffn_gate")?, weight("ffn_up")?, weight("ffn_down")?);
            let vector = |name: &str| file.vector(&format!("{p}.{name}.weight"));
            layers.push(Layer {
                attn_norm: vector("attn_norm")?,
                q,
                k,
                v,
                q_norm: vector("attn_q_norm")?,
                k_norm: vector("attn_k_norm")?,
                o,
                post_attn_norm: vector("post_attention_norm")?,
                ffn_norm: vector("ffn_norm")?,
                gate,
                up,
                down,
                post_ffn_norm: vector("post_ffw_norm")?,
                sliding: i % pattern < pattern - 1,
            });
        }
        Ok(Self {
            dim,
            ffn: need("feed_forward_length")?,
            heads,
            kv_heads,
            head_dim,
            eps: float("attention.layer_norm_rms_epsilon").unwrap_or(1e-6),
            rope_global: float("rope.freq_base").unwrap_or(1_000_000.0),
            rope_local: float("rope.freq_base_swa").unwrap_or(10_000.0),
            window: need("attention.sliding_window")?,
            query_scale,
            softcap: float("final_logit_softcapping").filter(|c| *c != 0.0),
            context,
            embedding: file.matrix("token_embd.weight")?,
            output: file.output()?,
            output_norm: file.vector("output_norm.weight")?,
            layers,
            map,
            cpu: Cpu::new(threads)?,
        })
    }
}

impl CausalLm for Gemma3 {
    fn context_length(&self) -> usize {
        self.context
    }

    fn new_cache(&self) -> SequenceCache {
        SequenceCache::new(
            self.layers.len(),
            self.context,
            self.kv_heads * self.head_dim,
        )
    }

    fn forward(&mut self, batch: &mut [Segment<'_>]) -> Result<Vec<Vec<f32>>, InferenceError> {
        let mut rows = BatchRows::of(batch, self.context)?;
        let n = rows.total;
        let map: &[u8] = &self.map;
        let (dim, hd) = (self.dim, self.head_dim);
        let q_dim = self.heads * hd;
        let eps = self.eps;
        // Each row normed on its own, the rows spread over the team.
        let norm_rows = |cpu: &mut Cpu, x: &[f32], w: &[f32], width: usize| -> Vec<f32> {
            let mut out = vec![0f32; x.len()];
            for_rows(cpu, &mut out, width, &|t, o| {
                kernels::rms_norm(&x[t * width..(t + 1) * width], w, eps, o);
            });
            out
        };

        let mut x = vec![0f32; n * dim];
        let scale = (dim as f32).sqrt();
        for (t, &token) in batch.iter().flat_map(|s| s.tokens).enumerate() {
            let row = &mut x[t * dim..(t + 1) * dim];
            self.embedding.dequantize_row(map, token as usize, row)?;
            row.iter_mut().for_each(|v| *v *= scale);
        }
        let rope = |base: f32| -> Vec<Rope> {
            batch
                .iter()
                .map(|s| Rope::new(hd, base, true, s.position, s.tokens.len()))
                .collect()
        };
        let (global, local) = (rope(self.rope_global), rope(self.rope_local));
        let layer_count = self.layers.len();
        for (li, layer) in self.layers.iter().enumerate() {
            let normed = norm_rows(&mut self.cpu, &x, &layer.attn_norm, dim);
            let lengths = &rows.lengths;
            let [q, k, v]: [Vec<f32>; 3] = forward_many(
                &mut self.cpu,
                map,
                &[&layer.q, &layer.k, &layer.v],
                &normed,
                lengths,
                dim,
            )?
            .try_into()
            .expect("three products");
            let mut q = norm_rows(&mut self.cpu, &q, &layer.q_norm, hd);
            let mut k = norm_rows(&mut self.cpu, &k, &layer.k_norm, hd);
            let ropes = if layer.sliding { &local } else { &global };
            // The queries are scaled here (`query_scale`), not in the attention.
            let heads = Heads {
                heads: self.heads,
                kv_heads: self.kv_heads,
                head_dim: hd,
                scale: 1.0,
                window: layer.sliding.then_some(self.window),
            };
            rope_and_store(batch, &rows, li, &heads, ropes, &mut q, &mut k, &v);
            q.iter_mut().for_each(|v| *v *= self.query_scale);
            let attn = attend(&mut self.cpu, &heads, batch, li, &q);
            let mut o = layer.o.forward(&mut self.cpu, map, &attn, lengths, q_dim)?;
            // After the attention's output matrix (as llama.cpp does: the number
            // of rows decides how some matrices are computed), the last layer
            // goes on with each segment's last token alone: it alone gives logits.
            if li + 1 == layer_count {
                rows.keep_last(&mut o, dim);
                rows.keep_last(&mut x, dim);
                rows = rows.last_rows();
            }
            let o = norm_rows(&mut self.cpu, &o, &layer.post_attn_norm, dim);
            for (x, o) in x.iter_mut().zip(&o) {
                *x += o;
            }

            let lengths = &rows.lengths;
            let normed = norm_rows(&mut self.cpu, &x, &layer.ffn_norm, dim);
            let [gate, up]: [Vec<f32>; 2] = forward_many(
                &mut self.cpu,
                map,
                &[&layer.gate, &layer.up],
                &normed,
                lengths,
                dim,
            )?
            .try_into()
            .expect("two products");
            let mut h = vec![0f32; rows.total * self.ffn];
            let ffn = self.ffn;
            for_rows(&mut self.cpu, &mut h, ffn, &|t, h| {
                let r = t * ffn..(t + 1) * ffn;
                kernels::geglu(&gate[r.clone()], &up[r], h);
            });
            let down = layer
                .down
                .forward(&mut self.cpu, map, &h, lengths, self.ffn)?;
            let down = norm_rows(&mut self.cpu, &down, &layer.post_ffn_norm, dim);
            for (x, d) in x.iter_mut().zip(&down) {
                *x += d;
            }
        }
        // `x` now holds each segment's last row.
        let m = batch.len();
        let normed = norm_rows(&mut self.cpu, &x, &self.output_norm, dim);
        let a = self
            .cpu
            .kernels
            .quantize(self.output.ty.activation_type(), &normed, m, dim)
            .grouped(&vec![1; m]);
        let vocab = self.output.rows;
        let mut logits = vec![0f32; m * vocab];
        matmuls(
            &mut self.cpu,
            map,
            &mut [Job::new(&self.output, &a, &mut logits)],
        );
        if let Some(cap) = self.softcap {
            logits
                .iter_mut()
                .for_each(|l| *l = (*l * (1.0 / cap)).tanh() * cap);
        }
        Ok(logits.chunks_exact(vocab).map(<[f32]>::to_vec).collect())
    }
}
