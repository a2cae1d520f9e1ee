//! Session crypto: the session cookie and the user behind it.
//!
//! A visitor gets a user and a cookie only when they first save something
//! (sending a message), so crawlers and one-off page views create no rows.
//! The cookie holds 256 random bits; the database holds only their SHA-256.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

use crate::db::{users, StoreError, UserId};

pub const COOKIE_NAME: &str = "wick_session";
/// How long a session lives without being used (it slides: see
/// [`users::user_for_session`] and [`current`]).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// A fresh session token: 32 random bytes, base64url without padding (43 characters).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a token, or `None` when the value cannot be a token we
/// issued: a malformed cookie is treated exactly like no cookie.
pub fn token_hash(token: &str) -> Option<[u8; 32]> {
    if token.len() != 43 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    if bytes.len() != 32 {
        return None;
    }
    Some(Sha256::digest(&bytes).into())
}

/// The hashes of every well-formed session cookie in the request.
pub fn token_hashes(headers: &HeaderMap) -> Vec<[u8; 32]> {
    tokens(headers).into_iter().map(|(_, hash)| hash).collect()
}

/// How many session cookies of one request are looked up. A browser sends
/// one (two at most, when an old cookie lingers under another path); a
/// request with thousands must not cost thousands of database lookups.
pub const MAX_SESSION_COOKIES: usize = 2;

/// The first well-formed session cookies of the request (at most
/// [`MAX_SESSION_COOKIES`]), with their hashes.
fn tokens(headers: &HeaderMap) -> Vec<(String, [u8; 32])> {
    cookie_values(headers, COOKIE_NAME)
        .filter_map(|value| token_hash(&value).map(|h| (value, h)))
        .take(MAX_SESSION_COOKIES)
        .collect()
}

/// The values of the request's cookies named `name`, in the order sent.
pub fn cookie_values<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = String> + 'a {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| cookie::Cookie::split_parse(v.to_owned()))
        .filter_map(Result::ok)
        .filter(move |c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// The `Set-Cookie` value that hands `token` to the browser.
pub fn set_cookie_value(token: &str, secure: bool) -> HeaderValue {
    set_cookie_value_for(token, secure, SESSION_LIFETIME)
}

/// The `Set-Cookie` value that hands `token` to the browser for `lifetime`
/// (an account's session is shorter than an anonymous visitor's).
pub fn set_cookie_value_for(token: &str, secure: bool, lifetime: Duration) -> HeaderValue {
    cookie_value(token, secure, lifetime.as_secs() as i64)
}

/// The `Set-Cookie` value that makes the browser forget its session cookie.
pub fn clear_cookie_value(secure: bool) -> HeaderValue {
    cookie_value("", secure, 0)
}

fn cookie_value(token: &str, secure: bool, max_age_secs: i64) -> HeaderValue {
    let cookie = cookie::Cookie::build((COOKIE_NAME, token.to_owned()))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build();
    HeaderValue::from_str(&cookie.to_string())
        .expect("a cookie built from base64url is a valid header")
}

/// The user whose live session a request's cookies name, if any.
pub async fn user_from_headers(
    pool: &sqlx::SqlitePool,
    headers: &HeaderMap,
) -> Result<Option<UserId>, StoreError> {
    Ok(current(pool, headers).await?.map(|(user, _)| user))
}

/// The user whose live session a request's cookies name, if any, and the
/// token to hand back to the browser with a full lifetime when the session
/// has just slid (so the cookie does not expire before the session does).
pub async fn current(
    pool: &sqlx::SqlitePool,
    headers: &HeaderMap,
) -> Result<Option<(UserId, Option<String>)>, StoreError> {
    for (token, hash) in tokens(headers) {
        if let Some(session) = users::user_for_session(pool, &hash).await? {
            return Ok(Some((session.user, session.renewed.then_some(token))));
        }
    }
    Ok(None)
}

/// The account a request's cookies are signed in to (not an anonymous
/// visitor, not a pending or disabled account), without sliding the session.
pub async fn account_from_headers(
    pool: &sqlx::SqlitePool,
    headers: &HeaderMap,
) -> Result<Option<UserId>, StoreError> {
    for (_, hash) in tokens(headers) {
        if let Some(user) = users::account_for_session(pool, &hash).await? {
            return Ok(Some(user));
        }
    }
    Ok(None)
}

/// A fresh token and the hash to store for it.
pub fn new_token_and_hash() -> (String, [u8; 32]) {
    let token = new_token();
    let hash = token_hash(&token).expect("a new token is well-formed");
    (token, hash)
}

/// A new anonymous user with a fresh session; returns the user and the token
/// to hand to the browser (only its hash is stored).
pub async fn new_anonymous_session(
    pool: &sqlx::SqlitePool,
) -> Result<(UserId, String), StoreError> {
    let (token, hash) = new_token_and_hash();
    let user = users::create_anonymous_user(pool, &hash, SESSION_LIFETIME).await?;
    Ok((user, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_and_hash_deterministically() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn malformed_cookies_are_ignored() {
        let good = new_token();
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            HeaderValue::from_str(&format!(
                "other=1; {COOKIE_NAME}=not-a-token; {COOKIE_NAME}={good}"
            ))
            .unwrap(),
        );
        headers.append(COOKIE, HeaderValue::from_static("wick_session=%%%;;=="));
        assert_eq!(token_hashes(&headers), vec![token_hash(&good).unwrap()]);
        assert!(token_hash(&"A".repeat(44)).is_none());
        assert!(token_hash("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!").is_none());
    }

    #[test]
    fn thousands_of_session_cookies_cost_two_lookups() {
        let many: Vec<String> = (0..5000)
            .map(|_| format!("{COOKIE_NAME}={}", new_token()))
            .collect();
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_str(&many.join("; ")).unwrap());
        let found = token_hashes(&headers);
        assert_eq!(found.len(), MAX_SESSION_COOKIES);
        // The first ones, in order: a browser puts the most specific path first.
        let first = many[0].split_once('=').unwrap().1;
        assert_eq!(found[0], token_hash(first).unwrap());
    }

    #[test]
    fn the_cookie_is_http_only_and_same_site_lax() {
        let v = set_cookie_value(&new_token(), false);
        let v = v.to_str().unwrap();
        assert!(v.starts_with("wick_session="));
        assert!(
            v.contains("HttpOnly") && v.contains("SameSite=Lax") && v.contains("Path=/"),
            "{v}"
        );
        assert!(!v.contains("Secure"));
        assert!(set_cookie_value(&new_token(), true)
            .to_str()
            .unwrap()
            .contains("Secure"));
    }
}
