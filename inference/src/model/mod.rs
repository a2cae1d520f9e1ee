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

/// A causal language model on Wick's engine: tokens in, the logits of the
/// last one out, its KV cache carried from call to call.
pub trait CausalLm: Send {
    /// The most positions this model handles: the file's declared context.
    fn context_length(&self) -> usize;

    /// Runs `tokens` placed from `position` on and returns the logits of the
    /// last: a prompt at position 0 (which starts a new sequence), then one
    /// token a step at the following positions.
    fn forward(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, InferenceError>;
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
