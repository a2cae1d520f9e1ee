//! Wick's own engine for llama-family GGUF models (SmolLM2, TinyLlama,
//! Mistral, …) whose matrices are Q4_1 or Q8_0.
//!
//! Why not candle's `quantized_llama` for these: candle 0.11 has no SIMD path
//! for Q4_1, grows its KV cache by concatenation every token, keeps the
//! embedding table twice and stops at 4096 positions. Here the weights stay in
//! the memory-mapped file, the KV cache is allocated once (in f16, like
//! llama.cpp's), each matrix product runs on all threads with the kernels of
//! [`crate::kernels`], and the arithmetic follows ggml's so that greedy
//! decoding picks llama.cpp's tokens. Files with other tensor types still run
//! on candle (see [`crate::gguf`]).

use std::fs::File;
use std::ops::Range;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::GgmlDType;
use memmap2::Mmap;

use crate::gguf::Metadata;
use crate::kernels::{self, Activations, WeightType};
use crate::team::Team;
use crate::InferenceError;

/// A matrix of `rows` quantized rows of `cols` values, inside the mapped file.
pub(crate) struct Matrix {
    pub(crate) ty: WeightType,
    offset: usize,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
}

impl Matrix {
    pub(crate) fn row_bytes(&self) -> usize {
        self.ty.row_bytes(self.cols)
    }

    pub(crate) fn bytes<'a>(&self, map: &'a [u8]) -> &'a [u8] {
        &map[self.offset..self.offset + self.rows * self.row_bytes()]
    }
}

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
    cache: KvCache,
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
    team: Team,
    map: Mmap,
    config: Config,
    embedding: Matrix,
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    output: Matrix,
}

pub(crate) fn weight_type(dtype: GgmlDType) -> Option<WeightType> {
    match dtype {
        GgmlDType::Q4_1 => Some(WeightType::Q4_1),
        GgmlDType::Q8_0 => Some(WeightType::Q8_0),
        GgmlDType::Q5_0 => Some(WeightType::Q5_0),
        GgmlDType::Q4K => Some(WeightType::Q4K),
        GgmlDType::Q6K => Some(WeightType::Q6K),
        _ => None,
    }
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

/// Maps a model file for reading its tensors in place.
pub(crate) fn map_file(file: &File) -> Result<Mmap, InferenceError> {
    // SAFETY: the model file is opened read-only and not modified while it
    // is in use, the same contract as llama.cpp's memory-mapped loading.
    unsafe { Mmap::map(file) }
        .map_err(|e| InferenceError::Worker(format!("mapping the model file: {e}")))
}

pub(crate) fn new_team(threads: usize) -> Result<Team, InferenceError> {
    Team::new(threads).map_err(|e| InferenceError::Worker(format!("starting model threads: {e}")))
}

/// The tensors of a mapped GGUF, found by name through its header.
pub(crate) struct TensorFile<'a> {
    pub(crate) content: &'a Content,
    pub(crate) map: &'a [u8],
}

impl TensorFile<'_> {
    fn info(
        &self,
        name: &str,
    ) -> Result<&candle_core::quantized::gguf_file::TensorInfo, InferenceError> {
        self.content
            .tensor_infos
            .get(name)
            .ok_or_else(|| InferenceError::MissingMetadata(format!("tensor {name}")))
    }

    /// A Q4_1 or Q8_0 matrix, read in place.
    pub(crate) fn matrix(&self, name: &str) -> Result<Matrix, InferenceError> {
        let info = self.info(name)?;
        let dims = info.shape.dims();
        let ty = weight_type(info.ggml_dtype).ok_or_else(|| {
            InferenceError::Unsupported(format!("{name} is {:?}", info.ggml_dtype))
        })?;
        // llama.cpp computes such Q4_K matrices in another order (see the type).
        let ty = if ty == WeightType::Q4K && dims[0] % 8 == 0 {
            WeightType::Q4KRows8
        } else {
            ty
        };
        let m = Matrix {
            ty,
            offset: self.content.tensor_data_offset as usize + info.offset as usize,
            rows: dims[0],
            cols: dims[1],
        };
        if !m.cols.is_multiple_of(ty.block_len())
            || m.offset + m.rows * m.row_bytes() > self.map.len()
        {
            return Err(InferenceError::BadMetadata(
                format!("tensor {name}"),
                "its size does not fit the file".into(),
            ));
        }
        Ok(m)
    }

    /// An f32 vector (a norm's weights), copied out.
    pub(crate) fn vector(&self, name: &str) -> Result<Vec<f32>, InferenceError> {
        let info = self.info(name)?;
        let start = self.content.tensor_data_offset as usize + info.offset as usize;
        let n = info.shape.elem_count();
        let bytes = self.map.get(start..start + 4 * n).ok_or_else(|| {
            InferenceError::BadMetadata(format!("tensor {name}"), "past the end of the file".into())
        })?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// The output matrix; files with tied embeddings have none, and the
    /// embedding table serves as the output.
    pub(crate) fn output(&self) -> Result<Matrix, InferenceError> {
        if self.content.tensor_infos.contains_key("output.weight") {
            self.matrix("output.weight")
        } else {
            self.matrix("token_embd.weight")
        }
    }
}

