//! The local model's worker: continuous batching over a prefix cache.
//!
//! Up to `parallel` requests run at once. Each step is one forward pass over
//! a batch holding every running sequence's next tokens: one token for those
//! decoding, a chunk of its prompt for one that is still reading (at most
//! [`PREFILL_CHUNK`] prompt tokens a step, so a newcomer with a long prompt
//! holds the others up for one chunk at a time, not for its whole prompt).
//! New requests join between steps; the rest wait in arrival order and are
//! told how many are ahead of them. Stop, or a client that left, ends a
//! sequence at the next step, waiting or running, and frees its place.
//!
//! After a reply, its sequence's KV cache is kept with the tokens it holds.
//! A later request whose prompt starts with the same tokens (the next turn
//! of the conversation, a retry, a shared system prompt, an API client
//! resending its history) starts from there and reads only the rest. Kept
//! caches are evicted least recently used first when they pass the memory
//! budget. Every row of a batch is computed as it would be alone (see
//! `Activations::grouped`), so neither batching nor the cache changes a
//! sequence's tokens.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use candle_core::Tensor;
use tokenizers::tokenizer::DecodeStream;

use crate::backend::{Event, Failure, FinishReason, RequestError, Usage};
use crate::engine::{Job, Model, Prompts, PREFILL_CHUNK};
use crate::gguf::{Sequence, Step, Weights};
use crate::request::Priority;
use crate::sampler::Sampler;
use crate::stop::StopFilter;
use crate::InferenceError;

/// How often, at most, an idle worker looks for kept caches unused for too long.
const IDLE_CHECK: Duration = Duration::from_secs(10);

/// Runs the worker until every sender of `queue` is gone. A kept cache
/// unused for `kv_idle` is released (`None`: kept until evicted).
pub(crate) fn run(
    model: Model,
    queue: Receiver<Job>,
    parallel: usize,
    kv_budget: usize,
    kv_idle: Option<Duration>,
) {
    let Model {
        mut weights,
        prompts,
    } = model;
    let mut scheduler = Scheduler {
        prompts: &prompts,
        waiting: VecDeque::new(),
        running: Vec::new(),
        kept: PrefixCache::new(if weights.batches() { kv_budget } else { 0 }),
        parallel,
        kv_idle,
    };
    loop {
        if !scheduler.receive(&queue) {
            return;
        }
        scheduler.step(&mut weights);
    }
}

struct Scheduler<'t> {
    prompts: &'t Prompts,
    /// Jobs waiting for a place, each with the `ahead` it was last told.
    waiting: VecDeque<(Job, Option<usize>)>,
    running: Vec<Running<'t>>,
    kept: PrefixCache,
    parallel: usize,
    kv_idle: Option<Duration>,
}

type Decoder<'t> = DecodeStream<
    't,
    tokenizers::ModelWrapper,
    tokenizers::NormalizerWrapper,
    tokenizers::PreTokenizerWrapper,
    tokenizers::PostProcessorWrapper,
    tokenizers::DecoderWrapper,
>;

/// A request with a place in the batch.
struct Running<'t> {
    job: Job,
    sequence: Sequence,
    /// The tokens whose keys and values are in `sequence`, in order, then
    /// (while reading the prompt) the rest of the prompt.
    tokens: Vec<u32>,
    /// How many of `tokens` are in the cache.
    computed: usize,
    prompt_len: usize,
    cached: usize,
    /// The tokens that end a reply.
    stop_ids: &'t [u32],
    logits: Option<Tensor>,
    sampler: Sampler,
    stop: StopFilter,
    decoder: Decoder<'t>,
    generated: usize,
    max_new: usize,
    started: Instant,
    prompt_seconds: f64,
    decode_started: Option<Instant>,
}

impl Running<'_> {
    fn reading(&self) -> bool {
        self.computed < self.prompt_len
    }

    fn stopped(&self) -> bool {
        self.job.cancel.is_cancelled() || self.job.events.is_closed()
    }

    fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.computed.min(self.prompt_len),
            cached_tokens: self.cached,
            completion_tokens: self.generated,
            prompt_seconds: self.prompt_seconds,
            decode_seconds: self
                .decode_started
                .map_or(0.0, |d| d.elapsed().as_secs_f64()),
        }
    }
}

