//! The database side of export and import (the formats are in
//! [`crate::transfer`]).
//!
//! An export of everything is a stream: conversations are read a page at a
//! time inside one read transaction (one consistent snapshot), and each is
//! written out with its messages before the next is read, so memory holds one
//! conversation, however long the history. An import is one write
//! transaction: every conversation of the file, or none.

use std::collections::VecDeque;

use futures::Stream;
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use wick_types::{ConversationView, FinishReason, MessageState, Role};

use super::conversations::{get_conversation, Owner, TitleSource};
use super::{begin_write, new_id, StoreError, UserId};
use crate::transfer::wick::{
    WickConversation, WickExport, WickMessage, WickPreferences, FORMAT, VERSION,
};
use crate::transfer::{ImportSummary, ImportedConversation};

/// How many conversations an export reads at a time, at most…
const PAGE: i64 = 100;
/// …and how many messages (unless one conversation alone has more): what an
/// export holds in memory at once, whatever the size of the history.
const PAGE_MESSAGES: i64 = 5_000;

#[derive(sqlx::FromRow)]
struct ConversationRow {
    rowid: i64,
    id: String,
    title: String,
    title_source: TitleSource,
    model: String,
    system_prompt: Option<String>,
    settings: String,
    pinned: bool,
    created_at: i64,
    updated_at: i64,
    leaf_message_id: Option<String>,
    message_count: i64,
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    /// Read when a page of conversations is read at once.
    #[sqlx(default)]
    conversation_id: String,
    id: String,
    parent_id: Option<String>,
    role: Role,
    content: String,
    state: MessageState,
    finish_reason: Option<FinishReason>,
    error: Option<String>,
    model: Option<String>,
    prompt_tokens: Option<i64>,
    completion_tokens: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

const CONVERSATION_COLUMNS: &str =
    "rowid, id, title, title_source, model, system_prompt, settings, \
     pinned, created_at, updated_at, leaf_message_id, \
     (SELECT count(*) FROM messages m WHERE m.conversation_id = conversations.id) AS message_count";

const MESSAGE_COLUMNS: &str = "m.conversation_id, m.id, m.parent_id, m.role, m.content, m.state, \
     m.finish_reason, m.error, m.model, m.prompt_tokens, m.completion_tokens, m.created_at, m.updated_at";

/// One conversation with every message (every branch), oldest first.
async fn with_messages(
    conn: &mut SqliteConnection,
    row: ConversationRow,
) -> Result<WickConversation, StoreError> {
    let messages: Vec<MessageRow> = sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_id = ?
         ORDER BY m.created_at, m.rowid"
    ))
    .bind(&row.id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(to_wick(row, messages))
}

/// The next page of the user's conversations after rowid `after`, each with
/// every message, and the page's last rowid: two queries, whatever the page
/// holds.
async fn next_page(
    conn: &mut SqliteConnection,
    user: UserId,
    after: i64,
) -> Result<(VecDeque<WickConversation>, i64), StoreError> {
    let mut rows: Vec<ConversationRow> = sqlx::query_as(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations
         WHERE user_id = ? AND rowid > ? ORDER BY rowid LIMIT ?"
    ))
    .bind(user)
    .bind(after)
    .bind(PAGE)
    .fetch_all(&mut *conn)
    .await?;
    // As many as fit in the page's messages (one at least).
    let mut messages = 0;
    let fit = rows
        .iter()
        .position(|r| {
            messages += r.message_count;
            messages > PAGE_MESSAGES
        })
        .unwrap_or(rows.len())
        .max(1);
    rows.truncate(fit);
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Ok((VecDeque::new(), after));
    };
    let (first, last) = (first.rowid, last.rowid);
    let mut all: Vec<MessageRow> = sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM conversations c JOIN messages m ON m.conversation_id = c.id
         WHERE c.user_id = ? AND c.rowid BETWEEN ? AND ?
         ORDER BY c.rowid, m.created_at, m.rowid"
    ))
    .bind(user)
    .bind(first)
    .bind(last)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .rev()
    .collect();
    // Messages come in the conversations' order: deal them out.
    let page = rows
        .into_iter()
        .map(|row| {
            let mut own = Vec::with_capacity(row.message_count.max(0) as usize);
            while all.last().is_some_and(|m| m.conversation_id == row.id) {
                own.extend(all.pop());
            }
            to_wick(row, own)
        })
        .collect();
    Ok((page, last))
}

