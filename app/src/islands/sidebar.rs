//! The sidebar's two behaviours with JavaScript: on a phone its list folds
//! behind a button, and scrolling to its end loads the next page of
//! conversations in place (without JavaScript, "More conversations" is a link).

use leptos::prelude::*;

/// The button that unfolds the list on a phone (hidden by the stylesheet
/// until the page is interactive: without JavaScript the list stays open).
#[island]
pub fn MenuButton() -> impl IntoView {
    let open = RwSignal::new(false);
    let toggle = move |_| {
        open.update(|o| *o = !*o);
        #[cfg(feature = "hydrate")]
        if let Some(list) = super::dom::by_id::<leptos::web_sys::Element>("conversation-list") {
            let _ = list
                .class_list()
                .toggle_with_force("open", open.get_untracked());
        }
    };
    view! {
        <button
            type="button"
            class="menu-toggle"
            aria-controls="conversation-list"
            aria-expanded=move || open.get().to_string()
            on:click=toggle
        >
            "Conversations"
        </button>
    }
}

/// Near the end of the list, fetches the page "More conversations" links to
/// and takes its list. Draws nothing.
#[island]
pub fn MoreOnScroll() -> impl IntoView {
    #[cfg(feature = "hydrate")]
    more::attach();
}

#[cfg(feature = "hydrate")]
mod more {
    use leptos::prelude::*;
    use leptos::wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{DomParser, Element, Response, SupportedType};

    use crate::islands::dom;

    thread_local! {
        static LOADING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    pub fn attach() {
        let Some(sidebar) = dom::query("nav.sidebar") else {
            return;
        };
        let nav = sidebar.clone();
        dom::listen(&sidebar, "scroll", move |_: web_sys::Event| {
            let near_end = nav.scroll_top() + nav.client_height() + 200 >= nav.scroll_height();
            if !near_end || LOADING.with(|l| l.get()) {
                return;
            }
            let Some(href) = dom::query("#conversation-list a.sidebar-more")
                .and_then(|a| a.get_attribute("href"))
            else {
                return;
            };
            LOADING.with(|l| l.set(true));
            leptos::task::spawn_local(async move {
                if let Some(list) = fetch_list(&href).await {
                    if let Some(shown) = dom::by_id::<Element>("conversation-list") {
                        shown.set_inner_html(&list);
                    }
                }
                LOADING.with(|l| l.set(false));
            });
        });
    }

    /// The inner HTML of the conversation list on the page at `href`.
    async fn fetch_list(href: &str) -> Option<String> {
        let answer = JsFuture::from(window().fetch_with_str(href)).await.ok()?;
        let answer: Response = answer.dyn_into().ok()?;
        if !answer.ok() {
            return None;
        }
        let html = JsFuture::from(answer.text().ok()?)
            .await
            .ok()?
            .as_string()?;
        let page = DomParser::new()
            .ok()?
            .parse_from_string(&html, SupportedType::TextHtml)
            .ok()?;
        Some(page.get_element_by_id("conversation-list")?.inner_html())
    }
}
