//! Server functions: the browser's way in. Each one finds the caller from the
//! session cookie and touches only that caller's data.

use leptos::prelude::*;

use crate::data::{ConversationView, SidebarGroup};
use crate::error::AppError;

/// The caller's conversations, grouped for the sidebar. A visitor without a
/// session simply has none.
#[server]
pub async fn list_conversations() -> Result<Vec<SidebarGroup>, AppError> {
    use crate::{data::group_by_period, session, state::AppState, store};
    let Some(user) = session::current_user().await? else {
        return Ok(Vec::new());
    };
    let state = expect_context::<AppState>();
    let list = store::list_conversations(&state.pool, user).await?;
    Ok(group_by_period(list, store::now_ms()))
}

/// One of the caller's conversations; someone else's is `NotFound`.
#[server]
pub async fn get_conversation(id: String) -> Result<ConversationView, AppError> {
    use crate::{session, state::AppState, store};
    let Some(user) = session::current_user().await? else {
        return Err(AppError::NotFound);
    };
    let state = expect_context::<AppState>();
    Ok(store::get_conversation(&state.pool, user, &id).await?)
}

/// Stores the user's message, starting a conversation when `conversation_id`
/// is empty, and redirects to the conversation. Works as a plain form post too.
#[server]
pub async fn send_message(
    conversation_id: Option<String>,
    content: String,
) -> Result<String, AppError> {
    use crate::{message, session, state::AppState, store};
    // Validate before anything is written: a refused message stores nothing.
    message::check_message(&content).map_err(|p| AppError::Invalid(p.to_string()))?;
    let conversation_id = conversation_id.filter(|id| !id.is_empty());
    let state = expect_context::<AppState>();
    let id = match conversation_id {
        Some(id) => {
            let Some(user) = session::current_user().await? else {
                return Err(AppError::NotFound);
            };
            store::append_user_message(&state.pool, user, &id, &content).await?;
            id
        }
        None => {
            let user = session::current_or_new_user().await?;
            let title = message::title_from(&content);
            store::create_conversation(&state.pool, user, &title, &state.model_name, &content)
                .await?
        }
    };
    leptos_axum::redirect(&format!("/c/{id}"));
    Ok(id)
}