impl Matrix {
    /// Row `id` expanded to f32 (an embedding lookup).
    pub(crate) fn dequantize_row(
        &self,
        map: &[u8],
        id: usize,
        out: &mut [f32],
    ) -> Result<(), InferenceError> {
        if id >= self.rows {
            return Err(InferenceError::Worker(format!(
                "token id {id} is outside the vocabulary"
            )));
        }
        let row = &self.bytes(map)[id * self.row_bytes()..(id + 1) * self.row_bytes()];
        kernels::dequantize_row(self.ty, row, out);
        Ok(())
    }
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
        let kv_dim = kv_heads * head_dim;
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
                cache: KvCache::new(config.context, kv_dim),
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
            team: new_team(threads)?,
        })
    }

    /// The most positions this model handles: the file's declared context.
    pub fn context_length(&self) -> usize {
        self.config.context
    }

    /// Runs `tokens` placed from `position` on and returns the logits of the last.
    pub fn forward(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, InferenceError> {
        let c = &self.config;
        let n = tokens.len();
        if n == 0 || position + n > c.context {
            return Err(InferenceError::Worker(format!(
                "{n} tokens at position {position} do not fit the {} positions of the model",
                c.context
            )));
        }
        let map: &[u8] = &self.map;
        let (dim, kv_dim) = (c.dim, c.kv_heads * c.head_dim);

        let mut x = vec![0f32; n * dim];
        for (t, &token) in tokens.iter().enumerate() {
            self.embedding
                .dequantize_row(map, token as usize, &mut x[t * dim..(t + 1) * dim])?;
        }
        let rope = Rope::new(c.rope_dims, c.rope_base, false, position, n);
        let heads = Heads {
            heads: c.heads,
            kv_heads: c.kv_heads,
            head_dim: c.head_dim,
            scale: 1.0 / (c.head_dim as f32).sqrt(),
            window: None,
        };
        let mut normed = vec![0f32; n * dim];
        let layer_count = self.layers.len();
        for (li, layer) in self.layers.iter_mut().enumerate() {
            // Attention.
            for t in 0..n {
                let r = t * dim..(t + 1) * dim;
                kernels::rms_norm(&x[r.clone()], &layer.attn_norm, c.eps, &mut normed[r]);
            }
            let mut q = vec![0f32; n * dim];
            let mut k = vec![0f32; n * kv_dim];
            let mut v = vec![0f32; n * kv_dim];
            {
                let a = quantized_for(layer.q.ty, &[layer.k.ty, layer.v.ty], &normed, n, dim);
                matmuls(
                    &self.team,
                    map,
                    &mut [
                        Job::new(&layer.q, find(&a, &layer.q), &mut q),
                        Job::new(&layer.k, find(&a, &layer.k), &mut k),
                        Job::new(&layer.v, find(&a, &layer.v), &mut v),
                    ],
                );
            }
            for t in 0..n {
                rope.apply(t, &mut q[t * dim..(t + 1) * dim], c.heads, c.head_dim);
                rope.apply(
                    t,
                    &mut k[t * kv_dim..(t + 1) * kv_dim],
                    c.kv_heads,
                    c.head_dim,
                );
            }
            layer.cache.store(position, kv_dim, &k, &v);

            let attn = attention(&self.team, &heads, &layer.cache, &q, position, n);
            let mut o = vec![0f32; n * dim];
            let a = Activations::quantize(layer.o.ty.activation_type(), &attn, n, dim);
            matmuls(&self.team, map, &mut [Job::new(&layer.o, &a, &mut o)]);
            // After the attention's output matrix (as llama.cpp does: the number
            // of rows decides how some matrices are computed), the last layer
            // goes on with the last token alone: it alone gives logits.
            let first = if li + 1 == layer_count { n - 1 } else { 0 };
            let rows = n - first;
            if first > 0 {
                o.drain(..first * dim);
                x.drain(..first * dim);
                normed.truncate(rows * dim);
            }
            for (x, o) in x.iter_mut().zip(&o) {
                *x += o;
            }

            // Feed-forward.
            for t in 0..rows {
                let r = t * dim..(t + 1) * dim;
                kernels::rms_norm(&x[r.clone()], &layer.ffn_norm, c.eps, &mut normed[r]);
            }
            let mut gate = vec![0f32; rows * c.ffn];
            let mut up = vec![0f32; rows * c.ffn];
            {
                let a = quantized_for(layer.gate.ty, &[layer.up.ty], &normed, rows, dim);
                matmuls(
                    &self.team,
                    map,
                    &mut [
                        Job::new(&layer.gate, find(&a, &layer.gate), &mut gate),
                        Job::new(&layer.up, find(&a, &layer.up), &mut up),
                    ],
                );
            }
            let mut h = vec![0f32; rows * c.ffn];
            kernels::swiglu(&gate, &up, &mut h);
            let mut down = vec![0f32; rows * dim];
            let a = Activations::quantize(layer.down.ty.activation_type(), &h, rows, c.ffn);
            matmuls(&self.team, map, &mut [Job::new(&layer.down, &a, &mut down)]);
            for (x, d) in x.iter_mut().zip(&down) {
                *x += d;
            }
        }
        let last = &x[x.len() - dim..];
        let mut normed = vec![0f32; dim];
        kernels::rms_norm(last, &self.output_norm, c.eps, &mut normed);
        let mut logits = vec![0f32; c.vocab];
        let a = Activations::quantize(self.output.ty.activation_type(), &normed, 1, dim);
        matmuls(
            &self.team,
            map,
            &mut [Job::new(&self.output, &a, &mut logits)],
        );
        Ok(logits)
    }
}

