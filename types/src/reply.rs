//! The lifecycle of an assistant reply, in types: the states its message row
//! goes through, why it ended, and the events of its stream. The same enums
//! are stored in SQLite (with the `sqlx` feature), written by the server's
//! event log and SSE encoder, and read by the browser, so a new state or
//! reason is a compile error wherever it is not handled.

use serde::{Deserialize, Serialize};

/// Where a message stands. User messages are always `Done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type))]
#[cfg_attr(feature = "sqlx", sqlx(type_name = "TEXT", rename_all = "lowercase"))]
pub enum MessageState {
    /// A reply being written; at most one per conversation (a unique index says so).
    Generating,
    /// Finished, for whatever [`FinishReason`].
    Done,
    /// The server stopped (shut down or died) before the reply was finished;
    /// the text so far is kept.
    Interrupted,
    /// The reply failed; its `error` says why in words for the reader.
    Error,
}

impl MessageState {
    pub fn is_generating(self) -> bool {
        self == MessageState::Generating
    }
}

/// Why a reply ended, as stored on its message (NULL while generating, for
/// interrupted replies and for user messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type))]
#[cfg_attr(feature = "sqlx", sqlx(type_name = "TEXT", rename_all = "lowercase"))]
pub enum FinishReason {
    /// The model ended its turn.
    Eos,
    /// A stop sequence was reached.
    Stop,
    /// The length limit (max new tokens or the context window) was reached.
    Length,
    /// The person stopped it.
    Stopped,
    /// It failed (state `Error`).
    Error,
}

/// How a reply that did not fail ended: the last event of its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyEnd {
    /// `Done`, or `Interrupted` when the server shut down mid-reply.
    pub state: MessageState,
    /// `None` when interrupted.
    pub finish_reason: Option<FinishReason>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// One event of a reply's stream (`text/event-stream`, each with `id: <seq>`):
/// `token` events carry text, then exactly one `end` or `failed` closes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "lowercase")]
pub enum ReplyEvent {
    /// The reply waits for a place at the model: `ahead` replies come first.
    /// Sent before any token, again when the number changes.
    Waiting {
        ahead: u64,
    },
    /// The model is reading the conversation (a long prompt): `done` of its
    /// `total` tokens so far. Sent before any token, after each chunk.
    Reading {
        done: u64,
        total: u64,
    },
    Token {
        text: String,
    },
    End(ReplyEnd),
    /// The reply failed; `message` is for the reader (never internal detail).
    Failed {
        message: String,
    },
}

impl ReplyEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            ReplyEvent::Waiting { .. } => "waiting",
            ReplyEvent::Reading { .. } => "reading",
            ReplyEvent::Token { .. } => "token",
            ReplyEvent::End(_) => "end",
            ReplyEvent::Failed { .. } => "failed",
        }
    }

    /// Whether this event closes the stream.
    pub fn is_terminal(&self) -> bool {
        matches!(self, ReplyEvent::End(_) | ReplyEvent::Failed { .. })
    }

    /// The SSE `data:` of the event: its fields as a JSON object.
    pub fn data(&self) -> String {
        let value = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut map)) => map.remove("data"),
            _ => None,
        };
        value.map(|v| v.to_string()).unwrap_or_else(|| "{}".into())
    }

    /// An event read back from its SSE name and data; `None` for anything else.
    pub fn parse(name: &str, data: &str) -> Option<Self> {
        let data: serde_json::Value = serde_json::from_str(data).ok()?;
        serde_json::from_value(serde_json::json!({ "event": name, "data": data })).ok()
    }
}

/// The stream of the reply `message_id`.
pub fn stream_url(message_id: &str) -> String {
    format!("/api/messages/{message_id}/stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_their_sse_name_and_data() {
        let events = [
            ReplyEvent::Waiting { ahead: 2 },
            ReplyEvent::Reading {
                done: 512,
                total: 2000,
            },
            ReplyEvent::Token {
                text: "Hé \"x\"\n".into(),
            },
            ReplyEvent::End(ReplyEnd {
                state: MessageState::Done,
                finish_reason: Some(FinishReason::Stopped),
                prompt_tokens: 12,
                completion_tokens: 3,
            }),
            ReplyEvent::End(ReplyEnd {
                state: MessageState::Interrupted,
                finish_reason: None,
                prompt_tokens: 0,
                completion_tokens: 0,
            }),
            ReplyEvent::Failed {
                message: "The model failed.".into(),
            },
        ];
        for event in events {
            let back = ReplyEvent::parse(event.name(), &event.data());
            assert_eq!(back.as_ref(), Some(&event), "{}", event.data());
        }
        assert_eq!(ReplyEvent::parse("nonsense", "{}"), None);
        assert_eq!(ReplyEvent::parse("token", "not json"), None);
    }

    #[test]
    fn the_wire_uses_lowercase_names_the_database_also_holds() {
        let end = ReplyEvent::End(ReplyEnd {
            state: MessageState::Done,
            finish_reason: Some(FinishReason::Length),
            prompt_tokens: 1,
            completion_tokens: 2,
        });
        let data: serde_json::Value = serde_json::from_str(&end.data()).unwrap();
        assert_eq!(data["state"], "done");
        assert_eq!(data["finish_reason"], "length");
        assert_eq!(end.name(), "end");
        assert!(end.is_terminal());
        assert!(!ReplyEvent::Token { text: "a".into() }.is_terminal());
    }
}
