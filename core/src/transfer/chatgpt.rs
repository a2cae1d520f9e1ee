//! ChatGPT's `conversations.json` (from "Export data" in its settings): an
//! array of conversations, each a tree of nodes in `mapping`.
//!
//! ```json
//! [{
//!   "id": "…", "conversation_id": "…", "title": "…",
//!   "create_time": 1700000000.123, "update_time": 1700000100.5,   // float seconds
//!   "current_node": "…node id…",                                   // the branch shown
//!   "mapping": {
//!     "…node id…": {
//!       "id": "…", "parent": "…" | null, "children": ["…"],
//!       "message": null | {
//!         "id": "…", "author": { "role": "system" | "user" | "assistant" | "tool" },
//!         "create_time": 1700000000.5 | null,
//!         "content": { "content_type": "text" | "multimodal_text" | "code" | …,
//!                      "parts": ["text", { "content_type": "image_asset_pointer", … }] },
//!         "metadata": { "is_visually_hidden_from_conversation": true, "model_slug": "…" }
//!       }
//!     }
//!   }
//! }]
//! ```
//!
//! What Wick keeps: user and assistant messages with their text (string
//! parts joined). Nodes without a message, and system messages (hidden
//! ones, or empty ones) are dropped and their children hang from the nearest
//! kept ancestor; a visible system message with text becomes the
//! conversation's system prompt. Everything else Wick cannot show (images and
//! other non-text parts, tool messages, unknown content types) is skipped and
//! counted. The branch shown is the one through `current_node`; times are
//! kept (to the millisecond).

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::Value;
use wick_types::{FinishReason, MessageState, Role};

use super::{parents_first, path_error, ImportedConversation, ImportedMessage, Parsed};
use super::{TransferError, UNTITLED};
use crate::db::conversations::TitleSource;

#[derive(Debug, Deserialize)]
struct Conversation {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    create_time: Option<f64>,
    #[serde(default)]
    update_time: Option<f64>,
    mapping: BTreeMap<String, Node>,
    #[serde(default)]
    current_node: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Node {
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    children: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Message {
    author: Author,
    content: Content,
    #[serde(default)]
    create_time: Option<f64>,
    #[serde(default)]
    update_time: Option<f64>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Debug, Deserialize)]
struct Author {
    role: String,
}

#[derive(Debug, Deserialize)]
struct Content {
    content_type: String,
    #[serde(default)]
    parts: Option<Vec<Value>>,
}

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    is_visually_hidden_from_conversation: Option<bool>,
    #[serde(default)]
    model_slug: Option<String>,
}

/// Reads a JSON array that should be ChatGPT's `conversations.json`.
pub(super) fn parse(bytes: &[u8]) -> Result<Parsed, TransferError> {
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    // Paths are `[i].…`: the conversation's index comes first.
    let conversations: Vec<Conversation> =
        serde_path_to_error::deserialize(&mut reader).map_err(|e| path_error(e, 0))?;
    reader.end().map_err(super::json_error)?;
    let mut parsed = Parsed::default();
    for (index, c) in conversations.into_iter().enumerate() {
        let (conversation, skipped) = convert(index, c)?;
        parsed.conversations.push(conversation);
        parsed.skipped_parts += skipped;
    }
    Ok(parsed)
}

/// Float seconds to whole milliseconds.
fn ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// What one node becomes.
enum Kept {
    Message(Role, String),
    /// A visible system message's text: the conversation's system prompt.
    SystemPrompt(String),
    Dropped,
}

/// The text of a node's message that Wick can show, and how many parts it
/// had to leave out.
fn read(message: &Message) -> (Kept, usize) {
    let hidden = message
        .metadata
        .as_ref()
        .and_then(|m| m.is_visually_hidden_from_conversation)
        .unwrap_or(false);
    let parts = message.content.parts.as_deref().unwrap_or_default();
    let role = match message.author.role.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "system" => {
            let text = text_of(parts).0;
            return if hidden || text.trim().is_empty() {
                (Kept::Dropped, 0)
            } else {
                (Kept::SystemPrompt(text), 0)
            };
        }
        // Tool output (browsing, code runs, plugins): not a turn of the chat.
        _ => return (Kept::Dropped, parts.len().max(1)),
    };
    if hidden {
        return (Kept::Dropped, 0);
    }
    match message.content.content_type.as_str() {
        "text" | "multimodal_text" => {
            let (text, skipped) = text_of(parts);
            if text.trim().is_empty() {
                (Kept::Dropped, skipped)
            } else {
                (Kept::Message(role, text), skipped)
            }
        }
        // Code the model ran, browsing, reasoning summaries, …: kinds of
        // content Wick has no way to show.
        _ => (Kept::Dropped, parts.len().max(1)),
    }
}

/// The string parts joined, and how many parts were not strings.
fn text_of(parts: &[Value]) -> (String, usize) {
    let mut texts = Vec::new();
    let mut skipped = 0;
    for part in parts {
        match part {
            Value::String(s) if !s.is_empty() => texts.push(s.as_str()),
            Value::String(_) => {}
            _ => skipped += 1,
        }
    }
    (texts.join("\n\n"), skipped)
}