/// Rotary position embedding for a run of positions, with angles made as
/// ggml makes them: the position times `base^(-2/dims)` raised step by step,
/// then `cosf`/`sinf`.
pub(crate) struct Rope {
    /// `[token][pair] -> (cos, sin)`
    table: Vec<(f32, f32)>,
    pairs: usize,
    /// NeoX style (Gemma): pair `i` is `(i, i + dims/2)`; otherwise adjacent values.
    neox: bool,
}

impl Rope {
    pub(crate) fn new(dims: usize, base: f32, neox: bool, position: usize, n: usize) -> Self {
        let pairs = dims / 2;
        let theta_scale = base.powf(-2.0 / dims as f32);
        let mut table = Vec::with_capacity(n * pairs);
        for t in 0..n {
            let mut theta = (position + t) as f32;
            for _ in 0..pairs {
                table.push((theta.cos(), theta.sin()));
                theta *= theta_scale;
            }
        }
        Self { table, pairs, neox }
    }

    /// Rotates every head of token `t`'s vector `x`.
    pub(crate) fn apply(&self, t: usize, x: &mut [f32], heads: usize, head_dim: usize) {
        let angles = &self.table[t * self.pairs..(t + 1) * self.pairs];
        let (stride, offset) = if self.neox { (1, self.pairs) } else { (2, 1) };
        for h in 0..heads {
            let head = &mut x[h * head_dim..(h + 1) * head_dim];
            for (i, (cos, sin)) in angles.iter().enumerate() {
                let (a, b) = (i * stride, i * stride + offset);
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0.mul_add(*cos, -(x1 * sin));
                head[b] = x0.mul_add(*sin, x1 * cos);
            }
        }
    }
}

/// A layer's keys and values for every position so far, `[position][kv_dim]`,
/// as f16 bits like llama.cpp's cache. Zeroed allocations are not backed by
/// memory until written, so the whole window costs only what is used.
pub(crate) struct KvCache {
    pub(crate) k: Vec<u16>,
    pub(crate) v: Vec<u16>,
}

impl KvCache {
    pub(crate) fn new(positions: usize, kv_dim: usize) -> Self {
        Self {
            k: vec![0; positions * kv_dim],
            v: vec![0; positions * kv_dim],
        }
    }

    /// Stores the keys and values of `k.len() / kv_dim` tokens from `position` on.
    pub(crate) fn store(&mut self, position: usize, kv_dim: usize, k: &[f32], v: &[f32]) {
        let at = position * kv_dim..position * kv_dim + k.len();
        kernels::to_f16(k, &mut self.k[at.clone()]);
        kernels::to_f16(v, &mut self.v[at]);
    }
}

/// The shape of multi-head attention.
pub(crate) struct Heads {
    pub(crate) heads: usize,
    pub(crate) kv_heads: usize,
    pub(crate) head_dim: usize,
    /// Multiplies the query·key products.
    pub(crate) scale: f32,
    /// Sliding-window attention: a query sees only the keys less than this many positions back.
    pub(crate) window: Option<usize>,
}

