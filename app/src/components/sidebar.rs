use leptos::prelude::*;
use leptos_router::hooks::{use_location, use_query_map};

use crate::api::list_conversations;
use crate::ConversationsChanged;

/// How many more conversations "More" shows (the server rounds to its pages).
const PAGE: usize = 50;

/// The search box, then the visitor's conversations: pinned first, then by
/// age (Today, Yesterday, Previous 7 days, Older), a page at a time. "More"
/// is a link (`?shown=`) that works without JavaScript; with it, scrolling
/// to the end of the list loads the next page too.
#[component]
pub fn Sidebar() -> impl IntoView {
    let changed = expect_context::<ConversationsChanged>().0;
    let location = use_location();
    let query = use_query_map();
    let asked = move || {
        query
            .read()
            .get("shown")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(PAGE)
    };
    // Pages added by scrolling, on top of what the address asks for.
    let scrolled = RwSignal::new(0usize);
    let groups = Resource::new(
        move || (changed.get(), asked() + scrolled.get()),
        |(_, shown)| list_conversations(Some(shown)),
    );
    let more_href = move || {
        let shown = groups
            .get()
            .and_then(Result::ok)
            .map_or(PAGE, |page| page.shown);
        let mut params: Vec<(String, String)> = query
            .get()
            .into_iter()
            .filter(|(k, _)| k != "shown")
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        params.push(("shown".to_owned(), (shown + PAGE).to_string()));
        let search: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        format!("{}?{}", location.pathname.get(), search.join("&"))
    };
    let on_scroll = move |ev: leptos::ev::Event| {
        #[cfg(feature = "hydrate")]
        {
            use leptos::wasm_bindgen::JsCast;
            let Some(list) = ev
                .target()
                .and_then(|t| t.dyn_into::<leptos::web_sys::Element>().ok())
            else {
                return;
            };
            let near_end = list.scroll_top() + list.client_height() + 200 >= list.scroll_height();
            // Only once the page asked for last has arrived.
            let asked = query
                .with_untracked(|q| q.get("shown"))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(PAGE);
            let want = asked + scrolled.get_untracked();
            let ready = groups
                .get_untracked()
                .and_then(Result::ok)
                .is_some_and(|p| p.more && p.shown >= want);
            if near_end && ready {
                scrolled.update(|n| *n += PAGE);
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    // Ctrl+K (⌘K) jumps to the search box from anywhere.
    #[cfg(feature = "hydrate")]
    {
        let handle = window_event_listener(leptos::ev::keydown, |ev| {
            if (ev.ctrl_key() || ev.meta_key()) && ev.key().eq_ignore_ascii_case("k") {
                use leptos::wasm_bindgen::JsCast;
                if let Some(input) = document()
                    .get_element_by_id("search-input")
                    .and_then(|e| e.dyn_into::<leptos::web_sys::HtmlElement>().ok())
                {
                    ev.prevent_default();
                    let _ = input.focus();
                }
            }
        });
        on_cleanup(move || handle.remove());
    }
    let current = move || location.pathname.get();
    // On a phone the list folds behind a button (shown only once the page is
    // interactive: without JavaScript the list simply stays open). Opening a
    // conversation folds it again.
    let open = RwSignal::new(false);
    Effect::new(move |_| {
        location.pathname.track();
        open.set(false);
    });

    view! {
        // The whole sidebar scrolls (its head and search box with the list).
        <nav aria-label="Conversations" class="sidebar" on:scroll=on_scroll>
            <div class="sidebar-head">
                <a href="/" class="brand">"Wick"</a>
                <button
                    type="button"
                    class="menu-toggle"
                    aria-controls="conversation-list"
                    aria-expanded=move || open.get().to_string()
                    on:click=move |_| open.update(|o| *o = !*o)
                >
                    "Conversations"
                </button>
                <a href="/" class="new-chat">"New chat"</a>
                <a href="/settings" class="settings-link">"Settings"</a>
            </div>
            <form action="/search" method="get" role="search" class="sidebar-search">
                <input
                    id="search-input"
                    type="search"
                    name="q"
                    aria-label="Search conversations"
                    placeholder="Search (Ctrl+K)"
                    aria-keyshortcuts="Control+K"
                />
            </form>
            <div id="conversation-list" class="sidebar-list" class:open=move || open.get()>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match groups.await {
                        Ok(page) if page.groups.is_empty() => {
                            view! { <p class="sidebar-empty">"No conversations yet."</p> }.into_any()
                        }
                        Ok(page) => {
                            let more = page.more.then(|| view! {
                                <a class="sidebar-more" href=more_href>"More conversations"</a>
                            });
                            let groups = page
                                .groups
                                .into_iter()
                                .map(|g| {
                                    view! {
                                        <section class="sidebar-group">
                                            <h2>{g.period.label()}</h2>
                                            <ul>
                                                {g
                                                    .conversations
                                                    .into_iter()
                                                    .map(|c| {
                                                        let href = format!("/c/{}", c.id);
                                                        let href_for_current = href.clone();
                                                        let whole_title = c.title.clone();
                                                        view! {
                                                            <li>
                                                                // The whole title on hover: alike titles are cut alike.
                                                                <a
                                                                    href=href
                                                                    title=whole_title
                                                                    aria-current=move || {
                                                                        (current() == href_for_current).then_some("page")
                                                                    }
                                                                >
                                                                    {c.title}
                                                                </a>
                                                            </li>
                                                        }
                                                    })
                                                    .collect_view()}
                                            </ul>
                                        </section>
                                    }
                                })
                                .collect_view();
                            view! { {groups} {more} }.into_any()
                        }
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
            </div>
        </nav>
    }
}

/// Percent-encodes a query value (the `?shown=` link keeps the others).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
