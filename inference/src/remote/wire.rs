//! What remote servers say when something goes wrong, in the several shapes
//! they say it, turned into sentences a chat user understands.
//!
//! The people chatting never see a server's own words: an error body can hold
//! internal URLs, the name of the variable the key came from, or (from a
//! server that echoes the request's headers) the key itself. They get a
//! sentence chosen by the kind of failure; the server's words go to the log
//! for the operator (`WARN`), with anything that looks like a credential
//! redacted and cut to [`DETAIL_CAP`] characters. An error body is read up to
//! [`ERROR_BODY_CAP`] bytes and no further.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::RemoteConfig;
use crate::backend::{Failure, FailureKind};

/// The most of an error body that is read; the rest is never received.
pub(crate) const ERROR_BODY_CAP: usize = 64 * 1024;

/// The most characters of a server's own words that go to the log.
pub(crate) const DETAIL_CAP: usize = 1_000;

/// What stands in the log for a credential.
pub(crate) const REDACTED: &str = "[redacted]";

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

/// The kind of failure an HTTP status (or an error object's `code`) stands for.
fn kind_of(code: Option<u16>) -> FailureKind {
    match code {
        Some(400 | 413 | 422) => FailureKind::BadRequest,
        Some(401 | 403) => FailureKind::Unauthorized,
        Some(404) => FailureKind::NotFound,
        Some(429) => FailureKind::RateLimited,
        Some(503) => FailureKind::Unavailable,
        Some(408 | 504) => FailureKind::Timeout,
        _ => FailureKind::Internal,
    }
}

/// What the person chatting is told about a failure of this kind: never the
/// server's own words, its URL or anything about its key.
fn sentence(kind: FailureKind, code: Option<u16>) -> String {
    let http = code.map(|c| format!(" (HTTP {c})")).unwrap_or_default();
    match kind {
        FailureKind::Unauthorized => format!(
            "The model server refused Wick's API key{http}. An administrator needs to check the key set for this model."
        ),
        FailureKind::NotFound => format!(
            "The model server does not know this model{http}. An administrator needs to check the model's name and URL."
        ),
        FailureKind::RateLimited => format!(
            "The model server is limiting requests{http}. Try again in a moment."
        ),
        FailureKind::Unavailable => format!(
            "The model server is unavailable{http}; it may still be loading the model. Try again in a minute."
        ),
        FailureKind::Timeout => format!(
            "The model server did not answer in time{http}. Try again."
        ),
        FailureKind::BadRequest | FailureKind::ContextOverflow => format!(
            "The model server rejected the request{http}; the conversation may be too long for this model. Try a shorter message or a new conversation."
        ),
        FailureKind::Internal => format!(
            "The model server failed{http}. Try again; if it keeps failing, an administrator can find the details in Wick's log."
        ),
    }
}

/// A failure told as `message`, with the server's own words (`detail`)
/// logged for the operator: credentials redacted, cut to [`DETAIL_CAP`].
pub(super) fn upstream(
    config: &RemoteConfig,
    kind: FailureKind,
    message: String,
    detail: &str,
) -> Failure {
    let key = config.api_key.as_deref();
    tracing::warn!(
        server = %redact(&config.base_url, key),
        model = config.model.as_deref().unwrap_or(""),
        key_env = config.api_key_env.as_deref().unwrap_or(""),
        key_set = config.api_key.is_some(),
        detail = ?cap(&redact(detail, key), DETAIL_CAP),
        "remote model failed: {message}"
    );
    Failure::new(kind, message)
}

/// An error object inside a stream or a whole answer becomes a failure.
pub(super) fn check_error_object(value: &Value, config: &RemoteConfig) -> Result<(), Failure> {
    if !is_error_object(value) {
        return Ok(());
    }
    let kind = kind_of(code_in(value));
    let message = match kind {
        FailureKind::Internal => STREAM_ERROR.to_owned(),
        other => sentence(other, None),
    };
    Err(upstream(config, kind, message, &value.to_string()))
}

/// One event's JSON, or a failure when it is not JSON or reports an error.
pub(super) fn event_json(data: &str, config: &RemoteConfig) -> Result<Value, Failure> {
    let value: Value = serde_json::from_str(data).map_err(|_| unreadable(config, data))?;
    check_error_object(&value, config)?;
    Ok(value)
}

