//! Server functions: the browser's way in. Each one is a thin adapter over
//! `wick_core::Chat`: it finds the caller from the session cookie, calls the
//! chat, and answers with the right status (see [`crate::error::answer`]).

use leptos::prelude::*;

use crate::data::{ConversationView, ModelOption, Sent, SidebarPage, UserSettingsView};
use crate::error::AppError;
use wick_types::history::{SearchResults, ShareInfo, SharedView};

/// The server's state, from the Leptos context. Missing only outside a
/// request (see [`crate::session::current_user`]): an error then, never a panic.
/// The log names the line that asked (`track_caller`), so that the function
/// that found no context can be told.
#[cfg(feature = "ssr")]
#[track_caller]
fn state() -> Result<crate::state::AppState, AppError> {
    let Some(state) = use_context::<crate::state::AppState>() else {
        let at = std::panic::Location::caller();
        tracing::warn!(%at, "a server function ran outside a request");
        return Err(AppError::Internal);
    };
    Ok(state)
}

/// The chat of this server. Server functions take it (and anything else from
/// the context) before their first `.await`: a resource rendered on the server
/// can resume after one without the request's context (seen with
/// `list_shares`, whose `chat()` after the session lookup found none: the
/// share links went missing from the page).
#[cfg(feature = "ssr")]
#[track_caller]
fn chat() -> Result<wick_core::Chat, AppError> {
    Ok(state()?.chat)
}

/// The caller's first `shown` conversations (50 by default, rounded to
/// whole pages), pinned first, grouped for the sidebar. A visitor without a
/// session simply has none.
#[server]
pub async fn list_conversations(shown: Option<usize>) -> Result<SidebarPage, AppError> {
    crate::error::answer(
        async move {
            let shown = shown.unwrap_or(wick_core::history::SIDEBAR_PAGE);
            let chat = chat()?;
            match crate::session::current_user().await? {
                Some(user) => Ok(chat.sidebar(user, shown).await?),
                None => Ok(SidebarPage {
                    groups: Vec::new(),
                    shown,
                    more: false,
                }),
            }
        }
        .await,
    )
}

/// One of the caller's conversations; someone else's is `NotFound`. A reply
/// still generating carries its live text and where its stream stands.
/// `at` (a message, from a search result) shows the branch through it.
#[server]
pub async fn get_conversation(
    id: String,
    at: Option<String>,
) -> Result<ConversationView, AppError> {
    crate::error::answer(
        async move {
            let state = state()?;
            let chat = state.chat.clone();
            let user = crate::session::current_user()
                .await?
                .ok_or(AppError::NotFound)?;
            let mut view = chat.conversation_at(user, &id, at.as_deref()).await?;
            view.can_share = state.sharing;
            Ok(view)
        }
        .await,
    )
}

/// The models the caller may choose from (a team's admin may open some to
/// certain groups only); the first is the default for new conversations.
#[server]
pub async fn list_models() -> Result<Vec<ModelOption>, AppError> {
    let chat = chat()?;
    let user = crate::session::current_user().await?;
    Ok(chat.model_options(user).await?)
}

/// Stores the user's message (starting a conversation when `conversation_id`
/// is empty), starts the reply and redirects to the conversation, which shows
/// them (the composer is a plain form). `model` (optional) switches the
/// conversation to that model first. When the model's queue is full, nothing
/// is stored (HTTP 429). Called as a function (JSON), it answers with the
/// stored message and the reply.
#[server]
pub async fn send_message(
    conversation_id: Option<String>,
    content: String,
    model: Option<String>,
) -> Result<Sent, AppError> {
    crate::error::answer(
        async move {
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            let request = wick_core::SendRequest {
                conversation_id,
                content,
                model,
            };
            let sending = chat.send(user, request).await?;
            if let Some(token) = &sending.new_session {
                crate::session::set_session_cookie(token);
            }
            leptos_axum::redirect(&format!("/c/{}", sending.sent.conversation_id));
            Ok(sending.sent)
        }
        .await,
    )
}