impl<'t> Scheduler<'t> {
    /// Takes the jobs that have arrived, waiting for one when there is
    /// nothing to do. False when the engine is gone and nothing is left.
    fn receive(&mut self, queue: &Receiver<Job>) -> bool {
        let check = self.kv_idle.map_or(IDLE_CHECK, |idle| idle.min(IDLE_CHECK));
        while self.running.is_empty() && self.waiting.is_empty() {
            match queue.recv_timeout(check) {
                Ok(job) => self.enqueue(job),
                Err(RecvTimeoutError::Timeout) => self.release_idle_caches(),
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
        loop {
            match queue.try_recv() {
                Ok(job) => self.enqueue(job),
                Err(TryRecvError::Empty) => return true,
                // Finish what is running; no more will come.
                Err(TryRecvError::Disconnected) => {
                    return !(self.running.is_empty() && self.waiting.is_empty())
                }
            }
        }
    }

    /// Releases the kept caches nobody used for `kv_idle`, and gives the
    /// memory back to the system once none is left: after a busy hour the
    /// process shrinks back instead of holding its peak for ever.
    fn release_idle_caches(&mut self) {
        let Some(idle) = self.kv_idle else { return };
        if self.kept.expire(Instant::now(), idle) > 0 && self.kept.entries.is_empty() {
            crate::memory::give_back_free_memory();
        }
    }

    /// Puts a job in line: behind every job of its priority, and a normal
    /// one ahead of every background one.
    fn enqueue(&mut self, job: Job) {
        let at = match job.request.priority {
            Priority::Normal => self
                .waiting
                .iter()
                .position(|(j, _)| j.request.priority == Priority::Background)
                .unwrap_or(self.waiting.len()),
            Priority::Background => self.waiting.len(),
        };
        self.waiting.insert(at, (job, None));
    }

    /// A background job gives its place to a normal one waiting for it: it
    /// ends as cancelled (its caller keeps what it had before).
    fn make_way(&mut self) {
        let normal_waiting = self
            .waiting
            .front()
            .is_some_and(|(j, _)| j.request.priority == Priority::Normal);
        if !normal_waiting || self.running.len() < self.parallel {
            return;
        }
        if let Some(i) = self
            .running
            .iter()
            .rposition(|r| r.job.request.priority == Priority::Background)
        {
            let r = self.running.remove(i);
            self.finish(r, FinishReason::Cancelled);
        }
    }

    /// One turn of the loop: admit, run one batch, hand out its tokens.
    fn step(&mut self, weights: &mut Weights) {
        // Requests cancelled while they waited cost no model work.
        self.waiting.retain(|(job, _)| {
            let gone = job.cancel.is_cancelled() || job.events.is_closed();
            if gone {
                let _ = job.events.send(Event::Done {
                    finish: FinishReason::Cancelled,
                    usage: Usage::default(),
                });
            }
            !gone
        });
        self.finish_stopped();
        self.make_way();
        while self.running.len() < self.parallel {
            let Some((job, _)) = self.waiting.pop_front() else {
                break;
            };
            if let Some(running) = self.start(job, weights) {
                self.running.push(running);
            }
        }
        for (ahead, (job, told)) in self.waiting.iter_mut().enumerate() {
            if *told != Some(ahead) {
                *told = Some(ahead);
                let _ = job.events.send(Event::Waiting { ahead });
            }
        }
        if self.running.is_empty() {
            return;
        }
        if let Err(e) = self.forward(weights) {
            // The batch's state is unknown: every sequence in it fails.
            let failure = Failure::from(&RequestError::from(e));
            for r in self.running.drain(..) {
                let _ = r.job.events.send(Event::Error(failure.clone()));
            }
            return;
        }
        self.advance();
    }

    /// Starts `job`: its prompt, and the longest start of it already cached;
    /// or tells it why its prompt cannot run.
    fn start(&mut self, job: Job, weights: &Weights) -> Option<Running<'t>> {
        let prompt = match self.prompts.checked_prompt(&job.request) {
            Ok(prompt) => prompt,
            Err(e) => {
                let _ = job.events.send(Event::Error(Failure::from(&e)));
                return None;
            }
        };
        let params = &job.request.params;
        // Clip the reply to what fits in the context window.
        let max_new = params
            .max_new_tokens
            .min(self.prompts.context_length - prompt.len());
        // At least the prompt's last token is run: its logits are the first reply token's.
        let (sequence, cached) = self
            .kept
            .take(&prompt[..prompt.len() - 1])
            .unwrap_or_else(|| (weights.new_sequence(), 0));
        Some(Running {
            sequence,
            computed: cached,
            prompt_len: prompt.len(),
            cached,
            tokens: prompt,
            stop_ids: &self.prompts.tokenizer.stop_ids,
            logits: None,
            sampler: Sampler::new(params),
            stop: StopFilter::new(params.stop.clone()),
            decoder: self.prompts.tokenizer.tokenizer.decode_stream(true),
            generated: 0,
            max_new,
            started: Instant::now(),
            prompt_seconds: 0.0,
            decode_started: None,
            job,
        })
    }

    /// Ends the sequences whose request was stopped or whose client left.
    fn finish_stopped(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].stopped() {
                let r = self.running.remove(i);
                self.finish(r, FinishReason::Cancelled);
            } else {
                i += 1;
            }
        }
    }

    /// One forward pass over every running sequence's next tokens.
    fn forward(&mut self, weights: &mut Weights) -> Result<(), InferenceError> {
        let mut budget = PREFILL_CHUNK;
        let mut plan = Vec::with_capacity(self.running.len());
        for r in &self.running {
            let take = if r.reading() {
                let n = (r.prompt_len - r.computed).min(budget);
                budget -= n;
                n
            } else {
                1
            };
            plan.push(take);
        }
        let mut steps: Vec<Step> = Vec::with_capacity(self.running.len());
        let mut who = Vec::with_capacity(self.running.len());
        for (i, (r, &take)) in self.running.iter_mut().zip(&plan).enumerate() {
            if take == 0 {
                continue;
            }
            let tokens = &r.tokens[r.computed..r.computed + take];
            steps.push(Step {
                sequence: &mut r.sequence,
                tokens,
                position: r.computed,
            });
            who.push(i);
        }
        // Sequences advanced together by this forward pass (continuous batching).
        metrics::histogram!("wick_engine_batch_size").record(steps.len() as f64);
        let logits = weights.forward_batch(&mut steps)?;
        drop(steps);
        for (i, logits) in who.into_iter().zip(logits) {
            let r = &mut self.running[i];
            r.computed += plan[i];
            r.logits = Some(logits);
        }
        Ok(())
    }

    /// Reports progress, samples the next tokens and ends finished sequences.
    fn advance(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            let r = &mut self.running[i];
            match r.logits.take() {
                None => {}
                Some(_) if r.reading() => {
                    let _ = r.job.events.send(Event::Prefill {
                        done: r.computed,
                        total: r.prompt_len,
                    });
                }
                Some(logits) => {
                    if r.decode_started.is_none() {
                        r.prompt_seconds = r.started.elapsed().as_secs_f64();
                        r.decode_started = Some(Instant::now());
                        if r.computed > r.cached {
                            let _ = r.job.events.send(Event::Prefill {
                                done: r.computed,
                                total: r.prompt_len,
                            });
                        }
                    }
                    match sample(r, &logits) {
                        Ok(None) => {}
                        Ok(Some(finish)) => {
                            let r = self.running.remove(i);
                            self.finish(r, finish);
                            continue;
                        }
                        Err(e) => {
                            let r = self.running.remove(i);
                            let _ = r
                                .job
                                .events
                                .send(Event::Error(Failure::from(&RequestError::from(e))));
                            continue;
                        }
                    }
                }
            }
            i += 1;
        }
    }

    /// Sends a sequence's last event and keeps its cache for later requests.
    fn finish(&mut self, mut r: Running<'t>, finish: FinishReason) {
        if finish != FinishReason::Stop {
            let rest = std::mem::replace(&mut r.stop, StopFilter::new(Vec::new())).finish();
            if !rest.is_empty() {
                let _ = r.job.events.send(Event::Token {
                    id: None,
                    text: rest,
                });
            }
        }
        if r.decode_started.is_none() {
            r.prompt_seconds = r.started.elapsed().as_secs_f64();
        }
        let usage = r.usage();
        let _ = r.job.events.send(Event::Done { finish, usage });
        // The tokens whose keys and values the cache holds.
        r.tokens.truncate(r.computed);
        if r.computed > 0 {
            self.kept.keep(r.tokens, r.sequence);
        }
    }
}

