//! Access tokens for the inference APIs (only their SHA-256 is stored).

use sqlx::SqlitePool;

use super::{now_ms, StoreError, UserId};

/// An access token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiTokenInfo {
    pub id: i64,
    pub user_id: UserId,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub expires_at: Option<i64>,
}

/// Stores a new token's hash for `user`, or for a new user named after the
/// token when `user` is `None`. Returns the token's id and its user.
pub async fn create_api_token(
    pool: &SqlitePool,
    user: Option<UserId>,
    name: &str,
    token_hash: &[u8; 32],
) -> Result<(i64, UserId), StoreError> {
    let now = now_ms();
    let mut tx = super::begin_write(pool).await?;
    let user = match user {
        Some(user) => sqlx::query_scalar("SELECT id FROM users WHERE id = ?")
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?,
        None => {
            sqlx::query_scalar(
                "INSERT INTO users (kind, display_name, created_at) VALUES ('registered', ?, ?) RETURNING id",
            )
            .bind(name)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?
        }
    };
    let id = sqlx::query_scalar(
        "INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id",
    )
    .bind(user)
    .bind(name)
    .bind(&token_hash[..])
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((id, user))
}

pub async fn list_api_tokens(pool: &SqlitePool) -> Result<Vec<ApiTokenInfo>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, user_id, name, created_at, last_used_at, revoked_at, expires_at
         FROM api_tokens ORDER BY id",
    )
    .fetch_all(pool)
    .await?)
}

/// Stores a new token of `user` (made on the Settings page), which stops
/// working at `expires_at` (Unix ms) if given.
pub async fn create_user_token(
    pool: &SqlitePool,
    user: UserId,
    name: &str,
    token_hash: &[u8; 32],
    expires_at: Option<i64>,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO api_tokens (user_id, name, token_hash, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(user)
    .bind(name)
    .bind(&token_hash[..])
    .bind(now_ms())
    .bind(expires_at)
    .fetch_one(pool)
    .await?)
}

/// The tokens of `user` that are not revoked, newest first.
pub async fn list_user_tokens(
    pool: &SqlitePool,
    user: UserId,
) -> Result<Vec<ApiTokenInfo>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, user_id, name, created_at, last_used_at, revoked_at, expires_at
         FROM api_tokens WHERE user_id = ? AND revoked_at IS NULL ORDER BY id DESC",
    )
    .bind(user)
    .fetch_all(pool)
    .await?)
}

/// Revokes token `id` of `user`; someone else's token is `NotFound`, as if
/// it did not exist.
pub async fn revoke_user_token(pool: &SqlitePool, user: UserId, id: i64) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(id)
    .bind(user)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Revokes token `id`; `NotFound` when there is no such token.
pub async fn revoke_api_token(pool: &SqlitePool, id: i64) -> Result<(), StoreError> {
    let done =
        sqlx::query("UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?")
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The user of a live token with this hash (not revoked, its user not
/// disabled), noting its use.
pub async fn user_for_api_token(
    pool: &SqlitePool,
    token_hash: &[u8; 32],
) -> Result<Option<UserId>, StoreError> {
    let user = sqlx::query_scalar(
        "UPDATE api_tokens SET last_used_at = ?1
         WHERE token_hash = ?2 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?1)
           AND user_id NOT IN (SELECT id FROM users WHERE disabled_at IS NOT NULL OR role = 'pending')
         RETURNING user_id",
    )
    .bind(now_ms())
    .bind(&token_hash[..])
    .fetch_optional(pool)
    .await?;
    Ok(user)
}
