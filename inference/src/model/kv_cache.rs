//! The KV cache.

use crate::kernels;

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
