//! Server functions: the browser's way in. Each one finds the caller from the
//! session cookie and touches only that caller's data.

use leptos::prelude::*;

use crate::data::{ConversationView, Sent, SidebarGroup};
use crate::error::AppError;

/// The caller's conversations, grouped for the sidebar. A visitor without a
/// session simply has none.
#[server]
pub async fn list_conversations() -> Result<Vec<SidebarGroup>, AppError> {
    crate::error::answer(
        async move {
            use crate::{data::group_by_period, session, state::AppState, store};
            let Some(user) = session::current_user().await? else {
                return Ok(Vec::new());
            };
            let state = expect_context::<AppState>();
            let list = store::list_conversations(&state.pool, user).await?;
            Ok(group_by_period(list, store::now_ms()))
        }
        .await,
    )
}

/// One of the caller's conversations; someone else's is `NotFound`. A reply
/// still generating carries its live text and where its stream stands.
#[server]
pub async fn get_conversation(id: String) -> Result<ConversationView, AppError> {
    crate::error::answer(
        async move {
            use crate::{session, state::AppState, store};
            let Some(user) = session::current_user().await? else {
                return Err(AppError::NotFound);
            };
            let state = expect_context::<AppState>();
            let mut conversation = store::get_conversation(&state.pool, user, &id).await?;
            for m in conversation
                .messages
                .iter_mut()
                .filter(|m| m.state == "generating")
            {
                if let Some(task) = state.generations.get(&m.id) {
                    (m.content, m.seq) = task.snapshot();
                }
            }
            Ok(conversation)
        }
        .await,
    )
}

/// Stores the user's message (starting a conversation when `conversation_id`
/// is empty), starts the reply and redirects to the conversation. Works as a
/// plain form post too. When the queue is full, nothing is stored (HTTP 429).
#[server]
pub async fn send_message(
    conversation_id: Option<String>,
    content: String,
) -> Result<Sent, AppError> {
    crate::error::answer(
        async move {
            use crate::{message, session, state::AppState, store};
            // Validate before anything is written: a refused message stores nothing.
            message::check_message(&content).map_err(|p| AppError::Invalid(p.to_string()))?;
            let conversation_id = conversation_id.filter(|id| !id.is_empty());
            let state = expect_context::<AppState>();
            let (user, conversation, parent, slot) = match conversation_id {
                Some(id) => {
                    let Some(user) = session::current_user().await? else {
                        return Err(AppError::NotFound);
                    };
                    // Only the owner's own reply counts: nobody learns about others' conversations.
                    if let Some(task) = state.generations.running_in(&id) {
                        if task.user == user {
                            return Err(AppError::Invalid(
                            "A reply is still being written. Stop it or wait for it before sending."
                                .into(),
                        ));
                        }
                    }
                    let slot = reserve(&state)?;
                    let message =
                        store::append_user_message(&state.pool, user, &id, &content).await?;
                    (user, id, message, slot)
                }
                None => {
                    let slot = reserve(&state)?;
                    let user = session::current_or_new_user().await?;
                    let title = message::title_from(&content);
                    let (conversation, message) = store::create_conversation(
                        &state.pool,
                        user,
                        &title,
                        &state.model_name,
                        &content,
                    )
                    .await?;
                    (user, conversation, message, slot)
                }
            };
            let reply =
                store::begin_reply(&state.pool, user, &conversation, &parent, &state.model_name)
                    .await?;
            let task = state.generations.start(slot, user, reply);
            leptos_axum::redirect(&format!("/c/{conversation}"));
            Ok(Sent {
                conversation_id: conversation,
                message_id: task.message_id.clone(),
            })
        }
        .await,
    )
}

/// Generates a reply again: a new answer to the same user message, shown in
/// place of the old one (which stays stored, as a branch).
#[server]
pub async fn retry_reply(conversation_id: String, message_id: String) -> Result<Sent, AppError> {
    crate::error::answer(
        async move {
            use crate::{session, state::AppState, store};
            let Some(user) = session::current_user().await? else {
                return Err(AppError::NotFound);
            };
            let state = expect_context::<AppState>();
            let parent =
                store::parent_for_retry(&state.pool, user, &conversation_id, &message_id).await?;
            if state.generations.running_in(&conversation_id).is_some() {
                return Err(AppError::Invalid(
                    "A reply is still being written. Stop it or wait for it before retrying."
                        .into(),
                ));
            }
            let slot = reserve(&state)?;
            let reply = store::begin_reply(
                &state.pool,
                user,
                &conversation_id,
                &parent,
                &state.model_name,
            )
            .await?;
            let task = state.generations.start(slot, user, reply);
            Ok(Sent {
                conversation_id,
                message_id: task.message_id.clone(),
            })
        }
        .await,
    )
}

/// Stops the caller's reply `message_id`; it is saved with the text so far and
/// finish reason "stopped". Stopping a reply that already ended does nothing.
#[server]
pub async fn stop_reply(message_id: String) -> Result<(), AppError> {
    crate::error::answer(
        async move {
            use crate::{session, state::AppState};
            let Some(user) = session::current_user().await? else {
                return Err(AppError::NotFound);
            };
            let state = expect_context::<AppState>();
            match state.generations.get(&message_id) {
                Some(task) if task.user == user => {
                    task.stop();
                    // Answer once the reply is saved (it takes about one token), so the
                    // page a no-JavaScript browser is sent back to shows it stopped.
                    let _ =
                        tokio::time::timeout(std::time::Duration::from_secs(2), task.finished())
                            .await;
                    Ok(())
                }
                _ => Err(AppError::NotFound),
            }
        }
        .await,
    )
}

/// A place in the generation queue, or "busy" (HTTP 429).
#[cfg(feature = "ssr")]
fn reserve(state: &crate::state::AppState) -> Result<crate::generation::Slot, AppError> {
    state
        .generations
        .reserve()
        .map_err(|busy| AppError::Busy(busy.to_string()))
}
