//! The Hugging Face Inference API and TGI: `POST /models/{model_id}` (the body
//! may also be a bare JSON string, as in Hugging Face's own examples),
//! `POST /generate`, `POST /generate_stream` and `GET /info`. Prompts are used
//! as they are (no chat template), as TGI does.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use axum::Json;
use inference::{Event, Failure, FinishReason, GenerationRequest, Params, Prompt};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{authorize, AuthError};
use super::{
    clamp_new_tokens, failure_status, first_local, from_value, is_context_overflow, local_ids,
    local_model, start, BodyError, Finished, StartError,
};
use crate::ServerState;

/// TGI's default reply length when `max_new_tokens` is not given.
const DEFAULT_MAX_NEW_TOKENS: usize = 100;

/// An error in TGI's shape: `{"error", "error_type"}`.
pub struct TgiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    /// Seconds for `Retry-After` (a 429 from a quota).
    retry_after: Option<u64>,
}

impl IntoResponse for TgiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({ "error": self.message, "error_type": self.kind })),
        )
            .into_response();
        super::retry_after(&mut response, self.retry_after);
        response
    }
}

fn validation(message: impl Into<String>) -> TgiError {
    TgiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        message: message.into(),
        kind: "validation",
        retry_after: None,
    }
}

impl From<AuthError> for TgiError {
    fn from(e: AuthError) -> Self {
        TgiError {
            status: match e {
                AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNAUTHORIZED,
            },
            message: e.to_string(),
            kind: "authentication",
            retry_after: None,
        }
    }
}

impl From<BodyError> for TgiError {
    fn from(e: BodyError) -> Self {
        match e.status {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => TgiError {
                status: e.status,
                message: e.message,
                kind: "unsupported_media_type",
                retry_after: None,
            },
            StatusCode::PAYLOAD_TOO_LARGE => TgiError {
                status: e.status,
                message: e.message,
                kind: "request_too_large",
                retry_after: None,
            },
            // TGI answers a body of the wrong shape with 422.
            _ => validation(e.message),
        }
    }
}

impl From<StartError> for TgiError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Invalid(v) => validation(v.to_string()),
            StartError::Busy(message, retry_after) => TgiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                message,
                kind: "overloaded",
                retry_after,
            },
            StartError::Forbidden(message) => TgiError {
                status: StatusCode::FORBIDDEN,
                message,
                kind: "permission",
                retry_after: None,
            },
            StartError::Internal => TgiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: super::INTERNAL.to_owned(),
                kind: "generation",
                retry_after: None,
            },
            StartError::Failed(message) => failure(message),
        }
    }
}

