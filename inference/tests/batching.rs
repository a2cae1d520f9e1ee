//! Many requests on one local model (issue 17): continuous batching and the
//! prefix cache, with the real default model (SmolLM2-135M-Instruct, Q4_1).
//! Greedy decoding everywhere, so "the same reply" means the same token ids.

mod support {
    pub mod logits;
}

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use inference::gguf::Metadata;
use inference::tokenizer::ModelTokenizer;
use inference::{
    Backend, ChatMessage, EngineConfig, Event, FinishReason, Generation, GenerationRequest,
    LocalEngine, Params, Prompt, Usage,
};

fn model_path() -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `make model` first",
        path.display()
    );
    path
}

fn tokenizer() -> &'static ModelTokenizer {
    static TOKENIZER: OnceLock<ModelTokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let mut file = std::fs::File::open(model_path()).unwrap();
        let content = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
        ModelTokenizer::load(&model_path(), &Metadata(&content.metadata)).unwrap()
    })
}

/// An engine running `parallel` sequences at once, keeping `kv_cache_bytes` of caches.
fn engine(parallel: usize, kv_cache_bytes: usize) -> LocalEngine {
    let config = EngineConfig {
        parallel,
        kv_cache_bytes: Some(kv_cache_bytes),
        ..EngineConfig::default()
    };
    LocalEngine::load(&model_path(), config).unwrap()
}

const PLENTY: usize = 512 << 20;

fn chat(messages: &[(&str, &str)], max_new_tokens: usize) -> GenerationRequest {
    GenerationRequest {
        prompt: Prompt::Chat(
            messages
                .iter()
                .map(|(role, text)| ChatMessage::new(*role, *text))
                .collect(),
        ),
        params: Params {
            temperature: 0.0,
            max_new_tokens,
            ignore_eos: true,
            ..Params::default()
        },
        drop_old_turns: false,
        continue_final: false,
        priority: inference::Priority::Normal,
    }
}

fn ask(question: &str, max_new_tokens: usize) -> GenerationRequest {
    chat(&[("user", question)], max_new_tokens)
}

/// Everything one generation said, and when.
#[derive(Debug)]
struct Heard {
    ids: Vec<u32>,
    text: String,
    finish: FinishReason,
    usage: Usage,
    /// Every `Waiting` it was told, in order.
    waiting: Vec<usize>,
    first_token: Option<Instant>,
    done: Instant,
}

/// Reads `generation` to its end; `on_token` hears the count of tokens so
/// far and may stop the generation (returning true).
fn hear(mut generation: Generation, mut on_token: impl FnMut(usize) -> bool) -> Heard {
    let (mut ids, mut text, mut waiting, mut first_token) =
        (Vec::new(), String::new(), Vec::new(), None);
    while let Some(event) = generation.blocking_next() {
        match event {
            Event::Waiting { ahead } => waiting.push(ahead),
            Event::Prefill { .. } => {}
            Event::Token { id, text: piece } => {
                first_token.get_or_insert_with(Instant::now);
                ids.extend(id);
                text.push_str(&piece);
                if id.is_some() && on_token(ids.len()) {
                    generation.cancel.cancel();
                }
            }
            Event::Done { finish, usage } => {
                return Heard {
                    ids,
                    text,
                    finish,
                    usage,
                    waiting,
                    first_token,
                    done: Instant::now(),
                }
            }
            Event::Error(e) => panic!("generation failed: {e}"),
        }
    }
    panic!("no final event")
}

fn run(engine: &LocalEngine, request: GenerationRequest) -> Heard {
    hear(engine.generate(request).unwrap(), |_| false)
}

