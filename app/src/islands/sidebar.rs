//! The sidebar's two behaviours with JavaScript: on a phone its list folds
//! behind a button, and scrolling to its end loads the next page of
//! conversations in place (without JavaScript, "More conversations" is a link).

use leptos::prelude::*;

/// Makes the sidebar's "Conversations" button (server-rendered; shown by
/// the stylesheet only once the page is interactive, as without JavaScript
/// the list stays open) fold and unfold the list on a phone. Draws nothing.
#[island]
pub fn MenuButton() -> impl IntoView {
    #[cfg(feature = "hydrate")]
    {
        use super::dom;
        if let (Some(button), Some(list)) = (
            dom::query(".menu-toggle"),
            dom::by_id::<leptos::web_sys::Element>("conversation-list"),
        ) {
            let pressed = button.clone();
            dom::listen(&button, "click", move |_: leptos::web_sys::Event| {
                let open = list.class_list().toggle("open").unwrap_or(false);
                let _ = pressed.set_attribute("aria-expanded", if open { "true" } else { "false" });
            });
        }
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
            // Only Wick's own pages (a path, never `//host`).
            let Some(href) = dom::query("#conversation-list a.sidebar-more")
                .and_then(|a| a.get_attribute("href"))
                .filter(|h| h.starts_with('/') && !h.starts_with("//"))
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
