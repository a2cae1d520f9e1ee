use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::{get_conversation, RetryReply, SendMessage};
use crate::components::message_list::ReplyState;
use crate::components::{composer::Composer, message_list::MessageList};
use crate::data::{MessageView, Role};
use crate::error::AppError;
use crate::pages::not_found::NotFound;

/// One conversation: its messages and the composer. Rendered fully on the
/// server (`SsrMode::Async`) so that a missing conversation can answer 404.
#[component]
pub fn ConversationPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    // Created here, inside the routes, so a no-JS form error (`?__err=`) reaches them.
    let send = ServerAction::<SendMessage>::new();
    let retry = ServerAction::<RetryReply>::new();
    let reply_state = ReplyState {
        generating: RwSignal::new(None),
        reload: RwSignal::new(0),
        announce: RwSignal::new(String::new()),
    };
    provide_context(reply_state);
    // Loaded once per conversation (and again when a reply's stream is gone);
    // sending and retrying add to the list from their own answers instead.
    let conversation = Resource::new(
        move || (id(), reply_state.reload.get()),
        |(id, _)| get_conversation(id),
    );

    view! {
        <Transition fallback=|| view! { <div class="messages"><p class="loading">"Loading…"</p></div> }>
            {move || Suspend::new(async move {
                match conversation.await {
                    Ok(c) => {
                        let id = c.id.clone();
                        // The list marks the reply being written, if any, as it renders.
                        reply_state.generating.set(None);
                        let messages = RwSignal::new(c.messages.clone());
                        follow_answers(messages, send, retry);
                        // Without JavaScript nothing streams: the page reloads itself
                        // while a reply is being written. (Inside `noscript`, set as
                        // HTML so that hydration never walks it; with JavaScript
                        // the browser reads it as inert text.)
                        let refresh = c
                            .messages
                            .iter()
                            .any(|m| m.state.is_generating())
                            .then(|| view! {
                                <div
                                    class="no-js-refresh"
                                    inner_html=r#"<noscript><meta http-equiv="refresh" content="2"></noscript>"#
                                ></div>
                            });
                        view! {
                            <Title text=c.title.clone() />
                            <h1 class="visually-hidden">{c.title.clone()}</h1>
                            {refresh}
                            <MessageList messages conversation_id=id.clone() retry />
                            <p class="visually-hidden" role="status" aria-live="polite">
                                {move || reply_state.announce.get()}
                            </p>
                            <Composer action=send conversation_id=Some(id) models=c.models model=c.model />
                        }
                            .into_any()
                    }
                    Err(AppError::NotFound) => view! { <NotFound /> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// Shows what a send or a retry started as soon as it answers: the stored
/// message and the empty reply, which then streams in by itself. A retry's
/// reply takes the place of the one it answers again (that one stays stored,
/// as a branch). Answers already on screen (after a reload) are not added twice.
fn follow_answers(
    messages: RwSignal<Vec<MessageView>>,
    send: ServerAction<SendMessage>,
    retry: ServerAction<RetryReply>,
) {
    let shown = move |id: &str| messages.with_untracked(|m| m.iter().any(|m| m.id == id));
    Effect::new(move |_| {
        if let Some(Ok(sent)) = send.value().get() {
            if !shown(&sent.reply.id) {
                messages.update(|m| m.extend(sent.user_message.into_iter().chain([sent.reply])));
            }
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(sent)) = retry.value().get() {
            if !shown(&sent.reply.id) {
                messages.update(|m| {
                    if let Some(last) = m.iter().rposition(|m| m.role == Role::Assistant) {
                        m.truncate(last);
                    }
                    m.push(sent.reply);
                });
            }
        }
    });
}
