//! The Settings page's history sections: every share link the person made
//! (with Revoke), and Delete all conversations. Plain forms, posted without
//! JavaScript too.

use leptos::prelude::*;

use crate::api::{list_shares, DeleteAllConversations, RevokeShare};
use crate::ConversationsChanged;

/// The person's share links that still open, newest first, each with Revoke.
#[component]
pub fn ShareLinks() -> impl IntoView {
    let revoke = ServerAction::<RevokeShare>::new();
    let links = Resource::new(move || revoke.version().get(), |_| list_shares());
    view! {
        <section class="settings-section" aria-labelledby="share-links-heading">
            <h2 id="share-links-heading">"Share links"</h2>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match links.await {
                        Ok(links) if links.is_empty() => {
                            view! { <p class="hint">"You have no share links."</p> }.into_any()
                        }
                        Ok(links) => {
                            view! {
                                <ul class="share-links" aria-label="Your share links">
                                    {links
                                        .into_iter()
                                        .map(|l| {
                                            let href = format!("/s/{}", l.id);
                                            view! {
                                                <li>
                                                    <a href=href class="share-link">{l.title}</a>
                                                    " "
                                                    <ActionForm action=revoke attr:class="revoke-form">
                                                        <input type="hidden" name="share_id" value=l.id />
                                                        <button type="submit">"Revoke"</button>
                                                    </ActionForm>
                                                </li>
                                            }
                                        })
                                        .collect_view()}
                                </ul>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// Deletes every conversation of the person, after a question.
#[component]
pub fn DeleteAll() -> impl IntoView {
    let delete = ServerAction::<DeleteAllConversations>::new();
    let changed = use_context::<ConversationsChanged>();
    Effect::new(move |_| {
        if let (Some(Ok(_)), Some(ConversationsChanged(c))) = (delete.value().get(), changed) {
            c.update(|n| *n += 1);
        }
    });
    let said = move || match delete.value().get() {
        Some(Ok(1)) => Some("Deleted 1 conversation.".to_owned()),
        Some(Ok(n)) => Some(format!("Deleted {n} conversations.")),
        _ => None,
    };
    let problem = move || {
        delete
            .value()
            .get()
            .and_then(Result::err)
            .map(|e| e.to_string())
    };
    view! {
        <section class="settings-section" aria-labelledby="delete-all-heading">
            <h2 id="delete-all-heading">"Delete conversations"</h2>
            <details class="delete-panel">
                <summary>"Delete all conversations…"</summary>
                <p>"Delete every conversation, with all versions and share links? This cannot be undone."</p>
                <ActionForm action=delete>
                    <button type="submit" class="danger">"Delete all conversations"</button>
                </ActionForm>
            </details>
            <p class="saved" role="status">{said}</p>
            <p class="problem" role="alert">{problem}</p>
        </section>
    }
}
