//! A person's history: pins, deletion and full-text search.
//!
//! Search reads the FTS5 indexes `message_search` and `title_search`, which
//! the triggers of migration 0005 keep in step with every write. What a
//! person types is never handed to FTS5 as syntax: [`fts_query`] turns it
//! into quoted terms, so `"`, `*`, `NEAR(` or `AND` are just words.

use sqlx::SqlitePool;
use wick_types::{MessageState, Role, SearchHit, SnippetPart};

use super::conversations::found;
use super::{StoreError, UserId};

/// Pins the conversation to the top of the sidebar, or unpins it.
pub async fn set_pinned(
    pool: &SqlitePool,
    user: UserId,
    conversation: &str,
    pinned: bool,
) -> Result<(), StoreError> {
    let done = sqlx::query("UPDATE conversations SET pinned = ? WHERE id = ? AND user_id = ?")
        .bind(pinned)
        .bind(conversation)
        .bind(user)
        .execute(pool)
        .await?;
    found(done)
}

/// The replies being written in the user's conversation (`None`: all of
/// their conversations), to be stopped before it is deleted.
pub async fn generating_replies(
    pool: &SqlitePool,
    user: UserId,
    conversation: Option<&str>,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT m.id FROM messages m JOIN conversations c ON c.id = m.conversation_id
         WHERE c.user_id = ? AND m.state = ? AND (?3 IS NULL OR c.id = ?3)",
    )
    .bind(user)
    .bind(MessageState::Generating)
    .bind(conversation)
    .fetch_all(pool)
    .await?)
}

/// Deletes the conversation with every message, branch and share link.
pub async fn delete(pool: &SqlitePool, user: UserId, conversation: &str) -> Result<(), StoreError> {
    let done = sqlx::query("DELETE FROM conversations WHERE id = ? AND user_id = ?")
        .bind(conversation)
        .bind(user)
        .execute(pool)
        .await?;
    found(done)
}

/// Deletes all of the user's conversations; how many there were.
pub async fn delete_all(pool: &SqlitePool, user: UserId) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM conversations WHERE user_id = ?")
        .bind(user)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// The longest query searched; longer input is cut (a search box, not a document).
pub const MAX_QUERY_CHARS: usize = 200;
/// At most this many terms are searched for.
const MAX_TERMS: usize = 16;