/// An answer that is neither the events nor the JSON asked for.
pub(super) fn unreadable(config: &RemoteConfig, data: &str) -> Failure {
    upstream(
        config,
        FailureKind::Internal,
        "The model server sent an answer Wick could not read. Try again, or choose another model."
            .into(),
        data,
    )
}

/// What an error reported in the middle of a reply is told as.
const STREAM_ERROR: &str = "The model server reported an error while writing the reply. Try again; if it keeps failing, an administrator can find the details in Wick's log.";

/// An `event: error` in the stream, whatever its data.
pub(super) fn stream_error(data: &str, config: &RemoteConfig) -> Failure {
    upstream(config, FailureKind::Internal, STREAM_ERROR.to_owned(), data)
}

/// A request that got no response at all.
pub(super) fn send_failure(e: &reqwest::Error, config: &RemoteConfig) -> Failure {
    let cause = root_cause(e);
    let (kind, message) = if e.is_connect() && e.is_timeout() {
        (
            FailureKind::Timeout,
            "Could not connect to the model server in time. Try again later.".to_owned(),
        )
    } else if e.is_connect() {
        (
            FailureKind::Unavailable,
            "Could not connect to the model server; it may be down. Try again later.".to_owned(),
        )
    } else if e.is_timeout() {
        (FailureKind::Timeout, sentence(FailureKind::Timeout, None))
    } else {
        (
            FailureKind::Internal,
            "The request to the model server failed. Try again later.".to_owned(),
        )
    };
    upstream(config, kind, message, &cause)
}

/// The innermost error, which says what actually happened ("Connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// An HTTP error status: a sentence by its kind; the body goes to the log.
pub(super) fn status_failure(
    status: StatusCode,
    body: &str,
    retry_after: Option<u64>,
    config: &RemoteConfig,
    waited: Duration,
) -> Failure {
    let code = status.as_u16();
    let kind = kind_of(Some(code));
    let message = match kind {
        FailureKind::RateLimited => match retry_after {
            Some(s) => format!("The model server is limiting requests (HTTP {code}). Try again in {s} s."),
            None => sentence(kind, Some(code)),
        },
        FailureKind::Unavailable => format!(
            "The model server is unavailable (HTTP {code}); waited {:.0} s for it. It may still be loading the model: try again in a minute.",
            waited.as_secs_f64()
        ),
        _ => sentence(kind, Some(code)),
    };
    let mut failure = upstream(config, kind, message, body);
    if kind == FailureKind::RateLimited {
        failure.retry_after = retry_after;
    }
    failure
}

/// At most `limit` characters of `text`, with `…` where it was cut.
pub(crate) fn cap(text: &str, limit: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(limit) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// `text` with anything that looks like a credential replaced by
/// [`REDACTED`]: the configured key itself, `Bearer …`, the value of an
/// `Authorization` (or `api-key`) header or field, `sk-…` and `hf_…` keys,
/// `key=`/`token=` query values and the password of a URL.
pub(crate) fn redact(text: &str, key: Option<&str>) -> String {
    let mut out = text.to_owned();
    if let Some(key) = key.map(str::trim).filter(|k| !k.is_empty()) {
        out = out.replace(key, REDACTED);
    }
    let header_end = |c: char| matches!(c, '"' | '\'' | '\n' | '\r' | ',' | '}' | ';' | '<' | '&');
    let word_end = |c: char| c.is_whitespace() || header_end(c) || matches!(c, '&' | ')' | ']');
    let key_end = |c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    let field_separators = &['"', '\'', ' ', '\t', ':', '='][..];
    for field in ["authorization", "api-key", "api_key", "apikey"] {
        out = scrub(&out, field, Rule::field(field_separators), header_end);
    }
    out = scrub(&out, "bearer", Rule::after_space(), word_end);
    for prefix in ["sk-", "hf_"] {
        out = scrub(&out, prefix, Rule::key_prefix(), key_end);
    }
    for query in ["key=", "token=", "secret=", "password="] {
        out = scrub(&out, query, Rule::default(), word_end);
    }
    redact_url_passwords(&out)
}

/// Where the value after a marker starts, and what it must look like.
#[derive(Default, Clone, Copy)]
struct Rule<'a> {
    /// The marker must start a word (not follow a letter or digit).
    word_start: bool,
    /// Characters skipped between the marker and the value.
    skip: &'a [char],
    /// The skipped characters must include `:` or `=` (a header or a field,
    /// not the word in a sentence).
    needs_separator: bool,
    /// The skipped characters must include a space (`Bearer <token>`).
    needs_space: bool,
    /// The shortest value that is redacted.
    min_len: usize,
}