/// Checks one conversation's tree and keeps what Wick can show.
fn convert(index: usize, c: Conversation) -> Result<(ImportedConversation, usize), TransferError> {
    let missing = |field: String, id: &str| TransferError::Missing {
        index,
        field,
        id: id.to_owned(),
    };
    let keys: Vec<&str> = c.mapping.keys().map(String::as_str).collect();
    let at: HashMap<&str, usize> = keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let nodes: Vec<&Node> = c.mapping.values().collect();
    let mut parents = Vec::with_capacity(nodes.len());
    for (key, node) in keys.iter().zip(&nodes) {
        parents.push(match &node.parent {
            None => None,
            Some(p) => Some(
                *at.get(p.as_str())
                    .ok_or_else(|| missing(format!("mapping.{key}.parent"), p))?,
            ),
        });
        if let Some(child) = node.children.iter().find(|c| !at.contains_key(c.as_str())) {
            return Err(missing(format!("mapping.{key}.children"), child));
        }
    }
    // Parents first: this also finds a cycle, before anything is walked.
    let order = parents_first(&parents).map_err(|i| TransferError::Cycle {
        index,
        id: keys[i].to_owned(),
    })?;

    let created = c.create_time.map(ms);
    let mut skipped = 0;
    let mut system_prompt: Option<String> = None;
    // Per node: the kept message it is (an index into `kept`), or, for a
    // dropped one, the nearest kept ancestor its children hang from.
    let mut kept_at: Vec<Option<usize>> = vec![None; nodes.len()];
    let mut kept: Vec<ImportedMessage> = Vec::new();
    for &i in &order {
        let above = parents[i].and_then(|p| kept_at[p]);
        let (what, left_out) = match &nodes[i].message {
            Some(message) => read(message),
            None => (Kept::Dropped, 0),
        };
        skipped += left_out;
        match what {
            Kept::Message(role, content) => {
                let message = nodes[i]
                    .message
                    .as_ref()
                    .expect("a kept node has a message");
                let created_at = message
                    .create_time
                    .map(ms)
                    .or_else(|| above.map(|p| kept[p].created_at))
                    .or(created)
                    .unwrap_or(0);
                let assistant = role == Role::Assistant;
                kept_at[i] = Some(kept.len());
                kept.push(ImportedMessage {
                    parent: above,
                    role,
                    content,
                    state: MessageState::Done,
                    finish_reason: assistant.then_some(FinishReason::Eos),
                    error: None,
                    model: message
                        .metadata
                        .as_ref()
                        .and_then(|m| m.model_slug.clone())
                        .filter(|_| assistant),
                    prompt_tokens: None,
                    completion_tokens: None,
                    created_at,
                    updated_at: message.update_time.map(ms).unwrap_or(created_at),
                });
            }
            Kept::SystemPrompt(text) => {
                system_prompt.get_or_insert(text);
                kept_at[i] = above;
            }
            Kept::Dropped => kept_at[i] = above,
        }
    }

    // Siblings in the order they were written: sort by time, then put
    // parents first again (a parent is never moved after its child).
    let mut by_time: Vec<usize> = (0..kept.len()).collect();
    by_time.sort_by_key(|&k| kept[k].created_at);
    let kept_parents: Vec<Option<usize>> = by_time.iter().map(|&k| kept[k].parent).collect();
    // Parents are still old indexes here: map them into `by_time` positions.
    let mut position = vec![0; kept.len()];
    for (pos, &k) in by_time.iter().enumerate() {
        position[k] = pos;
    }
    let in_time: Vec<Option<usize>> = kept_parents
        .iter()
        .map(|p| p.map(|p| position[p]))
        .collect();
    let final_order = parents_first(&in_time).map_err(|_| TransferError::Cycle {
        index,
        id: String::new(),
    })?;
    let mut new_index = vec![0; kept.len()];
    for (new, &pos) in final_order.iter().enumerate() {
        new_index[by_time[pos]] = new;
    }
    let mut slots: Vec<Option<ImportedMessage>> = kept.into_iter().map(Some).collect();
    let messages: Vec<ImportedMessage> = final_order
        .iter()
        .map(|&pos| {
            let mut m = slots[by_time[pos]]
                .take()
                .expect("each message is placed once");
            m.parent = m.parent.map(|p| new_index[p]);
            m
        })
        .collect();

    let leaf = match &c.current_node {
        Some(node) => {
            let i = *at
                .get(node.as_str())
                .ok_or_else(|| missing("current_node".to_owned(), node))?;
            kept_at[i].map(|k| new_index[k])
        }
        // None said: the newest message.
        None => messages
            .iter()
            .enumerate()
            .max_by_key(|(_, m)| m.created_at)
            .map(|(i, _)| i),
    };
    let created_at = created
        .or_else(|| messages.iter().map(|m| m.created_at).min())
        .unwrap_or_else(crate::db::now_ms);
    let updated_at = c
        .update_time
        .map(ms)
        .or_else(|| messages.iter().map(|m| m.updated_at).max())
        .unwrap_or(created_at);
    let title = c
        .title
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| UNTITLED.to_owned());
    Ok((
        ImportedConversation {
            imported_from: c.conversation_id.or(c.id).map(|id| format!("chatgpt:{id}")),
            original_id: None,
            title,
            // ChatGPT's titles are written by its model.
            title_source: TitleSource::Model,
            model: None,
            system_prompt,
            settings: serde_json::Map::new(),
            pinned: false,
            created_at,
            updated_at,
            messages,
            leaf,
        },
        skipped,
    ))
}
