//! The data that travels between Wick's server and the browser, compiled into
//! both: what a conversation looks like on screen, what a message may be, and
//! the lifecycle of a reply (its states, why it ended, the events of its
//! stream). No web framework and no database here; with the `sqlx` feature
//! (the server's build) the lifecycle enums are also column types.

pub mod account;
pub mod conversation;
pub mod history;
pub mod message;
pub mod reasoning;
pub mod reply;

pub use conversation::{
    group_by_period, ConversationSummary, ConversationView, GenerationSettings, MessageView,
    ModelOption, Period, Role, Sent, Siblings, SidebarGroup, SidebarPage, UserSettingsView,
};
pub use history::{SearchHit, SearchResults, ShareExpiry, ShareInfo, SharedView, SnippetPart};
pub use reasoning::{split_reasoning, strip_reasoning, Reasoning};
pub use reply::{FinishReason, MessageState, ReplyEnd, ReplyEvent};
