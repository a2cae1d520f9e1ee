//! Rotary position embeddings.

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
