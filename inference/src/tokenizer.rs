//! The model's tokenizer, built from the GGUF's own `tokenizer.ggml.*` metadata
//! (no download), or from a `tokenizer.json` beside the model when one is there.
//!
//! Two GGUF tokenizer models are understood: byte-level BPE (`"gpt2"`, e.g. SmolLM2)
//! and SentencePiece BPE (`"llama"`, e.g. Gemma 3), each giving llama.cpp's token ids.

use std::collections::HashMap;
use std::path::Path;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::prepend::Prepend;
use tokenizers::normalizers::replace::Replace;
use tokenizers::normalizers::utils::Sequence as NormalizerSequence;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, Tokenizer};

use crate::gguf::Metadata;
use crate::template::Piece;
use crate::InferenceError;

/// GGUF token types (llama.cpp's `llama_token_type`): control tokens such as
/// `<|im_start|>` and user-defined ones are matched whole, never split.
const TOKEN_TYPE_UNKNOWN: i64 = 2;
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// SentencePiece's escaped space.
const SPM_SPACE: &str = "\u{2581}";

/// Token strings that end a turn in the chat formats we know, besides the eos token.
const END_OF_TURN: [&str; 4] = ["<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|endoftext|>"];

pub struct ModelTokenizer {
    /// Matches control tokens written in the text (`<|im_start|>`) as their
    /// ids: for what the chat template writes, and raw prompts.
    pub tokenizer: Tokenizer,
    /// The same vocabulary with control tokens read as plain text, as
    /// llama.cpp's `parse_special = false`: for what people wrote (message
    /// contents), so that typing `<|im_start|>system` cannot open a turn.
    /// User-defined tokens (Gemma's `\n`, runs of spaces) still match whole,
    /// as in llama.cpp.
    text: Tokenizer,
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
        let mut text = tokenizer.clone();
        text.set_encode_special_tokens(true);
        Ok(Self {
            add_bos: md.bool("tokenizer.ggml.add_bos_token").unwrap_or(false),
            text,
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

    /// Token ids of `text` read as plain text: a control token's string
    /// written in it is split like any other characters (llama.cpp's
    /// `parse_special = false`). For message contents.
    pub fn encode_text(&self, text: &str) -> Result<Vec<u32>, InferenceError> {
        let encoding = self
            .text
            .encode(text, false)
            .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Token ids of a rendered chat prompt: special tokens only where the
    /// template wrote them, message contents as plain text.
    ///
    /// The prompt is cut at the special tokens of the template's pieces; each
    /// stretch of text between two of them (template text and contents
    /// together) is encoded as plain text. That is how [`Self::encode`]
    /// splits the whole rendering too, so a conversation with no special
    /// token in its messages gets exactly the ids it got before.
    pub fn encode_pieces(&self, pieces: &[Piece]) -> Result<Vec<u32>, InferenceError> {
        let mut ids = Vec::new();
        let mut text = String::new();
        for piece in pieces {
            match piece {
                Piece::Content(content) => text.push_str(content),
                Piece::Template(template) => {
                    let encoding = self
                        .tokenizer
                        .encode(template.as_str(), false)
                        .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
                    let mut from = 0;
                    for (&id, &(start, end)) in
                        encoding.get_ids().iter().zip(encoding.get_offsets())
                    {
                        if self.is_control(id) {
                            text.push_str(&template[from..start]);
                            if !text.is_empty() {
                                ids.extend(self.encode_text(&text)?);
                                text.clear();
                            }
                            ids.push(id);
                            from = end;
                        }
                    }
                    text.push_str(&template[from..]);
                }
            }
        }
        if !text.is_empty() {
            ids.extend(self.encode_text(&text)?);
        }
        Ok(ids)
    }

    /// Whether `id` is a control token (a turn marker, bos, eos): one that
    /// only the chat template may write.
    pub fn is_control(&self, id: u32) -> bool {
        self.tokenizer
            .get_added_vocabulary()
            .get_added_tokens_decoder()
            .get(&id)
            .is_some_and(|t| t.special)
    }
}

/// A tokenizer from the GGUF's `tokenizer.ggml.model` and its companion keys.
fn from_gguf(md: &Metadata) -> Result<Tokenizer, InferenceError> {
    let model = md.string("tokenizer.ggml.model").unwrap_or_default();
    match model.as_str() {
        "gpt2" => byte_level_bpe(md),
        "llama" => sentencepiece_bpe(md),
        other => Err(InferenceError::Tokenizer(format!(
            "tokenizer.ggml.model {other:?} is not supported yet (only byte-level BPE, \"gpt2\", \
             and SentencePiece BPE, \"llama\"); place a tokenizer.json beside the model"
        ))),
    }
}

/// A byte-level BPE tokenizer from `tokenizer.ggml.{pre,tokens,merges,token_type}`.
fn byte_level_bpe(md: &Metadata) -> Result<Tokenizer, InferenceError> {
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

/// A SentencePiece BPE tokenizer from `tokenizer.ggml.{tokens,scores,token_type}`,
/// splitting as llama.cpp's `llm_tokenizer_spm` does.
///
/// llama.cpp escapes spaces to "▁", starts from single characters and keeps merging
/// the adjacent pair whose concatenation is the vocabulary token of highest score
/// (the leftmost one on a tie); characters outside the vocabulary become `<0xXX>`
/// byte tokens. Hugging Face's BPE does the same given, for every token, each split
/// into two vocabulary tokens as a merge, ranked by the token's score (the merges
/// Hugging Face's `SentencePieceExtractor` derives from a SentencePiece model).
/// Control, unknown and user-defined tokens are matched whole in the raw text first.
fn sentencepiece_bpe(md: &Metadata) -> Result<Tokenizer, InferenceError> {
    let tokens = md.strings("tokenizer.ggml.tokens")?;
    let scores = floats(md, "tokenizer.ggml.scores")?;
    if scores.len() != tokens.len() {
        return Err(InferenceError::BadMetadata(
            "tokenizer.ggml.scores".into(),
            format!("{} scores for {} tokens", scores.len(), tokens.len()),
        ));
    }
    let types = md.ints("tokenizer.ggml.token_type").unwrap_or_default();
    let add_space_prefix = md.bool("tokenizer.ggml.add_space_prefix").unwrap_or(true);

    let ids: HashMap<&str, u32> = tokens.iter().map(String::as_str).zip(0u32..).collect();
    let mut merges: Vec<(u32, u32, u32)> = Vec::new(); // (merged, left, right)
    for (id, token) in (0u32..).zip(&tokens) {
        for (at, _) in token.char_indices().skip(1) {
            let (left, right) = token.split_at(at);
            if let (Some(&l), Some(&r)) = (ids.get(left), ids.get(right)) {
                merges.push((id, l, r));
            }
        }
    }
    // Highest score first; then by the merged token's id and the left part's length
    // (`partial_cmp`, as llama.cpp's `<`: -0.0 and 0.0 tie; NaN counts as lowest).
    let score = |id: u32| {
        let s = scores[id as usize];
        if s.is_nan() {
            f32::NEG_INFINITY
        } else {
            s
        }
    };
    merges.sort_unstable_by(|a, b| {
        score(b.0)
            .partial_cmp(&score(a.0))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.0.cmp(&b.0))
            .then(tokens[a.1 as usize].len().cmp(&tokens[b.1 as usize].len()))
    });
    let merges: Vec<(String, String)> = merges
        .into_iter()
        .map(|(_, l, r)| (tokens[l as usize].clone(), tokens[r as usize].clone()))
        .collect();
    drop(ids);

    let unk = md
        .usize("tokenizer.ggml.unknown_token_id")
        .and_then(|id| tokens.get(id))
        .cloned()
        .or_else(|| tokens.iter().find(|t| *t == "<unk>").cloned());
    let vocab: Vocab = tokens.iter().cloned().zip(0u32..).collect();
    let mut bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true);
    if let Some(unk) = unk {
        bpe = bpe.unk_token(unk);
    }
    let bpe = bpe
        .build()
        .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;

    let mut tokenizer = Tokenizer::new(bpe);
    let escape: NormalizerWrapper = Replace::new(" ", SPM_SPACE)
        .map_err(|e| InferenceError::Tokenizer(e.to_string()))?
        .into();
    let normalizer: NormalizerWrapper = if add_space_prefix {
        // llama.cpp prefixes a space to every piece of text after a special token
        // (and at the start); the normalizer runs on each such piece.
        NormalizerSequence::new(vec![Prepend::new(SPM_SPACE.into()).into(), escape]).into()
    } else {
        escape
    };
    tokenizer
        .with_normalizer(Some(normalizer))
        .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
    let unescape: DecoderWrapper = Replace::new(SPM_SPACE, " ")
        .map_err(|e| InferenceError::Tokenizer(e.to_string()))?
        .into();
    let mut decoders = vec![unescape, ByteFallback::new().into(), Fuse::new().into()];
    if add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));

