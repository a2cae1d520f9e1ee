//! The fidelity check both local models share: the logits after a prompt,
//! summed in f32 in order, equal the sum llama.cpp's `llama-eval-callback`
//! printed for the same prompt (`scripts/record-reference.py --logits`).
//! Tens of thousands of logits that add up to the same six decimals are the
//! same logits, not merely close ones.

use std::path::{Path, PathBuf};

use inference::tokenizer::ModelTokenizer;

/// Checks every recorded prompt of `model` ("smollm2", "gemma3") against the GGUF at `path`.
pub fn assert_prompt_logits_equal_llama_cpp(path: &Path, model: &str, tok: &ModelTokenizer) {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/llama_cpp_logits.json");
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(data).unwrap()).unwrap();
    let entries: Vec<_> = entries.iter().filter(|e| e["model"] == model).collect();
    assert_eq!(entries.len(), 6, "recorded prompts for {model}");
    let mut loaded = inference::gguf::load(path, 2).unwrap();
    for e in entries {
        let prompt = e["prompt"].as_str().unwrap();
        // As llama.cpp tokenizes a prompt: bos first when the file asks for it.
        let mut ids: Vec<u32> = Vec::new();
        if tok.add_bos {
            ids.extend(tok.bos.as_ref().map(|(id, _)| *id));
        }
        ids.extend(tok.encode(prompt).unwrap());
        assert_eq!(
            ids.len() as u64,
            e["tokens"].as_u64().unwrap(),
            "{prompt:?}"
        );
        let logits: Vec<f32> = loaded.weights.forward(&ids, 0).unwrap().to_vec1().unwrap();
        let sum = logits.iter().fold(0f32, |s, x| s + x);
        assert_eq!(
            format!("{sum:.6}"),
            e["logits_sum"].as_str().unwrap(),
            "{prompt:?}"
        );
    }
}

/// Asserts that the logits after `text`'s prompt read in chunks of the
/// engine's prefill size are those of one forward pass, bit for bit (each
/// chunk only extends the cache; for Gemma, past its sliding window too).
pub fn assert_chunked_prefill_equals_one_pass(path: &Path, tok: &ModelTokenizer, text: &str) {
    let chunk = inference::engine::PREFILL_CHUNK;
    let mut loaded = inference::gguf::load(path, 2).unwrap();
    let ids = tok.encode(text).unwrap();
    assert!(ids.len() > 2 * chunk, "{}", ids.len());
    let whole: Vec<f32> = loaded.weights.forward(&ids, 0).unwrap().to_vec1().unwrap();
    let mut chunked = Vec::new();
    for (i, piece) in ids.chunks(chunk).enumerate() {
        chunked = loaded
            .weights
            .forward(piece, i * chunk)
            .unwrap()
            .to_vec1()
            .unwrap();
    }
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&chunked), bits(&whole));
}