impl<'a> Rule<'a> {
    fn field(skip: &'a [char]) -> Self {
        Self {
            skip,
            needs_separator: true,
            min_len: 1,
            ..Self::default()
        }
    }

    fn after_space() -> Self {
        Self {
            word_start: true,
            skip: &[' ', '\t'],
            needs_space: true,
            min_len: 1,
            ..Self::default()
        }
    }

    fn key_prefix() -> Self {
        Self {
            word_start: true,
            min_len: 8,
            ..Self::default()
        }
    }
}

/// Replaces the value after each (ASCII, case-insensitive) `marker` that
/// `rule` accepts, up to the first character `end` accepts.
fn scrub(text: &str, marker: &str, rule: Rule, end: impl Fn(char) -> bool) -> String {
    // ASCII lowercasing keeps every byte where it was.
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut from) = (0, 0);
    while let Some(at) = lower[from..].find(marker).map(|i| i + from) {
        let after = at + marker.len();
        from = after;
        if rule.word_start
            && text[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric())
        {
            continue;
        }
        let rest = &text[after..];
        let skipped = &rest[..rest.len() - rest.trim_start_matches(rule.skip).len()];
        if (rule.needs_separator && !skipped.contains([':', '=']))
            || (rule.needs_space && !skipped.contains([' ', '\t']))
        {
            continue;
        }
        let start = after + skipped.len();
        if text[start..].starts_with(REDACTED) {
            continue;
        }
        let len = text[start..].find(&end).unwrap_or(text.len() - start);
        if len < rule.min_len {
            continue;
        }
        out.push_str(&text[copied..start]);
        out.push_str(REDACTED);
        copied = start + len;
        from = copied;
    }
    out.push_str(&text[copied..]);
    out
}

