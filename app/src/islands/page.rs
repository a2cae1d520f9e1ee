//! What every page does with JavaScript: the skip link focuses the message
//! box, Ctrl+K (⌘K) the search box, and Copy buttons copy.

use leptos::prelude::*;

/// Placed once in the layout; draws nothing.
#[island]
pub fn PageEvents() -> impl IntoView {
    #[cfg(feature = "hydrate")]
    events::attach();
}

#[cfg(feature = "hydrate")]
mod events {
    use leptos::prelude::*;
    use leptos::wasm_bindgen::JsCast;
    use web_sys::{Element, HtmlElement, KeyboardEvent, MouseEvent};

    use crate::islands::dom;

    fn focus(id: &str) -> bool {
        dom::by_id::<HtmlElement>(id).is_some_and(|e| e.focus().is_ok())
    }

    pub fn attach() {
        dom::listen(&document(), "keydown", |ev: KeyboardEvent| {
            if (ev.ctrl_key() || ev.meta_key())
                && ev.key().eq_ignore_ascii_case("k")
                && focus("search-input")
            {
                ev.prevent_default();
            }
        });
        dom::listen(&document(), "click", |ev: MouseEvent| {
            let Some(target) = ev.target().and_then(|t| t.dyn_into::<Element>().ok()) else {
                return;
            };
            let closest = |selector: &str| target.closest(selector).ok().flatten();
            // The browser would scroll to the box but leave the focus where it was.
            if closest(".skip-link").is_some() && focus("composer-input") {
                ev.prevent_default();
            } else if let Some(button) = closest(".copy-code") {
                // A code block's own code, exactly.
                let code = button
                    .closest(".code-block")
                    .ok()
                    .flatten()
                    .and_then(|block| block.query_selector("code").ok().flatten())
                    .and_then(|code| code.text_content());
                if let Some(code) = code {
                    copy_text(&code, &button);
                }
            } else if let Some(button) = closest(".copy-message") {
                // A reply's answer as markdown, which the button carries.
                if let Some(text) = button.get_attribute("data-text") {
                    copy_text(&text, &button);
                }
            }
        });
    }

    /// Writes `text` to the clipboard and says so on `button` for a moment.
    fn copy_text(text: &str, button: &Element) {
        let _ = window().navigator().clipboard().write_text(text);
        let label = button.text_content().unwrap_or_default();
        button.set_text_content(Some("Copied"));
        let button = send_wrapper::SendWrapper::new(button.clone());
        set_timeout(
            move || button.set_text_content(Some(&label)),
            std::time::Duration::from_millis(1500),
        );
    }
}