/// A conversation's row and its messages (oldest first) in Wick's format.
fn to_wick(row: ConversationRow, messages: Vec<MessageRow>) -> WickConversation {
    let settings = match serde_json::from_str(&row.settings) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => {
            tracing::warn!(conversation = %row.id, "unreadable settings exported as none");
            serde_json::Map::new()
        }
    };
    WickConversation {
        id: row.id,
        title: row.title,
        title_source: row.title_source.into(),
        model: row.model,
        system_prompt: row.system_prompt,
        settings,
        pinned: row.pinned,
        created_at: row.created_at,
        updated_at: row.updated_at,
        leaf_message_id: row.leaf_message_id,
        messages: messages
            .into_iter()
            .map(|m| WickMessage {
                id: m.id,
                parent_id: m.parent_id,
                role: m.role.into(),
                content: m.content,
                state: m.state,
                finish_reason: m.finish_reason,
                error: m.error,
                model: m.model,
                prompt_tokens: m.prompt_tokens,
                completion_tokens: m.completion_tokens,
                created_at: m.created_at,
                updated_at: m.updated_at,
            })
            .collect(),
    }
}

/// One of the user's conversations in Wick's format (every branch);
/// someone else's is [`StoreError::NotFound`].
pub async fn export_conversation(
    pool: &SqlitePool,
    user: UserId,
    id: &str,
) -> Result<WickExport, StoreError> {
    let mut conn = pool.acquire().await?;
    let row: ConversationRow = sqlx::query_as(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ? AND user_id = ?"
    ))
    .bind(id)
    .bind(user)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(WickExport::new(vec![with_messages(&mut conn, row).await?]))
}

/// One of the user's conversations as shown (its current branch), for the
/// Markdown export.
pub async fn shown_branch(
    pool: &SqlitePool,
    user: UserId,
    id: &str,
) -> Result<ConversationView, StoreError> {
    get_conversation(pool, user, id).await
}

/// Where an export of everything is.
enum Stage {
    Start,
    Pages {
        tx: Box<Transaction<'static, Sqlite>>,
        user: UserId,
        page: VecDeque<WickConversation>,
        after: i64,
        first: bool,
    },
    Done,
}

