//! The Settings page's history sections: every share link the person made
//! (with Revoke), and Delete all conversations. Plain forms, whose server
//! functions answer with a redirect back to the page.

use leptos::prelude::*;

use leptos_router::hooks::use_query_map;

use crate::api::{list_shares, DeleteAllConversations, RevokeShare};

/// The person's share links that still open, newest first, each with Revoke.
#[component]
pub fn ShareLinks() -> impl IntoView {
    let revoke = ServerAction::<RevokeShare>::new();
    let links = Resource::new(|| (), |_| list_shares());
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

/// Deletes every conversation of the person, after a question. The server
/// function comes back here with how many it deleted (`?deleted=N`).
#[component]
pub fn DeleteAll() -> impl IntoView {
    let delete = ServerAction::<DeleteAllConversations>::new();
    let query = use_query_map();
    let said = match query.with_untracked(|q| q.get("deleted")?.parse::<u64>().ok()) {
        Some(1) => Some("Deleted 1 conversation.".to_owned()),
        Some(n) => Some(format!("Deleted {n} conversations.")),
        None => None,
    };
    // A refused form comes back with the page (`?__err=`).
    let problem = delete
        .value()
        .get_untracked()
        .and_then(Result::err)
        .map(|e| e.to_string());
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