fn failure(failure: Failure) -> TgiError {
    let message = failure.message.clone();
    if is_context_overflow(&failure) {
        validation(message)
    } else {
        TgiError {
            status: failure_status(&failure),
            message,
            kind: "generation",
            retry_after: None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Body {
    inputs: String,
    #[serde(default)]
    parameters: Parameters,
    #[serde(default)]
    stream: bool,
}

#[derive(Debug, Default, Deserialize)]
struct Parameters {
    max_new_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u64>,
    repetition_penalty: Option<f64>,
    stop: Option<Vec<String>>,
    seed: Option<u64>,
    do_sample: Option<bool>,
    return_full_text: Option<bool>,
    #[serde(default)]
    details: bool,
}

/// The body as JSON: an object with `inputs`, or just the prompt as a string.
/// A type error names its field (`parameters.max_new_tokens: invalid value ...`).
fn parse(body: &Bytes) -> Result<Body, TgiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| validation(format!("The request body is not valid JSON: {e}")))?;
    if let Value::String(inputs) = value {
        return Ok(Body {
            inputs,
            parameters: Parameters::default(),
            stream: false,
        });
    }
    Ok(from_value(value)?)
}

struct Prepared {
    request: GenerationRequest,
    seed: Option<u64>,
    details: bool,
    full_text: bool,
    inputs: String,
}

fn prepare(
    body: Body,
    full_text_by_default: bool,
    model: &wick_core::Model,
) -> Result<Prepared, TgiError> {
    let p = body.parameters;
    if body.inputs.is_empty() {
        return Err(validation("inputs must not be empty"));
    }
    // TGI's own rule and words: greedy decoding is asked for by leaving the
    // temperature out (or `do_sample: false`), never by a temperature <= 0.
    if let Some(t) = p.temperature.filter(|t| *t <= 0.0) {
        return Err(validation(format!(
            "Input validation error: `temperature` must be strictly positive (got {t}). \
             Leave it out, or set `do_sample` to false, for greedy decoding."
        )));
    }
    // Like TGI: greedy unless sampling is asked for, by `do_sample` or a temperature.
    let sampling = p.do_sample.unwrap_or(false) || p.temperature.is_some_and(|t| t > 0.0);
    let seed = p.seed;
    let params = Params {
        temperature: if sampling {
            p.temperature.unwrap_or(1.0)
        } else {
            0.0
        },
        top_p: p.top_p,
        top_k: match p.top_k {
            Some(0) => return Err(validation("top_k must be at least 1 (got 0)")),
            k => k.map(|k| k as usize),
        },
        // A tiny positive penalty stays positive as an f32 (the engine's type).
        repetition_penalty: p.repetition_penalty.map_or(1.0, |r| {
            if r > 0.0 {
                (r as f32).max(f32::MIN_POSITIVE)
            } else {
                r as f32
            }
        }),
        // At most the model's configured reply length, however much is asked.
        max_new_tokens: clamp_new_tokens(model, p.max_new_tokens, DEFAULT_MAX_NEW_TOKENS),
        stop: p.stop.unwrap_or_default(),
        seed: seed.unwrap_or_else(wick_core::random_seed),
        ..Params::default()
    };
    Ok(Prepared {
        request: GenerationRequest {
            prompt: Prompt::Raw(body.inputs.clone()),
            params,
            drop_old_turns: false,
            continue_final: false,
            priority: inference::Priority::Normal,
        },
        seed,
        details: p.details,
        full_text: p.return_full_text.unwrap_or(full_text_by_default),
        inputs: body.inputs,
    })
}

fn finish_reason(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Eos => "eos_token",
        FinishReason::Stop => "stop_sequence",
        FinishReason::Length | FinishReason::Cancelled => "length",
    }
}

fn token_json(id: Option<u32>, text: &str, special: bool) -> Value {
    // Wick does not compute log-probabilities.
    json!({ "id": id.unwrap_or(0), "text": text, "logprob": null, "special": special })
}

fn details(done: &Finished, seed: Option<u64>) -> Value {
    json!({
        "finish_reason": finish_reason(done.finish),
        "generated_tokens": done.usage.completion_tokens,
        "seed": seed,
        "prefill": [],
        "tokens": done.tokens.iter().map(|(id, t)| token_json(*id, t, false)).collect::<Vec<_>>(),
    })
}

