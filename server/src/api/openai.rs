//! The OpenAI-compatible API: `GET /v1/models`, `POST /v1/chat/completions`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use axum::Json;
use inference::{ChatMessage, Event, Failure, FinishReason, GenerationRequest, Params, Prompt};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{authorize, AuthError};
use super::{
    clamp_new_tokens, failure_status, from_json, is_context_overflow, local_ids, local_model,
    start, BodyError, StartError,
};
use crate::ServerState;

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
pub struct ApiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    param: Option<String>,
    code: Option<&'static str>,
    /// Seconds for `Retry-After` (a 429 from a quota).
    retry_after: Option<u64>,
}

impl ApiError {
    fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_owned),
            code: None,
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }});
        let mut response = (self.status, Json(body)).into_response();
        super::retry_after(&mut response, self.retry_after);
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let (status, code) = match e {
            AuthError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, None),
            _ => (StatusCode::UNAUTHORIZED, Some("invalid_api_key")),
        };
        Self {
            status,
            message: e.to_string(),
            kind: "invalid_request_error",
            param: None,
            code,
            retry_after: None,
        }
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        let code = match e.status {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Some("unsupported_media_type"),
            StatusCode::PAYLOAD_TOO_LARGE => Some("request_too_large"),
            _ => None,
        };
        Self {
            status: e.status,
            code,
            retry_after: None,
            ..ApiError::invalid(e.message, e.field.as_deref())
        }
    }
}

impl From<StartError> for ApiError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Invalid(v) => {
                let param = openai_param(v.field());
                Self::invalid(v.to_string().replace(v.field(), param), Some(param))
            }
            StartError::Busy(message, retry_after) => Self {
                status: StatusCode::TOO_MANY_REQUESTS,
                message,
                kind: "rate_limit_exceeded",
                param: None,
                code: Some("rate_limit_exceeded"),
                retry_after,
            },
            StartError::Forbidden(message) => Self {
                status: StatusCode::FORBIDDEN,
                message,
                kind: "permission_error",
                param: Some("model".to_owned()),
                code: Some("model_not_allowed"),
                retry_after: None,
            },
            StartError::Internal => Self {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: super::INTERNAL.to_owned(),
                kind: "server_error",
                param: None,
                code: None,
                retry_after: None,
            },
            StartError::Failed(message) => failure(message),
        }
    }
}

fn failure(failure: Failure) -> ApiError {
    let message = failure.message.clone();
    if is_context_overflow(&failure) {
        ApiError {
            code: Some("context_length_exceeded"),
            retry_after: None,
            ..ApiError::invalid(message, Some("messages"))
        }
    } else {
        ApiError {
            status: failure_status(&failure),
            message,
            kind: "server_error",
            param: None,
            code: None,
            retry_after: None,
        }
    }
}

/// The engine's field names as OpenAI calls them.
fn openai_param(field: &'static str) -> &'static str {
    match field {
        "max_new_tokens" => "max_tokens",
        other => other,
    }
}

pub async fn models(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    let caller = match authorize(&state, &headers).await {
        Ok(caller) => caller,
        Err(e) => return ApiError::from(e).into_response(),
    };
    // A token's owner sees only the models their groups may use.
    let closed = match caller {
        super::auth::Caller::User(user) => {
            match wick_core::db::team::closed_models(state.chat().pool(), user).await {
                Ok(closed) => closed,
                Err(e) => {
                    tracing::error!(error = %e, "could not read the model access");
                    return ApiError::from(StartError::Internal).into_response();
                }
            }
        }
        _ => Vec::new(),
    };
    let data: Vec<Value> = local_ids(&state)
        .into_iter()
        .filter(|id| !closed.contains(id))
        .map(|id| {
            json!({
                "id": id,
                "object": "model",
                "created": state.started_at,
                "owned_by": "wick",
            })
        })
        .collect();
    Json(json!({ "object": "list", "data": data })).into_response()
}

#[derive(Debug, Deserialize)]
struct ChatCompletionRequest {
    model: String,
    messages: Vec<InMessage>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    stop: Option<Stop>,
    seed: Option<u64>,
    n: Option<u64>,
    /// Not OpenAI's: vLLM's and llama-server's extension, for benchmarks that
    /// need every reply to run to `max_tokens`.
    #[serde(default)]
    ignore_eos: bool,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

fn to_messages(messages: Vec<InMessage>) -> Result<Vec<ChatMessage>, ApiError> {
    messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            // OpenAI's "developer" role is its newer name for "system".
            let role = if m.role == "developer" {
                "system".to_owned()
            } else {
                m.role
            };
            let content = match m.content {
                None => String::new(),
                Some(Content::Text(t)) => t,
                Some(Content::Parts(parts)) => {
                    let mut text = String::new();
                    for p in parts {
                        match (p.kind.as_str(), p.text) {
                            ("text", Some(t)) => text.push_str(&t),
                            (kind, _) => {
                                return Err(ApiError::invalid(
                                    format!("messages[{i}].content: only text parts are supported (got {kind:?})"),
                                    Some("messages"),
                                ))
                            }
                        }
                    }
                    text
                }
            };
            Ok(ChatMessage::new(role, content))
        })
        .collect()
}