/// Attention of `rows` query tokens (the first at `position`) over the cache,
/// each head on its own, in ggml's flash-attention order for short batches:
/// f16 query and keys, a running softmax, the weighted values summed in f16.
pub(crate) fn attention(
    team: &Team,
    a: &Heads,
    cache: &KvCache,
    q: &[f32],
    position: usize,
    rows: usize,
) -> Vec<f32> {
    let hd = a.head_dim;
    let dim = a.heads * hd;
    let kv_dim = a.kv_heads * hd;
    let group = a.heads / a.kv_heads;
    let mut out = vec![0f32; rows * dim];
    let out_ptr = OutPtr(out.as_mut_ptr());
    team.run(rows * a.heads, &|i| {
        // SAFETY: task `i` alone writes the `hd` values of its (token, head).
        let out = unsafe { std::slice::from_raw_parts_mut(out_ptr.at(i * hd), hd) };
        let (t, h) = (i / a.heads, i % a.heads);
        let mut qh = vec![0u16; hd];
        kernels::to_f16(&q[t * dim + h * hd..t * dim + (h + 1) * hd], &mut qh);
        let kvh = (h / group) * hd;
        let mut acc = vec![0u16; hd];
        let (mut sum, mut max) = (0f32, f32::NEG_INFINITY);
        let now = position + t;
        let first = a.window.map_or(0, |w| (now + 1).saturating_sub(w));
        for p in first..=now {
            let at = p * kv_dim + kvh;
            let s = kernels::dot_f16(&cache.k[at..at + hd], &qh) * a.scale;
            let (mut ms, mut vs) = (1f32, 1f32);
            if s > max {
                let old = max;
                max = s;
                ms = (old - max).exp();
                kernels::scale_f16(&mut acc, ms);
            } else {
                vs = (s - max).exp();
            }
            kernels::mad_f16(&mut acc, &cache.v[at..at + hd], vs);
            sum = sum.mul_add(ms, vs);
        }
        let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
        for (o, a) in out.iter_mut().zip(&acc) {
            *o = half::f16::from_bits(*a).to_f32() * inv;
        }
    });
    out
}

/// Activations quantized for `w`, and for `other` too when it needs another format.
pub(crate) fn quantized_for(
    w: WeightType,
    others: &[WeightType],
    x: &[f32],
    rows: usize,
    cols: usize,
) -> Vec<Activations> {
    let mut out: Vec<Activations> = Vec::new();
    for ty in std::iter::once(w).chain(others.iter().copied()) {
        let at = ty.activation_type();
        if !out.iter().any(|a| a.ty == at) {
            out.push(Activations::quantize(at, x, rows, cols));
        }
    }
    out
}

pub(crate) fn find<'a>(acts: &'a [Activations], w: &Matrix) -> &'a Activations {
    let at = w.ty.activation_type();
    acts.iter()
        .find(|a| a.ty == at)
        .expect("quantized for every weight type")
}

/// One matrix product: `out[token][row] = weights[row] · activations[token]`.
pub(crate) struct Job<'a> {
    w: &'a Matrix,
    x: &'a Activations,
    out: OutPtr,
}

impl<'a> Job<'a> {
    pub(crate) fn new(w: &'a Matrix, x: &'a Activations, out: &'a mut [f32]) -> Self {
        assert_eq!(out.len(), x.rows * w.rows);
        Self {
            w,
            x,
            out: OutPtr(out.as_mut_ptr()),
        }
    }
}

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the pointer is only written through at disjoint indices, one chunk
// of rows per task, while the slice it came from is borrowed by the `Job`.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer `i` values on (a method, so that closures capture the whole `Send` wrapper).
    fn at(self, i: usize) -> *mut f32 {
        // SAFETY: callers stay inside the slice the pointer came from.
        unsafe { self.0.add(i) }
    }
}

/// Runs the products together, split into chunks of rows over the thread pool
/// (q, k and v, or gate and up, in one parallel step).
pub(crate) fn matmuls(team: &Team, map: &[u8], jobs: &mut [Job]) {
    // A few chunks per thread: enough to even out, few enough that taking
    // the next chunk (an atomic shared by the threads) costs nothing.
    let total: usize = jobs.iter().map(|j| j.w.rows).sum();
    let chunk = total.div_ceil(4 * team.size()).max(4);
    let tasks: Vec<(usize, Range<usize>)> = jobs
        .iter()
        .enumerate()
        .flat_map(|(j, job)| {
            (0..job.w.rows)
                .step_by(chunk)
                .map(move |r| (j, r..(r + chunk).min(job.w.rows)))
        })
        .collect();
    let jobs = &*jobs;
    team.run(tasks.len(), &|i| {
        let (j, rows) = tasks[i].clone();
        let job = &jobs[j];
        // SAFETY: `Job::new` checked that `out` holds tokens × rows values, and
        // each task writes only the rows of its own chunk.
        unsafe {
            kernels::matmul_rows(
                job.w.ty,
                job.w.bytes(map),
                job.w.row_bytes(),
                rows,
                job.x,
                job.out.at(0),
                job.w.rows,
            )
        };
    });
}