/// After a change of the branch shown (Retry, an edit, Continue, a switch of
/// versions), the form comes back to the conversation's plain address: the
/// page it was posted from may carry `?at=<message>` (opened from a search
/// result), which would show that message's branch again.
#[cfg(feature = "ssr")]
fn show_branch(conversation_id: &str) {
    leptos_axum::redirect(&format!("/c/{conversation_id}"));
}

/// Generates a reply again: a new answer to the same user message, shown in
/// place of the old one (which stays stored, as a branch).
#[server]
pub async fn retry_reply(conversation_id: String, message_id: String) -> Result<Sent, AppError> {
    crate::error::answer(
        async move {
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            let sent = chat.retry(user, &conversation_id, &message_id).await?;
            show_branch(&conversation_id);
            Ok(sent)
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
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            Ok(chat.stop(user, &message_id).await?)
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
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            Ok(chat.set_model(user, &conversation_id, &model).await?)
        }
        .await,
    )
}

/// Sends an edited version of the caller's question `message_id`: the edit is
/// stored beside the original (a new branch, shown from now on) with a new
/// reply. An empty edit is refused and stores nothing.
#[server]
pub async fn edit_message(
    conversation_id: String,
    message_id: String,
    content: String,
) -> Result<Sent, AppError> {
    crate::error::answer(
        async move {
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            let sent = chat
                .edit(user, &conversation_id, &message_id, &content)
                .await?;
            show_branch(&conversation_id);
            Ok(sent)
        }
        .await,
    )
}

/// Extends the caller's reply `message_id` in place, when it was cut short
/// (the length limit, Stop, a restart) and its model can continue it.
#[server]
pub async fn continue_reply(conversation_id: String, message_id: String) -> Result<Sent, AppError> {
    crate::error::answer(
        async move {
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            let sent = chat
                .continue_reply(user, &conversation_id, &message_id)
                .await?;
            show_branch(&conversation_id);
            Ok(sent)
        }
        .await,
    )
}

/// Shows the branch through `message_id` (another version of a turn),
/// stored as the conversation's branch for reloads and other devices.
#[server]
pub async fn switch_branch(conversation_id: String, message_id: String) -> Result<(), AppError> {
    crate::error::answer(
        async move {
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            chat.switch_branch(user, &conversation_id, &message_id)
                .await?;
            show_branch(&conversation_id);
            Ok(())
        }
        .await,
    )
}

/// Stores the conversation's system prompt and generation settings (empty
/// fields: the model's defaults), for the replies to come.
#[server]
pub async fn save_conversation_settings(
    conversation_id: String,
    system_prompt: String,
    temperature: String,
    top_p: String,
    max_new_tokens: String,
) -> Result<(), AppError> {
    crate::error::answer(
        async move {
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            let form = wick_core::SettingsForm {
                system_prompt,
                temperature,
                top_p,
                max_new_tokens,
            };
            chat.save_settings(user, &conversation_id, form).await?;
            // Back to the conversation, its settings panel open, saying so.
            leptos_axum::redirect(&format!("/c/{conversation_id}?panel=settings&saved=1"));
            Ok(())
        }
        .await,
    )
}

/// Gives the caller's conversation the title they typed (the model never
/// replaces it); answers the title as stored.
#[server]
pub async fn rename_conversation(
    conversation_id: String,
    title: String,
) -> Result<String, AppError> {
    crate::error::answer(
        async move {
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            Ok(chat.rename(user, &conversation_id, &title).await?)
        }
        .await,
    )
}

/// The conversation's title once the model has written it (the page asks
/// after the first reply; it waits up to half a minute).
#[server]
pub async fn conversation_title(conversation_id: String) -> Result<String, AppError> {
    crate::error::answer(
        async move {
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            Ok(chat.title(user, &conversation_id).await?)
        }
        .await,
    )
}

