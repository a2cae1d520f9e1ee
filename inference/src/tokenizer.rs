//! The model's tokenizer, built from the GGUF's own `tokenizer.ggml.*` metadata
//! (no download), or from a `tokenizer.json` beside the model when one is there.

use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};

use crate::gguf::Metadata;
use crate::InferenceError;

/// GGUF token types (llama.cpp's `llama_token_type`): control tokens such as
/// `<|im_start|>` and user-defined ones are matched whole, never split.
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// Token strings that end a turn in the chat formats we know, besides the eos token.
const END_OF_TURN: [&str; 4] = ["<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|endoftext|>"];

pub struct ModelTokenizer {
    pub tokenizer: Tokenizer,
    pub bos: Option<(u32, String)>,
    pub eos: Option<(u32, String)>,
    /// Whether a raw prompt starts with the bos token (`tokenizer.ggml.add_bos_token`).
    pub add_bos: bool,
    /// Ids that end generation: eos and end-of-turn tokens.
    pub stop_ids: Vec<u32>,
}

impl ModelTokenizer {
    /// Prefers `tokenizer.json` in the model's directory; otherwise builds from metadata.
    pub fn load(model_path: &Path, md: &Metadata) -> Result<Self, InferenceError> {
        let beside = model_path.with_file_name("tokenizer.json");
        let tokenizer = if beside.exists() {
            Tokenizer::from_file(&beside)
                .map_err(|e| InferenceError::Tokenizer(format!("{}: {e}", beside.display())))?
        } else {
            from_gguf(md)?
        };
        let token = |key: &str| {
            let id = md.usize(key)? as u32;
            let text = tokenizer.id_to_token(id)?;
            Some((id, text))
        };
        let bos = token("tokenizer.ggml.bos_token_id");
        let eos = token("tokenizer.ggml.eos_token_id");
        let mut stop_ids: Vec<u32> = eos.iter().map(|(id, _)| *id).collect();
        for text in END_OF_TURN {
            if let Some(id) = tokenizer.token_to_id(text) {
                if !stop_ids.contains(&id) {
                    stop_ids.push(id);
                }
            }
        }
        Ok(Self {
            add_bos: md.bool("tokenizer.ggml.add_bos_token").unwrap_or(false),
            tokenizer,
            bos,
            eos,
            stop_ids,
        })
    }

    /// Token ids of `text`; special tokens written in the text (from the chat
    /// template) become their single ids.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, InferenceError> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }
}

/// A byte-level BPE tokenizer from `tokenizer.ggml.{model,pre,tokens,merges,token_type}`.
fn from_gguf(md: &Metadata) -> Result<Tokenizer, InferenceError> {
    let model = md.string("tokenizer.ggml.model").unwrap_or_default();
    if model != "gpt2" {
        return Err(InferenceError::Tokenizer(format!(
            "tokenizer.ggml.model {model:?} is not supported yet (only byte-level BPE, \"gpt2\"); \
             place a tokenizer.json beside the model"
        )));
    }
    let pre = md
        .string("tokenizer.ggml.pre")
        .unwrap_or_else(|| "default".into());
    let tokens = md.strings("tokenizer.ggml.tokens")?;
    let merges = md.strings("tokenizer.ggml.merges")?;
    let types = md.ints("tokenizer.ggml.token_type").unwrap_or_default();

    let vocab: Vocab = tokens.iter().cloned().zip(0u32..).collect();
    let merges: Vec<(String, String)> = merges
        .iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| InferenceError::Tokenizer(format!("malformed merge {m:?}")))
        })
        .collect::<Result<_, _>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;

    let mut tokenizer = Tokenizer::new(bpe);
    // GPT-2's byte-level split, as llama.cpp does for these `pre` types; SmolLM
    // first splits digits one by one.
    let byte_level: PreTokenizerWrapper = ByteLevel::new(false, true, true).into();
    let pre_tokenizer: PreTokenizerWrapper = match pre.as_str() {
        "smollm" => Sequence::new(vec![Digits::new(true).into(), byte_level]).into(),
        "gpt2" | "default" => byte_level,
        other => {
            return Err(InferenceError::Tokenizer(format!(
                "pre-tokenizer {other:?} (tokenizer.ggml.pre) is not supported yet; place a tokenizer.json beside the model"
            )))
        }
    };
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));

    let special: Vec<AddedToken> = tokens
        .iter()
        .zip(types.iter())
        .filter(|(_, t)| matches!(**t, TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED))
        .map(|(s, _)| AddedToken::from(s.clone(), true))
        .collect();
    tokenizer
        .add_special_tokens(special)
        .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
    Ok(tokenizer)
}
