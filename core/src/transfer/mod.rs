//! Export and import of a person's conversations: Wick's own JSON format
//! ([`wick`], every branch, round-trips exactly) and ChatGPT's
//! `conversations.json` ([`chatgpt`]), with the database side in
//! [`crate::db::transfer`].
//!
//! An import is checked whole before anything is written, and written in one
//! transaction: a file is imported entirely or not at all. Every way a file
//! can be refused is a [`TransferError`] whose message says what is wrong and
//! where, in words meant for the person who chose the file.

pub mod chatgpt;
pub mod wick;

use serde::Serialize;
use wick_types::{FinishReason, MessageState, Role};

use crate::db::conversations::{Owner, TitleSource};
use crate::db::{StoreError, UserId};

/// The largest file an import accepts (decimal megabytes, as people count them).
pub const MAX_IMPORT_BYTES: usize = 100 * 1000 * 1000;

/// The title of an imported conversation that had none.
pub const UNTITLED: &str = "Imported conversation";

/// Why an import was refused (nothing was stored), or an export failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(
        "The file is larger than 100 MB, the most Wick imports at once. Nothing was imported."
    )]
    TooLarge,
    #[error("The file is empty. Nothing was imported.")]
    Empty,
    #[error("The file is not valid JSON: {detail} (line {line}, column {column}). Nothing was imported.")]
    Syntax {
        detail: String,
        line: usize,
        column: usize,
    },
    #[error("The file ends too early, at line {line}, column {column}: it may have been cut off. Nothing was imported.")]
    Truncated { line: usize, column: usize },
    #[error(
        "This is neither a Wick export nor ChatGPT's conversations.json. Nothing was imported."
    )]
    NotRecognised,
    #[error("This Wick export is version {0}; this Wick reads version 1. Nothing was imported.")]
    Version(u64),
    #[error("This Wick export has no version number (`version`). Nothing was imported.")]
    NoVersion,
    /// A value of the wrong type outside any conversation (the document's own fields).
    #[error("Field `{field}`: {problem}. Nothing was imported.")]
    Document { field: String, problem: String },
    /// A form post without a file in it (or not a readable form).
    #[error("No file arrived: choose a file to import and try again. Nothing was imported.")]
    NoFile,
    #[error("The file did not arrive whole: the upload was interrupted. Nothing was imported.")]
    Interrupted,
    /// A value of the wrong type, or a field that is missing.
    #[error(
        "Conversation {index} (counting from 0), field `{field}`: {problem}. Nothing was imported."
    )]
    Field {
        index: usize,
        field: String,
        problem: String,
    },
    /// A reference (parent, child, leaf, current node) to a message that is
    /// not in the conversation.
    #[error("Conversation {index} (counting from 0), {field} names \"{id}\", which is not in the conversation. Nothing was imported.")]
    Missing {
        index: usize,
        field: String,
        id: String,
    },
    #[error("Conversation {index} (counting from 0): its messages form a cycle (through \"{id}\"), so they are not a tree. Nothing was imported.")]
    Cycle { index: usize, id: String },
    #[error("Conversation {index} (counting from 0): the message id \"{id}\" is used twice. Nothing was imported.")]
    Duplicate { index: usize, id: String },
    #[error("The import could not be stored; nothing was imported.")]
    Store(#[from] StoreError),
}

impl TransferError {
    /// Whether the file is at fault (and not the server).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, TransferError::Store(_))
    }
}

/// What an import did, as the person is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct ImportSummary {
    /// Conversations stored.
    pub imported: usize,
    /// Of those, how many had been imported (or exported from here) before:
    /// they are copies beside the earlier ones.
    pub copies: usize,
    /// Parts of ChatGPT messages that Wick cannot show (images, files, tool
    /// output, unknown content types), left out.
    pub skipped_parts: usize,
    /// Defaults from the file's preferences (the default model, a model's
    /// system prompt) that were set here because the person had none.
    pub settings_restored: usize,
}

/// A conversation read from a file and checked, ready to be stored under
/// fresh ids.
#[derive(Debug, Clone)]
pub struct ImportedConversation {
    /// Where it came from (`wick:<id>`, `chatgpt:<id>`), kept in
    /// `conversations.imported_from` so that a second import is seen as a copy.
    pub imported_from: Option<String>,
    /// Its id in Wick when the file is a Wick export: if this user still has
    /// it, the import is a copy too.
    pub original_id: Option<String>,
    pub title: String,
    pub title_source: TitleSource,
    /// `None`: the server's default model (ChatGPT's models are not Wick's).
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    /// The generation settings, a JSON object.
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub pinned: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Parents before their children, siblings oldest first: the order they
    /// are inserted in (and so the order of their rowids).
    pub messages: Vec<ImportedMessage>,
    /// Index in `messages` of the newest message of the branch shown.
    pub leaf: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct ImportedMessage {
    /// Index in the conversation's `messages` (always an earlier one).
    pub parent: Option<usize>,
    pub role: Role,
    pub content: String,
    pub state: MessageState,
    pub finish_reason: Option<FinishReason>,
    pub error: Option<String>,
    pub model: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A file, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub conversations: Vec<ImportedConversation>,
    pub skipped_parts: usize,
    /// A Wick export of everything carries the person's defaults.
    pub preferences: Option<wick::WickPreferences>,
}

/// Reads a Wick export or a ChatGPT `conversations.json`, telling them apart
/// by their shape: Wick's is an object with `"format": "wick"`, ChatGPT's an
/// array. CPU-bound (a big file takes a while): run it off the async runtime.
pub fn parse(bytes: &[u8]) -> Result<Parsed, TransferError> {
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(TransferError::TooLarge);
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Err(TransferError::Empty),
        Some(b'[') => chatgpt::parse(bytes),
        Some(b'{') => wick::parse(bytes),
        Some(_) => {
            // Say what is wrong with it if it is not JSON at all.
            serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(json_error)?;
            Err(TransferError::NotRecognised)
        }
    }
}

