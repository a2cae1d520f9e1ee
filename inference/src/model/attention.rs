//! Multi-head attention over the KV cache, in ggml's flash-attention order.

use super::kv_cache::KvCache;
use super::rope::Rope;
use super::{BatchRows, Cpu, OutPtr, Segment};
use crate::kernels::HeadGroup;

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
/// weighted values summed in f16.
///
/// The query heads that share a key/value head (grouped-query attention) run
/// in one task when there are tasks enough for the team: each cached key and
/// value is widened from f16 once for all of them rather than once a head.
/// Every head's arithmetic, and its order, is the same either way.
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
    let per = heads_per_task(group, rows.len() * a.heads, cpu.team.size());
    let mut out = vec![0f32; rows.len() * dim];
    let out_ptr = OutPtr::new(&mut out);
    let isa = cpu.kernels;
    let tasks_per_row = a.heads / per;
    cpu.team.run(rows.len() * tasks_per_row, &|i| {
        let (t, first_head) = (i / tasks_per_row, (i % tasks_per_row) * per);
        let at = t * dim + first_head * hd;
        // SAFETY: task `i` alone writes the `per * hd` values of heads
        // `first_head..first_head + per` of row `t`, inside `out` (`rows *
        // heads * hd` values), which outlives the loop and is not otherwise
        // touched until it ends.
        let out = unsafe { std::slice::from_raw_parts_mut(out_ptr.at(at), per * hd) };
        let (part, now) = rows[t];
        let cache = parts[part].cache;
        // The queries rounded to f16 (as ggml stores them), held widened.
        let queries: Vec<f32> = q[at..at + per * hd]
            .iter()
            .map(|v| half::f16::from_f32(*v).to_f32())
            .collect();
        let task = HeadGroup {
            queries: &queries,
            k: &cache.k,
            v: &cache.v,
            kv_dim,
            kvh: (first_head / group) * hd,
            keys: a.window.map_or(0, |w| (now + 1).saturating_sub(w))..=now,
            scale: a.scale,
            hd,
        };
        isa.attend_heads(&task, out);
    });
    out
}

/// How many query heads of a key/value group one attention task takes: the
/// whole group when that still leaves two tasks a thread, else a smaller
/// divisor of it (one head a task at worst, e.g. one decoded row of a model
/// with a single key/value head).
fn heads_per_task(group: usize, head_rows: usize, threads: usize) -> usize {
    (1..=group)
        .rev()
        .filter(|per| group.is_multiple_of(*per))
        .find(|per| head_rows / per >= 2 * threads)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::heads_per_task;

    #[test]
    fn a_task_takes_a_whole_group_of_heads_only_when_the_team_stays_busy() {
        // SmolLM2 (9 heads over 3 key/value heads), four decoded rows, 2 threads.
        assert_eq!(heads_per_task(3, 4 * 9, 2), 3);
        // Gemma 3 (4 heads, 1 key/value head): a prompt's rows take the group...
        assert_eq!(heads_per_task(4, 64 * 4, 2), 4);
        // ...one decoded row is split so both threads work.
        assert_eq!(heads_per_task(4, 4, 2), 1);
        assert_eq!(heads_per_task(4, 8, 2), 2);
        // Plain multi-head attention: one head a task.
        assert_eq!(heads_per_task(1, 12, 2), 1);
    }
}
