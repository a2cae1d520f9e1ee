use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::{current_account, get_user_settings, SaveUserSettings};
use crate::components::history_settings::{DeleteAll, ShareLinks};

/// What the last import did, from the address `POST /import` sent the
/// browser to (`?imported=3&copies=1&skipped=2&restored=1`). Only numbers
/// are read, so a link from elsewhere cannot make the page say anything else.
fn import_result(
    imported: Option<String>,
    copies: Option<String>,
    skipped: Option<String>,
    restored: Option<String>,
) -> Option<String> {
    let number = |v: Option<String>| v.and_then(|v| v.parse::<usize>().ok());
    let imported = number(imported)?;
    let copies = number(copies).unwrap_or(0);
    let skipped = number(skipped).unwrap_or(0);
    let restored = number(restored).unwrap_or(0);
    let mut text = match imported {
        1 => "Imported 1 conversation.".to_owned(),
        n => format!("Imported {n} conversations."),
    };
    match copies {
        0 => {}
        1 => text.push_str(" 1 of them was already here: it is a copy."),
        n => text.push_str(&format!(" {n} of them were already here: they are copies.")),
    }
    match skipped {
        0 => {}
        1 => text
            .push_str(" 1 part Wick cannot show (an image, a file or tool output) was left out."),
        n => text.push_str(&format!(
            " {n} parts Wick cannot show (images, files, tool output) were left out."
        )),
    }
    match restored {
        0 => {}
        1 => text.push_str(" 1 default from the file was set where you had none."),
        n => text.push_str(&format!(
            " {n} defaults from the file were set where you had none."
        )),
    }
    Some(text)
}

/// The person's own defaults: the model new conversations start with, and a
/// system prompt per model for new conversations (HuggingChat's "custom
/// prompts"). One plain form, posted without JavaScript too. Then their
/// data: everything as one JSON download, and the import of a Wick export
/// or ChatGPT's `conversations.json` (a plain form that `POST /import`
/// answers with a redirect back here, or a page saying what is wrong).
#[component]
pub fn SettingsPage() -> impl IntoView {
    let query = use_query_map();
    let imported = move || {
        query.with(|q| {
            import_result(
                q.get("imported"),
                q.get("copies"),
                q.get("skipped"),
                q.get("restored"),
            )
        })
    };
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
                <AccountSection />
                <section class="your-data" aria-labelledby="your-data">
                    <h2 id="your-data">"Your data"</h2>
                    <p>
                        <a href="/export.json" download="" rel="external">"Export all (JSON)"</a>
                    </p>
                    <form method="post" action="/import" enctype="multipart/form-data" class="import-form">
                        <label for="import-file">"Import conversations (a Wick export or ChatGPT's conversations.json)"</label>
                        <input id="import-file" type="file" name="file" accept=".json,application/json" required />
                        <button type="submit">"Import"</button>
                    </form>
                    <p class="saved" role="status">{imported}</p>
                </section>
                <ShareLinks />
                <DeleteAll />
            </div>
        </div>
    }
}

/// Who is signed in, with Sign out; or the ways to sign in. Plain forms and
/// links: they work without JavaScript.
#[component]
fn AccountSection() -> impl IntoView {
    let account = Resource::new(|| (), |_| current_account());
    view! {
        <section class="account" aria-labelledby="account">
            <h2 id="account">"Account"</h2>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match account.await {
                        Ok(Some(name)) => view! {
                            <p>"Signed in as " <strong>{name}</strong> "."</p>
                            <form method="post" action="/auth/sign-out">
                                <button type="submit">"Sign out"</button>
                            </form>
                        }
                            .into_any(),
                        Ok(None) => view! {
                            <p>
                                "You are not signed in: your conversations are kept for this browser only. "
                                <a href="/sign-in">"Sign in"</a> " or " <a href="/sign-up">"create an account"</a>
                                " to keep them with an account."
                            </p>
                        }
                            .into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}
