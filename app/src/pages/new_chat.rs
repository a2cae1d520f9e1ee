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
                // Each example is a form of its own: it posts the question as the composer does.
                <ul class="examples" aria-label="Examples">
                    {EXAMPLES
                        .iter()
                        .map(|text| {
                            view! {
                                <li>
                                    <form method="post" action=SendMessage::url()>
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
                view! { <Composer action=send conversation_id=None models model generating=None /> }
            })}
        </Suspense>
    }
}
