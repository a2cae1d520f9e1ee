//! Sign in and create an account: plain forms posted to `/auth/…` (they
//! work without JavaScript), which redirect back here with a fixed error
//! code when something is wrong. Only known codes are shown, as fixed
//! sentences, so a link from elsewhere cannot make the page say anything.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use wick_types::account::SignInOptions;

use crate::api::sign_in_options;

/// The ways in, as the server says (what a failed load shows: the forms,
/// which then answer with their own error).
fn options() -> Resource<SignInOptions> {
    Resource::new(
        || (),
        |_| async {
            sign_in_options().await.unwrap_or(SignInOptions {
                password: true,
                sign_up: true,
                required: false,
                provider: None,
            })
        },
    )
}

/// `text` as one component of a URL's query.
fn encode_component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// The sentence for an error code of `/auth/sign-in` or `/auth/sign-up`.
fn problem(code: &str) -> Option<&'static str> {
    Some(match code {
        "credentials" => "That email and password do not match an account.",
        "pending" => "Your account is waiting for an admin's approval.",
        "form" => "Fill in the email and the password.",
        "email" => "That is not an email address.",
        "taken" => "An account with this email already exists: sign in instead.",
        "short" => "The password needs at least 10 characters.",
        "too_long" => "The email or the password is too long.",
        "common" => "This password is one of the most common ones; choose another.",
        "is_email" => "The password cannot be your email address.",
        "name" => "The name is longer than 100 characters.",
        "waiting" => "Your account is made. An admin must approve it before you can sign in.",
        "passwords_off" => "Signing in with a password is turned off here.",
        "closed" => "This Wick does not take new accounts here; ask an admin for one.",
        _ => return None,
    })
}

/// The error and the page to go to after, from the address.
fn from_query() -> (Signal<Option<&'static str>>, Signal<String>) {
    let query = use_query_map();
    let error = Signal::derive(move || query.read().get("error").and_then(|c| problem(&c)));
    let next = Signal::derive(move || query.read().get("next").unwrap_or_default());
    (error, next)
}

#[component]
pub fn SignInPage() -> impl IntoView {
    let (error, next) = from_query();
    let options = options();
    // A link, not a form: the provider's page is another origin, and the
    // pages' content policy lets forms go only to Wick itself.
    let provider_link = move |opts: &SignInOptions| {
        opts.provider.clone().map(|name| {
            let href = move || {
                let next = next.get();
                if next.is_empty() {
                    "/auth/oidc/start".to_owned()
                } else {
                    format!("/auth/oidc/start?next={}", encode_component(&next))
                }
            };
            view! {
                <p>
                    <a class="provider-sign-in" href=href rel="external">{format!("Sign in with {name}")}</a>
                </p>
            }
        })
    };
    let password_form = move |opts: &SignInOptions| {
        opts.password.then(|| view! {
                <form method="post" action="/auth/sign-in" class="account-form">
                    <input type="hidden" name="next" value=next />
                    <label for="sign-in-email">"Email"</label>
                    <input id="sign-in-email" type="email" name="email" autocomplete="username" required />
                    <label for="sign-in-password">"Password"</label>
                    <input
                        id="sign-in-password"
                        type="password"
                        name="password"
                        autocomplete="current-password"
                        required
                    />
                    <button type="submit">"Sign in"</button>
                </form>
        })
    };
    view! {
        <Title text="Sign in" />
        <div class="messages account-page">
            <div class="message-column">
                <h1>"Sign in"</h1>
                {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        let opts = options.await;
                        view! {
                            {provider_link(&opts)}
                            {password_form(&opts)}
                            {opts.sign_up.then(|| view! {
                                <p>
                                    "No account yet? " <a href="/sign-up">"Create one"</a>
                                    {(!opts.required).then_some(
                                        ". Your conversations in this browser move to the account you sign in to.",
                                    )}
                                </p>
                            })}
                        }
                    })}
                </Suspense>
            </div>
        </div>
    }
}

#[component]
pub fn SignUpPage() -> impl IntoView {
    let (error, next) = from_query();
    let options = options();
    let form = move || {
        view! {
                    <form method="post" action="/auth/sign-up" class="account-form">
                        <input type="hidden" name="next" value=next />
                        <label for="sign-up-email">"Email"</label>
                        <input id="sign-up-email" type="email" name="email" autocomplete="username" required />
                        <label for="sign-up-name">"Name (optional)"</label>
                        <input id="sign-up-name" type="text" name="name" autocomplete="name" maxlength="100" />
                        <label for="sign-up-password">"Password (at least 10 characters)"</label>
                        <input
                            id="sign-up-password"
                            type="password"
                            name="password"
                            autocomplete="new-password"
                            minlength="10"
                            required
                        />
                        <button type="submit">"Create account"</button>
                    </form>
        }
    };
    view! {
        <Title text="Create an account" />
        <div class="messages account-page">
            <div class="message-column">
                <h1>"Create an account"</h1>
                {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        let opts = options.await;
                        if opts.sign_up {
                            view! {
                                {form()}
                                <p>
                                    "Already have one? " <a href="/sign-in">"Sign in"</a>
                                    {(!opts.required).then_some(
                                        ". The conversations you have in this browser move to the new account.",
                                    )}
                                </p>
                            }
                                .into_any()
                        } else {
                            view! {
                                <p>"This Wick does not take new accounts here; ask an admin for one."</p>
                                <p><a href="/sign-in">"Sign in"</a></p>
                            }
                                .into_any()
                        }
                    })}
                </Suspense>
            </div>
        </div>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_known_codes_have_a_sentence() {
        assert!(super::problem("credentials").is_some());
        assert!(super::problem("<script>").is_none());
    }
}
