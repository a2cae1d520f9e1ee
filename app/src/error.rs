//! The one error type of the app layer: what a server function can answer.

use leptos::prelude::{FromServerFnError, ServerFnErrorErr};
use leptos::server_fn::codec::JsonEncoding;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum AppError {
    /// Something the user sent is wrong; the message says what.
    #[error("{0}")]
    Invalid(String),
    /// The conversation does not exist or belongs to someone else; the two are
    /// deliberately indistinguishable.
    #[error("This conversation does not exist.")]
    NotFound,
    /// Too many replies are being generated, or a quota is used up; nothing
    /// was stored.
    #[error("{0}")]
    Busy(String),
    /// One of the person's quotas is used up; nothing was stored. The
    /// sentence, and the seconds until it is worth trying again.
    #[error("{0}")]
    Quota(String, u64),
    /// The person may not use what they asked for (a model their groups are
    /// not allowed); the message says what.
    #[error("{0}")]
    Forbidden(String),
    /// A fault on our side; details go to the server log, never to the browser.
    #[error("Something went wrong on the server. Nothing was lost; please try again.")]
    Internal,
    /// The request itself failed (network, encoding).
    #[error("The request failed: {0}")]
    Request(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Request(value.to_string())
    }
}

#[cfg(feature = "ssr")]
impl From<wick_core::StoreError> for AppError {
    fn from(err: wick_core::StoreError) -> Self {
        AppError::from(wick_core::ChatError::from(err))
    }
}

#[cfg(feature = "ssr")]
impl From<wick_core::ChatError> for AppError {
    fn from(err: wick_core::ChatError) -> Self {
        use wick_core::ChatError;
        match err {
            ChatError::Invalid(message) => AppError::Invalid(message),
            ChatError::NotFound => AppError::NotFound,
            ChatError::Busy(busy) => AppError::Busy(busy.to_string()),
            ChatError::Quota(quota) => {
                AppError::Quota(quota.message, quota.retry_after.as_secs().max(1))
            }
            e @ ChatError::ModelClosed(_) => AppError::Forbidden(e.to_string()),
            e @ ChatError::ReplyRunning => AppError::Invalid(e.to_string()),
            ChatError::Store(e) => {
                tracing::error!(error = %e, "database error in a server function");
                AppError::Internal
            }
        }
    }
}

#[cfg(feature = "ssr")]
impl AppError {
    /// The HTTP status that says what kind of error this is.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            AppError::Invalid(_) | AppError::Request(_) => StatusCode::BAD_REQUEST,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Busy(_) | AppError::Quota(..) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Gives a server function's error its HTTP status, for scripts and the app's
/// own JavaScript. A plain form post (which accepts HTML) keeps the redirect
/// back to its page that carries the message instead.
#[cfg(feature = "ssr")]
pub fn answer<T>(result: Result<T, AppError>) -> Result<T, AppError> {
    use leptos::prelude::use_context;
    if let Err(e) = &result {
        let from_a_form = use_context::<http::request::Parts>()
            .and_then(|p| p.headers.get(http::header::ACCEPT).cloned())
            .and_then(|v| v.to_str().ok().map(|v| v.contains("text/html")))
            .unwrap_or(false);
        if let (false, Some(response)) =
            (from_a_form, use_context::<leptos_axum::ResponseOptions>())
        {
            response.set_status(e.status());
            if let AppError::Quota(_, seconds) = e {
                response
                    .insert_header(http::header::RETRY_AFTER, http::HeaderValue::from(*seconds));
            }
        }
    }
    result
}
