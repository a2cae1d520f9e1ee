use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::{get_conversation, RetryReply, SendMessage};
use crate::components::message_list::ReplyState;
use crate::components::{composer::Composer, message_list::MessageList};
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
    };
    provide_context(reply_state);
    let conversation = Resource::new(
        move || {
            (
                id(),
                send.version().get(),
                retry.version().get(),
                reply_state.reload.get(),
            )
        },
        |(id, ..)| get_conversation(id),
    );

    view! {
        <Transition fallback=|| view! { <div class="messages"><p class="loading">"Loading…"</p></div> }>
            {move || Suspend::new(async move {
                match conversation.await {
                    Ok(c) => {
                        let id = c.id.clone();
                        // The list marks the reply being written, if any, as it renders.
                        reply_state.generating.set(None);
                        view! {
                            <Title text=c.title.clone() />
                            <MessageList messages=c.messages conversation_id=id.clone() retry />
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