/// The name (or email) of the account the caller is signed in to, and
/// whether it is an admin (the Settings page links the admin pages); `None`
/// for an anonymous visitor.
#[server]
pub async fn current_account() -> Result<Option<(String, bool)>, AppError> {
    crate::error::answer(
        async move {
            let chat = chat()?;
            let Some(user) = crate::session::current_user().await? else {
                return Ok(None);
            };
            Ok(wick_core::db::users::account_of(chat.pool(), user)
                .await
                .map_err(wick_core::ChatError::from)?
                .map(|(name, role)| (name, role == wick_core::db::users::Role::Admin)))
        }
        .await,
    )
}

/// The ways in this deployment offers, for the sign-in, sign-up and
/// Settings pages. Answers without an account in `WICK_AUTH=required` mode.
#[server]
pub async fn sign_in_options() -> Result<wick_types::account::SignInOptions, AppError> {
    let policy = chat()?.accounts().clone();
    Ok(wick_types::account::SignInOptions {
        password: policy.password_auth,
        sign_up: policy.open_sign_up(),
        required: policy.mode == wick_core::accounts::AuthMode::Required,
        provider: policy.external.clone(),
    })
}

/// The caller's usage today and the limits that hold for them, with how
/// long conversations are kept here.
#[server]
pub async fn my_usage() -> Result<wick_types::account::UsageView, AppError> {
    crate::error::answer(
        async move {
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            Ok(chat.usage(user).await?)
        }
        .await,
    )
}

/// The caller's access tokens that are not revoked (expired ones too),
/// newest first; an anonymous visitor has none (tokens are for accounts).
#[server]
pub async fn list_tokens() -> Result<Vec<wick_types::account::TokenView>, AppError> {
    crate::error::answer(
        async move {
            let state = state()?;
            let headers = use_context::<http::request::Parts>()
                .map(|parts| parts.headers)
                .unwrap_or_default();
            let pool = state.chat.pool();
            let Some(user) = wick_core::session::account_from_headers(pool, &headers)
                .await
                .map_err(wick_core::ChatError::from)?
            else {
                return Ok(Vec::new());
            };
            let tokens = wick_core::db::tokens::list_user_tokens(pool, user)
                .await
                .map_err(wick_core::ChatError::from)?;
            Ok(tokens
                .into_iter()
                .map(|t| wick_types::account::TokenView {
                    id: t.id,
                    name: t.name,
                    created_at: t.created_at,
                    last_used_at: t.last_used_at,
                    expires_at: t.expires_at,
                    expired: t.expires_at.is_some_and(|at| at <= wick_core::db::now_ms()),
                })
                .collect())
        }
        .await,
    )
}

/// The caller's own defaults, for the Settings page.
#[server]
pub async fn get_user_settings() -> Result<UserSettingsView, AppError> {
    crate::error::answer(
        async move {
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            Ok(chat.user_settings(user).await?)
        }
        .await,
    )
}

/// Stores the caller's defaults: the model new conversations start with, and
/// a system prompt per model (`prompts` in the order of the models list).
#[server]
pub async fn save_user_settings(
    default_model: String,
    #[server(default)] prompts: Vec<String>,
) -> Result<(), AppError> {
    crate::error::answer(
        async move {
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            let ids = chat.model_options(user).await?.into_iter().map(|m| m.id);
            if prompts.len() > ids.len() {
                return Err(AppError::Invalid(
                    "There are more prompts than models; reload the page and try again.".to_owned(),
                ));
            }
            let prompts = ids.zip(prompts).collect();
            if let Some(token) = chat
                .save_user_settings(user, &default_model, prompts)
                .await?
            {
                crate::session::set_session_cookie(&token);
            }
            leptos_axum::redirect("/settings?saved=1");
            Ok(())
        }
        .await,
    )
}

/// The caller's conversations matching `q`: titles and every message of
/// every branch, newest first. Any text is a valid query.
#[server]
pub async fn search_conversations(q: String) -> Result<SearchResults, AppError> {
    crate::error::answer(
        async move {
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            Ok(chat.search(user, &q).await?)
        }
        .await,
    )
}

