use leptos::prelude::*;

use crate::api::{RenameConversation, SaveConversationSettings};
use crate::data::GenerationSettings;

/// What the panel shows: the conversation's own values and the model's.
#[derive(Clone)]
pub struct PanelData {
    pub conversation_id: String,
    pub title: String,
    pub system_prompt: String,
    pub settings: GenerationSettings,
    pub defaults: GenerationSettings,
}

/// A number field's value ("" when the conversation leaves it to the
/// model) and its placeholder (the model's value).
fn field<T: ToString>(own: Option<T>, default: Option<T>) -> (String, String) {
    (
        own.map(|v| v.to_string()).unwrap_or_default(),
        default
            .map(|v| format!("Model default: {}", v.to_string()))
            .unwrap_or_default(),
    )
}

/// The conversation's settings, beside the chat: its title, system prompt,
/// temperature, top-p and longest reply. Plain forms (posted without
/// JavaScript); a change applies from the next reply.
#[component]
pub fn SettingsPanel(
    data: PanelData,
    save: ServerAction<SaveConversationSettings>,
    rename: ServerAction<RenameConversation>,
    /// Open: a form of the panel came back here.
    open: bool,
    /// The settings were just saved.
    saved: bool,
) -> impl IntoView {
    let PanelData {
        conversation_id,
        title,
        system_prompt,
        settings,
        defaults,
    } = data;
    let (temperature, temperature_hint) = field(settings.temperature, defaults.temperature);
    let (top_p, top_p_hint) = field(settings.top_p, defaults.top_p);
    let (max_new, max_new_hint) = field(settings.max_new_tokens, defaults.max_new_tokens);
    // A refused form comes back with the page (`?__err=`).
    let problem = match save.value().get_untracked() {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    };
    let saved =
        (saved && problem.is_none()).then_some("Saved: the next reply uses these settings.");
    let rename_id = conversation_id.clone();
    // Downloads, not pages.
    let export_md = format!("/c/{conversation_id}/export.md");
    let export_json = format!("/c/{conversation_id}/export.json");
    let rename_problem = match rename.value().get_untracked() {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    };
    let open = open || problem.is_some() || rename_problem.is_some();
    view! {
        <details class="conversation-settings" open=open>
            <summary>"Conversation settings"</summary>
            <ActionForm action=rename attr:class="rename-form">
                <input type="hidden" name="conversation_id" value=rename_id />
                <label for="conversation-title">"Title"</label>
                <input id="conversation-title" name="title" value=title maxlength="200" />
                <button type="submit" class="ghost">"Rename"</button>
                <p class="problem" role="alert">{rename_problem}</p>
            </ActionForm>
            <ActionForm action=save attr:class="settings-form">
                <input type="hidden" name="conversation_id" value=conversation_id />
                <label for="system-prompt">"System prompt"</label>
                <textarea
                    id="system-prompt"
                    name="system_prompt"
                    rows="3"
                    placeholder="None: the model's own behaviour"
                inner_html=crate::textarea_text(&system_prompt)
            ></textarea>
                <div class="numbers">
                    <label>
                        "Temperature"
                        <input name="temperature" inputmode="decimal" value=temperature placeholder=temperature_hint />
                    </label>
                    <label>
                        "Top-p"
                        <input name="top_p" inputmode="decimal" value=top_p placeholder=top_p_hint />
                    </label>
                    <label>
                        "Max new tokens"
                        <input name="max_new_tokens" inputmode="numeric" value=max_new placeholder=max_new_hint />
                    </label>
                </div>
                <button type="submit">"Save settings"</button>
                <p class="saved" role="status">{saved}</p>
                <p class="problem" role="alert">{problem}</p>
            </ActionForm>
            <p class="export-links">
                <a href=export_md download="" rel="external">"Export as Markdown"</a>
                " "
                <a href=export_json download="" rel="external">"Export as JSON"</a>
            </p>
        </details>
    }
    .into_any()
}
