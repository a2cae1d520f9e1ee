//! Wick's own export format, version 1: everything needed to rebuild a
//! conversation exactly, every branch included.
//!
//! ```json
//! {
//!   "format": "wick",
//!   "version": 1,
//!   "exported_at": 1764800000000,            // Unix milliseconds
//!   "preferences": {                         // the Settings page (optional)
//!     "default_model": "…model id…" | null,
//!     "model_prompts": { "…model id…": "…default system prompt…" }
//!   },
//!   "conversations": [{
//!     "id": "…32 hex digits…",
//!     "title": "…",
//!     "title_source": "provisional" | "model" | "user",
//!     "model": "…model id…",
//!     "system_prompt": "…" | null,
//!     "settings": { "temperature": 0.7, … },  // generation settings, an object
//!     "pinned": false,
//!     "created_at": 1764800000000,
//!     "updated_at": 1764800000000,
//!     "leaf_message_id": "…" | null,           // newest message of the branch shown
//!     "messages": [{                           // oldest first (created_at, then insertion)
//!       "id": "…", "parent_id": "…" | null,    // edits and retries share a parent
//!       "role": "system" | "user" | "assistant",
//!       "content": "…",
//!       "state": "generating" | "done" | "interrupted" | "error",
//!       "finish_reason": "eos" | "stop" | "length" | "stopped" | "error" | null,
//!       "error": "…" | null, "model": "…" | null,
//!       "prompt_tokens": 12 | null, "completion_tokens": 34 | null,
//!       "created_at": 1764800000000, "updated_at": 1764800000000
//!     }]
//!   }]
//! }
//! ```
//!
//! On import every conversation and message gets a fresh id (ids are global
//! keys, and the originals may still exist here); parents and the leaf are
//! mapped to the new ids, times are kept. A reply exported while it was being
//! written is imported as `interrupted`: nothing is writing it here.
//! Preferences fill in only what the person has not set here: an import
//! never overwrites the defaults they chose on this server.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use wick_types::message::check_system_prompt;
use wick_types::{FinishReason, MessageState, Role};

use super::{json_error, parents_first, path_error, ImportedConversation, ImportedMessage};
use super::{Parsed, TransferError};
use crate::db::conversations::TitleSource;

pub const FORMAT: &str = "wick";
pub const VERSION: u64 = 1;

/// A whole export file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WickExport {
    pub format: String,
    pub version: u64,
    /// When the file was written (Unix milliseconds).
    #[serde(default)]
    pub exported_at: i64,
    /// The person's own defaults; absent in a file of one conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferences: Option<WickPreferences>,
    pub conversations: Vec<WickConversation>,
}

/// The person's own defaults for new conversations (the Settings page), so
/// that an export of everything holds all of their data. API tokens are
/// left out on purpose: they are secrets, and only their hashes are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WickPreferences {
    #[serde(default)]
    pub default_model: Option<String>,
    /// The default system prompt of each model, by model id.
    #[serde(default)]
    pub model_prompts: BTreeMap<String, String>,
}

