//! A person's history as the browser sees it: search results and share links.

use serde::{Deserialize, Serialize};

use crate::conversation::{MessageView, Role};

/// One search result: a conversation, and where in it the words were found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchHit {
    pub conversation_id: String,
    pub title: String,
    /// The message that matched; `None` when only the title did.
    pub message_id: Option<String>,
    pub role: Option<Role>,
    /// The text around the match, the matched words marked.
    pub snippet: Vec<SnippetPart>,
    /// Unix milliseconds of the message (or the conversation's last change).
    pub at: i64,
}

/// A piece of a snippet: plain text, or words that matched the query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnippetPart {
    pub text: String,
    pub hit: bool,
}

/// What a search answers: the first page of results, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResults {
    pub query: String,
    pub hits: Vec<SearchHit>,
}

/// How long a share link lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShareExpiry {
    Day,
    Week,
    Month,
    Never,
}

impl ShareExpiry {
    pub const ALL: [ShareExpiry; 4] = [
        ShareExpiry::Never,
        ShareExpiry::Day,
        ShareExpiry::Week,
        ShareExpiry::Month,
    ];

    /// The form value.
    pub fn as_str(self) -> &'static str {
        match self {
            ShareExpiry::Day => "1d",
            ShareExpiry::Week => "7d",
            ShareExpiry::Month => "30d",
            ShareExpiry::Never => "never",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ShareExpiry::Day => "1 day",
            ShareExpiry::Week => "7 days",
            ShareExpiry::Month => "30 days",
            ShareExpiry::Never => "Never",
        }
    }

    /// Reads a form value; `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == value)
    }

    /// How long a link made now lives, in milliseconds (`None`: for ever).
    pub fn lifetime_ms(self) -> Option<i64> {
        const DAY: i64 = 24 * 60 * 60 * 1000;
        match self {
            ShareExpiry::Day => Some(DAY),
            ShareExpiry::Week => Some(7 * DAY),
            ShareExpiry::Month => Some(30 * DAY),
            ShareExpiry::Never => None,
        }
    }
}

/// One of the owner's share links, for their list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct ShareInfo {
    /// The link is `/s/<id>`.
    pub id: String,
    pub conversation_id: String,
    pub title: String,
    pub created_at: i64,
    /// `None`: never expires.
    pub expires_at: Option<i64>,
}

/// A shared conversation as anyone with its link sees it: read only, frozen
/// as it was when shared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedView {
    pub id: String,
    pub title: String,
    pub messages: Vec<MessageView>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_form_values_read_back() {
        for e in ShareExpiry::ALL {
            assert_eq!(ShareExpiry::parse(e.as_str()), Some(e));
        }
        assert_eq!(ShareExpiry::parse("2d"), None);
        assert_eq!(ShareExpiry::Never.lifetime_ms(), None);
        assert_eq!(ShareExpiry::Week.lifetime_ms(), Some(7 * 86_400_000));
    }
}
