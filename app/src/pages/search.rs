use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::search_conversations;
use wick_types::SearchHit;

/// Search results for `?q=`: the person's conversations whose title or any
/// message (in any branch) has the words, newest first. A GET form, so it
/// works without JavaScript and results can be bookmarked.
#[component]
pub fn SearchPage() -> impl IntoView {
    let query = use_query_map();
    let q = move || query.read().get("q").unwrap_or_default();
    let results = Resource::new(q, search_conversations);
    // Reference-counted, as the conversation page's title is (see there).
    let head_title = ArcRwSignal::new(format!("Search: {}", q()));
    view! {
        <Title text=move || head_title.get() />
        <div class="messages search-page">
            <div class="message-column">
                <h1>"Search"</h1>
                <form action="/search" method="get" role="search" class="search-form">
                    <label for="search-page-input">"Search your conversations for"</label>
                    <input id="search-page-input" type="search" name="q" value=q />
                    <button type="submit">"Search"</button>
                </form>
                <p class="hint">
                    "All words must match. \"Quoted words\" match as a phrase; a word ending in * matches its beginning."
                </p>
                <Transition fallback=|| view! { <p class="loading">"Searching…"</p> }>
                    {move || Suspend::new(async move {
                        match results.await {
                            Ok(r) if r.query.is_empty() => ().into_any(),
                            Ok(r) if r.hits.is_empty() => {
                                view! {
                                    <p class="search-none" role="status">
                                        {format!("No conversation matches “{}”.", r.query)}
                                    </p>
                                }
                                    .into_any()
                            }
                            Ok(r) => {
                                let count = r.hits.len();
                                view! {
                                    <p class="visually-hidden" role="status">
                                        {format!("{count} results")}
                                    </p>
                                    <ol class="search-results" aria-label="Results">
                                        {r.hits.into_iter().map(|h| view! { <Hit hit=h /> }).collect_view()}
                                    </ol>
                                }
                                    .into_any()
                            }
                            Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        }
                    })}
                </Transition>
            </div>
        </div>
    }
}

/// One result: the conversation's title as a link to the matching message
/// (its branch shown), and the text around the match with the words marked.
#[component]
fn Hit(hit: SearchHit) -> impl IntoView {
    let href = match &hit.message_id {
        Some(m) => format!("/c/{}?at={m}#m-{m}", hit.conversation_id),
        None => format!("/c/{}", hit.conversation_id),
    };
    let who = hit.role.map(|r| format!("{}: ", r.author()));
    view! {
        <li>
            <a href=href class="search-title">{hit.title}</a>
            <p class="snippet">
                {who.map(|w| view! { <span class="snippet-role">{w}</span> })}
                {hit
                    .snippet
                    .into_iter()
                    .map(|p| {
                        if p.hit {
                            view! { <mark>{p.text}</mark> }.into_any()
                        } else {
                            p.text.into_any()
                        }
                    })
                    .collect_view()}
            </p>
        </li>
    }
}
