//! Server functions: the browser's way in. Each one finds the caller from the
//! session cookie and touches only that caller's data.

use leptos::prelude::*;

use crate::data::{ConversationView, ModelOption, Sent, SidebarGroup};
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
            let models = state.generations.models();
            for m in conversation.messages.iter_mut() {
                m.model = m.model.as_deref().map(|id| models.name_of(id));
                if m.state == "generating" {
                    if let Some(task) = state.generations.get(&m.id) {
                        (m.content, m.seq) = task.snapshot();
                    }
                }
            }
            conversation.model = models.get_or_default(&conversation.model).id.clone();
            conversation.models = models.options();
            Ok(conversation)
        }
        .await,
    )
}

/// The models to choose from; the first is the default for new conversations.
#[server]
pub async fn list_models() -> Result<Vec<ModelOption>, AppError> {
    use crate::state::AppState;
    Ok(expect_context::<AppState>().generations.models().options())
}

/// Stores the user's message (starting a conversation when `conversation_id`
/// is empty), starts the reply and redirects to the conversation. Works as a
/// plain form post too. `model` (optional) switches the conversation to that
/// model first. When the model's queue is full, nothing is stored (HTTP 429).
#[server]
pub async fn send_message(
    conversation_id: Option<String>,
    content: String,
    model: Option<String>,
) -> Result<Sent, AppError> {
    crate::error::answer(
        async move {
            use crate::{message, session, state::AppState, store};
            // Validate before anything is written: a refused message stores nothing.
            message::check_message(&content).map_err(|p| AppError::Invalid(p.to_string()))?;
            let conversation_id = conversation_id.filter(|id| !id.is_empty());
            let state = expect_context::<AppState>();
            let chosen = model
                .filter(|m| !m.is_empty())
                .map(|id| find_model(&state, &id))
                .transpose()?;
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
                    let current = store::conversation_model(&state.pool, user, &id).await?;
                    let model = match chosen {
                        Some(model) => model,
                        None => state.generations.models().get_or_default(&current).clone(),
                    };
                    let slot = reserve(&state, &model)?;
                    if model.id != current {
                        store::set_conversation_model(&state.pool, user, &id, &model.id).await?;
                    }
                    let message =
                        store::append_user_message(&state.pool, user, &id, &content).await?;
                    (user, id, message, slot)
                }
                None => {
                    let model = chosen
                        .unwrap_or_else(|| state.generations.models().default_model().clone());
                    let slot = reserve(&state, &model)?;
                    let user = session::current_or_new_user().await?;
                    let title = message::title_from(&content);
                    let (conversation, message) =
                        store::create_conversation(&state.pool, user, &title, &model.id, &content)
                            .await?;
                    (user, conversation, message, slot)
                }
            };
            let reply =
                store::begin_reply(&state.pool, user, &conversation, &parent, &slot.model().id)
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
            let current = store::conversation_model(&state.pool, user, &conversation_id).await?;
            let model = state.generations.models().get_or_default(&current).clone();
            let slot = reserve(&state, &model)?;
            let reply =
                store::begin_reply(&state.pool, user, &conversation_id, &parent, &model.id).await?;
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

/// Switches the caller's conversation to another model for the replies to come.
#[server]
pub async fn set_conversation_model(
    conversation_id: String,
    model: String,
) -> Result<(), AppError> {
    crate::error::answer(
        async move {
            use crate::{session, state::AppState, store};
            let Some(user) = session::current_user().await? else {
                return Err(AppError::NotFound);
            };
            let state = expect_context::<AppState>();
            let model = find_model(&state, &model)?;
            store::set_conversation_model(&state.pool, user, &conversation_id, &model.id).await?;
            Ok(())
        }
        .await,
    )
}

/// A configured model, or a message naming the unknown one.
#[cfg(feature = "ssr")]
fn find_model(
    state: &crate::state::AppState,
    id: &str,
) -> Result<std::sync::Arc<crate::models::Model>, AppError> {
    state.generations.models().get(id).cloned().ok_or_else(|| {
        AppError::Invalid(format!(
            "There is no model {id:?} on this server; choose one from the list."
        ))
    })
}

/// A place in the model's generation queue, or "busy" (HTTP 429).
#[cfg(feature = "ssr")]
fn reserve(
    state: &crate::state::AppState,
    model: &std::sync::Arc<crate::models::Model>,
) -> Result<crate::generation::Slot, AppError> {
    state
        .generations
        .reserve(model)
        .map_err(|busy| AppError::Busy(busy.to_string()))
}
