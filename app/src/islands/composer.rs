//! The composer's keys and checks around its plain form: Enter sends,
//! Shift+Enter starts a new line, Escape stops the reply being written; an
//! empty or too long message is refused before it is posted; the draft
//! survives the page being loaded again (a reply ending, a refused send).

use leptos::prelude::*;

/// Placed inside the composer's form; draws nothing.
#[island]
pub fn ComposerKeys() -> impl IntoView {
    #[cfg(feature = "hydrate")]
    keys::attach();
}

#[cfg(feature = "hydrate")]
mod keys {
    use leptos::wasm_bindgen::JsCast;
    use web_sys::{
        Event, HtmlButtonElement, HtmlSelectElement, HtmlTextAreaElement, KeyboardEvent,
        SubmitEvent,
    };

    use crate::islands::{announce, dom};
    use crate::message::check_message;

    const STOPPED: &str = "The reply was stopped.";

    /// The text typed into this page's box and not yet sent.
    fn draft_key() -> String {
        format!("wick:draft:{}", dom::path())
    }

    /// Set when the box's text is posted; the next page keeps the draft only
    /// if it shows why the message was refused.
    fn sent_key() -> String {
        format!("wick:sent:{}", dom::path())
    }

    fn stop_button() -> Option<HtmlButtonElement> {
        dom::query(".composer button.stop")?.dyn_into().ok()
    }

    fn say_problem(problem: &str, input: &HtmlTextAreaElement) {
        if let Some(p) = dom::by_id::<web_sys::Element>("composer-problem") {
            p.set_text_content(Some(problem));
        }
        let _ = input.set_attribute(
            "aria-invalid",
            if problem.is_empty() { "false" } else { "true" },
        );
    }

    pub fn attach() {
        let Some(input) = dom::by_id::<HtmlTextAreaElement>("composer-input") else {
            return;
        };
        let Some(form) = input.form() else {
            return;
        };
        keep_draft(&input);

        let typed = input.clone();
        dom::listen(&input, "input", move |_: Event| {
            dom::store(&draft_key(), &typed.value());
            say_problem("", &typed);
        });

        let keyed = form.clone();
        dom::listen(&input, "keydown", move |ev: KeyboardEvent| {
            // Not while an input method is composing (CJK input uses Enter to confirm).
            if ev.is_composing() {
                return;
            }
            if ev.key() == "Enter" && !ev.shift_key() {
                ev.prevent_default();
                // While a reply is written the form's button is Stop: sending waits.
                if stop_button().is_none() {
                    let _ = keyed.request_submit();
                }
            }
            if ev.key() == "Escape" {
                if let Some(stop) = stop_button() {
                    ev.prevent_default();
                    let _ = keyed.request_submit_with_submitter(Some(&stop));
                }
            }
        });

        let checked = input.clone();
        let submitting = std::rc::Rc::new(std::cell::Cell::new(false));
        dom::listen(&form, "submit", move |ev: SubmitEvent| {
            let stopping = ev
                .submitter()
                .is_some_and(|b| b.class_list().contains("stop"));
            if stopping {
                announce::after_reload(STOPPED);
                return;
            }
            // One post at a time (a second Enter while the first is on its way).
            if submitting.get() {
                ev.prevent_default();
                return;
            }
            if let Err(problem) = check_message(&checked.value()) {
                ev.prevent_default();
                say_problem(&problem.to_string(), &checked);
                return;
            }
            submitting.set(true);
            dom::store(&sent_key(), "1");
        });

        // In a conversation, choosing another model switches it at once (so
        // Retry uses it too): the form is posted to the switch instead, and
        // the draft waits in storage for the page it comes back to.
        if let Some(select) = dom::by_id::<HtmlSelectElement>("model-select") {
            if let Some(url) = select.get_attribute("data-switch-url") {
                let switched = form.clone();
                dom::listen(&select, "change", move |_: Event| {
                    switched.set_action(&url);
                    switched.submit().ok();
                });
            }
        }
    }

    /// Puts back the draft this page's box held before it was loaded again,
    /// unless it was sent (then it is gone with the sending, or, if the send
    /// was refused, it comes back with the reason).
    fn keep_draft(input: &HtmlTextAreaElement) {
        let refused = dom::by_id::<web_sys::Element>("composer-problem")
            .and_then(|p| p.text_content())
            .is_some_and(|t| !t.is_empty());
        let draft = dom::stored(&draft_key());
        if dom::take(&sent_key()).is_some() && !refused {
            dom::forget(&draft_key());
            return;
        }
        // Text typed before the page was interactive wins over an old draft.
        if let Some(draft) = draft.filter(|_| input.value().is_empty()) {
            input.set_value(&draft);
        }
    }
}
