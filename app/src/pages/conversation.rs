use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::{get_conversation, SendMessage};
use crate::components::{composer::Composer, message_list::MessageList};
use crate::error::AppError;
use crate::pages::not_found::NotFound;

/// One conversation: its messages and the composer. Rendered fully on the
/// server (`SsrMode::Async`) so that a missing conversation can answer 404.
#[component]
pub fn ConversationPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    // Created here, inside the routes, so a no-JS form error (`?__err=`) reaches it.
    let send = ServerAction::<SendMessage>::new();
    let conversation = Resource::new(
        move || (id(), send.version().get()),
        |(id, _)| get_conversation(id),
    );

    view! {
        <Transition fallback=|| view! { <div class="messages"><p class="loading">"Loading…"</p></div> }>
            {move || Suspend::new(async move {
                match conversation.await {
                    Ok(c) => {
                        let id = c.id.clone();
                        view! {
                            <Title text=c.title.clone() />
                            <MessageList messages=c.messages />
                            <Composer action=send conversation_id=Some(id) />
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
