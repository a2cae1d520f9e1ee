use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use crate::api::{SendMessage, SetConversationModel, StopReply};
use crate::data::ModelOption;
use crate::islands::composer::ComposerKeys;

/// The message box: a plain form posted to the send function, which answers
/// with a redirect to the conversation (or back here, with the reason in the
/// address, when the message is refused). While a reply is being written
/// the button is "Stop", which posts the same form to the stop function.
/// Its keys and checks (Enter sends, Escape stops, an empty box is refused
/// at once) are the `ComposerKeys` island's.
///
/// The model picker sits beside the box: in a conversation, choosing another
/// model switches it at once with JavaScript (so Retry uses it too); without
/// it the choice travels with the next message.
#[component]
pub fn Composer(
    action: ServerAction<SendMessage>,
    conversation_id: Option<String>,
    models: Vec<ModelOption>,
    /// The id of the model selected at first.
    model: String,
    /// The reply being written, if one is: the button stops it.
    generating: Option<String>,
) -> impl IntoView {
    // A refused send comes back with the page (`?__err=`).
    let problem = match action.value().get_untracked() {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    };
    // The model picker's own refusal (a model the person may not use).
    let switch = ServerAction::<SetConversationModel>::new();
    let switch_problem = match switch.value().get_untracked() {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    };
    // With JavaScript, a change of the picker posts the form through this
    // hidden button (`ComposerKeys`); never the form's default button, as it
    // comes after Send.
    let switch_button = conversation_id.is_some().then(|| {
        view! {
            <button type="submit" class="switch-model" formaction=SetConversationModel::url() hidden=true>
                "Switch the model"
            </button>
        }
    });
    let picker = view! {
        <div class="model-picker">
            <label for="model-select">"Model"</label>
            <select id="model-select" name="model">
                {models
                    .into_iter()
                    .map(|m| {
                        let selected = m.id == model;
                        view! { <option value=m.id selected=selected>{m.name}</option> }
                    })
                    .collect_view()}
            </select>
            {switch_problem.map(|p| view! { <span class="problem" role="alert">{p}</span> })}
        </div>
    };
    let invalid = if problem.is_some() { "true" } else { "false" };
    let button = match generating {
        Some(id) => view! {
            <button type="submit" class="send stop" formaction=StopReply::url() name="message_id" value=id>
                "Stop"
            </button>
        }
        .into_any(),
        None => view! { <button type="submit" class="send">"Send"</button> }.into_any(),
    };

    view! {
        <form class="composer" method="post" action=SendMessage::url()>
            {conversation_id.map(|id| view! { <input type="hidden" name="conversation_id" value=id /> })}
            {picker}
            <div class="composer-box">
                <label for="composer-input" class="visually-hidden">"Message"</label>
                <textarea
                    id="composer-input"
                    autofocus=true
                    name="content"
                    rows="1"
                    placeholder="Ask anything"
                    aria-describedby="composer-problem"
                    aria-invalid=invalid
                ></textarea>
                {button}
                {switch_button}
            </div>
            <p id="composer-problem" class="problem" role="alert">
                {problem}
            </p>
            <ComposerKeys />
        </form>
    }
}