impl WickExport {
    pub fn new(conversations: Vec<WickConversation>) -> Self {
        Self {
            format: FORMAT.to_owned(),
            version: VERSION,
            exported_at: crate::db::now_ms(),
            preferences: None,
            conversations,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WickConversation {
    pub id: String,
    pub title: String,
    pub title_source: WickTitleSource,
    pub model: String,
    #[serde(default)]
    pub system_prompt: Option<String>,
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub pinned: bool,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default)]
    pub leaf_message_id: Option<String>,
    pub messages: Vec<WickMessage>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WickMessage {
    pub id: String,
    #[serde(default)]
    pub parent_id: Option<String>,
    pub role: WickRole,
    pub content: String,
    pub state: MessageState,
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub prompt_tokens: Option<i64>,
    #[serde(default)]
    pub completion_tokens: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// [`Role`] as the file spells it (lowercase, as stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WickRole {
    System,
    User,
    Assistant,
}

impl From<Role> for WickRole {
    fn from(role: Role) -> Self {
        match role {
            Role::System => WickRole::System,
            Role::User => WickRole::User,
            Role::Assistant => WickRole::Assistant,
        }
    }
}

impl From<WickRole> for Role {
    fn from(role: WickRole) -> Self {
        match role {
            WickRole::System => Role::System,
            WickRole::User => Role::User,
            WickRole::Assistant => Role::Assistant,
        }
    }
}

/// [`TitleSource`] as the file spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WickTitleSource {
    Provisional,
    Model,
    User,
}

impl From<TitleSource> for WickTitleSource {
    fn from(source: TitleSource) -> Self {
        match source {
            TitleSource::Provisional => WickTitleSource::Provisional,
            TitleSource::Model => WickTitleSource::Model,
            TitleSource::User => WickTitleSource::User,
        }
    }
}

impl From<WickTitleSource> for TitleSource {
    fn from(source: WickTitleSource) -> Self {
        match source {
            WickTitleSource::Provisional => TitleSource::Provisional,
            WickTitleSource::Model => TitleSource::Model,
            WickTitleSource::User => TitleSource::User,
        }
    }
}

/// Just enough of an object to tell whether it is a Wick export.
#[derive(Deserialize)]
struct Probe {
    format: Option<serde_json::Value>,
    version: Option<serde_json::Value>,
}

/// Reads a JSON object that should be a Wick export.
pub(super) fn parse(bytes: &[u8]) -> Result<Parsed, TransferError> {
    // A first, cheap pass finds broken JSON (with its line and column) and
    // foreign objects before their contents are judged field by field.
    let probe: Probe = serde_json::from_slice(bytes).map_err(json_error)?;
    if probe.format.as_ref().and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(TransferError::NotRecognised);
    }
    match probe.version.as_ref().and_then(|v| v.as_u64()) {
        Some(VERSION) => {}
        Some(other) => return Err(TransferError::Version(other)),
        None => return Err(TransferError::NoVersion),
    }
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    // Paths are `conversations[i].…`: skip the first segment.
    let export: WickExport =
        serde_path_to_error::deserialize(&mut reader).map_err(|e| path_error(e, 1))?;
    if let Some(preferences) = &export.preferences {
        for (model, prompt) in &preferences.model_prompts {
            check_system_prompt(prompt).map_err(|problem| TransferError::Document {
                field: format!("preferences.model_prompts.{model}"),
                // The sentence goes inside another: without its full stop.
                problem: problem.to_string().trim_end_matches('.').to_owned(),
            })?;
        }
    }
    let conversations = export
        .conversations
        .into_iter()
        .enumerate()
        .map(|(index, c)| check(index, c))
        .collect::<Result<_, _>>()?;
    Ok(Parsed {
        conversations,
        skipped_parts: 0,
        preferences: export.preferences,
    })
}

/// Checks one conversation's tree (every parent and the leaf present, ids
/// unique, no cycle) and turns it into what is stored.
fn check(index: usize, c: WickConversation) -> Result<ImportedConversation, TransferError> {
    let mut at: HashMap<&str, usize> = HashMap::with_capacity(c.messages.len());
    for (i, m) in c.messages.iter().enumerate() {
        if at.insert(m.id.as_str(), i).is_some() {
            return Err(TransferError::Duplicate {
                index,
                id: m.id.clone(),
            });
        }
    }
    let missing = |field: String, id: &str| TransferError::Missing {
        index,
        field,
        id: id.to_owned(),
    };
    let mut parents = Vec::with_capacity(c.messages.len());
    for (i, m) in c.messages.iter().enumerate() {
        parents.push(match &m.parent_id {
            None => None,
            Some(p) => Some(
                *at.get(p.as_str())
                    .ok_or_else(|| missing(format!("messages[{i}].parent_id"), p))?,
            ),
        });
    }
    let leaf = match &c.leaf_message_id {
        None => None,
        Some(id) => Some(
            *at.get(id.as_str())
                .ok_or_else(|| missing("leaf_message_id".to_owned(), id))?,
        ),
    };
    let order = parents_first(&parents).map_err(|i| TransferError::Cycle {
        index,
        id: c.messages[i].id.clone(),
    })?;
    // Where each message lands in the insertion order.
    let mut new_index = vec![0; order.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    let mut slots: Vec<Option<WickMessage>> = c.messages.into_iter().map(Some).collect();
    let messages = order
        .iter()
        .map(|&old| {
            let m = slots[old].take().expect("each message is placed once");
            ImportedMessage {
                parent: parents[old].map(|p| new_index[p]),
                role: m.role.into(),
                content: m.content,
                state: match m.state {
                    MessageState::Generating => MessageState::Interrupted,
                    state => state,
                },
                finish_reason: m.finish_reason,
                error: m.error,
                model: m.model,
                prompt_tokens: m.prompt_tokens,
                completion_tokens: m.completion_tokens,
                created_at: m.created_at,
                updated_at: m.updated_at,
            }
        })
        .collect();
    Ok(ImportedConversation {
        imported_from: Some(format!("wick:{}", c.id)),
        original_id: Some(c.id),
        title: c.title,
        title_source: c.title_source.into(),
        model: Some(c.model),
        system_prompt: c.system_prompt,
        settings: c.settings,
        pinned: c.pinned,
        created_at: c.created_at,
        updated_at: c.updated_at,
        messages,
        leaf: leaf.map(|l| new_index[l]),
    })
}