/// Starts every request at once and hears them all, each on its own thread.
fn run_together(engine: &LocalEngine, requests: Vec<GenerationRequest>) -> Vec<Heard> {
    let generations: Vec<Generation> = requests
        .into_iter()
        .map(|r| engine.generate(r).unwrap())
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = generations
            .into_iter()
            .map(|g| s.spawn(move || hear(g, |_| false)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

const QUESTIONS: [&str; 4] = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three uses of a paperclip, and explain each one in a full sentence.",
    "Why is the sky blue?",
];

#[test]
fn a_batched_forward_pass_gives_each_sequence_its_own_logits_bit_for_bit() {
    support::logits::assert_batch_equals_alone(&model_path(), tokenizer(), &QUESTIONS);
}

#[test]
fn a_prefix_cache_hit_gives_the_logits_of_a_cold_prefill_bit_for_bit() {
    support::logits::assert_cache_hit_equals_cold(
        &model_path(),
        tokenizer(),
        "The lighthouse keeper climbed the stairs every evening to light the lamp",
        ", and one night he saw a ship that carried no lights at all.",
    );
}

/// Four different prompts decoded together give each the tokens it gets
/// alone, and they really ran together: every one had its first token
/// before any of them had finished.
#[test]
fn four_sequences_decoded_together_give_the_tokens_each_gives_alone() {
    let engine = engine(4, 0);
    let requests = || QUESTIONS.iter().map(|q| ask(q, 24)).collect::<Vec<_>>();
    let alone: Vec<Heard> = requests().into_iter().map(|r| run(&engine, r)).collect();
    let together = run_together(&engine, requests());
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert_eq!(t.ids, a.ids, "question {i}: {:?} vs {:?}", t.text, a.text);
        assert_eq!(t.ids.len(), 24);
        assert_eq!(t.finish, FinishReason::Length);
        assert!(t.waiting.is_empty(), "question {i} waited: {:?}", t.waiting);
    }
    let last_first = together.iter().map(|h| h.first_token.unwrap()).max();
    let first_done = together.iter().map(|h| h.done).min();
    assert!(last_first < first_done, "the four did not run at once");
}

/// A request that joins while another is decoding changes nothing in the
/// other's reply, and gets its own reply as it would alone.
#[test]
fn a_request_joining_mid_batch_does_not_change_the_others_tokens() {
    let engine = engine(4, 0);
    let a_alone = run(&engine, ask(QUESTIONS[2], 40));
    let b_alone = run(&engine, ask(QUESTIONS[3], 16));
    let a = engine.generate(ask(QUESTIONS[2], 40)).unwrap();
    let (a, b) = std::thread::scope(|s| {
        let (joined_tx, joined_rx) = std::sync::mpsc::channel();
        let a = s.spawn(move || {
            hear(a, |n| {
                if n == 10 {
                    let _ = joined_tx.send(());
                }
                false
            })
        });
        joined_rx.recv().unwrap();
        let b = run(&engine, ask(QUESTIONS[3], 16));
        (a.join().unwrap(), b)
    });
    assert_eq!(a.ids, a_alone.ids, "{:?} vs {:?}", a.text, a_alone.text);
    assert_eq!(b.ids, b_alone.ids, "{:?} vs {:?}", b.text, b_alone.text);
    // B ran while A was still decoding.
    assert!(b.done < a.done, "B waited for A to finish");
}

/// Finding 2 of the audit, its last part: a newcomer's long prompt no longer
/// holds up a reply already being written. The prompt is read a chunk per
/// step, and the running reply gets a token at every step in between.
#[test]
fn a_long_prompt_is_read_alongside_a_running_reply_not_before_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let engine = engine(4, 0);
    let b_started = AtomicBool::new(false);
    let b_done = AtomicBool::new(false);
    let (a_times, b) = std::thread::scope(|s| {
        let a = engine.generate(ask(QUESTIONS[2], 4000)).unwrap();
        let (b_started, b_done) = (&b_started, &b_done);
        let a = s.spawn(move || {
            let mut times = Vec::new();
            hear(a, |n| {
                times.push(Instant::now());
                if n == 5 {
                    b_started.store(true, Ordering::SeqCst);
                }
                b_done.load(Ordering::SeqCst)
            });
            times
        });
        while !b_started.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // About 2,000 tokens: four chunks of at most 512.
        let mut b = engine
            .generate(GenerationRequest {
                prompt: Prompt::Raw("word ".repeat(2000)),
                params: Params {
                    temperature: 0.0,
                    max_new_tokens: 2,
                    ..Params::default()
                },
                drop_old_turns: false,
                continue_final: false,
                priority: inference::Priority::Normal,
            })
            .unwrap();
        let mut progress = Vec::new();
        let first_token = loop {
            match b.blocking_next() {
                Some(Event::Prefill { done, .. }) => progress.push((done, Instant::now())),
                Some(Event::Token { .. }) => break Instant::now(),
                Some(Event::Waiting { .. }) => {}
                other => panic!("{other:?}"),
            }
        };
        b_done.store(true, Ordering::SeqCst);
        (a.join().unwrap(), (progress, first_token))
    });
    let (progress, b_first) = b;
    let chunks: Vec<usize> = progress.iter().map(|(d, _)| *d).collect();
    assert_eq!(chunks, [512, 1024, 1536, 2001], "{chunks:?}");
    // A's tokens while B's prompt was being read: one per step after B's first chunk.
    let b_first_chunk = progress[0].1;
    let during = a_times
        .iter()
        .filter(|t| **t > b_first_chunk && **t < b_first)
        .count();
    assert!(
        during >= 2,
        "the running reply got {during} tokens while 2,001 prompt tokens were read"
    );
}

