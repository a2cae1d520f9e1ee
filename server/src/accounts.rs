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
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use wick_core::accounts::{Admission, AuthMode, SignInError, SignedIn};
use wick_core::db::team::AuditAction;
use wick_core::{session, UserId};

use crate::audit::{self, address, Peer};
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
            let user = Some(signed_in.user);
            audit::record(
                &state,
                user,
                AuditAction::SignIn,
                None,
                Some("password".into()),
                address,
            )
            .await;
            signed(&state, signed_in, &form.next)
        }
        Err(SignInError::Credentials) => {
            state.throttle.failed(Some(&form.email), address);
            tracing::info!(?address, "a sign-in failed");
            let email = Some(wick_core::db::users::normalise_email(&form.email));
            audit::record(
                &state,
                None,
                AuditAction::SignInFailed,
                email,
                None,
                address,
            )
            .await;
            back("/sign-in", "credentials", &form.next)
        }
        Err(SignInError::Pending) => back("/sign-in", "pending", &form.next),
        Err(SignInError::PasswordsOff) => back("/sign-in", "passwords_off", &form.next),
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
        Ok(Admission::In(signed_in)) => {
            tracing::info!(user = signed_in.user, "signed up");
            let user = Some(signed_in.user);
            audit::record(&state, user, AuditAction::SignUp, None, None, address).await;
            signed(&state, signed_in, &form.next)
        }
        Ok(Admission::Waiting) => {
            tracing::info!("signed up, waiting for an admin's approval");
            back("/sign-in", "waiting", "")
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
                SignInError::SignUpClosed => "closed",
                SignInError::PasswordsOff => "passwords_off",
                _ => "form",
            };
            back("/sign-up", code, &form.next)
        }
    }
}

/// `POST /auth/sign-out`: ends the browser's session and forgets its cookie.
pub async fn sign_out(
    State(state): State<ServerState>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    let sessions = session::token_hashes(&headers);
    let user = account(&state, &headers).await.ok().flatten();
    if let Err(e) = state.chat().sign_out(&sessions).await {
        return trouble(SignInError::Store(e));
    }
    if user.is_some() {
        audit::record(
            &state,
            user,
            AuditAction::SignOut,
            None,
            None,
            address(&peer),
        )
        .await;
    }
    let mut response = see_other("/");
    response.headers_mut().append(
        SET_COOKIE,
        session::clear_cookie_value(state.app.secure_cookies),
    );
    response
}

/// `POST /auth/sign-out-everywhere`: ends every session of the account, on
/// every device, this browser's included.
pub async fn sign_out_everywhere(
    State(state): State<ServerState>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    let user = match account(&state, &headers).await {
        Ok(Some(user)) => user,
        Ok(None) => return see_other("/sign-in?next=%2Fsettings"),
        Err(response) => return response,
    };
    if let Err(e) = state.chat().sign_out_everywhere(user).await {
        return trouble(SignInError::Store(e));
    }
    tracing::info!(user, "signed out everywhere");
    let everywhere = AuditAction::SignOutEverywhere;
    audit::record(&state, Some(user), everywhere, None, None, address(&peer)).await;
    let mut response = see_other("/");
    response.headers_mut().append(
        SET_COOKIE,
        session::clear_cookie_value(state.app.secure_cookies),
    );
    response
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current: String,
    new: String,
}

