//! Who may call the inference APIs: `Authorization: Bearer <token>`, where the
//! token is one made by `wick token create` (stored as a SHA-256 hash) or one
//! of the static `WICK_API_KEY` keys. There is no anonymous access unless
//! `WICK_API_ALLOW_ANONYMOUS` says so.

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ServerState;

/// Prefix of the tokens Wick makes, so they are recognisable in configs and leaks.
const TOKEN_PREFIX: &str = "wick_";

/// How the API is protected.
#[derive(Debug, Clone, Default)]
pub struct ApiAccess {
    /// SHA-256 of each static key; the keys themselves are not kept.
    key_hashes: Vec<[u8; 32]>,
    allow_anonymous: bool,
}

impl ApiAccess {
    pub fn new(keys: &[String], allow_anonymous: bool) -> Self {
        Self {
            key_hashes: keys
                .iter()
                .map(|k| k.trim())
                .filter(|k| !k.is_empty())
                .map(hash)
                .collect(),
            allow_anonymous,
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A static `WICK_API_KEY`.
    Key,
    /// A token of this user.
    User(i64),
    /// Nobody, allowed by `WICK_API_ALLOW_ANONYMOUS`.
    Anonymous,
}

impl Caller {
    /// Whose allowance of replies at once a request counts against: a
    /// token's user; static keys and the anonymous API (the operator's own
    /// access, on a private network) only meet the model's queue.
    pub fn requester(self) -> wick_core::Requester {
        match self {
            Caller::User(user) => wick_core::Requester::User(user),
            Caller::Key | Caller::Anonymous => wick_core::Requester::Unlimited,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("An API token is required: send `Authorization: Bearer <token>` (make one with `wick token create`).")]
    Missing,
    #[error("The API token is not valid (wrong, revoked, or not from this server).")]
    Invalid,
    #[error("The server could not check the token; please try again.")]
    Unavailable,
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new random token: `wick_` and 256 random bits in base64url.
pub fn new_token() -> (String, [u8; 32]) {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let h = hash(&token);
    (token, h)
}

/// Checks the request's bearer token.
pub async fn authorize(state: &ServerState, headers: &HeaderMap) -> Result<Caller, AuthError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return if state.api.allow_anonymous {
            Ok(Caller::Anonymous)
        } else {
            Err(AuthError::Missing)
        };
    };
    let h = hash(token);
    // Compare against every key, in constant time, without stopping early.
    let key_match = state
        .api
        .key_hashes
        .iter()
        .fold(subtle::Choice::from(0), |found, k| {
            found | k[..].ct_eq(&h[..])
        });
    if bool::from(key_match) {
        return Ok(Caller::Key);
    }
    if token.starts_with(TOKEN_PREFIX) {
        // Looked up by its hash: the database never sees the token.
        match wick_core::db::tokens::user_for_api_token(state.chat().pool(), &h).await {
            Ok(Some(user)) => return Ok(Caller::User(user)),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "API token lookup failed");
                return Err(AuthError::Unavailable);
            }
        }
    }
    Err(AuthError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hashed() {
        let (a, ha) = new_token();
        let (b, hb) = new_token();
        assert!(a.starts_with("wick_") && a.len() == 5 + 43, "{a}");
        assert_ne!(a, b);
        assert_ne!(ha, hb);
        assert_eq!(ha, hash(&a));
    }

    #[test]
    fn empty_static_keys_are_ignored() {
        let access = ApiAccess::new(&["".into(), " k1 ".into()], false);
        assert_eq!(access.key_hashes, vec![hash("k1")]);
    }
}
