use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::{list_models, SendMessage};
use crate::components::composer::Composer;

/// The start page: an empty chat whose first message creates the conversation.
#[component]
pub fn NewChatPage() -> impl IntoView {
    let send = ServerAction::<SendMessage>::new();
    let models = Resource::new(|| (), |_| list_models());
    view! {
        <Title text="" />
        <div class="messages empty">
            <div class="welcome">
                <h1>"Wick"</h1>
                <p>"Chat with a model on this machine, or one your team runs elsewhere."</p>
            </div>
        </div>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let models = models.await.unwrap_or_default();
                let model = models.first().map(|m| m.id.clone()).unwrap_or_default();
                view! { <Composer action=send conversation_id=None models model /> }
            })}
        </Suspense>
    }
}
