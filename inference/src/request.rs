//! What a caller may ask of a backend, and the one place it is checked.

/// One turn of a conversation, as chat templates expect it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// The text to continue: a conversation rendered by the model's chat template,
/// or a raw prompt used as it is.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Chat(Vec<ChatMessage>),
    Raw(String),
}

/// Sampling and stopping parameters. `temperature == 0` means greedy.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub temperature: f64,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    /// 1.0 disables the penalty.
    pub repetition_penalty: f32,
    /// How many of the latest tokens the repetition penalty looks at.
    pub repeat_last_n: usize,
    pub max_new_tokens: usize,
    /// Generation ends when one of these appears; the stop text itself is not emitted.
    pub stop: Vec<String>,
    pub seed: u64,
    /// Keep generating past the end-of-turn token (for benchmarks, like llama.cpp's `--ignore-eos`).
    pub ignore_eos: bool,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_p: Some(0.95),
            top_k: None,
            repetition_penalty: 1.0,
            repeat_last_n: 64,
            max_new_tokens: 512,
            stop: Vec::new(),
            seed: 299792458,
            ignore_eos: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    pub prompt: Prompt,
    pub params: Params,
    /// For chats: when the conversation does not fit the context window, drop
    /// its oldest turns (never a system message nor the newest message) instead
    /// of failing with `ContextOverflow`.
    pub drop_old_turns: bool,
    /// For chats: the final message is an assistant's reply cut short, to be
    /// extended in place ("Continue"): the prompt is the conversation with
    /// that reply's text and no end-of-turn after it.
    pub continue_final: bool,
    /// Where the request waits when the model is busy.
    pub priority: Priority,
}

/// How urgently a request wants the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    /// Someone is waiting for it: a chat reply, an API call.
    #[default]
    Normal,
    /// Housekeeping (a conversation's title): runs only when no normal
    /// request waits, and gives way to one that arrives.
    Background,
}

pub const MAX_TEMPERATURE: f64 = 2.0;
pub const MAX_NEW_TOKENS: usize = 8192;
pub const MAX_REPEAT_LAST_N: usize = 4096;
pub const MAX_REPETITION_PENALTY: f32 = 10.0;
pub const MAX_STOP_SEQUENCES: usize = 8;
pub const MAX_STOP_CHARS: usize = 256;
const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// Why a request was refused; every message names the field and the bound.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    #[error("messages must not be empty")]
    NoMessages,
    #[error("messages[{index}].role must be one of system, user, assistant (got {role:?})")]
    BadRole { index: usize, role: String },
    #[error("prompt must not be empty")]
    EmptyPrompt,
    #[error("only a conversation whose last message is the assistant's can be continued")]
    NothingToContinue,
    #[error("temperature must be a number from 0 to {MAX_TEMPERATURE} (got {0})")]
    Temperature(f64),
    #[error("top_p must be greater than 0 and at most 1 (got {0})")]
    TopP(f64),
    #[error("top_k must be at least 1 (got 0)")]
    TopK,
    #[error(
        "repetition_penalty must be greater than 0 and at most {MAX_REPETITION_PENALTY} (got {0})"
    )]
    RepetitionPenalty(f32),
    #[error("repeat_last_n must be at most {MAX_REPEAT_LAST_N} (got {0})")]
    RepeatLastN(usize),
    #[error("max_new_tokens must be from 1 to {MAX_NEW_TOKENS} (got {0})")]
    MaxNewTokens(usize),
    #[error("stop may hold at most {MAX_STOP_SEQUENCES} sequences (got {0})")]
    TooManyStops(usize),
    #[error("stop[{0}] must not be empty")]
    EmptyStop(usize),
    #[error("stop[{index}] must be at most {MAX_STOP_CHARS} characters (got {chars})")]
    LongStop { index: usize, chars: usize },
}

impl ValidationError {
    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            ValidationError::NoMessages
            | ValidationError::BadRole { .. }
            | ValidationError::NothingToContinue => "messages",
            ValidationError::EmptyPrompt => "prompt",
            ValidationError::Temperature(_) => "temperature",
            ValidationError::TopP(_) => "top_p",
            ValidationError::TopK => "top_k",
            ValidationError::RepetitionPenalty(_) => "repetition_penalty",
            ValidationError::RepeatLastN(_) => "repeat_last_n",
            ValidationError::MaxNewTokens(_) => "max_new_tokens",
            ValidationError::TooManyStops(_)
            | ValidationError::EmptyStop(_)
            | ValidationError::LongStop { .. } => "stop",
        }
    }
}