/// `scheme://user:password@host` with the user and password redacted.
fn redact_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_len = tail
            .find(|c: char| {
                c == '/' || c == '?' || c == '#' || c.is_whitespace() || "\"'<>".contains(c)
            })
            .unwrap_or(tail.len());
        let authority = &tail[..authority_len];
        match authority.rfind('@') {
            Some(user_end) => {
                out.push_str(REDACTED);
                out.push_str(&authority[user_end..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RemoteConfig {
        let mut config = RemoteConfig::new("http://10.1.2.3:8080/internal/v1");
        config.model = Some("org/model".into());
        config.api_key = Some("upstream-secret-1".into());
        config.api_key_env = Some("HF_TOKEN".into());
        config
    }

    /// Nothing of the server's, of its address or of its key in a message.
    fn assert_clean(message: &str) {
        for leak in [
            "10.1.2.3",
            "internal",
            "HF_TOKEN",
            "upstream-secret-1",
            "bad token",
            "http",
        ] {
            assert!(!message.contains(leak), "{leak:?} in {message:?}");
        }
    }

    #[test]
    fn credentials_are_redacted_in_every_shape() {
        let key = Some("upstream-secret-1");
        let cases = [
            (
                "echo: authorization: Bearer upstream-secret-1\r\nhost: x",
                "authorization: [redacted]\r\nhost: x",
            ),
            (
                r#"{"headers":{"Authorization":"Bearer abc.def-123"}}"#,
                r#""Authorization":"[redacted]""#,
            ),
            ("a Bearer xyz789 token", "Bearer [redacted] token"),
            ("key sk-proj-AbCdEf123456 leaked", "sk-[redacted] leaked"),
            ("token hf_AbCdEfGhIjKlMn in use", "hf_[redacted] in use"),
            (
                "GET /v1/x?api_key=s3cr3t&x=1 failed",
                "api_key=[redacted]&x=1 failed",
            ),
            ("see ?key=abc123 now", "?key=[redacted] now"),
            (
                "from https://bob:pa55@host.internal/v1 down",
                "https://[redacted]@host.internal/v1 down",
            ),
            (
                "the key upstream-secret-1 itself",
                "the key [redacted] itself",
            ),
            ("x-api-key: abc123", "x-api-key: [redacted]"),
        ];
        for (text, want) in cases {
            let out = redact(text, key);
            assert!(out.contains(want), "{text:?} became {out:?}");
            for secret in [
                "upstream-secret-1",
                "abc.def",
                "xyz789",
                "AbCdEf123456",
                "AbCdEfGhIjKlMn",
                "s3cr3t",
                "abc123",
                "pa55",
            ] {
                assert!(!out.contains(secret), "{secret} in {out:?}");
            }
        }
        // Words that merely mention credentials stay readable.
        let text = "Invalid credentials in Authorization header; sk-1 is short";
        assert_eq!(redact(text, key), text);
    }

    #[test]
    fn logged_detail_is_capped() {
        let long = "x".repeat(5_000);
        let capped = cap(&long, DETAIL_CAP);
        assert_eq!(capped.chars().count(), DETAIL_CAP + 1);
        assert!(capped.ends_with('…'));
        assert_eq!(cap("  short ", DETAIL_CAP), "short");
    }

    #[test]
    fn error_objects_in_a_stream_carry_their_kind_but_not_their_words() {
        let flat: Value = serde_json::from_str(
            r#"{"object":"error","message":"too long at http://10.1.2.3/internal","code":400}"#,
        )
        .unwrap();
        let failure = check_error_object(&flat, &config()).unwrap_err();
        assert_eq!(failure.kind, FailureKind::BadRequest);
        assert!(failure.message.contains("rejected"), "{}", failure.message);
        assert_clean(&failure.message);
        let nested: Value =
            serde_json::from_str(r#"{"error":{"message":"slow down","code":"429"}}"#).unwrap();
        assert_eq!(
            check_error_object(&nested, &config()).unwrap_err().kind,
            FailureKind::RateLimited
        );
        let data: Value = serde_json::from_str(r#"{"choices":[],"error":null}"#).unwrap();
        assert!(check_error_object(&data, &config()).is_ok());
        let f = stream_error("HF_TOKEN upstream-secret-1 at http://10.1.2.3", &config());
        assert_clean(&f.message);
        let f = event_json("not json from http://10.1.2.3/internal", &config()).unwrap_err();
        assert!(f.message.contains("could not read"), "{}", f.message);
        assert_clean(&f.message);
    }

    #[test]
    fn statuses_become_sentences_by_kind() {
        let config = config();
        let zero = Duration::ZERO;
        let body =
            r#"{"error":"bad token upstream-secret-1 for HF_TOKEN at http://10.1.2.3/internal"}"#;
        let cases = [
            (
                StatusCode::UNAUTHORIZED,
                FailureKind::Unauthorized,
                "refused Wick's API key (HTTP 401)",
            ),
            (StatusCode::FORBIDDEN, FailureKind::Unauthorized, "HTTP 403"),
            (
                StatusCode::NOT_FOUND,
                FailureKind::NotFound,
                "does not know this model (HTTP 404)",
            ),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                FailureKind::BadRequest,
                "rejected the request (HTTP 422)",
            ),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                FailureKind::Unavailable,
                "unavailable (HTTP 503)",
            ),
            (
                StatusCode::GATEWAY_TIMEOUT,
                FailureKind::Timeout,
                "did not answer in time (HTTP 504)",
            ),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                FailureKind::Internal,
                "failed (HTTP 500)",
            ),
        ];
        for (status, kind, words) in cases {
            let f = status_failure(status, body, None, &config, zero);
            assert_eq!(f.kind, kind, "{status}");
            assert!(f.message.contains(words), "{status}: {}", f.message);
            assert_clean(&f.message);
        }
        let m = status_failure(StatusCode::TOO_MANY_REQUESTS, body, Some(7), &config, zero);
        assert_eq!((m.kind, m.retry_after), (FailureKind::RateLimited, Some(7)));
        assert!(m.message.contains("Try again in 7 s"), "{}", m.message);
        assert_clean(&m.message);
    }

    #[test]
    fn loading_estimates() {
        let body = r#"{"error":"Model x is currently loading","estimated_time":12.5}"#;
        assert_eq!(estimated_time(body), Some(Duration::from_secs_f64(12.5)));
        assert_eq!(estimated_time(r#"{"error":"x"}"#), None);
    }
}
