use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;

use crate::api::{get_user_settings, SendMessage};
use crate::components::composer::Composer;

/// Questions the start page offers, for someone who does not know where to begin.
const EXAMPLES: [&str; 3] = [
    "Explain how a rainbow forms, in three sentences.",
    "Write a haiku about the sea.",
    "Give me three ideas for a rainy afternoon.",
];

/// The start page: an empty chat whose first message creates the conversation.
#[component]
pub fn NewChatPage() -> impl IntoView {
    let send = ServerAction::<SendMessage>::new();
    // The person's own default model is the one selected.
    let settings = Resource::new(|| (), |_| get_user_settings());
    view! {
        <Title text="" />
        <div class="messages empty">
            <div class="welcome">
                <h1>"Wick"</h1>
                <p>"Chat with a model on this machine, or one your team runs elsewhere."</p>
                // Each example is a form of its own: without JavaScript it posts
                // the question like the composer does; with it, it sends it the same way.
                <ul class="examples" aria-label="Examples">
                    {EXAMPLES
                        .iter()
                        .map(|text| {
                            let on_submit = move |ev: leptos::ev::SubmitEvent| {
                                ev.prevent_default();
                                if !send.pending().get_untracked() {
                                    send.dispatch(SendMessage {
                                        conversation_id: None,
                                        content: (*text).to_owned(),
                                        model: None,
                                    });
                                }
                            };
                            view! {
                                <li>
                                    <form method="post" action=SendMessage::url() on:submit=on_submit>
                                        <input type="hidden" name="content" value=*text />
                                        <button type="submit" class="example">{*text}</button>
                                    </form>
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            </div>
        </div>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let (models, model) = match settings.await {
                    Ok(s) => (s.models, s.default_model),
                    Err(_) => (Vec::new(), String::new()),
                };
                view! { <Composer action=send conversation_id=None models model /> }
            })}
        </Suspense>
    }
}