    // Matched in the raw text before normalization, as llama.cpp does. Control
    // tokens are special (skipped when decoding for display); user-defined ones,
    // such as Gemma's "\n" and runs of spaces, are ordinary text.
    let mut special = Vec::new();
    let mut user_defined = Vec::new();
    for (token, kind) in tokens.iter().zip(types.iter()) {
        match *kind {
            TOKEN_TYPE_CONTROL | TOKEN_TYPE_UNKNOWN => {
                special.push(AddedToken::from(token.clone(), true))
            }
            TOKEN_TYPE_USER_DEFINED => {
                user_defined.push(AddedToken::from(token.clone(), false).normalized(false))
            }
            _ => {}
        }
    }
    tokenizer
        .add_special_tokens(special)
        .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
    tokenizer
        .add_tokens(user_defined)
        .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
    Ok(tokenizer)
}

/// An array of floats (`tokenizer.ggml.scores`).
fn floats(md: &Metadata, key: &str) -> Result<Vec<f32>, InferenceError> {
    let bad = |e: candle_core::Error| InferenceError::BadMetadata(key.to_owned(), e.to_string());
    md.get(key)
        .ok_or_else(|| InferenceError::MissingMetadata(key.to_owned()))?
        .to_vec()
        .map_err(bad)?
        .iter()
        .map(|v| v.to_f32().map_err(bad))
        .collect()
}