/// `POST /auth/password`: a new password, after the current one; the
/// account's other sessions end. Back to the Settings page with a fixed code.
pub async fn change_password(
    State(state): State<ServerState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Response {
    let user = match account(&state, &headers).await {
        Ok(Some(user)) => user,
        Ok(None) => return see_other("/sign-in?next=%2Fsettings"),
        Err(response) => return response,
    };
    let settings = |code: &str| see_other(&format!("/settings?password={code}#account"));
    let Ok(Form(form)) = form else {
        return settings("form");
    };
    if form.current.len() > MAX_FIELD_BYTES || form.new.len() > MAX_FIELD_BYTES {
        return settings("too_long");
    }
    // A wrong current password counts like a failed sign-in: whoever sat
    // down at a signed-in browser must not get to guess it freely.
    let address = peer.map(|Extension(ConnectInfo(a))| a.ip());
    let key = format!("#{user}");
    if let Some(wait) = state.throttle.wait(Some(&key), address) {
        return too_many(wait);
    }
    let keep = session::token_hashes(&headers).into_iter().next();
    match state
        .chat()
        .change_password(user, keep, form.current, form.new)
        .await
    {
        Ok(()) => {
            state.throttle.succeeded(&key);
            tracing::info!(user, "password changed");
            let changed = AuditAction::PasswordChanged;
            audit::record(&state, Some(user), changed, None, None, address).await;
            settings("changed")
        }
        Err(SignInError::WrongPassword) => {
            state.throttle.failed(Some(&key), address);
            settings("wrong")
        }
        Err(SignInError::Password(problem)) => settings(match problem {
            wick_core::password::PasswordProblem::TooShort { .. } => "short",
            wick_core::password::PasswordProblem::TooLong => "too_long",
            wick_core::password::PasswordProblem::Common => "common",
            wick_core::password::PasswordProblem::IsEmail => "is_email",
        }),
        Err(SignInError::PasswordsOff) => settings("passwords_off"),
        Err(SignInError::Credentials) => settings("no_password"),
        Err(e) => trouble(e),
    }
}

#[derive(Deserialize)]
pub struct TokenForm {
    name: String,
    /// Days until it expires; empty: never.
    #[serde(default)]
    expires_days: String,
}

/// The longest a token made on the Settings page may live, in days.
pub const MAX_TOKEN_DAYS: u32 = 366;

/// `POST /settings/tokens`: a new access token for the inference APIs,
/// acting as the signed-in account. The answer is a page that shows it
/// once (only its hash is stored), never a redirect that would put it in
/// an address.
pub async fn create_token(
    State(state): State<ServerState>,
    peer: Peer,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let user = match account(&state, &headers).await {
        Ok(Some(user)) => user,
        Ok(None) => return see_other("/sign-in?next=%2Fsettings"),
        Err(response) => return response,
    };
    let tokens_error = |code: &str| see_other(&format!("/settings?tokens={code}#tokens"));
    let Ok(Form(form)) = form else {
        return tokens_error("form");
    };
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return tokens_error("name");
    }
    let days = form.expires_days.trim();
    let expires_at = if days.is_empty() || days == "never" {
        None
    } else {
        match days.parse::<u32>() {
            Ok(days @ 1..=MAX_TOKEN_DAYS) => {
                Some(wick_core::db::now_ms() + i64::from(days) * 24 * 60 * 60 * 1000)
            }
            _ => return tokens_error("expiry"),
        }
    };
    let (token, hash) = crate::api::auth::new_token();
    let token_id = match wick_core::db::tokens::create_user_token(
        state.chat().pool(),
        user,
        name,
        &hash,
        expires_at,
    )
    .await
    {
        Ok(id) => id,
        Err(e) => return trouble(SignInError::Store(e)),
    };
    tracing::info!(user, "access token created");
    let detail = Some(format!("token {token_id}"));
    let created = AuditAction::TokenCreated;
    audit::record(&state, Some(user), created, None, detail, address(&peer)).await;
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Your new access token</title></head><body><main>\
         <h1>Your new access token</h1>\
         <p>Copy it now: it is shown only this once. It acts as you on the inference APIs \
         (<code>Authorization: Bearer …</code>).</p>\
         <p><label for=\"token\">Token “{name}”</label><br>\
         <input id=\"token\" readonly size=\"60\" value=\"{token}\"></p>\
         <p><a href=\"/settings#tokens\">Back to the settings</a></p></main></body></html>",
        name = html_escape(name),
    );
    let mut response = (StatusCode::OK, page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
pub struct RevokeForm {
    id: String,
}

/// `POST /settings/tokens/revoke`: revokes one of the account's tokens;
/// another person's token is answered as if it did not exist (404).
pub async fn revoke_token(
    State(state): State<ServerState>,
    peer: Peer,
    headers: HeaderMap,
    form: Result<Form<RevokeForm>, FormRejection>,
) -> Response {
    let user = match account(&state, &headers).await {
        Ok(Some(user)) => user,
        Ok(None) => return see_other("/sign-in?next=%2Fsettings"),
        Err(response) => return response,
    };
    let id = match form {
        Ok(Form(form)) => form.id.trim().parse::<i64>().ok(),
        Err(_) => None,
    };
    let Some(id) = id else {
        return see_other("/settings?tokens=form#tokens");
    };
    match wick_core::db::tokens::revoke_user_token(state.chat().pool(), user, id).await {
        Ok(()) => {
            tracing::info!(user, token = id, "access token revoked");
            let detail = Some(format!("token {id}"));
            let revoked = AuditAction::TokenRevoked;
            audit::record(&state, Some(user), revoked, None, detail, address(&peer)).await;
            see_other("/settings?tokens=revoked#tokens")
        }
        Err(wick_core::StoreError::NotFound) => {
            (StatusCode::NOT_FOUND, "There is no such token.").into_response()
        }
        Err(e) => trouble(SignInError::Store(e)),
    }
}

/// `text` safe to put in HTML, in text and in quoted attributes.
pub(crate) fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The account the browser is signed in to (not an anonymous visitor).
async fn account(state: &ServerState, headers: &HeaderMap) -> Result<Option<UserId>, Response> {
    session::account_from_headers(state.chat().pool(), headers)
        .await
        .map_err(|e| trouble(SignInError::Store(e)))
}

/// With `WICK_AUTH=required`, everything but the sign-in pages, `/health`,
/// the built site's files and the inference APIs (which check their own
/// tokens) needs a signed-in account: a page is redirected to the sign-in
/// page (coming back after), anything else is answered 401.
pub async fn require_sign_in(
    State(state): State<ServerState>,
    request: Request,
    next: Next,
) -> Response {
    if state.chat().accounts().mode != AuthMode::Required || open_to_everyone(request.uri().path())
    {
        return next.run(request).await;
    }
    match account(&state, request.headers()).await {
        Ok(Some(_)) => next.run(request).await,
        Ok(None) if matches!(*request.method(), Method::GET | Method::HEAD) => {
            let wanted = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            match safe_next(wanted) {
                "/" => see_other("/sign-in"),
                next => see_other(&format!("/sign-in?next={}", urlencoding(next))),
            }
        }
        Ok(None) => (
            StatusCode::UNAUTHORIZED,
            "Sign in to use Wick: this request needs a signed-in account.",
        )
            .into_response(),
        Err(response) => response,
    }
}

/// What answers without an account in `WICK_AUTH=required` mode.
fn open_to_everyone(path: &str) -> bool {
    use leptos::server_fn::ServerFn;
    matches!(
        path,
        "/sign-in"
            | "/sign-up"
            | "/health"
            | "/metrics"
            | "/favicon.svg"
            | "/info"
            | "/openapi.json"
    ) || path.starts_with("/auth/")
        || path.starts_with("/pkg/")
        || crate::protect::is_inference_api(path)
        || path == app::api::SignInOptions::url()
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

/// The answer to a sign-in: the session's cookie, and on to `next`.
pub(crate) fn signed(state: &ServerState, signed_in: SignedIn, next: &str) -> Response {
    let mut response = see_other(safe_next(next));
    response.headers_mut().append(
        SET_COOKIE,
        session::set_cookie_value_for(
            &signed_in.token,
            state.app.secure_cookies,
            state.chat().accounts().session_lifetime,
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
