//! A server function whose arguments cannot be read (a body that is not the
//! form or JSON it should be, a missing field, a wrong type) is the caller's
//! mistake, but Leptos answers every error it makes itself with 500, and the
//! trace layer logs each 500 at ERROR. This layer turns those answers into 400
//! with a plain message, still in the app's error encoding so that the
//! browser's own calls read it; errors of the functions themselves keep the
//! status they set.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

/// Leptos' mark on a server function's error answer (`server_fn::error::SERVER_FN_ERROR_HEADER`).
const SERVER_FN_ERROR: &str = "serverfnerror";

/// How `server_fn` words the errors it makes while reading a request
/// (`ServerFnErrorErr::{Args, MissingArg, Deserialization}`; on the server,
/// "results" is the request's body), which the app wraps in `AppError::Request`.
const READING_ERRORS: [&str; 3] = [
    "error deserializing server function arguments: ",
    "missing argument ",
    "error deserializing server function results: ",
];

/// The longest detail repeated back to the caller.
const MAX_DETAIL: usize = 200;

pub async fn bad_arguments_are_400(response: Response) -> Response {
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR
        || !response.headers().contains_key(SERVER_FN_ERROR)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // An error answer is a short JSON document; anything else is passed on.
    let bytes = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(bytes) => bytes,
        Err(_) => return Response::from_parts(parts, Body::empty()),
    };
    let Some(detail) = reading_error(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let (status, message) = if detail.contains("length limit exceeded") {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request is too large.".to_owned(),
        )
    } else {
        let detail: String = detail.chars().take(MAX_DETAIL).collect();
        (
            StatusCode::BAD_REQUEST,
            format!("The request's arguments could not be read: {detail}"),
        )
    };
    tracing::debug!(%status, %message, "server function arguments refused");
    let body = app::error::AppError::Invalid(message);
    let body = serde_json::to_vec(&body).expect("an AppError always serializes");
    parts.status = status;
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// The detail of a request-reading error, from the app's error encoding
/// (`{"Request": "..."}`); `None` for any other error.
fn reading_error(body: &[u8]) -> Option<String> {
    let app::error::AppError::Request(text) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    READING_ERRORS
        .iter()
        .find_map(|prefix| text.strip_prefix(prefix))
        .map(str::to_owned)
}
