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
    // On a phone the list folds behind a button (shown only once the page is
    // interactive: without JavaScript the list simply stays open). Opening a
    // conversation folds it again.
    let open = RwSignal::new(false);
    Effect::new(move |_| {
        location.pathname.track();
        open.set(false);
    });

    view! {
        <nav aria-label="Conversations" class="sidebar">
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
            <div id="conversation-list" class="sidebar-list" class:open=move || open.get()>
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
            </div>
        </nav>
    }
}
