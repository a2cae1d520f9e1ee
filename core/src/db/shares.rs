//! Share links: a read-only snapshot of a conversation's shown branch, open
//! to anyone who has its link (`/s/<id>`), until it expires or is revoked.
//!
//! The snapshot is taken when the link is made (later messages are not
//! shared), and the id is 128 random bits: the link is the secret.

use sqlx::SqlitePool;
use wick_types::{MessageState, MessageView, ShareExpiry, ShareInfo, SharedView};

use super::conversations::{branch, found, Owner};
use super::{new_id, now_ms, StoreError, UserId};

/// Makes a link to the branch of the user's conversation shown now.
pub async fn create(
    pool: &SqlitePool,
    user: UserId,
    conversation: &str,
    expiry: ShareExpiry,
) -> Result<ShareInfo, StoreError> {
    let now = now_ms();
    let mut tx = super::begin_write(pool).await?;
    let (title, leaf): (String, Option<String>) = sqlx::query_as(
        "SELECT title, leaf_message_id FROM conversations WHERE id = ? AND user_id = ?",
    )
    .bind(conversation)
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    let mut messages = match &leaf {
        Some(leaf) => branch(&mut *tx, conversation, leaf).await?,
        None => Vec::new(),
    };
    for m in &mut messages {
        // A reply still being written is shared as far as it got.
        if m.state.is_generating() {
            m.state = MessageState::Interrupted;
        }
    }
    let snapshot = serde_json::to_string(&messages)
        .map_err(|e| StoreError::Corrupt(format!("a share snapshot: {e}")))?;
    let info = ShareInfo {
        id: new_id(),
        conversation_id: conversation.to_owned(),
        title,
        created_at: now,
        expires_at: expiry.lifetime_ms().map(|ms| now + ms),
    };
    sqlx::query(
        "INSERT INTO shares (id, user_id, conversation_id, title, messages, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&info.id)
    .bind(user)
    .bind(&info.conversation_id)
    .bind(&info.title)
    .bind(&snapshot)
    .bind(info.created_at)
    .bind(info.expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(info)
}

/// The user's links that still open, newest first.
pub async fn list(pool: &SqlitePool, user: UserId) -> Result<Vec<ShareInfo>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, conversation_id, title, created_at, expires_at FROM shares
         WHERE user_id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)
         ORDER BY created_at DESC, id",
    )
    .bind(user)
    .bind(now_ms())
    .fetch_all(pool)
    .await?)
}

/// Revokes one of the user's links: from now on it is a 404.
pub async fn revoke(pool: &SqlitePool, user: UserId, id: &str) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE shares SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(id)
    .bind(user)
    .execute(pool)
    .await?;
    found(done)
}

/// A link as anyone sees it; `NotFound` once revoked or expired.
pub async fn open(pool: &SqlitePool, id: &str) -> Result<SharedView, StoreError> {
    let (title, messages, created_at, expires_at): (String, String, i64, Option<i64>) =
        sqlx::query_as(
            "SELECT title, messages, created_at, expires_at FROM shares
             WHERE id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(id)
        .bind(now_ms())
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    let messages: Vec<MessageView> = serde_json::from_str(&messages)
        .map_err(|e| StoreError::Corrupt(format!("share {id}: {e}")))?;
    Ok(SharedView {
        id: id.to_owned(),
        title,
        messages,
        created_at,
        expires_at,
    })
}

/// Copies a shared branch into a new conversation of the viewer's (for a
/// visitor without a session, of a new anonymous user, made in the same
/// transaction). Returns the viewer's id and the new conversation's.
pub async fn copy(
    pool: &SqlitePool,
    owner: Owner,
    shared: &SharedView,
    model: &str,
) -> Result<(UserId, String), StoreError> {
    let now = now_ms();
    let conversation = new_id();
    let mut tx = super::begin_write(pool).await?;
    let user = owner.user_in(&mut tx).await?;
    sqlx::query(
        "INSERT INTO conversations (id, user_id, title, title_source, model, created_at, updated_at)
         VALUES (?, ?, ?, 'user', ?, ?, ?)",
    )
    .bind(&conversation)
    .bind(user)
    .bind(&shared.title)
    .bind(model)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let mut parent: Option<String> = None;
    for m in &shared.messages {
        let id = new_id();
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, parent_id, role, content, state,
                 finish_reason, error, model, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(&conversation)
        .bind(&parent)
        .bind(m.role)
        .bind(&m.content)
        .bind(m.state)
        .bind(m.finish_reason)
        .bind(&m.error)
        .bind(&m.model)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        parent = Some(id);
    }
    sqlx::query("UPDATE conversations SET leaf_message_id = ? WHERE id = ?")
        .bind(&parent)
        .bind(&conversation)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((user, conversation))
}
