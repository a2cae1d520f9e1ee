//! What remote servers say when something goes wrong, in the several shapes
//! they say it, turned into messages a chat user understands.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::RemoteConfig;
use crate::backend::{Failure, FailureKind};

/// Whether the response is Server-Sent Events (`text/event-stream`, with or
/// without parameters such as `charset=utf-8`).
pub(super) fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// `Retry-After` in seconds (the HTTP-date form is rare from model servers and ignored).
pub(super) fn retry_after(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The Inference API's `{"error": "... is currently loading", "estimated_time": 20.0}`.
pub(super) fn estimated_time(body: &str) -> Option<Duration> {
    let seconds = serde_json::from_str::<Value>(body)
        .ok()?
        .get("estimated_time")?
        .as_f64()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// The error message in a body, whichever shape it has: OpenAI's
/// `{"error": {"message"}}`, TGI's and the Inference API's `{"error": "..."}`,
/// vLLM's flat `{"object": "error", "message"}`, FastAPI's `{"detail"}`, or
/// plain text.
pub(super) fn error_message(body: &str) -> Option<String> {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        let text = excerpt(body);
        return (!text.is_empty()).then_some(text);
    };
    message_in(&value)
}

fn message_in(value: &Value) -> Option<String> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    match value.get("error") {
        Some(Value::String(s)) => return Some(s.clone()),
        Some(e @ Value::Object(_)) => {
            return e
                .get("message")
                .and_then(text)
                .or_else(|| Some(e.to_string()))
        }
        _ => {}
    }
    if let Some(m) = value.get("message").and_then(text) {
        return Some(m);
    }
    match value.get("detail") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(items)) => items.first().and_then(|i| i.get("msg")).and_then(text),
        _ => None,
    }
}

