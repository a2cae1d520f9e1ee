//! The local engine with the real default model (SmolLM2-135M-Instruct, Q4_1).
//! `make model` fetches it.

mod support {
    pub mod logits;
}

use std::path::PathBuf;
use std::sync::OnceLock;

use inference::gguf::Metadata;
use inference::tokenizer::ModelTokenizer;
use inference::{
    Backend, ChatMessage, EngineConfig, Event, FinishReason, GenerationRequest, LocalEngine,
    Params, Prompt,
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

fn engine() -> &'static LocalEngine {
    static ENGINE: OnceLock<LocalEngine> = OnceLock::new();
    ENGINE.get_or_init(|| LocalEngine::load(&model_path(), EngineConfig::default()).unwrap())
}

fn tokenizer() -> &'static ModelTokenizer {
    static TOKENIZER: OnceLock<ModelTokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let mut file = std::fs::File::open(model_path()).unwrap();
        let content = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
        ModelTokenizer::load(&model_path(), &Metadata(&content.metadata)).unwrap()
    })
}

struct Outcome {
    ids: Vec<u32>,
    texts: Vec<String>,
    finish: FinishReason,
    completion_tokens: usize,
}

impl Outcome {
    fn text(&self) -> String {
        self.texts.concat()
    }
}

fn run(prompt: Prompt, params: Params) -> Outcome {
    let mut generation = engine()
        .generate(GenerationRequest {
            prompt,
            params,
            drop_old_turns: false,
        })
        .unwrap();
    let (mut ids, mut texts) = (Vec::new(), Vec::new());
    while let Some(event) = generation.blocking_next() {
        match event {
            Event::Token { id, text } => {
                ids.extend(id);
                texts.push(text);
            }
            Event::Done { finish, usage } => {
                return Outcome {
                    ids,
                    texts,
                    finish,
                    completion_tokens: usage.completion_tokens,
                }
            }
            Event::Error(e) => panic!("generation failed: {e}"),
        }
    }
    panic!("no final event")
}

fn greedy(max_new_tokens: usize) -> Params {
    Params {
        temperature: 0.0,
        max_new_tokens,
        ..Params::default()
    }
}

const FRANCE: &str =
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";

#[test]
fn greedy_tokens_match_llama_cpp() {
    // llama.cpp's greedy ids for this prompt with this GGUF, as recorded in
    // shared/docs/TOOLCHAIN.md: "The capital of France is Paris." then <|im_end|> (2).
    let out = run(Prompt::Raw(FRANCE.into()), greedy(32));
    assert_eq!(out.ids, [504, 3575, 282, 4649, 314, 7042, 30]);
    assert_eq!(out.finish, FinishReason::Eos);
    assert_eq!(out.text(), "The capital of France is Paris.");
}

#[test]
fn the_gguf_tokenizer_splits_like_the_reference() {
    // Expected ids from the same pipeline (Digits + ByteLevel BPE) in Hugging Face's
    // Python `tokenizers`; llama.cpp's `smollm` pre-tokenizer is defined the same way.
    let t = tokenizer();
    let text = "<|im_start|>user\nWhat is 2+2? Say héllo 👋<|im_end|>\n";
    assert_eq!(
        t.encode(text).unwrap(),
        [
            1, 4093, 198, 1780, 314, 216, 34, 27, 34, 47, 16172, 294, 2756, 31394, 15107, 235, 229,
            2, 198
        ]
    );
    assert_eq!(
        t.encode("2024").unwrap(),
        [34, 32, 34, 36],
        "digits are split one by one"
    );
    assert_eq!(t.bos.as_ref().map(|b| b.0), Some(1));
    assert_eq!(t.eos.as_ref().map(|e| e.0), Some(2));
    assert!(!t.add_bos);
}

#[test]
fn chat_prompts_use_the_models_template() {
    // SmolLM2's template adds its default system turn when there is none: the
    // reply is the same as for the hand-written prompt with that system turn.
    let out = run(
        Prompt::Chat(vec![ChatMessage::new(
            "user",
            "What is the capital of France?",
        )]),
        greedy(16),
    );
    let raw = format!(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n{FRANCE}"
    );
    let expected = run(Prompt::Raw(raw), greedy(16));
    assert!(!out.ids.is_empty());
    assert_eq!(out.ids, expected.ids);
}

#[test]
fn stop_sequences_end_the_reply_without_showing_the_stop() {
    let params = Params {
        stop: vec!["Paris".into()],
        ..greedy(32)
    };
    let out = run(Prompt::Raw(FRANCE.into()), params);
    assert_eq!(out.finish, FinishReason::Stop);
    assert_eq!(out.text(), "The capital of France is ");
}

#[test]
fn max_new_tokens_ends_with_length() {
    let out = run(Prompt::Raw(FRANCE.into()), greedy(3));
    assert_eq!(out.finish, FinishReason::Length);
    assert_eq!(out.completion_tokens, 3);
    assert_eq!(out.ids, [504, 3575, 282]);
}

#[test]
fn streamed_text_is_whole_utf8_and_adds_up_to_the_decoded_reply() {
    let prompt = Prompt::Chat(vec![ChatMessage::new(
        "user",
        "Write three emoji and the Japanese word for cat: 😀 猫",
    )]);
    let params = Params {
        temperature: 0.9,
        seed: 7,
        ..greedy(48)
    };
    let out = run(prompt, params);
    // Each piece is a String, so whole UTF-8 by construction; the pieces must
    // also add up to exactly the decoded reply, nothing lost or doubled.
    let decoded = tokenizer().tokenizer.decode(&out.ids, true).unwrap();
    assert_eq!(out.text(), decoded);
    assert!(
        out.texts.iter().all(|t| !t.contains('\u{FFFD}')),
        "{:?}",
        out.texts
    );
}

