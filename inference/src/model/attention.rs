//! Multi-head attention over the KV cache, in ggml's flash-attention order.

use super::kv_cache::KvCache;
use super::rope::Rope;
use super::{BatchRows, Cpu, OutPtr, Segment};
use crate::kernels;

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

/// Rotates each segment's queries and keys by its own positions (`ropes[i]`
/// is segment `i`'s), then stores its keys and values in its cache of layer `li`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rope_and_store(
    batch: &mut [Segment<'_>],
    rows: &BatchRows,
    li: usize,
    a: &Heads,
    ropes: &[Rope],
    q: &mut [f32],
    k: &mut [f32],
    v: &[f32],
) {
    let hd = a.head_dim;
    let (q_dim, kv_dim) = (a.heads * hd, a.kv_heads * hd);
    for (si, seg) in batch.iter_mut().enumerate() {
        let (start, len) = (rows.starts[si], rows.lengths[si]);
        for t in 0..len {
            let row = start + t;
            ropes[si].apply(t, &mut q[row * q_dim..(row + 1) * q_dim], a.heads, hd);
            ropes[si].apply(t, &mut k[row * kv_dim..(row + 1) * kv_dim], a.kv_heads, hd);
        }
        let r = start * kv_dim..(start + len) * kv_dim;
        seg.cache.layers[li].store(seg.position, kv_dim, &k[r.clone()], &v[r]);
    }
}

/// Attention of every segment's queries over its own cache of layer `li`.
pub(crate) fn attend(
    cpu: &mut Cpu,
    a: &Heads,
    batch: &[Segment<'_>],
    li: usize,
    q: &[f32],
) -> Vec<f32> {
    let parts: Vec<Part> = batch
        .iter()
        .map(|s| Part {
            cache: &s.cache.layers[li],
            position: s.position,
            rows: s.tokens.len(),
        })
        .collect();
    attention(cpu, a, &parts, q)
}

/// One segment of a batch as attention sees it: its layer cache (already
/// holding the segment's own keys and values), its first position and rows.
struct Part<'a> {
    pub(crate) cache: &'a KvCache,
    pub(crate) position: usize,
    pub(crate) rows: usize,
}

/// Attention of every part's query rows (`q` holds them one part after the
/// other) over its own cache, each head on its own, in ggml's flash-attention
/// order for short batches: f16 query and keys, a running softmax, the
/// weighted values summed in f16. All parts' heads are one parallel loop.
fn attention(cpu: &mut Cpu, a: &Heads, parts: &[Part<'_>], q: &[f32]) -> Vec<f32> {
    let hd = a.head_dim;
    let dim = a.heads * hd;
    let kv_dim = a.kv_heads * hd;
    let group = a.heads / a.kv_heads;
    // For each row: its part and its position.
    let rows: Vec<(usize, usize)> = parts
        .iter()
        .enumerate()
        .flat_map(|(i, p)| (0..p.rows).map(move |t| (i, p.position + t)))
        .collect();
    assert!(q.len() >= rows.len() * dim);
    for p in parts {
        assert!(
            p.cache.k.len() >= (p.position + p.rows) * kv_dim && p.cache.v.len() == p.cache.k.len()
        );
    }
    let mut out = vec![0f32; rows.len() * dim];
    let out_ptr = OutPtr::new(&mut out);
    let isa = cpu.kernels;
    cpu.team.run(rows.len() * a.heads, &|i| {
        // SAFETY: task `i < rows * heads` alone writes the `hd` values from
        // `i * hd`, inside `out` (`rows * heads * hd` values), which outlives
        // the loop and is not otherwise touched until it ends.
        let out = unsafe { std::slice::from_raw_parts_mut(out_ptr.at(i * hd), hd) };
        let (t, h) = (i / a.heads, i % a.heads);
        let (part, now) = rows[t];
        let cache = parts[part].cache;
        let mut qh = vec![0u16; hd];
        kernels::to_f16(&q[t * dim + h * hd..t * dim + (h + 1) * hd], &mut qh);
        let kvh = (h / group) * hd;
        let mut acc = vec![0u16; hd];
        let (mut sum, mut max) = (0f32, f32::NEG_INFINITY);
        let first = a.window.map_or(0, |w| (now + 1).saturating_sub(w));
        for p in first..=now {
            let at = p * kv_dim + kvh;
            let s = isa.dot_f16(&cache.k[at..at + hd], &qh) * a.scale;
            let (mut ms, mut vs) = (1f32, 1f32);
            if s > max {
                let old = max;
                max = s;
                ms = (old - max).exp();
                isa.scale_f16(&mut acc, ms);
            } else {
                vs = (s - max).exp();
            }
            isa.mad_f16(&mut acc, &cache.v[at..at + hd], vs);
            sum = sum.mul_add(ms, vs);
        }
        let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
        for (o, a) in out.iter_mut().zip(&acc) {
            *o = half::f16::from_bits(*a).to_f32() * inv;
        }
    });
    out
}