/// With one place, requests wait in arrival order and are told how many are
/// ahead; they run first come, first served.
#[test]
fn the_queue_is_first_come_first_served() {
    let engine = engine(1, 0);
    let heard = run_together(
        &engine,
        vec![
            ask(QUESTIONS[0], 8),
            ask(QUESTIONS[1], 8),
            ask(QUESTIONS[3], 8),
        ],
    );
    let (a, b, c) = (&heard[0], &heard[1], &heard[2]);
    assert!(a.waiting.is_empty(), "{:?}", a.waiting);
    assert_eq!(b.waiting, [0]);
    assert_eq!(c.waiting, [1, 0]);
    assert!(a.done <= b.first_token.unwrap() && b.done <= c.first_token.unwrap());
    assert!(heard.iter().all(|h| h.ids.len() == 8));
}

/// Stop, and a client that goes away, end a running sequence at the next
/// step and give its place to the next request at once.
#[test]
fn stop_and_a_closed_client_free_the_place_at_once() {
    let engine = engine(1, 0);
    let long = || ask("Count from one to one thousand.", 400);
    let next_alone = run(&engine, ask(QUESTIONS[0], 8));

    // Stop after three tokens: the waiting request runs as soon as it is heard.
    let stopped = engine.generate(long()).unwrap();
    let waiting = engine.generate(ask(QUESTIONS[0], 8)).unwrap();
    let (stopped, next) = std::thread::scope(|s| {
        let stopped = s.spawn(move || hear(stopped, |n| n == 3));
        let next = s.spawn(move || hear(waiting, |_| false));
        (stopped.join().unwrap(), next.join().unwrap())
    });
    assert_eq!(stopped.finish, FinishReason::Cancelled);
    assert!(stopped.usage.completion_tokens <= 4, "{:?}", stopped.usage);
    assert_eq!(next.waiting, [0]);
    assert_eq!(next.ids, next_alone.ids);

    // A client that drops its stream after one token: the same.
    let mut dropped = engine.generate(long()).unwrap();
    let waiting = engine.generate(ask(QUESTIONS[0], 8)).unwrap();
    loop {
        match dropped.blocking_next() {
            Some(Event::Token { .. }) => break,
            Some(Event::Prefill { .. } | Event::Waiting { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    let left = Instant::now();
    drop(dropped);
    let next = hear(waiting, |_| false);
    assert_eq!(next.ids, next_alone.ids);
    // Eight tokens after the place was freed, not after 400 more of the long one's.
    let waited = next.first_token.unwrap() - left;
    let eight = next.done - next.first_token.unwrap();
    assert!(
        waited < eight * 10 + std::time::Duration::from_secs(2),
        "waited {waited:?} (8 tokens took {eight:?})"
    );
}

/// The next turn of a conversation reads only its new tokens, and its reply
/// is the one a cold engine (nothing cached) gives; so is a retry.
#[test]
fn a_next_turn_reads_only_its_new_tokens_and_answers_as_a_cold_engine() {
    let warm = engine(4, PLENTY);
    let cold = engine(4, 0);
    let first = run(&warm, ask(QUESTIONS[3], 24));
    assert_eq!(first.usage.cached_tokens, 0);
    let turn2 = [
        ("user", QUESTIONS[3]),
        ("assistant", first.text.as_str()),
        ("user", "Explain it to a five-year-old."),
    ];
    let hit = run(&warm, chat(&turn2, 24));
    let miss = run(&cold, chat(&turn2, 24));
    assert_eq!(miss.usage.cached_tokens, 0);
    assert_eq!(hit.ids, miss.ids, "{:?} vs {:?}", hit.text, miss.text);
    // Everything up to the first reply came from the cache.
    assert!(
        hit.usage.cached_tokens >= first.usage.prompt_tokens,
        "{:?} after {:?}",
        hit.usage,
        first.usage
    );
    assert_eq!(hit.usage.prompt_tokens, miss.usage.prompt_tokens);

    // A retry of the second turn: all but its last prompt token are cached.
    let retry = run(&warm, chat(&turn2, 24));
    assert_eq!(retry.ids, miss.ids);
    assert_eq!(retry.usage.cached_tokens, retry.usage.prompt_tokens - 1);
}

/// Under a budget that holds one conversation's cache, the least recently
/// used one is evicted, and every answer is still the cold engine's.
#[test]
fn eviction_under_a_tiny_budget_still_answers_correctly() {
    // One cache of up to 256 positions (the cache's growth step) fits, two do not.
    let per_position = 30 * 2 * 192 * 2;
    let tiny = engine(1, 300 * per_position);
    let cold = engine(1, 0);
    let x1 = ask(QUESTIONS[1], 16);
    let y1 = ask(QUESTIONS[2], 16);
    let x_first = run(&tiny, x1.clone());
    let y_first = run(&tiny, y1.clone());
    assert_eq!(x_first.ids, run(&cold, x1).ids);
    assert_eq!(y_first.ids, run(&cold, y1).ids);
    // X's cache was evicted for Y's: X's second turn reads at most the start
    // both share (the template's default system prompt), not its first turn.
    let x2 = chat(
        &[
            ("user", QUESTIONS[1]),
            ("assistant", x_first.text.as_str()),
            ("user", "Another one, please."),
        ],
        16,
    );
    let warm = run(&tiny, x2.clone());
    assert!(
        warm.usage.cached_tokens < x_first.usage.prompt_tokens,
        "{:?} after {:?}",
        warm.usage,
        x_first.usage
    );
    assert_eq!(warm.ids, run(&cold, x2).ids);
}

/// A kept cache unused for the idle time is released: the next turn reads
/// its whole prompt again, and answers as a cold engine does.
#[test]
fn a_cache_unused_for_the_idle_time_is_released() {
    let idle = std::time::Duration::from_millis(200);
    let forgetful = LocalEngine::load(
        &model_path(),
        EngineConfig {
            parallel: 4,
            kv_cache_bytes: Some(PLENTY),
            kv_cache_idle: Some(idle),
            ..EngineConfig::default()
        },
    )
    .unwrap();
    let cold = engine(4, 0);
    let first = run(&forgetful, ask(QUESTIONS[3], 16));
    let turn2 = [
        ("user", QUESTIONS[3]),
        ("assistant", first.text.as_str()),
        ("user", "Explain it to a five-year-old."),
    ];
    // Soon after, the cache is still there.
    let soon = run(&forgetful, chat(&turn2, 16));
    assert!(
        soon.usage.cached_tokens >= first.usage.prompt_tokens,
        "{:?}",
        soon.usage
    );
    // Long after, it is gone.
    std::thread::sleep(idle * 5);
    let late = run(&forgetful, chat(&turn2, 16));
    assert_eq!(late.usage.cached_tokens, 0, "{:?}", late.usage);
    assert_eq!(late.ids, run(&cold, chat(&turn2, 16)).ids);
}

/// Housekeeping (a conversation's title) runs at background priority: it
/// waits behind every reply, and one that holds the last place gives it up
/// to a reply that arrives.
#[test]
fn a_background_request_never_holds_up_a_reply() {
    let engine = engine(1, 0);
    let background = |max| GenerationRequest {
        priority: inference::Priority::Background,
        ..ask(QUESTIONS[2], max)
    };
    // Running alone, it takes the one place...
    let long = engine.generate(background(400)).unwrap();
    let (tx, started) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let title = s.spawn(move || {
            hear(long, |n| {
                if n == 1 {
                    let _ = tx.send(());
                }
                false
            })
        });
        started.recv().unwrap();
        // ... and gives it up to a reply at the next step.
        let reply = run(&engine, ask(QUESTIONS[0], 8));
        let title = title.join().unwrap();
        assert_eq!(title.finish, FinishReason::Cancelled);
        assert!(title.ids.len() < 400, "it was cut short");
        assert!(
            reply.waiting.iter().all(|&ahead| ahead == 0),
            "{:?}",
            reply.waiting
        );
        assert_eq!(reply.ids.len(), 8);
    });
    // Waiting, it lets a later reply go first.
    let heard = run_together(
        &engine,
        vec![ask(QUESTIONS[0], 6), background(6), ask(QUESTIONS[1], 6)],
    );
    assert!(
        heard[2].done <= heard[1].first_token.unwrap(),
        "the reply went first"
    );
    assert_eq!(heard[1].ids.len(), 6, "and then the background request ran");
}

/// "Continue": the prompt is the conversation with the reply so far and no
/// end-of-turn after it, so the model goes on with that reply — as it would
/// have without the break.
#[test]
fn continuing_a_cut_reply_goes_on_as_if_never_cut() {
    let engine = engine(1, 0);
    let whole = run(&engine, ask(QUESTIONS[2], 24));
    let first = run(&engine, ask(QUESTIONS[2], 10));
    assert_eq!(first.ids, whole.ids[..10]);
    let rest = run(
        &engine,
        GenerationRequest {
            continue_final: true,
            ..chat(&[("user", QUESTIONS[2]), ("assistant", &first.text)], 14)
        },
    );
    assert_eq!(
        format!("{}{}", first.text, rest.text),
        whole.text,
        "the continued reply reads as the uncut one"
    );
    // The prompt has the reply's tokens: more than the question alone.
    assert!(rest.usage.prompt_tokens > first.usage.prompt_tokens + 5);
}