impl GenerationRequest {
    /// Checks every field against its bounds before any model work starts.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match &self.prompt {
            Prompt::Chat(messages) => {
                if messages.is_empty() {
                    return Err(ValidationError::NoMessages);
                }
                for (index, m) in messages.iter().enumerate() {
                    if !ROLES.contains(&m.role.as_str()) {
                        return Err(ValidationError::BadRole {
                            index,
                            role: m.role.clone(),
                        });
                    }
                }
            }
            Prompt::Raw(text) if text.is_empty() => return Err(ValidationError::EmptyPrompt),
            Prompt::Raw(_) => {}
        }
        if self.continue_final {
            match &self.prompt {
                Prompt::Chat(messages)
                    if messages.last().is_some_and(|m| m.role == "assistant") => {}
                _ => return Err(ValidationError::NothingToContinue),
            }
        }
        self.params.validate()
    }
}

impl Params {
    pub fn validate(&self) -> Result<(), ValidationError> {
        let p = self;
        if !(0.0..=MAX_TEMPERATURE).contains(&p.temperature) {
            return Err(ValidationError::Temperature(p.temperature));
        }
        if let Some(top_p) = p.top_p {
            if !(top_p > 0.0 && top_p <= 1.0) {
                return Err(ValidationError::TopP(top_p));
            }
        }
        if p.top_k == Some(0) {
            return Err(ValidationError::TopK);
        }
        if !(p.repetition_penalty > 0.0 && p.repetition_penalty <= MAX_REPETITION_PENALTY) {
            return Err(ValidationError::RepetitionPenalty(p.repetition_penalty));
        }
        if p.repeat_last_n > MAX_REPEAT_LAST_N {
            return Err(ValidationError::RepeatLastN(p.repeat_last_n));
        }
        if p.max_new_tokens == 0 || p.max_new_tokens > MAX_NEW_TOKENS {
            return Err(ValidationError::MaxNewTokens(p.max_new_tokens));
        }
        if p.stop.len() > MAX_STOP_SEQUENCES {
            return Err(ValidationError::TooManyStops(p.stop.len()));
        }
        for (index, s) in p.stop.iter().enumerate() {
            if s.is_empty() {
                return Err(ValidationError::EmptyStop(index));
            }
            let chars = s.chars().count();
            if chars > MAX_STOP_CHARS {
                return Err(ValidationError::LongStop { index, chars });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat() -> GenerationRequest {
        GenerationRequest {
            prompt: Prompt::Chat(vec![ChatMessage::new("user", "hi")]),
            params: Params::default(),
            drop_old_turns: false,
            continue_final: false,
            priority: crate::Priority::Normal,
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(chat().validate(), Ok(()));
    }

    #[test]
    fn each_bound_is_named_in_its_error() {
        type Change = Box<dyn Fn(&mut GenerationRequest)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|r| r.params.temperature = 2.5),
                "temperature must be a number from 0 to 2 (got 2.5)",
            ),
            (
                Box::new(|r| r.params.temperature = f64::NAN),
                "temperature must be a number from 0 to 2 (got NaN)",
            ),
            (
                Box::new(|r| r.params.top_p = Some(0.0)),
                "top_p must be greater than 0 and at most 1 (got 0)",
            ),
            (
                Box::new(|r| r.params.top_k = Some(0)),
                "top_k must be at least 1 (got 0)",
            ),
            (
                Box::new(|r| r.params.max_new_tokens = 0),
                "max_new_tokens must be from 1 to 8192 (got 0)",
            ),
            (
                Box::new(|r| r.params.max_new_tokens = 9000),
                "max_new_tokens must be from 1 to 8192 (got 9000)",
            ),
            (
                Box::new(|r| r.params.repetition_penalty = 0.0),
                "repetition_penalty must be greater than 0 and at most 10 (got 0)",
            ),
            (
                Box::new(|r| r.params.repeat_last_n = 5000),
                "repeat_last_n must be at most 4096 (got 5000)",
            ),
            (
                Box::new(|r| r.params.stop = vec![String::new()]),
                "stop[0] must not be empty",
            ),
            (
                Box::new(|r| r.params.stop = vec!["x".repeat(300)]),
                "stop[0] must be at most 256 characters (got 300)",
            ),
            (
                Box::new(|r| r.params.stop = vec!["s".into(); 9]),
                "stop may hold at most 8 sequences (got 9)",
            ),
            (
                Box::new(|r| r.prompt = Prompt::Chat(vec![])),
                "messages must not be empty",
            ),
            (
                Box::new(|r| r.prompt = Prompt::Chat(vec![ChatMessage::new("robot", "x")])),
                "messages[0].role must be one of system, user, assistant (got \"robot\")",
            ),
            (
                Box::new(|r| r.prompt = Prompt::Raw(String::new())),
                "prompt must not be empty",
            ),
        ];
        for (change, message) in cases {
            let mut r = chat();
            change(&mut r);
            assert_eq!(r.validate().unwrap_err().to_string(), message);
        }
    }
}