/// Pins the caller's conversation to the top of the sidebar, or unpins it.
#[server]
pub async fn pin_conversation(conversation_id: String, pinned: bool) -> Result<(), AppError> {
    crate::error::answer(
        async move {
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            Ok(chat.pin(user, &conversation_id, pinned).await?)
        }
        .await,
    )
}

/// Deletes the caller's conversation with all its branches and share links,
/// then goes to a new chat.
#[server]
pub async fn delete_conversation(conversation_id: String) -> Result<(), AppError> {
    crate::error::answer(
        async move {
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            chat.delete(user, &conversation_id).await?;
            leptos_axum::redirect("/");
            Ok(())
        }
        .await,
    )
}

/// Deletes all of the caller's conversations; answers how many.
#[server]
pub async fn delete_all_conversations() -> Result<u64, AppError> {
    crate::error::answer(
        async move {
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            let deleted = chat.delete_all(user).await?;
            leptos_axum::redirect(&format!("/settings?deleted={deleted}"));
            Ok(deleted)
        }
        .await,
    )
}

/// Refuses share operations when the deployment turned sharing off.
#[cfg(feature = "ssr")]
fn sharing_on() -> Result<(), AppError> {
    if state()?.sharing {
        Ok(())
    } else {
        Err(AppError::Invalid(
            "Sharing is turned off on this server.".to_owned(),
        ))
    }
}

/// Makes a read-only link to the branch of the conversation shown now;
/// `expiry` is "1d", "7d", "30d" or "never".
#[server]
pub async fn share_conversation(
    conversation_id: String,
    expiry: String,
) -> Result<ShareInfo, AppError> {
    crate::error::answer(
        async move {
            sharing_on()?;
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            let share = chat.share(user, &conversation_id, &expiry).await?;
            let event = wick_core::db::team::AuditEvent {
                actor: user,
                action: wick_core::db::team::AuditAction::ShareCreated,
                target: Some(format!("conversation {conversation_id}")),
                detail: Some(format!("expires {expiry}")),
                address: crate::session::client_address(),
            };
            if let Err(e) = wick_core::db::team::audit(chat.pool(), event).await {
                tracing::error!(error = %e, "could not write the audit log");
            }
            // Back to the conversation, its share panel open with the new link.
            leptos_axum::redirect(&format!("/c/{conversation_id}?panel=share"));
            Ok(share)
        }
        .await,
    )
}

/// The caller's share links that still open, newest first.
#[server]
pub async fn list_shares() -> Result<Vec<ShareInfo>, AppError> {
    crate::error::answer(
        async move {
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            Ok(chat.shares(user).await?)
        }
        .await,
    )
}

/// Revokes one of the caller's share links: it is a 404 from now on.
#[server]
pub async fn revoke_share(share_id: String) -> Result<(), AppError> {
    crate::error::answer(
        async move {
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            Ok(chat.revoke_share(user, &share_id).await?)
        }
        .await,
    )
}

/// A shared conversation, for anyone with its link. Revoked, expired and
/// unknown links are all `NotFound`, as is every link when sharing is off.
#[server]
pub async fn get_shared(share_id: String) -> Result<SharedView, AppError> {
    crate::error::answer(
        async move {
            sharing_on().map_err(|_| AppError::NotFound)?;
            Ok(chat()?.shared(&share_id).await?)
        }
        .await,
    )
}

/// Copies a shared conversation into a new one of the caller's and opens it.
#[server]
pub async fn copy_shared(share_id: String) -> Result<String, AppError> {
    crate::error::answer(
        async move {
            sharing_on().map_err(|_| AppError::NotFound)?;
            let chat = chat()?;
            let user = crate::session::current_user().await?;
            let (id, token) = chat.copy_shared(user, &share_id).await?;
            if let Some(token) = &token {
                crate::session::set_session_cookie(token);
            }
            leptos_axum::redirect(&format!("/c/{id}"));
            Ok(id)
        }
        .await,
    )
}
