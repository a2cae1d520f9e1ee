use leptos::html;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use crate::api::{SendMessage, SetConversationModel, StopReply};
use crate::components::message_list::ReplyState;
use crate::data::ModelOption;
use crate::message::check_message;
use crate::ConversationsChanged;

/// What was typed into the server-rendered message box before the page
/// became interactive: hydration would otherwise set the box to the empty
/// draft and lose it. (Empty after the first page: later pages are built
/// in the browser, with no box typed into yet.)
fn typed_before_hydration() -> String {
    #[cfg(feature = "hydrate")]
    {
        use leptos::wasm_bindgen::JsCast;
        let hydrating = Owner::current_shared_context().is_some_and(|c| c.during_hydration());
        if hydrating {
            if let Some(box_) = document()
                .get_element_by_id("composer-input")
                .and_then(|e| e.dyn_into::<leptos::web_sys::HtmlTextAreaElement>().ok())
            {
                return box_.value();
            }
        }
    }
    String::new()
}

/// The message box. Enter sends, Shift+Enter starts a new line. While a reply
/// is being written the button is "Stop" and sending waits. Without JavaScript
/// it is a plain form post to the same server functions, which redirect back
/// (with the error in the address when there is one).
///
/// The model picker sits beside the box: in a conversation, choosing another
/// model switches it at once (so Retry uses it too); without JavaScript the
/// choice travels with the next message.
#[component]
pub fn Composer(
    action: ServerAction<SendMessage>,
    conversation_id: Option<String>,
    models: Vec<ModelOption>,
    /// The id of the model selected at first.
    model: String,
) -> impl IntoView {
    let draft = RwSignal::new(typed_before_hydration());
    let chosen = RwSignal::new(model);
    let switch = ServerAction::<SetConversationModel>::new();
    // A problem found before sending (empty, too long); the server's answer otherwise.
    let local_problem = RwSignal::new(None::<String>);
    let form_ref = NodeRef::<html::Form>::new();
    let input_ref = NodeRef::<html::Textarea>::new();
    // Back to the message box after sending or stopping (the button pressed
    // is gone by then), so typing goes on without reaching for the mouse.
    let refocus = move || {
        if let Some(input) = input_ref.get_untracked() {
            let _ = input.focus();
        }
    };
    let changed = use_context::<ConversationsChanged>();
    let reply_state = use_context::<ReplyState>();
    let generating = move || reply_state.and_then(|r| r.generating.get());
    let stop = ServerAction::<StopReply>::new();

    // The box has focus when a page shows it (`autofocus` covers only the
    // first page load; later pages are put in place by the router).
    // (Next frame: a page rendered under a transition is attached to the
    // document after its elements are made.)
    Effect::new(move |_| {
        if let Some(input) = input_ref.get() {
            request_animation_frame(move || {
                let _ = input.focus();
            });
        }
    });

    // After a successful send: clear the box and refresh the sidebar. On an
    // error the draft stays, so nothing typed is lost.
    Effect::new(move |_| {
        if let Some(Ok(_)) = action.value().get() {
            draft.set(String::new());
            refocus();
            if let Some(ConversationsChanged(c)) = changed {
                c.update(|n| *n += 1);
            }
        }
    });

    let problem = move || {
        local_problem.get().or_else(|| match action.value().get() {
            Some(Err(e)) => Some(e.to_string()),
            _ => None,
        })
    };

    let conversation_id_for_submit = conversation_id.clone();
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if action.pending().get_untracked() || generating().is_some() {
            return;
        }
        let content = draft.get_untracked();
        if let Err(p) = check_message(&content) {
            local_problem.set(Some(p.to_string()));
            return;
        }
        local_problem.set(None);
        action.dispatch(SendMessage {
            conversation_id: conversation_id_for_submit.clone(),
            content,
            model: Some(chosen.get_untracked()),
        });
    };

    let conversation_for_switch = conversation_id.clone();
    let on_model_change = move |ev: leptos::ev::Event| {
        let id = event_target_value(&ev);
        chosen.set(id.clone());
        if let Some(conversation_id) = conversation_for_switch.clone() {
            switch.dispatch(SetConversationModel {
                conversation_id,
                model: id,
            });
        }
    };
    let switch_problem = move || match switch.value().get() {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    };
    let picker = view! {
        <div class="model-picker">
            <label for="model-select">"Model"</label>
            <select id="model-select" name="model" on:change=on_model_change>
                {models
                    .into_iter()
                    .map(|m| {
                        let selected = m.id == chosen.get_untracked();
                        view! { <option value=m.id selected=selected>{m.name}</option> }
                    })
                    .collect_view()}
            </select>
            {move || switch_problem().map(|p| view! { <span class="problem" role="alert">{p}</span> })}
        </div>
    };

    let on_keydown = move |ev: leptos::ev::KeyboardEvent| {
        // Not while an input method is composing (CJK input uses Enter to confirm).
        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
            ev.prevent_default();
            if let Some(form) = form_ref.get() {
                let _ = form.request_submit();
            }
        }
        // Escape stops the reply being written, as the Stop button does.
        if ev.key() == "Escape" && !ev.is_composing() {
            if let Some(message_id) = generating() {
                ev.prevent_default();
                stop.dispatch(StopReply { message_id });
            }
        }
    };

    view! {
        <form
            class="composer"
            method="post"
            action=SendMessage::url()
            node_ref=form_ref
            on:submit=on_submit
        >
            {conversation_id.map(|id| view! { <input type="hidden" name="conversation_id" value=id /> })}
            {picker}
            <div class="composer-box">
                <label for="composer-input" class="visually-hidden">"Message"</label>
                <textarea
                    id="composer-input"
                    node_ref=input_ref
                    autofocus=true
                    name="content"
                    rows="1"
                    placeholder="Ask anything"
                    aria-describedby="composer-problem"
                    aria-invalid=move || if problem().is_some() { "true" } else { "false" }
                    prop:value=move || draft.get()
                    on:input=move |ev| {
                        draft.set(event_target_value(&ev));
                        local_problem.set(None);
                    }
                    on:keydown=on_keydown
                ></textarea>
                {move || match generating() {
                    Some(id) => {
                        let message_id = id.clone();
                        view! {
                            // Without JavaScript this posts the form to the stop function instead.
                            <button
                                type="submit"
                                class="send stop"
                                formaction=StopReply::url()
                                name="message_id"
                                value=id
                                on:click=move |ev| {
                                    ev.prevent_default();
                                    stop.dispatch(StopReply { message_id: message_id.clone() });
                                    refocus();
                                }
                            >
                                "Stop"
                            </button>
                        }
                            .into_any()
                    }
                    None => {
                        view! {
                            <button type="submit" class="send" disabled=move || action.pending().get()>
                                "Send"
                            </button>
                        }
                            .into_any()
                    }
                }}
            </div>
            <p id="composer-problem" class="problem" role="alert">
                {problem}
            </p>
        </form>
    }
}