#[test]
fn seeded_sampling_is_repeatable() {
    let params = Params {
        temperature: 0.8,
        top_p: Some(0.9),
        seed: 42,
        ..greedy(20)
    };
    let prompt = Prompt::Chat(vec![ChatMessage::new("user", "Tell me a story.")]);
    let a = run(prompt.clone(), params.clone());
    let b = run(prompt, params);
    assert_eq!(a.ids, b.ids);
}

#[test]
fn cancelling_ends_the_generation_early() {
    let request = GenerationRequest {
        prompt: Prompt::Chat(vec![ChatMessage::new(
            "user",
            "Count from one to one thousand.",
        )]),
        params: greedy(500),
        drop_old_turns: false,
    };
    let mut generation = engine().generate(request).unwrap();
    let mut tokens = 0;
    loop {
        match generation.blocking_next().expect("a final event") {
            Event::Token { .. } => {
                tokens += 1;
                if tokens == 3 {
                    generation.cancel.cancel();
                }
            }
            Event::Done { finish, usage } => {
                assert_eq!(finish, FinishReason::Cancelled);
                // Within one token of the cancel.
                assert!(usage.completion_tokens <= 4, "{usage:?}");
                break;
            }
            Event::Error(e) => panic!("{e}"),
        }
    }
}

#[test]
fn a_prompt_longer_than_the_context_is_a_clear_error() {
    // One token per repeated word; the window is the file's declared 8192.
    let window = engine().info().context_length;
    assert_eq!(window, 8192);
    let long = "word ".repeat(window + 100);
    let mut generation = engine()
        .generate(GenerationRequest {
            prompt: Prompt::Raw(long),
            params: greedy(8),
            drop_old_turns: false,
        })
        .unwrap();
    match generation.blocking_next() {
        Some(Event::Error(e)) => {
            assert_eq!(e.kind, inference::FailureKind::ContextOverflow);
            assert!(e.message.contains("context window is 8192 tokens"), "{e}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn invalid_requests_are_refused_before_any_work() {
    let err = engine()
        .generate(GenerationRequest {
            prompt: Prompt::Raw("hi".into()),
            params: Params {
                temperature: 3.0,
                ..Params::default()
            },
            drop_old_turns: false,
        })
        .err()
        .expect("refused");
    assert_eq!(
        err.to_string(),
        "temperature must be a number from 0 to 2 (got 3)"
    );
}

#[test]
fn unsupported_architectures_are_named() {
    let err = inference::gguf::Architecture::from_gguf_name("mamba").unwrap_err();
    assert_eq!(
        err.to_string(),
        "model architecture \"mamba\" (general.architecture) is not supported; supported: llama, gemma3"
    );
}

// ---- fidelity against llama.cpp, from data recorded by scripts/record-reference.py ----

fn data(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn tokenizer_ids_equal_llama_cpp_on_the_corpus() {
    let recorded = data("llama_cpp_tokens.json");
    let entries = recorded.as_array().unwrap();
    assert!(entries.len() >= 10);
    for entry in entries {
        let text = entry["text"].as_str().unwrap();
        assert_eq!(
            tokenizer().encode(text).unwrap(),
            ids_of(&entry["ids"]),
            "{text:?}"
        );
    }
}

#[test]
fn chat_template_renders_like_llama_cpp() {
    let mut file = std::fs::File::open(model_path()).unwrap();
    let content = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
    let md = Metadata(&content.metadata);
    let template = inference::template::ChatTemplate::new(
        md.string("tokenizer.chat_template"),
        "<|im_start|>".into(),
        "<|im_end|>".into(),
    )
    .unwrap();
    for entry in data("llama_cpp_greedy.json").as_array().unwrap() {
        let user = entry["user"].as_str().unwrap();
        let rendered = template
            .render(&[ChatMessage::new("user", user)], true)
            .unwrap();
        assert_eq!(rendered, entry["rendered"].as_str().unwrap());
    }
}

/// Full agreement (32 tokens, or to the end of the reply) on every reference
/// prompt: Wick's engine does ggml's arithmetic in ggml's order (see
/// `inference::kernels`), so near-ties fall the same way as in llama.cpp.
#[test]
fn greedy_tokens_equal_llama_cpp_on_the_reference_prompts() {
    let entries = data("llama_cpp_greedy.json");
    let mut report = Vec::new();
    for entry in entries.as_array().unwrap() {
        let mut expected = ids_of(&entry["ids"]);
        // llama.cpp lists the end-of-turn token it stopped on; Wick reports it as the finish reason.
        let ended = entry["stop"] == "eos" && expected.last() == Some(&2);
        if ended {
            expected.pop();
        }
        let user = entry["user"].as_str().unwrap();
        let budget = expected.len() + usize::from(ended);
        let out = run(
            Prompt::Chat(vec![ChatMessage::new("user", user)]),
            greedy(budget),
        );
        let same = out
            .ids
            .iter()
            .zip(&expected)
            .take_while(|(a, b)| a == b)
            .count();
        report.push(format!("{same}/{} {user:?}", expected.len()));
        assert_eq!(
            out.ids, expected,
            "{user:?}: only the first {same} tokens agree with llama.cpp"
        );
        assert_eq!(out.finish == FinishReason::Eos, ended, "{user:?}");
    }
    eprintln!("greedy agreement with llama.cpp: {}", report.join(", "));
}

/// The logits after each reference prompt are llama.cpp's, bit for bit (see `support/logits.rs`).
#[test]
fn prompt_logits_equal_llama_cpp_bit_for_bit() {
    support::logits::assert_prompt_logits_equal_llama_cpp(&model_path(), "smollm2", tokenizer());
}
