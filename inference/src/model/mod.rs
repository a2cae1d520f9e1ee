//! The building blocks of Wick's own engine, shared by its architectures
//! (`crate::llama`, `crate::gemma3`): weight matrices read in place from the
//! mapped GGUF ([`tensors`]), matrix products on the model's threads
//! ([`linear`]), rotary embeddings ([`rope`]), the f16 KV cache
//! ([`kv_cache`]) and attention in ggml's order ([`attention`]), behind one
//! trait, [`CausalLm`], that the engine drives.

pub(crate) mod attention;
pub(crate) mod kv_cache;
pub(crate) mod linear;
pub(crate) mod rope;
pub(crate) mod tensors;

use std::fs::File;

use memmap2::Mmap;

use crate::kernels::Kernels;
use crate::team::Team;
use crate::InferenceError;

pub use kv_cache::SequenceCache;

/// A causal language model on Wick's engine: tokens in, the logits of the
/// last one out, each sequence's KV cache kept by the caller.
pub trait CausalLm: Send {
    /// The most positions this model handles: the file's declared context.
    fn context_length(&self) -> usize;

    /// An empty cache for a new sequence.
    fn new_cache(&self) -> SequenceCache;

    /// Runs every segment's tokens, placed from its position on in its own
    /// sequence, in one pass (each weight row read once for all of them), and
    /// returns the logits of each segment's last token. A sequence's numbers
    /// are the same whatever else is in the batch.
    fn forward(&mut self, batch: &mut [Segment<'_>]) -> Result<Vec<Vec<f32>>, InferenceError>;
}

/// Tokens of one sequence in a batch: a chunk of its prompt, or the token it
/// has just sampled, at `position` (its cache holds the positions before).
pub struct Segment<'a> {
    pub cache: &'a mut SequenceCache,
    pub tokens: &'a [u32],
    pub position: usize,
}

/// The rows of a batch: where each segment's tokens start among all of them.
pub(crate) struct BatchRows {
    /// Each segment's row count.
    pub(crate) lengths: Vec<usize>,
    /// Each segment's first row.
    pub(crate) starts: Vec<usize>,
    pub(crate) total: usize,
}

impl BatchRows {
    /// The rows of `batch`, checked against the window of `context` positions.
    pub(crate) fn of(batch: &[Segment<'_>], context: usize) -> Result<Self, InferenceError> {
        let mut rows = Self {
            lengths: Vec::with_capacity(batch.len()),
            starts: Vec::with_capacity(batch.len()),
            total: 0,
        };
        for s in batch {
            let n = s.tokens.len();
            if n == 0 || s.position + n > context {
                return Err(InferenceError::Positions {
                    tokens: n,
                    position: s.position,
                    context,
                });
            }
            rows.starts.push(rows.total);
            rows.lengths.push(n);
            rows.total += n;
        }
        Ok(rows)
    }

    /// The same batch with only each segment's last row (for the last layer).
    pub(crate) fn last_rows(&self) -> Self {
        let n = self.lengths.len();
        Self {
            lengths: vec![1; n],
            starts: (0..n).collect(),
            total: n,
        }
    }

    /// Keeps, of `x` (`total` rows of `width`), only each segment's last row.
    pub(crate) fn keep_last(&self, x: &mut Vec<f32>, width: usize) {
        let mut kept = Vec::with_capacity(self.lengths.len() * width);
        for (start, len) in self.starts.iter().zip(&self.lengths) {
            let last = start + len - 1;
            kept.extend_from_slice(&x[last * width..(last + 1) * width]);
        }
        *x = kept;
    }
}

/// Calls `f(t, row)` for every row `t` of `out` (`width` values a row), the
/// rows spread over the team a few chunks a thread (element-wise work such as
/// the feed-forward's activation, which one thread would do alone otherwise).
pub(crate) fn for_rows(
    cpu: &mut Cpu,
    out: &mut [f32],
    width: usize,
    f: &(dyn Fn(usize, &mut [f32]) + Sync),
) {
    let rows = out.len() / width;
    let per = rows.div_ceil(4 * cpu.team.size()).max(1);
    // A lock per chunk, each taken once by the task that owns it: safe code
    // for disjoint writes, at the cost of an uncontended lock.
    let chunks: Vec<std::sync::Mutex<&mut [f32]>> = out
        .chunks_mut(per * width)
        .map(std::sync::Mutex::new)
        .collect();
    cpu.team.run(chunks.len(), &|i| {
        let mut chunk = chunks[i].lock().unwrap_or_else(|e| e.into_inner());
        for (j, row) in chunk.chunks_exact_mut(width).enumerate() {
            f(i * per + j, row);
        }
    });
}

/// What a model computes with: its team of threads and the kernels chosen
/// for this CPU when it was loaded.
pub(crate) struct Cpu {
    pub(crate) team: Team,
    pub(crate) kernels: Kernels,
}

impl Cpu {
    /// `threads` threads in all and the fastest kernels this CPU runs.
    pub(crate) fn new(threads: usize) -> Result<Self, InferenceError> {
        let team = Team::new(threads).map_err(|e| InferenceError::Threads(e.to_string()))?;
        let kernels = Kernels::detect();
        tracing::debug!("model kernels: {kernels:?}, {threads} threads");
        Ok(Self { team, kernels })
    }
}

/// Maps a model file for reading its tensors in place.
pub(crate) fn map_file(file: &File) -> Result<Mmap, InferenceError> {
    // SAFETY: the model file is opened read-only and not modified while it
    // is in use, the same contract as llama.cpp's memory-mapped loading.
    unsafe { Mmap::map(file) }.map_err(InferenceError::MapFile)
}

/// The start of a buffer that parallel tasks write at disjoint places.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(*mut f32);

// SAFETY: the pointer is only written through at disjoint indices, one
// place per task, while the buffer it came from is borrowed by its owner
// (a `Job`, or the `attention` call that made it) for the whole parallel loop.
unsafe impl Send for OutPtr {}
// SAFETY: as for `Send`: tasks on several threads share the pointer, but each
// writes only its own indices, and no one reads through it.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Points at the start of `out`, which must outlive every use of the pointer.
    pub(crate) fn new(out: &mut [f32]) -> Self {
        Self(out.as_mut_ptr())
    }

    /// The pointer `i` values on (a method, so that closures capture the
    /// whole `Send` wrapper rather than its raw field).
    ///
    /// # Safety
    /// `i` is at most the length of the buffer the pointer came from.
    pub(crate) unsafe fn at(self, i: usize) -> *mut f32 {
        // SAFETY: the caller's promise keeps the offset inside the buffer (or one past it).
        unsafe { self.0.add(i) }
    }
}
