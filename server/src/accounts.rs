//! Signing up, in and out with a password: plain form posts (they work
//! without JavaScript) answered with a redirect, or with 429 and
//! `Retry-After` when an account or an address has failed too often.
//!
//! Errors travel back to the page as a fixed code in the address
//! (`/sign-in?error=credentials`), never as text, so that a link from
//! elsewhere cannot make the page say anything else.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use wick_core::accounts::{SignInError, SignedIn, ACCOUNT_SESSION_LIFETIME};
use wick_core::{session, UserId};

use crate::ServerState;

/// Failed sign-ins allowed per account before each further one waits
/// (1 s, 2 s, 4 s … up to [`MAX_WAIT`]), and per address (a whole office
/// may share one).
const FREE_PER_ACCOUNT: u32 = 5;
const FREE_PER_ADDRESS: u32 = 50;
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// A count is forgotten this long after its last failure.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// The most counts kept; past it, forgotten ones are dropped first.
const MAX_COUNTS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Count {
    failures: u32,
    last: Instant,
    blocked_until: Instant,
}

/// Failed sign-ins, per account (the email as typed, whether or not it has
/// an account, so the answer does not tell) and per address. In memory: a
/// restart forgets them, which costs an attacker a restart they cannot cause.
#[derive(Debug, Default)]
pub struct Throttle {
    counts: Mutex<HashMap<String, Count>>,
}

impl Throttle {
    /// The counts an attempt touches: the account's (when an email was
    /// given) and the address's.
    fn keys(email: Option<&str>, address: Option<IpAddr>) -> Vec<(String, u32)> {
        let mut keys = Vec::new();
        if let Some(email) = email {
            keys.push((
                format!("account:{}", wick_core::db::users::normalise_email(email)),
                FREE_PER_ACCOUNT,
            ));
        }
        if let Some(address) = address {
            keys.push((format!("address:{address}"), FREE_PER_ADDRESS));
        }
        keys
    }

    /// How long to wait before trying again, if any of the counts is blocked.
    fn wait(&self, email: Option<&str>, address: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let counts = self
            .counts
            .lock()
            .expect("the throttle's lock is never poisoned");
        Self::keys(email, address)
            .iter()
            .filter_map(|(key, _)| counts.get(key))
            .filter(|c| c.blocked_until > now)
            .map(|c| c.blocked_until - now)
            .max()
    }

    /// Counts a failed sign-in, or (without an email) a sign-up, which costs
    /// an argon2 hash too.
    fn failed(&self, email: Option<&str>, address: Option<IpAddr>) {
        let now = Instant::now();
        let mut counts = self
            .counts
            .lock()
            .expect("the throttle's lock is never poisoned");
        if counts.len() >= MAX_COUNTS {
            counts.retain(|_, c| now.duration_since(c.last) < FORGET_AFTER);
        }
        for (key, free) in Self::keys(email, address) {
            let count = counts.entry(key).or_insert(Count {
                failures: 0,
                last: now,
                blocked_until: now,
            });
            if now.duration_since(count.last) >= FORGET_AFTER {
                count.failures = 0;
            }
            count.failures += 1;
            count.last = now;
            if count.failures >= free {
                let doublings = (count.failures - free).min(20);
                count.blocked_until = now + Duration::from_secs(1 << doublings).min(MAX_WAIT);
            }
        }
    }

    fn succeeded(&self, email: &str) {
        let mut counts = self
            .counts
            .lock()
            .expect("the throttle's lock is never poisoned");
        for (key, _) in Self::keys(Some(email), None) {
            counts.remove(&key);
        }
    }
}

