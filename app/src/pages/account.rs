//! Sign in and create an account: plain forms posted to `/auth/…` (they
//! work without JavaScript), which redirect back here with a fixed error
//! code when something is wrong. Only known codes are shown, as fixed
//! sentences, so a link from elsewhere cannot make the page say anything.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

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
    view! {
        <Title text="Sign in" />
        <div class="messages account-page">
            <div class="message-column">
                <h1>"Sign in"</h1>
                {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
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
                <p>
                    "No account yet? " <a href="/sign-up">"Create one"</a>
                    ". Your conversations in this browser move to the account you sign in to."
                </p>
            </div>
        </div>
    }
}

#[component]
pub fn SignUpPage() -> impl IntoView {
    let (error, next) = from_query();
    view! {
        <Title text="Create an account" />
        <div class="messages account-page">
            <div class="message-column">
                <h1>"Create an account"</h1>
                {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
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
                <p>
                    "Already have one? " <a href="/sign-in">"Sign in"</a>
                    ". The conversations you have in this browser move to the new account."
                </p>
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
