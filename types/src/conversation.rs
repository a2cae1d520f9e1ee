//! What a conversation looks like on screen, as the server sends it to the browser.

use serde::{Deserialize, Serialize};

use crate::reply::{FinishReason, MessageState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type))]
#[cfg_attr(feature = "sqlx", sqlx(type_name = "TEXT", rename_all = "lowercase"))]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    /// Who wrote the message, as shown to the reader.
    pub fn author(self) -> &'static str {
        match self {
            Role::System => "System",
            Role::User => "You",
            Role::Assistant => "Assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    pub id: String,
    pub role: Role,
    pub content: String,
    pub state: MessageState,
    /// Why the reply ended (`None` while generating or when interrupted).
    pub finish_reason: Option<FinishReason>,
    /// What went wrong, for a reply in state `Error`.
    pub error: Option<String>,
    /// For a reply still generating: the sequence number of the last streamed
    /// event already in `content`, so the browser can follow from there.
    pub seq: u64,
    /// For replies: the model that wrote it, by display name (its id when the
    /// model is no longer configured).
    pub model: Option<String>,
    /// The other versions of this turn (edits of a question, retries of a
    /// reply), when there are any.
    #[serde(default)]
    pub siblings: Option<Siblings>,
}

/// Where a message stands among the versions of its turn: the messages with
/// the same parent, oldest first. Choosing another shows its branch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Siblings {
    /// 1-based.
    pub position: usize,
    pub count: usize,
    pub previous: Option<String>,
    pub next: Option<String>,
}

/// How a conversation's replies are generated; `None` is the model's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<u32>,
}

/// A person's own defaults, on the Settings page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSettingsView {
    /// The model new conversations start with.
    pub default_model: String,
    pub models: Vec<ModelOption>,
    /// The default system prompt of each model, in the order of `models`
    /// (empty: none).
    pub prompts: Vec<String>,
}

/// A model people can chat with, for the model picker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelOption {
    pub id: String,
    pub name: String,
}

/// What a successful send answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub conversation_id: String,
    /// The assistant message being generated (its stream is [`crate::reply::stream_url`]).
    pub message_id: String,
    /// The user's message as stored (`None` for a retry), so the page can show
    /// it without loading the conversation again.
    pub user_message: Option<MessageView>,
    /// The reply, empty and generating, to follow over its stream.
    pub reply: MessageView,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationView {
    pub id: String,
    pub title: String,
    /// The id of the model new replies come from.
    pub model: String,
    /// Every model the conversation can switch to.
    pub models: Vec<ModelOption>,
    /// The messages of the branch being shown, oldest first.
    pub messages: Vec<MessageView>,
    /// The conversation's system prompt (empty: none).
    pub system_prompt: String,
    /// What the conversation sets; what it leaves to the model is in `defaults`.
    pub settings: GenerationSettings,
    /// The model's own values, shown where the conversation sets none.
    pub defaults: GenerationSettings,
    /// Whether the model can extend a reply in place ("Continue").
    pub can_continue: bool,
    /// The title is still the first words of the first message: the model's
    /// title may replace it soon.
    pub title_provisional: bool,
    /// Pinned to the top of the sidebar.
    #[serde(default)]
    pub pinned: bool,
    /// Whether this server lets people make share links.
    #[serde(default)]
    pub can_share: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct ConversationSummary {
    pub id: String,
    pub title: String,
    /// Unix milliseconds of the last change.
    pub updated_at: i64,
    /// Pinned conversations come first, in a section of their own.
    pub pinned: bool,
}

/// The sidebar's sections: pinned conversations, then by age. Like
/// HuggingChat, the ages are rolling windows measured from now (the last 24
/// hours, the 24 before, the last 7 days), so they need no time zone and the
/// server and the browser always agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Period {
    Pinned,
    Today,
    Yesterday,
    PreviousWeek,
    Older,
}

impl Period {
    pub fn label(self) -> &'static str {
        match self {
            Period::Pinned => "Pinned",
            Period::Today => "Today",
            Period::Yesterday => "Yesterday",
            Period::PreviousWeek => "Previous 7 days",
            Period::Older => "Older",
        }
    }

    /// The age section of a conversation last changed at `updated_at_ms`.
    pub fn of(updated_at_ms: i64, now_ms: i64) -> Self {
        const DAY: i64 = 24 * 60 * 60 * 1000;
        let age = now_ms - updated_at_ms;
        if age < DAY {
            Period::Today
        } else if age < 2 * DAY {
            Period::Yesterday
        } else if age < 7 * DAY {
            Period::PreviousWeek
        } else {
            Period::Older
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SidebarGroup {
    pub period: Period,
    pub conversations: Vec<ConversationSummary>,
}

/// One page of the sidebar: the first `shown` conversations, grouped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SidebarPage {
    pub groups: Vec<SidebarGroup>,
    /// How many conversations were asked for.
    pub shown: usize,
    /// Whether there are more than `shown`.
    pub more: bool,
}

/// Groups conversations (already sorted pinned first, then newest first) into
/// the sidebar's sections, leaving out empty sections.
pub fn group_by_period(conversations: Vec<ConversationSummary>, now_ms: i64) -> Vec<SidebarGroup> {
    let mut groups: Vec<SidebarGroup> = Vec::new();
    for c in conversations {
        let period = if c.pinned {
            Period::Pinned
        } else {
            Period::of(c.updated_at, now_ms)
        };
        match groups.last_mut() {
            Some(g) if g.period == period => g.conversations.push(c),
            _ => groups.push(SidebarGroup {
                period,
                conversations: vec![c],
            }),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 60 * 60 * 1000;

    fn conv(id: &str, updated_at: i64) -> ConversationSummary {
        ConversationSummary {
            id: id.into(),
            title: id.into(),
            updated_at,
            pinned: false,
        }
    }

    #[test]
    fn groups_follow_age_newest_first() {
        let now = 1_000 * 24 * HOUR;
        let list = vec![
            conv("a", now - HOUR),
            conv("b", now - 23 * HOUR),
            conv("c", now - 25 * HOUR),
            conv("d", now - 6 * 24 * HOUR),
            conv("e", now - 8 * 24 * HOUR),
        ];
        let mut list = list;
        let mut pinned = conv("p", now - 30 * 24 * HOUR);
        pinned.pinned = true;
        list.insert(0, pinned);
        let groups = group_by_period(list, now);
        let shape: Vec<(Period, Vec<&str>)> = groups
            .iter()
            .map(|g| {
                (
                    g.period,
                    g.conversations.iter().map(|c| c.id.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                (Period::Pinned, vec!["p"]),
                (Period::Today, vec!["a", "b"]),
                (Period::Yesterday, vec!["c"]),
                (Period::PreviousWeek, vec!["d"]),
                (Period::Older, vec!["e"]),
            ]
        );
    }

    #[test]
    fn empty_sections_are_left_out() {
        let now = 100 * 24 * HOUR;
        let groups = group_by_period(vec![conv("x", now - 30 * 24 * HOUR)], now);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].period, Period::Older);
        assert!(group_by_period(vec![], now).is_empty());
    }
}