#[derive(Deserialize)]
pub struct SignInForm {
    email: String,
    password: String,
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub struct SignUpForm {
    email: String,
    #[serde(default)]
    name: String,
    password: String,
    #[serde(default)]
    next: String,
}

/// Longest email and password a form may carry (the password rules' own
/// limit is checked by the core; this keeps argon2 from being fed megabytes).
const MAX_FIELD_BYTES: usize = 1024;

/// `POST /auth/sign-in`.
pub async fn sign_in(
    State(state): State<ServerState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return back("/sign-in", "form", "");
    };
    if form.email.len() > MAX_FIELD_BYTES || form.password.len() > MAX_FIELD_BYTES {
        return back("/sign-in", "credentials", &form.next);
    }
    let address = peer.map(|Extension(ConnectInfo(a))| a.ip());
    if let Some(wait) = state.throttle.wait(Some(&form.email), address) {
        return too_many(wait);
    }
    let (current, sessions) = match visitor(&state, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let chat = state.chat();
    match chat
        .sign_in(current, &sessions, &form.email, form.password)
        .await
    {
        Ok(signed_in) => {
            state.throttle.succeeded(&form.email);
            tracing::info!(user = signed_in.user, "signed in");
            signed(&state, signed_in, &form.next)
        }
        Err(SignInError::Credentials) => {
            state.throttle.failed(Some(&form.email), address);
            tracing::info!(?address, "a sign-in failed");
            back("/sign-in", "credentials", &form.next)
        }
        Err(SignInError::Pending) => back("/sign-in", "pending", &form.next),
        Err(e) => trouble(e),
    }
}

/// `POST /auth/sign-up`.
pub async fn sign_up(
    State(state): State<ServerState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: Result<Form<SignUpForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return back("/sign-up", "form", "");
    };
    if form.email.len() > MAX_FIELD_BYTES || form.password.len() > MAX_FIELD_BYTES {
        return back("/sign-up", "too_long", &form.next);
    }
    // Sign-ups count against the address too: each costs an argon2 hash.
    let address = peer.map(|Extension(ConnectInfo(a))| a.ip());
    if let Some(wait) = state.throttle.wait(None, address) {
        return too_many(wait);
    }
    state.throttle.failed(None, address);
    let (current, sessions) = match visitor(&state, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let result = state
        .chat()
        .sign_up(current, &sessions, &form.email, &form.name, form.password)
        .await;
    match result {
        Ok(signed_in) => {
            tracing::info!(user = signed_in.user, "signed up");
            signed(&state, signed_in, &form.next)
        }
        Err(SignInError::Store(e)) => trouble(SignInError::Store(e)),
        Err(e) => {
            let code = match e {
                SignInError::BadEmail => "email",
                SignInError::Taken => "taken",
                SignInError::LongName => "name",
                SignInError::Password(wick_core::password::PasswordProblem::TooShort {
                    ..
                }) => "short",
                SignInError::Password(wick_core::password::PasswordProblem::TooLong) => "too_long",
                SignInError::Password(wick_core::password::PasswordProblem::Common) => "common",
                SignInError::Password(wick_core::password::PasswordProblem::IsEmail) => "is_email",
                _ => "form",
            };
            back("/sign-up", code, &form.next)
        }
    }
}

/// `POST /auth/sign-out`: ends the browser's session and forgets its cookie.
pub async fn sign_out(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    let sessions = session::token_hashes(&headers);
    if let Err(e) = state.chat().sign_out(&sessions).await {
        return trouble(SignInError::Store(e));
    }
    let mut response = see_other("/");
    response.headers_mut().append(
        SET_COOKIE,
        session::clear_cookie_value(state.app.secure_cookies),
    );
    response
}

/// Who the browser is now, and the sessions it holds (ended at sign-in).
async fn visitor(
    state: &ServerState,
    headers: &HeaderMap,
) -> Result<(Option<UserId>, Vec<[u8; 32]>), Response> {
    let current = session::user_from_headers(state.chat().pool(), headers)
        .await
        .map_err(|e| trouble(SignInError::Store(e)))?;
    Ok((current, session::token_hashes(headers)))
}

/// Where to go after signing in: a path of this site, nothing else (an
/// address elsewhere would make the form an open redirect).
pub fn safe_next(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 512
        && !next.chars().any(char::is_control);
    if ok {
        next
    } else {
        "/"
    }
}

fn signed(state: &ServerState, signed_in: SignedIn, next: &str) -> Response {
    let mut response = see_other(safe_next(next));
    response.headers_mut().append(
        SET_COOKIE,
        session::set_cookie_value_for(
            &signed_in.token,
            state.app.secure_cookies,
            ACCOUNT_SESSION_LIFETIME,
        ),
    );
    response
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Back to the form with a fixed error code (and where to go after).
fn back(page: &str, code: &str, next: &str) -> Response {
    let next = safe_next(next);
    let mut location = format!("{page}?error={code}");
    if next != "/" {
        location.push_str("&next=");
        location.push_str(&urlencoding(next));
    }
    see_other(&location)
}

fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn too_many(wait: Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Too many attempts</title></head><body><main><h1>Too many attempts</h1>\
         <p>Too many sign-ins failed. Try again in {seconds} seconds.</p>\
         <p><a href=\"/sign-in\">Back to sign in</a></p></main></body></html>"
    );
    let mut response = (StatusCode::TOO_MANY_REQUESTS, page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn trouble(e: SignInError) -> Response {
    tracing::error!(error = %e, "signing in failed on the server");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on the server.",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_site_are_followed() {
        assert_eq!(safe_next("/c/abc?x=1"), "/c/abc?x=1");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil",
            "",
            "c/abc",
            "/a\nb",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn an_account_waits_after_five_failures_and_doubling_after() {
        let t = Throttle::default();
        let ann = Some("ann@example.org");
        for _ in 0..4 {
            t.failed(Some("Ann@Example.org"), None);
            assert_eq!(t.wait(ann, None), None);
        }
        t.failed(ann, None);
        let first = t.wait(ann, None).expect("blocked after five");
        assert!(first <= Duration::from_secs(1), "{first:?}");
        t.failed(ann, None);
        let second = t.wait(ann, None).unwrap();
        assert!(second > Duration::from_secs(1) && second <= Duration::from_secs(2));
        // Another account is not held up; a success clears the count.
        assert_eq!(t.wait(Some("bob@example.org"), None), None);
        t.succeeded("ann@example.org");
        assert_eq!(t.wait(ann, None), None);
    }

    #[test]
    fn an_address_waits_after_fifty_failures_whatever_the_accounts() {
        let t = Throttle::default();
        let here: Option<IpAddr> = Some([192, 0, 2, 1].into());
        for i in 0..49 {
            t.failed(Some(&format!("user{i}@example.org")), here);
        }
        assert_eq!(t.wait(Some("new@example.org"), here), None);
        t.failed(None, here);
        assert!(t.wait(Some("new@example.org"), here).is_some());
        assert!(t.wait(None, here).is_some());
        assert_eq!(
            t.wait(Some("new@example.org"), Some([192, 0, 2, 2].into())),
            None
        );
    }
}