fn finish_reason(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Length => "length",
        _ => "stop",
    }
}

pub async fn chat_completions(
    State(state): State<ServerState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match completions(state, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn completions(
    state: ServerState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = authorize(&state, &headers).await?;
    let body = super::body(caller, &headers, body)?;
    let req: ChatCompletionRequest = from_json(&body)?;
    let Some(model) = local_model(&state, &req.model) else {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: Some("model_not_found"),
            retry_after: None,
            ..ApiError::invalid(
                format!(
                    "The model {:?} does not exist; this server has {:?}.",
                    req.model,
                    local_ids(&state)
                ),
                Some("model"),
            )
        });
    };
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid("n must be 1", Some("n")));
    }
    let max_tokens = req.max_completion_tokens.or(req.max_tokens);
    let params = Params {
        temperature: req.temperature.unwrap_or(1.0),
        top_p: req.top_p,
        // At most the model's configured reply length, however much is asked.
        max_new_tokens: clamp_new_tokens(&model, max_tokens, model.params.max_new_tokens),
        stop: match req.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
        },
        seed: req.seed.unwrap_or_else(wick_core::random_seed),
        repetition_penalty: 1.0,
        ignore_eos: req.ignore_eos,
        ..Params::default()
    };
    let request = GenerationRequest {
        prompt: Prompt::Chat(to_messages(req.messages)?),
        params,
        drop_old_turns: false,
        continue_final: false,
        priority: inference::Priority::Normal,
    };
    let running = start(&state, &model, request, caller).await?;
    let id = format!("chatcmpl-{}", wick_core::db::new_id());
    let created = wick_core::db::now_ms() / 1000;
    let model = model.id.clone();

    if !req.stream {
        let done = running.finish().await.map_err(failure)?;
        let usage = done.usage;
        return Ok(Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": done.text },
                "finish_reason": finish_reason(done.finish),
                "logprobs": null,
            }],
            "usage": usage_json(&usage),
        }))
        .into_response());
    }

    let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish, "logprobs": null }],
        })
    };
    let data = |v: Value| SseEvent::default().data(v.to_string());
    let mut first = true;
    Ok(running.into_sse(move |event| {
        let mut out = Vec::new();
        if std::mem::take(&mut first) {
            out.push(data(chunk(
                json!({ "role": "assistant", "content": "" }),
                None,
            )));
        }
        match event {
            Event::Token { text, .. } if text.is_empty() => {}
            Event::Prefill { .. } | Event::Waiting { .. } => {}
            Event::Token { text, .. } => out.push(data(chunk(json!({ "content": text }), None))),
            Event::Done { finish, usage } => {
                out.push(data(chunk(json!({}), Some(finish_reason(finish)))));
                if include_usage {
                    let mut last = chunk(json!({}), None);
                    last["choices"] = json!([]);
                    last["usage"] = usage_json(&usage);
                    out.push(data(last));
                }
                out.push(SseEvent::default().data("[DONE]"));
            }
            Event::Error(message) => {
                let e = failure(message);
                out.push(data(json!({ "error": {
                    "message": e.message, "type": e.kind, "param": e.param, "code": e.code,
                }})));
                out.push(SseEvent::default().data("[DONE]"));
            }
        }
        out
    }))
}

/// OpenAI's `usage` object; `cached_tokens` are the prompt tokens the local
/// engine found in its prefix cache.
fn usage_json(usage: &inference::Usage) -> serde_json::Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": { "cached_tokens": usage.cached_tokens },
    })
}
