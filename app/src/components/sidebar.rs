use leptos::prelude::*;
use leptos_router::hooks::{use_location, use_query_map};

use crate::api::list_conversations;
use crate::islands::sidebar::{MenuButton, MoreOnScroll};

/// How many more conversations "More" shows (the server rounds to its pages).
const PAGE: usize = 50;

/// The search box, then the visitor's conversations: pinned first, then by
/// age (Today, Yesterday, Previous 7 days, Older), a page at a time. "More"
/// is a link (`?shown=`); with JavaScript, scrolling to the end of the list
/// loads the next page too (the `MoreOnScroll` island). Ctrl+K jumps to the
/// search box (`PageEvents`); on a phone the list folds behind a button.
#[component]
pub fn Sidebar() -> impl IntoView {
    let location = use_location();
    let query = use_query_map();
    let asked = move || {
        query
            .read()
            .get("shown")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(PAGE)
    };
    let groups = Resource::new(asked, |shown| list_conversations(Some(shown)));
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
        // A path such as `//host/x` (a 404 page) would make an off-site link.
        let path = location.pathname.get();
        let path = if path.starts_with("//") {
            "/".to_owned()
        } else {
            path
        };
        format!("{path}?{}", search.join("&"))
    };
    let current = move || location.pathname.get();

    view! {
        // The whole sidebar scrolls (its head and search box with the list).
        <nav aria-label="Conversations" class="sidebar">
            <div class="sidebar-head">
                <a href="/" class="brand">"Wick"</a>
                <button type="button" class="menu-toggle" aria-controls="conversation-list" aria-expanded="false">
                    "Conversations"
                </button>
                <MenuButton />
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
            <MoreOnScroll />
            <div id="conversation-list" class="sidebar-list">
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
