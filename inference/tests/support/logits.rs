// Each test binary uses some of these checks.
#![allow(dead_code)]

//! The fidelity check both local models share: the logits after a prompt,
//! summed in f32 in order, equal the sum llama.cpp's `llama-eval-callback`
//! printed for the same prompt (`scripts/record-reference.py --logits`).
//! Tens of thousands of logits that add up to the same six decimals are the
//! same logits, not merely close ones.

use std::path::{Path, PathBuf};

use inference::gguf::{Step, Weights};
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
        let mut sequence = loaded.weights.new_sequence();
        let logits: Vec<f32> = loaded
            .weights
            .forward(&mut sequence, &ids, 0)
            .unwrap()
            .to_vec1()
            .unwrap();
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
    let whole = logits(&mut loaded.weights, &ids);
    let mut chunked = Vec::new();
    let mut sequence = loaded.weights.new_sequence();
    for (i, piece) in ids.chunks(chunk).enumerate() {
        chunked = loaded
            .weights
            .forward(&mut sequence, piece, i * chunk)
            .unwrap()
            .to_vec1()
            .unwrap();
    }
    assert_eq!(bits(&chunked), bits(&whole));
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The logits after `ids`, read in one pass by a new sequence.
fn logits(weights: &mut Weights, ids: &[u32]) -> Vec<f32> {
    let mut sequence = weights.new_sequence();
    weights
        .forward(&mut sequence, ids, 0)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Asserts that one batched forward pass over several sequences — prompts
/// of different lengths, some read whole and some continuing a cache, with
/// one-token decode steps among them — gives each sequence, bit for bit, the
/// logits it gets alone.
pub fn assert_batch_equals_alone(path: &Path, tok: &ModelTokenizer, texts: &[&str]) {
    let mut loaded = inference::gguf::load(path, 2).unwrap();
    let weights = &mut loaded.weights;
    let prompts: Vec<Vec<u32>> = texts.iter().map(|t| tok.encode(t).unwrap()).collect();
    // Alone: each prompt but its last token, then the last token (a decode step).
    let mut alone = Vec::new();
    for ids in &prompts {
        let mut sequence = weights.new_sequence();
        let (head, last) = ids.split_at(ids.len() - 1);
        weights.forward(&mut sequence, head, 0).unwrap();
        let l: Vec<f32> = weights
            .forward(&mut sequence, last, head.len())
            .unwrap()
            .to_vec1()
            .unwrap();
        alone.push(l);
    }
    // Together: every prompt's head in one batch, then every last token in another.
    let mut sequences: Vec<_> = prompts.iter().map(|_| weights.new_sequence()).collect();
    let heads: Vec<Vec<f32>> = {
        let mut steps: Vec<Step> = sequences
            .iter_mut()
            .zip(&prompts)
            .map(|(sequence, ids)| Step {
                sequence,
                tokens: &ids[..ids.len() - 1],
                position: 0,
            })
            .collect();
        let out = weights.forward_batch(&mut steps).unwrap();
        out.iter().map(|t| t.to_vec1().unwrap()).collect()
    };
    let mut steps: Vec<Step> = sequences
        .iter_mut()
        .zip(&prompts)
        .map(|(sequence, ids)| Step {
            sequence,
            tokens: &ids[ids.len() - 1..],
            position: ids.len() - 1,
        })
        .collect();
    let lasts = weights.forward_batch(&mut steps).unwrap();
    for (i, (last, (head, batched_last))) in alone.iter().zip(heads.iter().zip(&lasts)).enumerate()
    {
        let head_alone = logits(weights, &prompts[i][..prompts[i].len() - 1]);
        assert_eq!(
            bits(head),
            bits(&head_alone),
            "prompt {i}: the batched prompt"
        );
        let batched_last: Vec<f32> = batched_last.to_vec1().unwrap();
        assert_eq!(
            bits(&batched_last),
            bits(last),
            "prompt {i}: the batched decode step"
        );
    }
}

/// Asserts that a sequence that reuses another's cache for the prompt's start
/// (the prefix cache) gives, bit for bit, the logits of a cold prefill.
pub fn assert_cache_hit_equals_cold(path: &Path, tok: &ModelTokenizer, first: &str, next: &str) {
    let mut loaded = inference::gguf::load(path, 2).unwrap();
    let weights = &mut loaded.weights;
    let a = tok.encode(first).unwrap();
    let b = tok.encode(&format!("{first}{next}")).unwrap();
    let shared = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    assert!(shared > 8 && shared < b.len(), "{shared} of {}", b.len());
    // The first request: its prompt, then a few one-token steps (its reply).
    let mut sequence = weights.new_sequence();
    weights.forward(&mut sequence, &a, 0).unwrap();
    for (i, &t) in [a[1], a[2], a[3]].iter().enumerate() {
        weights.forward(&mut sequence, &[t], a.len() + i).unwrap();
    }
    // The next request reads only what is new, from the shared start on
    // (a copy first: the hit overwrites the first request's tail) …
    let mut copy = sequence.copy_prefix(shared).unwrap();
    let hit: Vec<f32> = weights
        .forward(&mut sequence, &b[shared..], shared)
        .unwrap()
        .to_vec1()
        .unwrap();
    // … and so does a copy of the shared start.
    let from_copy: Vec<f32> = weights
        .forward(&mut copy, &b[shared..], shared)
        .unwrap()
        .to_vec1()
        .unwrap();
    let cold = logits(weights, &b);
    assert_eq!(
        bits(&hit),
        bits(&cold),
        "a cache hit against a cold prefill"
    );
    assert_eq!(
        bits(&from_copy),
        bits(&cold),
        "a copied prefix against a cold prefill"
    );
}
