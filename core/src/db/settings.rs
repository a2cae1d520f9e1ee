//! Each person's own defaults for new conversations (the Settings page): the
//! model they start with, and a system prompt per model.

use sqlx::SqlitePool;

use super::{now_ms, StoreError, UserId};

/// The model the user's new conversations start with, if they chose one.
pub async fn default_model(pool: &SqlitePool, user: UserId) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT default_model FROM user_settings WHERE user_id = ?")
            .bind(user)
            .fetch_optional(pool)
            .await?
            .flatten(),
    )
}

/// The user's default system prompt for `model`, if any.
pub async fn model_prompt(
    pool: &SqlitePool,
    user: UserId,
    model: &str,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT system_prompt FROM user_model_prompts WHERE user_id = ? AND model = ?",
    )
    .bind(user)
    .bind(model)
    .fetch_optional(pool)
    .await?)
}

/// Every default system prompt of the user, as (model, prompt).
pub async fn model_prompts(
    pool: &SqlitePool,
    user: UserId,
) -> Result<Vec<(String, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT model, system_prompt FROM user_model_prompts WHERE user_id = ? ORDER BY model",
    )
    .bind(user)
    .fetch_all(pool)
    .await?)
}

/// Replaces the user's defaults in one transaction: the default model and
/// the prompt of each model listed (an empty prompt removes it).
pub async fn save(
    pool: &SqlitePool,
    user: UserId,
    default_model: &str,
    prompts: &[(String, String)],
) -> Result<(), StoreError> {
    let now = now_ms();
    let mut tx = super::begin_write(pool).await?;
    sqlx::query(
        "INSERT INTO user_settings (user_id, default_model, updated_at) VALUES (?, ?, ?)
         ON CONFLICT (user_id) DO UPDATE SET default_model = excluded.default_model,
             updated_at = excluded.updated_at",
    )
    .bind(user)
    .bind(default_model)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    for (model, prompt) in prompts {
        if prompt.trim().is_empty() {
            sqlx::query("DELETE FROM user_model_prompts WHERE user_id = ? AND model = ?")
                .bind(user)
                .bind(model)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO user_model_prompts (user_id, model, system_prompt, updated_at)
                 VALUES (?, ?, ?, ?)
                 ON CONFLICT (user_id, model) DO UPDATE SET system_prompt = excluded.system_prompt,
                     updated_at = excluded.updated_at",
            )
            .bind(user)
            .bind(model)
            .bind(prompt)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}