/// Everything of `user` (nothing for a visitor without one) as one Wick
/// export document, in pieces: the head, then one conversation at a time,
/// then the end. Reads happen in one read transaction, a consistent
/// snapshot; conversations are paged by rowid, so no sort of the whole
/// history is needed.
pub fn export_all(
    pool: SqlitePool,
    user: Option<UserId>,
) -> impl Stream<Item = Result<String, StoreError>> + Send + 'static {
    futures::stream::try_unfold(Stage::Start, move |stage| {
        let pool = pool.clone();
        async move {
            match stage {
                Stage::Start => {
                    let head = format!(
                        r#"{{"format":"{FORMAT}","version":{VERSION},"exported_at":{}"#,
                        super::now_ms()
                    );
                    let Some(user) = user else {
                        return Ok(Some((head + r#","conversations":[]}"#, Stage::Done)));
                    };
                    let mut tx = Box::new(pool.begin().await?);
                    let preferences = preferences_of(&mut tx, user).await?;
                    let preferences = serde_json::to_string(&preferences).map_err(|e| {
                        StoreError::Corrupt(format!("preferences not serialisable: {e}"))
                    })?;
                    let head = format!(r#"{head},"preferences":{preferences},"conversations":["#);
                    let next = Stage::Pages {
                        tx,
                        user,
                        page: VecDeque::new(),
                        after: i64::MIN,
                        first: true,
                    };
                    Ok(Some((head, next)))
                }
                Stage::Pages {
                    mut tx,
                    user,
                    mut page,
                    after,
                    first,
                } => {
                    let mut after = after;
                    if page.is_empty() {
                        (page, after) = next_page(&mut tx, user, after).await?;
                    }
                    let Some(conversation) = page.pop_front() else {
                        tx.rollback().await?;
                        return Ok(Some(("]}".to_owned(), Stage::Done)));
                    };
                    let mut piece = if first { String::new() } else { ",".to_owned() };
                    piece.push_str(&serde_json::to_string(&conversation).map_err(|e| {
                        StoreError::Corrupt(format!("conversation not serialisable: {e}"))
                    })?);
                    Ok(Some((
                        piece,
                        Stage::Pages {
                            tx,
                            user,
                            page,
                            after,
                            first: false,
                        },
                    )))
                }
                Stage::Done => Ok(None),
            }
        }
    })
}

/// Stores checked conversations for `owner` under fresh ids, in one write
/// transaction (a new visitor's user and session too). `skipped_parts` is
/// left for the caller, who parsed the file.
pub async fn import(
    pool: &SqlitePool,
    owner: Owner,
    default_model: &str,
    conversations: &[ImportedConversation],
    preferences: Option<&WickPreferences>,
) -> Result<(UserId, ImportSummary), StoreError> {
    let mut tx = begin_write(pool).await?;
    let user = owner.user_in(&mut tx).await?;
    let mut summary = ImportSummary::default();
    for c in conversations {
        if is_copy(&mut tx, user, c).await? {
            summary.copies += 1;
        }
        insert(&mut tx, user, default_model, c).await?;
        summary.imported += 1;
    }
    if let Some(preferences) = preferences {
        summary.settings_restored = restore_preferences(&mut tx, user, preferences).await?;
    }
    tx.commit().await?;
    Ok((user, summary))
}

/// The person's defaults, as an export of everything carries them.
async fn preferences_of(
    conn: &mut SqliteConnection,
    user: UserId,
) -> Result<WickPreferences, StoreError> {
    let default_model: Option<String> =
        sqlx::query_scalar("SELECT default_model FROM user_settings WHERE user_id = ?")
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?
            .flatten();
    let model_prompts: Vec<(String, String)> = sqlx::query_as(
        "SELECT model, system_prompt FROM user_model_prompts WHERE user_id = ? ORDER BY model",
    )
    .bind(user)
    .fetch_all(&mut *conn)
    .await?;
    Ok(WickPreferences {
        default_model,
        model_prompts: model_prompts.into_iter().collect(),
    })
}

/// Sets the file's defaults where the person has none: what they chose on
/// this server is never overwritten. A default model this server does not
/// have is harmless (new conversations fall back to the server's default)
/// and is kept, as a prompt for such a model is. Returns how many were set.
async fn restore_preferences(
    conn: &mut SqliteConnection,
    user: UserId,
    preferences: &WickPreferences,
) -> Result<usize, StoreError> {
    let now = super::now_ms();
    let mut restored = 0;
    if let Some(model) = &preferences.default_model {
        restored += sqlx::query(
            "INSERT INTO user_settings (user_id, default_model, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (user_id) DO UPDATE SET default_model = excluded.default_model,
                 updated_at = excluded.updated_at
             WHERE user_settings.default_model IS NULL",
        )
        .bind(user)
        .bind(model)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected() as usize;
    }
    for (model, prompt) in &preferences.model_prompts {
        if prompt.trim().is_empty() {
            continue;
        }
        restored += sqlx::query(
            "INSERT INTO user_model_prompts (user_id, model, system_prompt, updated_at)
             VALUES (?, ?, ?, ?) ON CONFLICT (user_id, model) DO NOTHING",
        )
        .bind(user)
        .bind(model)
        .bind(prompt)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected() as usize;
    }
    Ok(restored)
}

/// Whether this user already has the conversation: imported from the same
/// source before, or (a Wick export of their own) the original itself.
async fn is_copy(
    conn: &mut SqliteConnection,
    user: UserId,
    c: &ImportedConversation,
) -> Result<bool, StoreError> {
    let Some(from) = &c.imported_from else {
        return Ok(false);
    };
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM conversations WHERE user_id = ?1 AND imported_from = ?2)
             OR EXISTS (SELECT 1 FROM conversations WHERE user_id = ?1 AND id = ?3)",
    )
    .bind(user)
    .bind(from)
    .bind(c.original_id.as_deref())
    .fetch_one(&mut *conn)
    .await?)
}

/// One conversation and its messages; the same two statements for every row
/// (sqlx keeps them prepared on the connection).
async fn insert(
    conn: &mut SqliteConnection,
    user: UserId,
    default_model: &str,
    c: &ImportedConversation,
) -> Result<(), StoreError> {
    let id = new_id();
    let ids: Vec<String> = c.messages.iter().map(|_| new_id()).collect();
    let settings = serde_json::to_string(&c.settings)
        .map_err(|e| StoreError::Corrupt(format!("settings not serialisable: {e}")))?;
    sqlx::query(
        "INSERT INTO conversations (id, user_id, title, title_source, model, system_prompt, settings,
             pinned, leaf_message_id, created_at, updated_at, imported_from)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(user)
    .bind(&c.title)
    .bind(c.title_source)
    .bind(c.model.as_deref().unwrap_or(default_model))
    .bind(c.system_prompt.as_deref())
    .bind(settings)
    .bind(c.pinned)
    .bind(c.leaf.map(|l| ids[l].as_str()))
    .bind(c.created_at)
    .bind(c.updated_at)
    .bind(c.imported_from.as_deref())
    .execute(&mut *conn)
    .await?;
    for (m, message_id) in c.messages.iter().zip(&ids) {
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, parent_id, role, content, state,
                 finish_reason, error, model, prompt_tokens, completion_tokens, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(message_id)
        .bind(&id)
        .bind(m.parent.map(|p| ids[p].as_str()))
        .bind(m.role)
        .bind(&m.content)
        .bind(m.state)
        .bind(m.finish_reason)
        .bind(m.error.as_deref())
        .bind(m.model.as_deref())
        .bind(m.prompt_tokens)
        .bind(m.completion_tokens)
        .bind(m.created_at)
        .bind(m.updated_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
