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

    /// What was posted, and from which page: the page the post comes back to
    /// either shows it as the newest message (sent) or not (refused, or lost
    /// on the way), and then it goes back to its page's draft.
    const POSTED: &str = "wick:posted";

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

        // (A second post of the same form is held back page-wide, by `PageEvents`.)
        let checked = input.clone();
        dom::listen(&form, "submit", move |ev: SubmitEvent| {
            let submitter = ev.submitter();
            let is = |class: &str| {
                submitter
                    .as_ref()
                    .is_some_and(|b| b.class_list().contains(class))
            };
            if is("stop") {
                announce::after_reload(STOPPED);
                return;
            }
            if is("switch-model") {
                return;
            }
            let content = checked.value();
            if let Err(problem) = check_message(&content) {
                ev.prevent_default();
                say_problem(&problem.to_string(), &checked);
                return;
            }
            dom::store(POSTED, &format!("{}\n{content}", dom::path()));
        });

        // In a conversation, choosing another model switches it at once (so
        // Retry uses it too): the form is posted by its hidden switch button,
        // and the draft waits in storage for the page it comes back to.
        if let (Some(select), Some(switch)) = (
            dom::by_id::<HtmlSelectElement>("model-select"),
            dom::query(".composer button.switch-model")
                .and_then(|b| b.dyn_into::<HtmlButtonElement>().ok()),
        ) {
            let switched = form.clone();
            dom::listen(&select, "change", move |_: Event| {
                let _ = switched.request_submit_with_submitter(Some(&switch));
            });
        }
    }

    /// Puts back the draft of this page's box (kept while the page was
    /// loaded again: a reply ended, a send was refused, the model switched).
    fn keep_draft(input: &HtmlTextAreaElement) {
        if let Some(posted) = dom::take(POSTED) {
            if let Some((path, content)) = posted.split_once('\n') {
                let newest = dom::query_all(".message.user .content")
                    .last()
                    .and_then(|m| m.text_content());
                let sent = newest.is_some_and(|n| n.trim() == content.trim());
                let key = format!("wick:draft:{path}");
                if sent {
                    dom::forget(&key);
                } else {
                    dom::store(&key, content);
                }
            }
        }
        // Text typed while the page loaded goes after the draft it continues,
        // and is kept from now on (no input event may follow before the page
        // is loaded again at a reply's end).
        let draft = dom::stored(&draft_key()).unwrap_or_default();
        let typed = input.value();
        if !draft.is_empty() {
            input.set_value(&format!("{draft}{typed}"));
        }
        if !typed.is_empty() {
            dom::store(&draft_key(), &input.value());
        }
    }
}