/// Samples `r`'s next token from `logits` and sends it; says how the
/// sequence ended, if it did.
fn sample(r: &mut Running<'_>, logits: &Tensor) -> Result<Option<FinishReason>, InferenceError> {
    let params = &r.job.request.params;
    // The penalty looks at the prompt and the reply so far: every token up to
    // the one just run.
    let next = r.sampler.sample(logits, &r.tokens[..r.computed])?;
    if !params.ignore_eos && r.stop_ids.contains(&next) {
        return Ok(Some(FinishReason::Eos));
    }
    r.generated += 1;
    r.tokens.push(next);
    let piece = r
        .decoder
        .step(next)
        .map_err(|e| InferenceError::Tokenizer(e.to_string()))?
        .unwrap_or_default();
    let (text, stopped) = r.stop.push(&piece);
    let _ = r.job.events.send(Event::Token {
        id: Some(next),
        text,
    });
    if stopped {
        return Ok(Some(FinishReason::Stop));
    }
    if r.generated >= r.max_new {
        return Ok(Some(FinishReason::Length));
    }
    Ok(None)
}

/// KV caches kept after their replies, with the tokens each holds.
struct PrefixCache {
    entries: Vec<Kept>,
    /// The most memory the entries may hold.
    budget: usize,
    clock: u64,
}

