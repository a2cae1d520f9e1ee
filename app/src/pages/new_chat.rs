use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::SendMessage;
use crate::components::composer::Composer;

/// The start page: an empty chat whose first message creates the conversation.
#[component]
pub fn NewChatPage() -> impl IntoView {
    let send = ServerAction::<SendMessage>::new();
    view! {
        <Title text="" />
        <div class="messages empty">
            <div class="welcome">
                <h1>"Wick"</h1>
                <p>"Chat with a model that runs on this machine."</p>
            </div>
        </div>
        <Composer action=send conversation_id=None />
    }
}
