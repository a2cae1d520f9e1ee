use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use wick_types::account::{utc_date, with_commas};

use crate::api::{
    current_account, get_user_settings, list_tokens, my_usage, sign_in_options, SaveUserSettings,
};
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
    // The save comes back here with `?saved=1`, or with its error (`?__err=`).
    let saved = move || {
        let refused = matches!(save.value().get(), Some(Err(_)));
        (query.with(|q| q.get("saved").is_some()) && !refused)
            .then_some("Saved: new conversations start with these settings.")
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
                <UsageSection />
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

/// The sentence for a `?password=` code `POST /auth/password` sent back.
fn password_said(code: &str) -> Option<(bool, &'static str)> {
    Some(match code {
        "changed" => (
            true,
            "Your password is changed. Your other sessions are signed out.",
        ),
        "wrong" => (
            false,
            "The current password is not right; nothing was changed.",
        ),
        "short" => (false, "The new password needs at least 10 characters."),
        "too_long" => (false, "The password is too long."),
        "common" => (
            false,
            "The new password is one of the most common ones; choose another.",
        ),
        "is_email" => (false, "The new password cannot be your email address."),
        "no_password" => (
            false,
            "This account signs in through its provider and has no password here.",
        ),
        "passwords_off" => (false, "Signing in with a password is turned off here."),
        "form" => (false, "Fill in both passwords."),
        _ => return None,
    })
}

/// The sentence for a `?tokens=` code the token forms sent back.
fn tokens_said(code: &str) -> Option<(bool, &'static str)> {
    Some(match code {
        "revoked" => (true, "The token is revoked: it no longer works."),
        "name" => (false, "Give the token a name of 1 to 100 characters."),
        "expiry" => (
            false,
            "The expiry must be a number of days from 1 to 366, or never.",
        ),
        "form" => (false, "The form was incomplete; nothing was changed."),
        _ => return None,
    })
}

/// A fixed sentence from the address, as a status or an alert.
fn said_view(said: Option<(bool, &'static str)>) -> impl IntoView {
    said.map(|(ok, text)| {
        if ok {
            view! { <p class="saved" role="status">{text}</p> }.into_any()
        } else {
            view! { <p class="error" role="alert">{text}</p> }.into_any()
        }
    })
}

/// Who is signed in, with Sign out, Sign out everywhere, a new password and
/// the access tokens; or the ways to sign in. Plain forms and links: they
/// work without JavaScript.
#[component]
fn AccountSection() -> impl IntoView {
    let account = Resource::new(|| (), |_| current_account());
    let options = Resource::new(|| (), |_| sign_in_options());
    let query = use_query_map();
    let password = move || {
        said_view(
            query
                .with(|q| q.get("password"))
                .and_then(|c| password_said(&c)),
        )
    };
    view! {
        <section class="account" aria-labelledby="account">
            <h2 id="account">"Account"</h2>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let passwords = options.await.map(|o| o.password).unwrap_or(true);
                    match account.await {
                        Ok(Some((name, admin))) => view! {
                            <p>"Signed in as " <strong>{name}</strong> "."</p>
                            {admin.then(|| view! {
                                <p><a href="/admin" rel="external">"Admin pages"</a>" — users, groups, model access, usage and the audit log."</p>
                            })}
                            <div class="account-actions">
                                <form method="post" action="/auth/sign-out">
                                    <button type="submit">"Sign out"</button>
                                </form>
                                <form method="post" action="/auth/sign-out-everywhere">
                                    <button type="submit">"Sign out everywhere"</button>
                                </form>
                            </div>
                            {password}
                            {passwords.then(|| view! {
                                <details class="password-panel">
                                    <summary>"Change password"</summary>
                                    <form method="post" action="/auth/password" class="account-form">
                                        <label for="current-password">"Current password"</label>
                                        <input id="current-password" type="password" name="current" autocomplete="current-password" required />
                                        <label for="new-password">"New password (at least 10 characters)"</label>
                                        <input id="new-password" type="password" name="new" autocomplete="new-password" minlength="10" required />
                                        <button type="submit">"Change password"</button>
                                    </form>
                                </details>
                            })}
                            <AccessTokens />
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

/// The account's access tokens for the inference APIs: make one (shown once
/// on the page the form answers with), see when each was used, revoke.
#[component]
fn AccessTokens() -> impl IntoView {
    let tokens = Resource::new(|| (), |_| list_tokens());
    let query = use_query_map();
    let said = move || {
        said_view(
            query
                .with(|q| q.get("tokens"))
                .and_then(|c| tokens_said(&c)),
        )
    };
    view! {
        <h3 id="tokens">"Access tokens"</h3>
        <p class="hint">
            "A token lets a program use the inference APIs (OpenAI's /v1/chat/completions, TGI's /generate) as you."
        </p>
        {said}
        <form method="post" action="/settings/tokens" class="token-form">
            <label for="token-name">"Name"</label>
            <input id="token-name" type="text" name="name" maxlength="100" placeholder="e.g. laptop script" required />
            <label for="token-expiry">"Expires"</label>
            <select id="token-expiry" name="expires_days">
                <option value="never">"Never"</option>
                <option value="7">"In 7 days"</option>
                <option value="30" selected>"In 30 days"</option>
                <option value="90">"In 90 days"</option>
                <option value="366">"In a year"</option>
            </select>
            <button type="submit">"Create token"</button>
        </form>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match tokens.await {
                    Ok(list) if list.is_empty() => view! { <p class="hint">"You have no tokens."</p> }.into_any(),
                    Ok(list) => {
                        view! {
                            <ul class="tokens" aria-label="Your access tokens">
                                {list
                                    .into_iter()
                                    .map(|t| {
                                        let used = t
                                            .last_used_at
                                            .map(|ms| format!("last used {}", utc_date(ms)))
                                            .unwrap_or_else(|| "never used".to_owned());
                                        let expires = match t.expires_at {
                                            Some(ms) if t.expired => format!("expired {}", utc_date(ms)),
                                            Some(ms) => format!("expires {}", utc_date(ms)),
                                            None => "never expires".to_owned(),
                                        };
                                        let detail = format!("created {}, {used}, {expires}", utc_date(t.created_at));
                                        view! {
                                            <li>
                                                <strong>{t.name.clone()}</strong>
                                                " "
                                                <span class="hint">{detail}</span>
                                                <form method="post" action="/settings/tokens/revoke" class="revoke-form">
                                                    <input type="hidden" name="id" value=t.id.to_string() />
                                                    <button type="submit" aria-label=format!("Revoke {}", t.name)>"Revoke"</button>
                                                </form>
                                            </li>
                                        }
                                    })
                                    .collect_view()}
                            </ul>
                        }
                            .into_any()
                    }
                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// The person's usage today against their limits (set by a team's admin),
/// and how long conversations are kept.
#[component]
fn UsageSection() -> impl IntoView {
    let usage = Resource::new(|| (), |_| my_usage());
    view! {
        <section class="usage" aria-labelledby="usage">
            <h2 id="usage">"Usage and limits"</h2>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match usage.await {
                        Ok(u) => {
                            let tokens = match u.tokens_per_day {
                                Some(limit) => format!(
                                    "{} of your {} tokens for today (it resets at 00:00 UTC).",
                                    with_commas(u.tokens_today),
                                    with_commas(limit),
                                ),
                                None => format!("{} tokens today; no daily limit.", with_commas(u.tokens_today)),
                            };
                            let per_minute = match u.requests_per_minute {
                                Some(n) => format!("At most {n} replies per minute."),
                                None => "No limit of replies per minute.".to_owned(),
                            };
                            let at_once = format!("At most {} replies being written at once.", u.replies_at_once);
                            let kept = match u.retention_days {
                                0 => "Conversations are kept until you delete them.".to_owned(),
                                days => format!("Conversations not updated for {days} days are deleted."),
                            };
                            view! {
                                <ul class="usage-list">
                                    <li data-usage="tokens">{tokens}</li>
                                    <li>{per_minute}</li>
                                    <li>{at_once}</li>
                                    <li data-usage="retention">{kept}</li>
                                </ul>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}
