use leptos::prelude::*;
use leptos_router::hooks::use_location;

use crate::api::list_conversations;
use crate::ConversationsChanged;

/// The visitor's conversations, newest first, grouped Today / This week / Older.
#[component]
pub fn Sidebar() -> impl IntoView {
    let changed = expect_context::<ConversationsChanged>().0;
    let location = use_location();
    let groups = Resource::new(move || changed.get(), |_| list_conversations());
    let current = move || location.pathname.get();

    view! {
        <nav aria-label="Conversations" class="sidebar">
            <div class="sidebar-head">
                <a href="/" class="brand">"Wick"</a>
                <a href="/" class="new-chat">"New chat"</a>
            </div>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match groups.await {
                        Ok(groups) if groups.is_empty() => {
                            view! { <p class="sidebar-empty">"No conversations yet."</p> }.into_any()
                        }
                        Ok(groups) => {
                            groups
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
                                .collect_view()
                                .into_any()
                        }
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </nav>
    }
}