/// Checks and stores a file's conversations for `owner` in one transaction;
/// a new visitor's user and session are made in it too. Returns the owner
/// and what was done.
pub async fn import(
    pool: &sqlx::SqlitePool,
    owner: Owner,
    default_model: &str,
    bytes: &[u8],
) -> Result<(UserId, ImportSummary), TransferError> {
    let parsed = parse(bytes)?;
    store(pool, owner, default_model, parsed).await
}

/// Stores conversations already parsed (see [`parse`]) in one transaction.
pub async fn store(
    pool: &sqlx::SqlitePool,
    owner: Owner,
    default_model: &str,
    parsed: Parsed,
) -> Result<(UserId, ImportSummary), TransferError> {
    let (user, mut summary) = crate::db::transfer::import(
        pool,
        owner,
        default_model,
        &parsed.conversations,
        parsed.preferences.as_ref(),
    )
    .await?;
    summary.skipped_parts = parsed.skipped_parts;
    Ok((user, summary))
}

/// A JSON error that is not about the data's shape: where the text breaks.
pub(crate) fn json_error(e: serde_json::Error) -> TransferError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => TransferError::Truncated {
            line: e.line(),
            column: e.column(),
        },
        _ => TransferError::Syntax {
            detail: without_position(&e),
            line: e.line(),
            column: e.column(),
        },
    }
}

/// serde_json's message without its " at line L column C" (said separately).
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// A type error found by `serde_path_to_error`: which conversation (the
/// first index of the path after `prefix` segments) and which field.
pub(crate) fn path_error(
    e: serde_path_to_error::Error<serde_json::Error>,
    prefix: usize,
) -> TransferError {
    use serde_path_to_error::Segment;
    let path = e.path().clone();
    let inner = e.into_inner();
    if !inner.is_data() {
        return json_error(inner);
    }
    let problem = without_position(&inner);
    let segments: Vec<&Segment> = path.iter().skip(prefix).collect();
    let Some((Segment::Seq { index }, rest)) = segments.split_first() else {
        // Not inside a conversation: one of the document's own fields.
        return TransferError::Document {
            field: dotted(path.iter()),
            problem,
        };
    };
    let field = dotted(rest.iter().copied());
    // A missing field is reported at its object: name the field itself.
    let field = match problem.strip_prefix("missing field `") {
        Some(name) if field.is_empty() => name.trim_end_matches('`').to_owned(),
        Some(name) => format!("{field}.{}", name.trim_end_matches('`')),
        None if field.is_empty() => "(the conversation itself)".to_owned(),
        None => field,
    };
    TransferError::Field {
        index: *index,
        field,
        problem,
    }
}

/// A path as `a.b[2].c`.
fn dotted<'a>(segments: impl Iterator<Item = &'a serde_path_to_error::Segment>) -> String {
    use serde_path_to_error::Segment;
    let mut field = String::new();
    for segment in segments {
        match segment {
            Segment::Seq { index } => field.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(key);
            }
            Segment::Enum { variant } => {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(variant);
            }
            Segment::Unknown => field.push_str(".?"),
        }
    }
    field
}

/// Orders messages so that every parent comes before its children, keeping
/// the given order wherever it already does so (a stable topological sort).
/// `parents[i]` is the index of message `i`'s parent. Returns the order, or
/// the index of a message on a cycle.
pub(crate) fn parents_first(parents: &[Option<usize>]) -> Result<Vec<usize>, usize> {
    let n = parents.len();
    let mut waiting: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut placed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    for (i, parent) in parents.iter().enumerate() {
        match *parent {
            Some(p) if !placed[p] => waiting[p].push(i),
            _ => {
                let mut stack = vec![i];
                while let Some(m) = stack.pop() {
                    placed[m] = true;
                    order.push(m);
                    // Reversed onto the stack: the waiting come out in file order.
                    stack.extend(std::mem::take(&mut waiting[m]).into_iter().rev());
                }
            }
        }
    }
    match placed.iter().position(|p| !p) {
        Some(on_cycle) => Err(on_cycle),
        None => Ok(order),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_the_rest_keeps_its_order() {
        assert_eq!(parents_first(&[None, Some(0), Some(0)]), Ok(vec![0, 1, 2]));
        assert_eq!(parents_first(&[Some(2), None, Some(1)]), Ok(vec![1, 2, 0]));
        assert!(parents_first(&[Some(1), Some(0), None]).is_err());
    }
}
