use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::{get_user_settings, SaveUserSettings};

/// The person's own defaults: the model new conversations start with, and a
/// system prompt per model for new conversations (HuggingChat's "custom
/// prompts"). One plain form, posted without JavaScript too.
#[component]
pub fn SettingsPage() -> impl IntoView {
    let save = ServerAction::<SaveUserSettings>::new();
    let settings = Resource::new(|| (), |_| get_user_settings());
    let saved = move || match save.value().get() {
        Some(Ok(())) => Some("Saved: new conversations start with these settings.".to_owned()),
        _ => None,
    };
    let problem = move || match save.value().get() {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    };
    view! {
        <Title text="Settings" />
        <div class="messages settings-page">
            <div class="message-column">
                <h1>"Settings"</h1>
                <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        match settings.await {
                            Ok(s) => {
                                let default_model = s.default_model.clone();
                                view! {
                                    <ActionForm action=save attr:class="user-settings">
                                        <label for="default-model">"Model for new conversations"</label>
                                        <select id="default-model" name="default_model">
                                            {s
                                                .models
                                                .iter()
                                                .map(|m| {
                                                    let selected = m.id == default_model;
                                                    view! { <option value=m.id.clone() selected=selected>{m.name.clone()}</option> }
                                                })
                                                .collect_view()}
                                        </select>
                                        <h2>"System prompts"</h2>
                                        <p class="hint">
                                            "New conversations with a model start with its prompt; each conversation can change it in its settings."
                                        </p>
                                        {s
                                            .models
                                            .iter()
                                            .zip(s.prompts.iter())
                                            .enumerate()
                                            .map(|(i, (m, prompt))| {
                                                let id = format!("prompt-{i}");
                                                view! {
                                                    <label for=id.clone()>{format!("System prompt for {}", m.name)}</label>
                                                    <textarea id=id name=format!("prompts[{i}]") rows="3" placeholder="None" inner_html=crate::textarea_text(prompt)></textarea>
                                                }
                                            })
                                            .collect_view()}
                                        <button type="submit">"Save"</button>
                                        <p class="saved" role="status">{saved}</p>
                                        <p class="problem" role="alert">{problem}</p>
                                    </ActionForm>
                                }
                                    .into_any()
                            }
                            Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        }
                    })}
                </Suspense>
            </div>
        </div>
    }
}