/// `POST /generate`: `{"generated_text", "details"?}`.
pub async fn generate(
    State(state): State<ServerState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    run(state, headers, body, Shape::Generate)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /generate_stream`: TGI's token stream.
pub async fn generate_stream(
    State(state): State<ServerState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    run(state, headers, body, Shape::Stream)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /models/{model_id}`: the Hugging Face Inference API.
pub async fn model(
    State(state): State<ServerState>,
    Path(model_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    run(state, headers, body, Shape::InferenceApi(model_id))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

#[derive(Clone, PartialEq)]
enum Shape {
    Generate,
    Stream,
    /// The Inference API, for the model in the path.
    InferenceApi(String),
}

async fn run(
    state: ServerState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    shape: Shape,
) -> Result<Response, TgiError> {
    let caller = authorize(&state, &headers).await?;
    let body = super::body(caller, &headers, body)?;
    let model = match &shape {
        Shape::InferenceApi(model_id) => local_model(&state, model_id),
        _ => first_local(&state),
    };
    let Some(model) = model else {
        let asked = match &shape {
            Shape::InferenceApi(model_id) => {
                format!("Model {model_id} does not exist on this server")
            }
            _ => "This server has no local model".to_owned(),
        };
        return Err(TgiError {
            status: StatusCode::NOT_FOUND,
            message: format!("{asked}; it serves {:?}.", local_ids(&state)),
            kind: "not_found",
            retry_after: None,
        });
    };
    let inference_api = matches!(shape, Shape::InferenceApi(_));
    let body = parse(&body)?;
    let stream = shape == Shape::Stream || (inference_api && body.stream);
    // The Inference API returns the prompt with the text unless told not to; TGI does not.
    let prepared = prepare(body, inference_api, &model)?;
    let running = start(&state, &model, prepared.request, caller).await?;
    if !stream {
        let done = running.finish().await.map_err(failure)?;
        let generated_text = if prepared.full_text {
            format!("{}{}", prepared.inputs, done.text)
        } else {
            done.text.clone()
        };
        let mut out = json!({ "generated_text": generated_text });
        if prepared.details {
            out["details"] = details(&done, prepared.seed);
        }
        return Ok(if inference_api {
            Json(json!([out])).into_response()
        } else {
            Json(out).into_response()
        });
    }

    // Each token is sent when the next one arrives, so the last can carry
    // `generated_text` and `details` as TGI's does.
    let mut held: Option<(Option<u32>, String)> = None;
    let mut text = if prepared.full_text {
        prepared.inputs.clone()
    } else {
        String::new()
    };
    let mut index = 0u64;
    let seed = prepared.seed;
    let data = |v: Value| SseEvent::default().data(v.to_string());
    Ok(running.into_sse(move |event| {
        let mut out = Vec::new();
        let mut emit = |token: Value, last: Option<Value>, generated: Option<&str>| {
            index += 1;
            data(json!({
                "index": index,
                "token": token,
                "generated_text": generated,
                "details": last,
                "top_tokens": null,
            }))
        };
        match event {
            Event::Token { text: t, .. } if t.is_empty() => {}
            Event::Prefill { .. } | Event::Waiting { .. } => {}
            Event::Token { id, text: t } => {
                text.push_str(&t);
                if let Some((id, t)) = held.replace((id, t)) {
                    out.push(emit(token_json(id, &t, false), None, None));
                }
            }
            Event::Done { finish, usage } => {
                let last_details = json!({
                    "finish_reason": finish_reason(finish),
                    "generated_tokens": usage.completion_tokens,
                    "seed": seed,
                });
                let token = match held.take() {
                    Some((id, t)) => token_json(id, &t, false),
                    None => token_json(None, "", true),
                };
                out.push(emit(token, Some(last_details), Some(&text)));
            }
            Event::Error(message) => {
                let e = failure(message);
                out.push(data(json!({ "error": e.message, "error_type": e.kind })));
            }
        }
        out
    }))
}

/// `GET /info`: what TGI's clients read about the server.
pub async fn info(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state, &headers).await {
        return TgiError::from(e).into_response();
    }
    let Some(model) = first_local(&state) else {
        return TgiError {
            status: StatusCode::NOT_FOUND,
            message: "This server has no local model.".into(),
            kind: "not_found",
            retry_after: None,
        }
        .into_response();
    };
    let context_length = model.context_length.unwrap_or_default();
    Json(json!({
        "model_id": model.id,
        "model_sha": null,
        "model_dtype": "gguf",
        "model_device_type": "cpu",
        "model_pipeline_tag": "text-generation",
        "max_concurrent_requests": model.queue_depth,
        "max_best_of": 1,
        "max_stop_sequences": inference::request::MAX_STOP_SEQUENCES,
        "max_input_tokens": context_length.saturating_sub(1),
        "max_total_tokens": context_length,
        "validation_workers": 1,
        "version": env!("CARGO_PKG_VERSION"),
        "router": "wick",
    }))
    .into_response()
}
