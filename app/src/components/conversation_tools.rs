//! Above a conversation: pin it, share it, delete it. Each is a plain form
//! whose server function answers with a redirect (back here, or to the start
//! page after a delete); Share and Delete unfold first, so that nothing is
//! shared or lost by a stray click.

use leptos::prelude::*;

use crate::api::{
    list_shares, DeleteConversation, PinConversation, RevokeShare, ShareConversation,
};
use wick_types::ShareExpiry;

#[component]
pub fn ConversationTools(
    conversation_id: String,
    pinned: bool,
    can_share: bool,
    /// The share panel is open (its form came back here).
    share_open: bool,
) -> impl IntoView {
    let pin = ServerAction::<PinConversation>::new();
    let delete = ServerAction::<DeleteConversation>::new();
    // A refused form comes back with the page (`?__err=`).
    let problem = [pin.value().get_untracked(), delete.value().get_untracked()]
        .into_iter()
        .find_map(|r| r.and_then(Result::err))
        .map(|e| e.to_string());
    let id_for_pin = conversation_id.clone();
    let id_for_delete = conversation_id.clone();

    view! {
        <div class="conversation-tools">
            <ActionForm action=pin attr:class="pin-form">
                <input type="hidden" name="conversation_id" value=id_for_pin />
                <input type="hidden" name="pinned" value=(!pinned).to_string() />
                <button type="submit" aria-pressed=pinned.to_string()>
                    {if pinned { "Unpin" } else { "Pin" }}
                </button>
            </ActionForm>
            {can_share.then(|| view! { <SharePanel conversation_id=conversation_id.clone() open=share_open /> })}
            <details class="delete-panel">
                <summary>"Delete"</summary>
                <p>"Delete this conversation with all its versions and share links? This cannot be undone."</p>
                <ActionForm action=delete>
                    <input type="hidden" name="conversation_id" value=id_for_delete />
                    <button type="submit" class="danger">"Delete conversation"</button>
                </ActionForm>
            </details>
            <p class="problem" role="alert">{problem}</p>
        </div>
    }
}

/// Makes read-only links to the branch shown, and lists this conversation's
/// links with a Revoke button each.
#[component]
fn SharePanel(conversation_id: String, open: bool) -> impl IntoView {
    let share = ServerAction::<ShareConversation>::new();
    let revoke = ServerAction::<RevokeShare>::new();
    let links = Resource::new(|| (), |_| list_shares());
    let problem = share
        .value()
        .get_untracked()
        .and_then(Result::err)
        .or_else(|| revoke.value().get_untracked().and_then(Result::err))
        .map(|e| e.to_string());
    let open = open || problem.is_some();
    let id_for_form = conversation_id.clone();
    view! {
        <details class="share-panel" open=open>
            <summary>"Share"</summary>
            <p class="hint">
                "Anyone with a link can read this conversation as it is now (the versions shown), without your other conversations."
            </p>
            <ActionForm action=share attr:class="share-form">
                <input type="hidden" name="conversation_id" value=id_for_form />
                <label for="share-expiry">"Link expires after"</label>
                <select id="share-expiry" name="expiry">
                    {ShareExpiry::ALL
                        .into_iter()
                        .map(|e| view! { <option value=e.as_str()>{e.label()}</option> })
                        .collect_view()}
                </select>
                <button type="submit">"Create link"</button>
            </ActionForm>
            <p class="problem" role="alert">{problem}</p>
            <Transition fallback=|| ()>
                {move || {
                    let conversation_id = conversation_id.clone();
                    Suspend::new(async move {
                        let mine: Vec<_> = links
                            .await
                            .unwrap_or_default()
                            .into_iter()
                            .filter(|l| l.conversation_id == conversation_id)
                            .collect();
                        (!mine.is_empty())
                            .then(|| {
                                view! {
                                    <ul class="share-links" aria-label="Links to this conversation">
                                        {mine
                                            .into_iter()
                                            .map(|l| {
                                                let href = format!("/s/{}", l.id);
                                                let expires = match l.expires_at {
                                                    Some(_) => "expires",
                                                    None => "never expires",
                                                };
                                                view! {
                                                    <li>
                                                        <a href=href.clone() class="share-link" rel="noopener">
                                                            {href.clone()}
                                                        </a>
                                                        " "
                                                        <span class="hint">{expires}</span>
                                                        <ActionForm action=revoke attr:class="revoke-form">
                                                            <input type="hidden" name="share_id" value=l.id.clone() />
                                                            <button type="submit">"Revoke"</button>
                                                        </ActionForm>
                                                    </li>
                                                }
                                            })
                                            .collect_view()}
                                    </ul>
                                }
                            })
                    })
                }}
            </Transition>
        </details>
    }
}