/// The status code an error object carries (`code` in vLLM's flat errors and
/// sometimes in OpenAI's nested ones).
fn code_in(value: &Value) -> Option<u16> {
    let error = value
        .get("error")
        .filter(|e| e.is_object())
        .unwrap_or(value);
    match error.get("code")? {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Whether a JSON value is an error report rather than data.
fn is_error_object(value: &Value) -> bool {
    value.get("error").is_some_and(|e| !e.is_null())
        || value.get("object").and_then(Value::as_str) == Some("error")
}

/// An error object inside a stream or a whole answer becomes a failure.
pub(super) fn check_error_object(value: &Value, server: &str) -> Result<(), Failure> {
    if !is_error_object(value) {
        return Ok(());
    }
    let message = message_in(value).unwrap_or_else(|| "no details given".into());
    let kind = match code_in(value) {
        Some(400 | 422) => FailureKind::BadRequest,
        Some(401 | 403) => FailureKind::Unauthorized,
        Some(404) => FailureKind::NotFound,
        Some(429) => FailureKind::RateLimited,
        Some(503) => FailureKind::Unavailable,
        _ => FailureKind::Internal,
    };
    Err(Failure::new(
        kind,
        format!("The model server at {server} reported an error: {message}"),
    ))
}

/// One event's JSON, or a failure when it is not JSON or reports an error.
pub(super) fn event_json(data: &str, server: &str) -> Result<Value, Failure> {
    let value: Value = serde_json::from_str(data).map_err(|_| {
        Failure::new(
            FailureKind::Internal,
            format!(
                "The model server at {server} sent an event that is not JSON: {}",
                excerpt(data)
            ),
        )
    })?;
    check_error_object(&value, server)?;
    Ok(value)
}

/// An `event: error` in the stream, whatever its data.
pub(super) fn stream_error(data: &str, server: &str) -> Failure {
    let message = error_message(data).unwrap_or_else(|| "no details given".into());
    Failure::new(
        FailureKind::Internal,
        format!("The model server at {server} reported an error: {message}"),
    )
}

/// The first line or so of a body that is not JSON (an HTML error page, say).
pub(super) fn excerpt(body: &str) -> String {
    let text = body.trim();
    let mut cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// A request that got no response at all.
pub(super) fn send_failure(e: &reqwest::Error, config: &RemoteConfig) -> Failure {
    let server = &config.base_url;
    let cause = root_cause(e);
    if e.is_connect() && e.is_timeout() {
        Failure::new(
            FailureKind::Timeout,
            format!(
                "Could not connect to the model server at {server} within {} s. Check that it is running and reachable.",
                config.connect_timeout.as_secs_f64()
            ),
        )
    } else if e.is_connect() {
        Failure::new(
            FailureKind::Unavailable,
            format!("Could not connect to the model server at {server} ({cause}). Check that it is running and that the URL is right."),
        )
    } else if e.is_timeout() {
        Failure::new(
            FailureKind::Timeout,
            format!("The model server at {server} did not answer in time ({cause})."),
        )
    } else {
        Failure::new(
            FailureKind::Internal,
            format!("The request to the model server at {server} failed ({cause})."),
        )
    }
}

/// The innermost error, which says what actually happened ("Connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// An HTTP error status, with the server's own words.
pub(super) fn status_failure(
    status: StatusCode,
    body: &str,
    retry_after: Option<u64>,
    config: &RemoteConfig,
    waited: Duration,
) -> Failure {
    let server = &config.base_url;
    let code = status.as_u16();
    // The server's own sentence, without its full stop: ours follows.
    let said = error_message(body)
        .map(|m| format!(": {}", m.trim_end().trim_end_matches('.')))
        .unwrap_or_default();
    let model = config.model.as_deref().unwrap_or("the model");
    let (kind, message) = match code {
        401 | 403 => {
            let key = match (&config.api_key, &config.api_key_env) {
                (_, Some(env)) => format!("Check the API key in the environment variable {env}."),
                (None, None) => "No API key is configured for this model; add api_key_env to its entry.".into(),
                (Some(_), None) => "Check the API key.".into(),
            };
            (
                FailureKind::Unauthorized,
                format!("The model server at {server} refused the request (HTTP {code}){said}. {key}"),
            )
        }
        404 => (
            FailureKind::NotFound,
            format!("The model server at {server} does not know {model} (HTTP 404){said}. Check the model name and the URL."),
        ),
        429 => {
            let when = match retry_after {
                Some(s) => format!("Try again in {s} s."),
                None => "Try again in a moment.".into(),
            };
            let mut failure = Failure::new(
                FailureKind::RateLimited,
                format!("The model server at {server} is limiting requests (HTTP 429){said}. {when}"),
            );
            failure.retry_after = retry_after;
            return failure;
        }
        503 => (
            FailureKind::Unavailable,
            format!(
                "The model server at {server} is unavailable (HTTP 503){said}; waited {:.0} s for it. It may still be loading the model: try again in a minute.",
                waited.as_secs_f64()
            ),
        ),
        400 | 413 | 422 => (
            FailureKind::BadRequest,
            format!("The model server at {server} rejected the request (HTTP {code}){said}"),
        ),
        _ => (
            FailureKind::Internal,
            format!("The model server at {server} failed (HTTP {code}){said}"),
        ),
    };
    Failure::new(kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_in_every_shape() {
        let cases = [
            (
                r#"{"error":{"message":"Invalid key","type":"invalid_request_error"}}"#,
                "Invalid key",
            ),
            (
                r#"{"error":"Model x is currently loading","estimated_time":12.5}"#,
                "Model x is currently loading",
            ),
            (
                r#"{"object":"error","message":"max_tokens too large","type":"BadRequestError","param":null,"code":400}"#,
                "max_tokens too large",
            ),
            (r#"{"detail":"Not Found"}"#, "Not Found"),
            (
                r#"{"detail":[{"loc":["body","model"],"msg":"field required"}]}"#,
                "field required",
            ),
            ("<html>Bad gateway</html>", "<html>Bad gateway</html>"),
        ];
        for (body, want) in cases {
            assert_eq!(error_message(body).as_deref(), Some(want), "{body}");
        }
        assert_eq!(error_message("  "), None);
        assert_eq!(
            estimated_time(cases[1].0),
            Some(Duration::from_secs_f64(12.5))
        );
        assert_eq!(estimated_time(cases[0].0), None);
    }

    #[test]
    fn error_objects_in_a_stream_carry_their_kind() {
        let flat: Value =
            serde_json::from_str(r#"{"object":"error","message":"too long","code":400}"#).unwrap();
        let failure = check_error_object(&flat, "http://s").unwrap_err();
        assert_eq!(failure.kind, FailureKind::BadRequest);
        assert!(failure.message.contains("too long"), "{}", failure.message);
        let nested: Value =
            serde_json::from_str(r#"{"error":{"message":"slow down","code":"429"}}"#).unwrap();
        assert_eq!(
            check_error_object(&nested, "s").unwrap_err().kind,
            FailureKind::RateLimited
        );
        let data: Value = serde_json::from_str(r#"{"choices":[],"error":null}"#).unwrap();
        assert!(check_error_object(&data, "s").is_ok());
    }

    #[test]
    fn statuses_become_clear_messages() {
        let mut config = RemoteConfig::new("http://s/v1");
        config.model = Some("org/model".into());
        config.api_key_env = Some("HF_TOKEN".into());
        let zero = Duration::ZERO;
        let m = status_failure(
            StatusCode::UNAUTHORIZED,
            r#"{"error":"bad token"}"#,
            None,
            &config,
            zero,
        );
        assert_eq!(m.kind, FailureKind::Unauthorized);
        assert!(
            m.message.contains("HTTP 401")
                && m.message.contains("bad token")
                && m.message.contains("HF_TOKEN"),
            "{}",
            m.message
        );
        let m = status_failure(StatusCode::NOT_FOUND, "", None, &config, zero);
        assert!(
            m.message.contains("does not know org/model"),
            "{}",
            m.message
        );
        let m = status_failure(StatusCode::TOO_MANY_REQUESTS, "", Some(7), &config, zero);
        assert_eq!((m.kind, m.retry_after), (FailureKind::RateLimited, Some(7)));
        assert!(m.message.contains("Try again in 7 s"), "{}", m.message);
    }
}
