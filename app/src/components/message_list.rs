use leptos::prelude::*;

use crate::data::MessageView;

/// The messages of a conversation, oldest first. Each is an `<article>` named
/// by its author ("You" / "Assistant") for screen readers and tests alike.
#[component]
pub fn MessageList(messages: Vec<MessageView>) -> impl IntoView {
    view! {
        <div class="messages">
            <div class="message-column">
                {messages
                    .into_iter()
                    .map(|m| {
                        let author_id = format!("author-{}", m.id);
                        let labelled_by = author_id.clone();
                        let class = format!("message {}", m.role.as_str());
                        view! {
                            <article class=class aria-labelledby=labelled_by>
                                <header class="author" id=author_id>
                                    {m.role.author()}
                                </header>
                                <div class="content">{m.content}</div>
                            </article>
                        }
                    })
                    .collect_view()}
            </div>
        </div>
    }
}
