//! The KV cache: what a sequence has read so far, kept per sequence so that
//! several sequences can share the model (a batch) and one can be kept after
//! its reply for the next turn (the prefix cache).

use crate::kernels;

/// Positions a layer's cache grows by at least, so that decoding one token at
/// a time does not reallocate every step.
const GROW: usize = 256;

/// A layer's keys and values for every position so far, `[position][kv_dim]`,
/// as f16 bits like llama.cpp's cache. It grows as positions are written, up
/// to the model's window, so a sequence costs only what it has read.
pub(crate) struct KvCache {
    pub(crate) k: Vec<u16>,
    pub(crate) v: Vec<u16>,
    /// The most values `k` (and `v`) may hold: the window times `kv_dim`.
    limit: usize,
}

impl KvCache {
    pub(crate) fn new(positions: usize, kv_dim: usize) -> Self {
        Self {
            k: Vec::new(),
            v: Vec::new(),
            limit: positions * kv_dim,
        }
    }

    /// Stores the keys and values of `k.len() / kv_dim` tokens from `position` on.
    pub(crate) fn store(&mut self, position: usize, kv_dim: usize, k: &[f32], v: &[f32]) {
        let at = position * kv_dim..position * kv_dim + k.len();
        if self.k.len() < at.end {
            let len = at
                .end
                .max(self.k.len() * 2)
                .max(GROW * kv_dim)
                .min(self.limit.max(at.end));
            for part in [&mut self.k, &mut self.v] {
                part.reserve_exact(len - part.len());
                part.resize(len, 0);
            }
        }
        kernels::to_f16(k, &mut self.k[at.clone()]);
        kernels::to_f16(v, &mut self.v[at]);
    }

    fn bytes(&self) -> usize {
        (self.k.capacity() + self.v.capacity()) * std::mem::size_of::<u16>()
    }
}

/// One sequence's KV cache in every layer of a model.
pub struct SequenceCache {
    pub(crate) layers: Vec<KvCache>,
    kv_dim: usize,
}

impl SequenceCache {
    /// An empty cache for `layers` layers of `kv_dim` values per position,
    /// over a window of `positions`.
    pub(crate) fn new(layers: usize, positions: usize, kv_dim: usize) -> Self {
        Self {
            layers: (0..layers)
                .map(|_| KvCache::new(positions, kv_dim))
                .collect(),
            kv_dim,
        }
    }

    /// The memory one position takes in every layer.
    pub fn bytes_per_position(&self) -> usize {
        self.layers.len() * 2 * self.kv_dim * std::mem::size_of::<u16>()
    }

    /// A new cache holding a copy of this one's first `positions` positions
    /// (another sequence that starts with the same tokens).
    pub fn copy_prefix(&self, positions: usize) -> Self {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let end = (positions * self.kv_dim).min(l.k.len());
                KvCache {
                    k: l.k[..end].to_vec(),
                    v: l.v[..end].to_vec(),
                    limit: l.limit,
                }
            })
            .collect();
        Self {
            layers,
            kv_dim: self.kv_dim,
        }
    }

    /// The memory it holds.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(KvCache::bytes).sum()
    }
}
