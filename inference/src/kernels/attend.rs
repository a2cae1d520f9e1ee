//! One attention task's arithmetic — a few query heads of one row over the
//! keys and values of their key/value head — in ggml's flash-attention order
//! for short batches, as one loop per CPU (see [`super::Kernels::attend_heads`]):
//! the f16 vector operations inline into it instead of being called once per
//! key and head.

use std::ops::RangeInclusive;

/// What one task attends: `queries` holds `per` heads of `hd` values each
/// (rounded to f16, widened to f32); key and value `p` of the task's
/// key/value head are `k[p * kv_dim + kvh..][..hd]` (f16 bits), and `v`
/// likewise, for `p` in `keys`.
pub(crate) struct HeadGroup<'a> {
    pub(crate) queries: &'a [f32],
    pub(crate) k: &'a [u16],
    pub(crate) v: &'a [u16],
    pub(crate) kv_dim: usize,
    pub(crate) kvh: usize,
    pub(crate) keys: RangeInclusive<usize>,
    /// Multiplies the query·key products.
    pub(crate) scale: f32,
    pub(crate) hd: usize,
}

/// The f16 vector operations the loop needs, as each CPU's kernels do them.
pub(super) trait F16Ops: Copy {
    /// `out = x` widened from f16 (exact).
    fn widen(self, x: &[u16], out: &mut [f32]);
    /// ggml's `ggml_vec_dot_f16` of two widened f16 vectors.
    fn dot(self, x: &[f32], y: &[f32]) -> f32;
    /// `y = f16(y + x * v)` element-wise.
    fn mad(self, y: &mut [u16], x: &[f32], v: f32);
    /// `y = f16(y * v)` element-wise.
    fn scale(self, y: &mut [u16], v: f32);
}

/// The task `g`, into `out` (`per * hd` values): for each key in order, each
/// head's score, its running maximum and sum, and its f16 sum of values
/// (ggml's `ggml_compute_forward_flash_attn_ext_f16_one_chunk`), then the
/// sums divided by the softmax's denominator.
#[inline(always)]
pub(super) fn attend_heads_with(ops: impl F16Ops, g: &HeadGroup<'_>, out: &mut [f32]) {
    let hd = g.hd;
    let per = g.queries.len() / hd;
    assert!(per * hd == g.queries.len() && out.len() == g.queries.len());
    assert!(*g.keys.end() * g.kv_dim + g.kvh + hd <= g.k.len().min(g.v.len()));
    let mut acc = vec![0u16; per * hd];
    let mut sum = vec![0f32; per];
    let mut max = vec![f32::NEG_INFINITY; per];
    let (mut key, mut value) = (vec![0f32; hd], vec![0f32; hd]);
    for p in g.keys.clone() {
        let at = p * g.kv_dim + g.kvh;
        ops.widen(&g.k[at..at + hd], &mut key);
        ops.widen(&g.v[at..at + hd], &mut value);
        for h in 0..per {
            let acc = &mut acc[h * hd..(h + 1) * hd];
            let s = ops.dot(&key, &g.queries[h * hd..(h + 1) * hd]) * g.scale;
            let (mut ms, mut vs) = (1f32, 1f32);
            if s > max[h] {
                let old = max[h];
                max[h] = s;
                ms = (old - s).exp();
                ops.scale(acc, ms);
            } else {
                vs = (s - max[h]).exp();
            }
            ops.mad(acc, &value, vs);
            sum[h] = sum[h].mul_add(ms, vs);
        }
    }
    for h in 0..per {
        let inv = if sum[h] == 0.0 { 0.0 } else { 1.0 / sum[h] };
        for (o, a) in out[h * hd..(h + 1) * hd].iter_mut().zip(&acc[h * hd..]) {
            *o = super::h2f(*a) * inv;
        }
    }
}
