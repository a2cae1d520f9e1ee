//! Who is asking, for the server functions: the session cookie of the request
//! in Leptos' context (the crypto and the lookup are `wick_core::session`'s).

use http::header::SET_COOKIE;
use leptos::prelude::*;
use wick_core::session;
use wick_core::UserId;

use crate::error::AppError;
use crate::state::AppState;

/// The user making the current request, if their cookie names a live session.
/// When the session has just slid, its cookie is sent again with a full lifetime.
pub async fn current_user() -> Result<Option<UserId>, AppError> {
    let state = expect_context::<AppState>();
    let headers = use_context::<http::request::Parts>()
        .map(|parts| parts.headers)
        .unwrap_or_default();
    match session::current(state.chat.pool(), &headers).await? {
        Some((user, renew)) => {
            if let Some(token) = renew {
                set_session_cookie(&token);
            }
            Ok(Some(user))
        }
        None => Ok(None),
    }
}

/// Hands a new session's token to the browser as its cookie.
pub fn set_session_cookie(token: &str) {
    let state = expect_context::<AppState>();
    let response = expect_context::<leptos_axum::ResponseOptions>();
    response.append_header(
        SET_COOKIE,
        session::set_cookie_value(token, state.secure_cookies),
    );
}