struct Kept {
    tokens: Vec<u32>,
    sequence: Sequence,
    last_used: u64,
    /// When it was kept or last used, for the idle release.
    used_at: Instant,
}

impl PrefixCache {
    fn new(budget: usize) -> Self {
        Self {
            entries: Vec::new(),
            budget,
            clock: 0,
        }
    }

    /// The cached sequence that shares the longest start with `prompt`, and
    /// how many tokens it shares. A request that shares most of an entry (the
    /// same conversation, continued or retried) takes the entry; one that
    /// shares only its start (a common system prompt) gets a copy of that
    /// start, and the entry stays for its own conversation.
    fn take(&mut self, prompt: &[u32]) -> Option<(Sequence, usize)> {
        let (best, shared) = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, common_prefix(&e.tokens, prompt)))
            .max_by_key(|&(_, shared)| shared)?;
        if shared == 0 {
            return None;
        }
        if shared * 2 >= self.entries[best].tokens.len() {
            let entry = self.entries.swap_remove(best);
            return Some((entry.sequence, shared));
        }
        self.clock += 1;
        let entry = &mut self.entries[best];
        entry.last_used = self.clock;
        entry.used_at = Instant::now();
        let copy = entry.sequence.copy_prefix(shared)?;
        Some((copy, shared))
    }

    /// Keeps `sequence`, which holds `tokens`, then evicts the least recently
    /// used entries until the rest fit the budget.
    fn keep(&mut self, tokens: Vec<u32>, sequence: Sequence) {
        if self.budget == 0 || sequence.bytes() > self.budget {
            return;
        }
        // An entry whose tokens all start this one is of no more use.
        self.entries
            .retain(|e| common_prefix(&e.tokens, &tokens) < e.tokens.len());
        self.clock += 1;
        self.entries.push(Kept {
            tokens,
            sequence,
            last_used: self.clock,
            used_at: Instant::now(),
        });
        while self.bytes() > self.budget {
            let Some(oldest) = (0..self.entries.len()).min_by_key(|&i| self.entries[i].last_used)
            else {
                break;
            };
            self.entries.swap_remove(oldest);
        }
    }

    fn bytes(&self) -> usize {
        self.entries.iter().map(|e| e.sequence.bytes()).sum()
    }

    /// Drops the entries unused for `idle` at `now`; how many.
    fn expire(&mut self, now: Instant, idle: Duration) -> usize {
        let before = self.entries.len();
        self.entries
            .retain(|e| now.saturating_duration_since(e.used_at) < idle);
        before - self.entries.len()
    }
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
