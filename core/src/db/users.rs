//! Users and their browser sessions.

use std::time::Duration;

use sqlx::{SqliteConnection, SqlitePool};

use super::{now_ms, StoreError, UserId};

/// How often a session's `last_seen_at` (and its sliding expiry) is written:
/// not on every request, so that reading pages stays read-only most of the time.
const TOUCH_EVERY_MS: i64 = 60 * 60 * 1000;

/// Creates an anonymous user with one session whose cookie hashes to `token_hash`.
pub async fn create_anonymous_user(
    pool: &SqlitePool,
    token_hash: &[u8; 32],
    lifetime: Duration,
) -> Result<UserId, StoreError> {
    let mut tx = super::begin_write(pool).await?;
    let user = insert_anonymous_user(&mut tx, token_hash, lifetime).await?;
    tx.commit().await?;
    Ok(user)
}

/// Inserts an anonymous user and its one session, inside the caller's transaction.
pub(crate) async fn insert_anonymous_user(
    tx: &mut SqliteConnection,
    token_hash: &[u8; 32],
    lifetime: Duration,
) -> Result<UserId, StoreError> {
    let now = now_ms();
    let expires = now + lifetime.as_millis() as i64;
    let user_id: UserId = sqlx::query_scalar(
        "INSERT INTO users (kind, created_at) VALUES ('anonymous', ?) RETURNING id",
    )
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO sessions (user_id, token_hash, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(user_id)
    .bind(&token_hash[..])
    .bind(now)
    .bind(now)
    .bind(expires)
    .execute(&mut *tx)
    .await?;
    Ok(user_id)
}

/// Deletes the sessions that have expired; returns how many.
pub async fn delete_expired_sessions(pool: &SqlitePool) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
        .bind(now_ms())
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    user_id: UserId,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
}

/// A live session, as found by its token's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub user: UserId,
    /// Its expiry has just slid: the browser's cookie should be given a full
    /// lifetime again too.
    pub renewed: bool,
}

/// The user of an unexpired session, if any. A session in use slides: at most
/// once an hour its `last_seen_at` is written and its expiry moved to a full
/// lifetime (the one it was created with) from now.
pub async fn user_for_session(
    pool: &SqlitePool,
    token_hash: &[u8; 32],
) -> Result<Option<Session>, StoreError> {
    let now = now_ms();
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT user_id, created_at, last_seen_at, expires_at FROM sessions
         WHERE token_hash = ? AND expires_at > ?",
    )
    .bind(&token_hash[..])
    .bind(now)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let renewed = now - row.last_seen_at >= TOUCH_EVERY_MS;
    if renewed {
        let lifetime = row.expires_at - row.last_seen_at.max(row.created_at);
        sqlx::query("UPDATE sessions SET last_seen_at = ?, expires_at = max(expires_at, ?) WHERE token_hash = ?")
            .bind(now)
            .bind(now + lifetime)
            .bind(&token_hash[..])
            .execute(pool)
            .await?;
    }
    Ok(Some(Session {
        user: row.user_id,
        renewed,
    }))
}
