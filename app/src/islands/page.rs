//! What every page does with JavaScript: the skip link focuses the message
//! box, Ctrl+K (⌘K) the search box, Copy buttons copy, a form is posted once,
//! a refused form comes back with what was typed into it, and the notes a
//! form's answer left in the address (`?saved=1`, `?__err=…`) are taken out
//! of it once shown, so that the next form's answer does not show them again.

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
    use web_sys::{
        Element, Event, HtmlElement, HtmlFormElement, HtmlInputElement, HtmlTextAreaElement,
        KeyboardEvent, MouseEvent, SubmitEvent,
    };

    use crate::islands::dom;

    /// The fields of the form being posted, for the page it comes back to.
    const FIELDS: &str = "wick:fields";

    /// What a form's answer may leave in the address for its page to show
    /// once (a refusal, "Saved", an open panel, how an import went).
    /// (`?at=`, a searched message, stays: it is what the page shows.)
    const NOTES: [&str; 11] = [
        "__err", "__path", "saved", "deleted", "panel", "imported", "copies", "skipped",
        "restored", "password", "tokens",
    ];

    fn focus(id: &str) -> bool {
        dom::by_id::<HtmlElement>(id).is_some_and(|e| e.focus().is_ok())
    }

    pub fn attach() {
        let refused = window()
            .location()
            .search()
            .is_ok_and(|q| q.contains("__err="));
        keep_fields(refused);
        clean_address();
        // One post per form: a second click while the first is on its way
        // would send twice (two conversations, two links). Checked after the
        // form's own checks, which may have held it back.
        dom::listen(&document(), "submit", |ev: SubmitEvent| {
            let Some(form) = ev
                .target()
                .and_then(|t| t.dyn_into::<HtmlFormElement>().ok())
            else {
                return;
            };
            if ev.default_prevented() {
                return;
            }
            if form.has_attribute("data-posting") {
                ev.prevent_default();
                return;
            }
            let _ = form.set_attribute("data-posting", "");
            save_fields(&form);
        });
        // Back from the browser's back-forward cache: the forms post again.
        dom::listen(&window(), "pageshow", |_: Event| {
            for form in dom::query_all("form[data-posting]") {
                let _ = form.remove_attribute("data-posting");
            }
        });
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

    /// Keeps what was typed into the form's boxes (not the message box, whose
    /// draft `ComposerKeys` keeps, nor passwords).
    fn save_fields(form: &HtmlFormElement) {
        let fields: Vec<String> = dom::query_all("textarea[id], input[id]")
            .into_iter()
            .filter(|e| form.contains(Some(e)) && e.id() != "composer-input")
            .filter_map(|e| {
                let value = match e.dyn_ref::<HtmlInputElement>() {
                    Some(i) if matches!(i.type_().as_str(), "hidden" | "password" | "file") => {
                        return None
                    }
                    Some(i) => i.value(),
                    None => e.dyn_ref::<HtmlTextAreaElement>()?.value(),
                };
                Some(format!("{}\u{1f}{value}", e.id()))
            })
            .collect();
        if !fields.is_empty() {
            dom::store(
                FIELDS,
                &format!("{}\u{1e}{}", dom::path(), fields.join("\u{1e}")),
            );
        }
    }

    /// On the page a refused form came back to: its boxes hold again what
    /// was typed, and their folded panel (an edit, the settings) is open.
    fn keep_fields(refused: bool) {
        let Some(kept) = dom::take(FIELDS) else {
            return;
        };
        let mut parts = kept.split('\u{1e}');
        if !refused || parts.next() != Some(dom::path().as_str()) {
            return;
        }
        for field in parts {
            let Some((id, value)) = field.split_once('\u{1f}') else {
                continue;
            };
            let Some(element) = document().get_element_by_id(id) else {
                continue;
            };
            // Not over what was typed while the page loaded.
            if let Some(input) = element.dyn_ref::<HtmlInputElement>() {
                if input.value() == input.default_value() {
                    input.set_value(value);
                }
            } else if let Some(area) = element.dyn_ref::<HtmlTextAreaElement>() {
                if area.value() == area.default_value().unwrap_or_default() {
                    area.set_value(value);
                }
            }
            if let Ok(Some(panel)) = element.closest("details") {
                let _ = panel.set_attribute("open", "");
            }
        }
    }

    /// Takes the notes out of the address (`history.replaceState`): a reload
    /// or the next form's answer (which comes back to this address) would
    /// show them again.
    fn clean_address() {
        let location = window().location();
        let (Ok(path), Ok(search), Ok(hash)) =
            (location.pathname(), location.search(), location.hash())
        else {
            return;
        };
        let kept: Vec<&str> = search
            .trim_start_matches('?')
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter(|pair| !NOTES.contains(&pair.split('=').next().unwrap_or_default()))
            .collect();
        let query = if kept.is_empty() {
            String::new()
        } else {
            format!("?{}", kept.join("&"))
        };
        if query != search {
            if let Ok(history) = window().history() {
                let _ = history.replace_state_with_url(
                    &leptos::wasm_bindgen::JsValue::NULL,
                    "",
                    Some(&format!("{path}{query}{hash}")),
                );
            }
        }
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