/// Turns what a person typed into an FTS5 query that cannot be a syntax
/// error: every word becomes a quoted string (so operators and punctuation
/// are plain text), `"two words"` stays a phrase, and a word ending in `*`
/// searches by prefix. All terms must match. `None` when nothing searchable
/// is left.
pub fn fts_query(input: &str) -> Option<String> {
    let input: String = input.chars().take(MAX_QUERY_CHARS).collect();
    let mut terms: Vec<String> = Vec::new();
    let mut rest = input.as_str();
    while terms.len() < MAX_TERMS {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let (text, prefix) = if let Some(after) = rest.strip_prefix('"') {
            // A phrase: up to the closing quote, or the end.
            let (phrase, after) = after.split_once('"').unwrap_or((after, ""));
            rest = after;
            let prefix = rest.starts_with('*');
            if prefix {
                rest = &rest[1..];
            }
            (phrase.to_owned(), prefix)
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let word = &rest[..end];
            rest = &rest[end..];
            let stripped = word.trim_end_matches('*');
            (stripped.to_owned(), stripped.len() < word.len())
        };
        // A term with no letter or digit would be an empty phrase to FTS5.
        if !text.chars().any(char::is_alphanumeric) {
            continue;
        }
        let quoted = format!(
            "\"{}\"{}",
            text.replace('"', "\"\""),
            if prefix { "*" } else { "" }
        );
        terms.push(quoted);
    }
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// Marks that FTS5's `snippet()`/`highlight()` put around matched words:
/// control characters, which a message cannot meaningfully contain.
const OPEN: char = '\u{2}';
const CLOSE: char = '\u{3}';

/// Splits a marked snippet into plain and matched parts.
fn parts(marked: &str) -> Vec<SnippetPart> {
    let mut out = Vec::new();
    let mut hit = false;
    let mut current = String::new();
    for c in marked.chars() {
        match c {
            OPEN | CLOSE => {
                if !current.is_empty() {
                    out.push(SnippetPart {
                        text: std::mem::take(&mut current),
                        hit,
                    });
                }
                hit = c == OPEN;
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(SnippetPart { text: current, hit });
    }
    out
}

#[derive(sqlx::FromRow)]
struct MessageHit {
    row: i64,
    message_id: String,
    conversation_id: String,
    title: String,
    role: Role,
    created_at: i64,
    snippet: String,
}

#[derive(sqlx::FromRow)]
struct TitleHit {
    conversation_id: String,
    title: String,
    updated_at: i64,
    marked: String,
}

/// Matching messages are read this many at a time.
const MESSAGES_BATCH: i64 = 200;
/// At most this many matching messages are read for one page of results
/// (bounds the time of a search for a word in every message).
const MESSAGES_READ_MAX: usize = 10_000;

/// The user's conversations that match `query` (as typed), newest first, at
/// most `limit`: those whose title matches, then those with a matching
/// message (in any branch), each with a snippet around the match.
pub async fn search(
    pool: &SqlitePool,
    user: UserId,
    query: &str,
    limit: usize,
) -> Result<Vec<SearchHit>, StoreError> {
    let Some(fts) = fts_query(query) else {
        return Ok(Vec::new());
    };
    let mut hits: Vec<SearchHit> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // Newest first by rowid: FTS5 walks its index in that order and stops at
    // the LIMIT, where ranking every match would read them all.
    let titles: Vec<TitleHit> = sqlx::query_as(
        "SELECT c.id AS conversation_id, c.title, c.updated_at,
                highlight(title_search, 0, char(2), char(3)) AS marked
         FROM title_search JOIN conversations c ON c.rowid = title_search.rowid
         WHERE title_search MATCH ? AND c.user_id = ?
         ORDER BY title_search.rowid DESC LIMIT ?",
    )
    .bind(&fts)
    .bind(user)
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    for t in titles {
        if seen.insert(t.conversation_id.clone()) {
            hits.push(SearchHit {
                conversation_id: t.conversation_id,
                title: t.title,
                message_id: None,
                role: None,
                snippet: parts(&t.marked),
                at: t.updated_at,
            });
        }
    }
    // Matching messages, newest first, a batch at a time until the page is
    // full: one result per conversation, so a conversation that says the
    // word a hundred times takes one place, not a hundred.
    let mut before = i64::MAX;
    let mut read = 0;
    while hits.len() < limit && read < MESSAGES_READ_MAX {
        let batch: Vec<MessageHit> = sqlx::query_as(
            "SELECT message_search.rowid AS row, m.id AS message_id, m.conversation_id, c.title,
                    m.role, m.created_at,
                    snippet(message_search, 0, char(2), char(3), '…', 16) AS snippet
             FROM message_search
             JOIN messages m ON m.rowid = message_search.rowid
             JOIN conversations c ON c.id = m.conversation_id
             WHERE message_search MATCH ? AND message_search.rowid < ? AND c.user_id = ?
             ORDER BY message_search.rowid DESC LIMIT ?",
        )
        .bind(&fts)
        .bind(before)
        .bind(user)
        .bind(MESSAGES_BATCH)
        .fetch_all(pool)
        .await?;
        let Some(last) = batch.last() else {
            break;
        };
        before = last.row;
        read += batch.len();
        for m in batch {
            if hits.len() >= limit {
                break;
            }
            if seen.insert(m.conversation_id.clone()) {
                hits.push(SearchHit {
                    conversation_id: m.conversation_id,
                    title: m.title,
                    message_id: Some(m.message_id),
                    role: Some(m.role),
                    snippet: parts(&m.snippet),
                    at: m.created_at,
                });
            }
        }
    }
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_syntax_becomes_quoted_words() {
        assert_eq!(
            fts_query("lighthouse keeper").as_deref(),
            Some(r#""lighthouse" "keeper""#)
        );
        assert_eq!(fts_query("light*").as_deref(), Some(r#""light"*"#));
        assert_eq!(
            fts_query(r#""the keeper" bottle"#).as_deref(),
            Some(r#""the keeper" "bottle""#)
        );
        assert_eq!(fts_query("NEAR( AND").as_deref(), Some(r#""NEAR(" "AND""#));
        assert_eq!(fts_query(r#"say "hi"#).as_deref(), Some(r#""say" "hi""#));
        assert_eq!(fts_query(r#"a"b"#).as_deref(), Some(r#""a""b""#));
        assert_eq!(fts_query(r#"" * ( "#), None);
        assert_eq!(fts_query(""), None);
    }

    #[test]
    fn marks_become_parts() {
        let p = parts("the \u{2}keeper\u{3} found");
        assert_eq!(
            p,
            vec![
                SnippetPart {
                    text: "the ".into(),
                    hit: false
                },
                SnippetPart {
                    text: "keeper".into(),
                    hit: true
                },
                SnippetPart {
                    text: " found".into(),
                    hit: false
                },
            ]
        );
    }
}
