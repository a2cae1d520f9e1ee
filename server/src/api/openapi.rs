//! `GET /openapi.json`: the inference APIs described for tools and people.
//!
//! Every status a route can answer is listed with its error shape, and the
//! request schemas say what the server accepts (the bounds `validate`
//! checks), so that a schema-driven fuzzer (schemathesis) finds the document
//! and the server in agreement.

use axum::extract::State;
use axum::Json;
use inference::request::{
    MAX_REPETITION_PENALTY, MAX_STOP_CHARS, MAX_STOP_SEQUENCES, MAX_TEMPERATURE,
};
use serde_json::{json, Value};

use crate::ServerState;

/// What each error status means, for the statuses the routes answer.
const ERRORS: [(&str, &str); 11] = [
    ("400", "the request is invalid (the message names the field)"),
    ("401", "no API token, or one that is not valid"),
    ("404", "no such model"),
    ("413", "the request body is too large"),
    (
        "415",
        "the body is not declared as JSON: anonymous requests must send `Content-Type: application/json`",
    ),
    ("422", "the request is invalid (TGI's validation errors)"),
    ("429", "the queue is full, or the caller has too many replies running"),
    ("500", "Wick failed while writing the reply"),
    ("502", "a remote model server refused the request"),
    ("503", "the model, or the token check, is unavailable"),
    ("504", "a remote model server did not answer in time"),
];

/// The error statuses of the routes that take a body, and of those that do not.
const POST_ERRORS: [&str; 11] = [
    "400", "401", "404", "413", "415", "422", "429", "500", "502", "503", "504",
];
const GET_ERRORS: [&str; 4] = ["401", "404", "500", "503"];

pub async fn document(State(state): State<ServerState>) -> Json<Value> {
    Json(spec(super::local_ids(&state)))
}

/// The document, for a server whose local models are `model_ids`.
pub fn spec(model_ids: Vec<String>) -> Value {
    let openai_error = json!({ "type": "object", "required": ["error"], "properties": { "error": {
        "type": "object", "required": ["message", "type"], "properties": {
        "message": { "type": "string" }, "type": { "type": "string" },
        "param": { "type": ["string", "null"] }, "code": { "type": ["string", "null"] } } } } });
    let tgi_error = json!({ "type": "object", "required": ["error", "error_type"], "properties": {
        "error": { "type": "string" }, "error_type": { "type": "string" } } });
    let responses = |ok: Value, errors: &[&str], shape: &Value| {
        let mut out = json!({ "200": ok });
        for status in errors {
            let description = ERRORS
                .iter()
                .find(|(s, _)| s == status)
                .map_or("error", |(_, d)| *d);
            out[*status] = json!({ "description": description,
                "content": { "application/json": { "schema": shape } } });
        }
        out
    };
    let u64_max = u64::MAX;
    let stop_item = json!({ "type": "string", "minLength": 1, "maxLength": MAX_STOP_CHARS });
    let parameters = json!({ "type": "object", "properties": {
        "max_new_tokens": { "type": ["integer", "null"], "minimum": 1, "maximum": u64_max, "default": 100,
            "description": "At most the model's configured reply length (`WICK_MAX_NEW_TOKENS` or the models file's `max_new_tokens`): a larger value is served up to that ceiling, ending with finish reason `length`." },
        "temperature": { "type": ["number", "null"], "exclusiveMinimum": 0, "maximum": MAX_TEMPERATURE,
            "description": "As in TGI, strictly positive: leave it out (or set `do_sample` to false) for greedy decoding." },
        "top_p": { "type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1 },
        "top_k": { "type": ["integer", "null"], "minimum": 1, "maximum": u64_max },
        "repetition_penalty": { "type": ["number", "null"], "exclusiveMinimum": 0, "maximum": MAX_REPETITION_PENALTY },
        "stop": { "type": ["array", "null"], "items": stop_item, "maxItems": MAX_STOP_SEQUENCES },
        "seed": { "type": ["integer", "null"], "minimum": 0, "maximum": u64_max },
        "do_sample": { "type": ["boolean", "null"], "default": false },
        "return_full_text": { "type": ["boolean", "null"] },
        "details": { "type": "boolean", "default": false } } });
    let tgi_body = json!({ "oneOf": [
        { "type": "object", "required": ["inputs"], "properties": {
            "inputs": { "type": "string", "minLength": 1 }, "parameters": parameters,
            "stream": { "type": "boolean" }, "options": { "type": "object" } } },
        { "type": "string", "minLength": 1, "description": "the prompt alone" } ] });
    let generated = json!({ "type": "object", "required": ["generated_text"], "properties": {
        "generated_text": { "type": "string" }, "details": { "type": "object" } } });
    // One Server-Sent Event as OpenAPI 3.1 tools read a stream: its fields,
    // with `data` (the JSON chunk, as text) always present.
    let sse = json!({
        "type": "object",
        "properties": {
            "event": { "type": "string" },
            "data": { "type": "string" },
            "id": { "type": "string" },
            "retry": { "type": "integer" }
        },
        "required": ["data"]
    });
    let json_body = |schema: &Value| {
        json!({ "required": true, "description": "JSON. Anonymous requests must say `Content-Type: application/json` (else 415).",
            "content": { "application/json": { "schema": schema } } })
    };
    let ok_json = |schema: Value| json!({ "description": "OK", "content": { "application/json": { "schema": schema } } });
    let text_part = json!({ "type": "object", "required": ["type", "text"], "properties": {
        "type": { "type": "string", "enum": ["text"] }, "text": { "type": "string" } } });
    let chat_request = json!({ "type": "object", "required": ["model", "messages"], "properties": {
        "model": { "type": "string", "enum": model_ids },
        "messages": { "type": "array", "minItems": 1, "items": { "type": "object", "required": ["role"], "properties": {
            "role": { "type": "string", "enum": ["system", "developer", "user", "assistant"] },
            "content": { "oneOf": [ { "type": "string" }, { "type": "array", "items": text_part }, { "type": "null" } ] } } } },
        "stream": { "type": "boolean", "default": false },
        "stream_options": { "type": ["object", "null"], "properties": { "include_usage": { "type": "boolean" } } },
        "max_tokens": { "type": ["integer", "null"], "minimum": 1, "maximum": u64_max,
            "description": "At most the model's configured reply length (`WICK_MAX_NEW_TOKENS` or the models file's `max_new_tokens`): a larger value is served up to that ceiling, ending with finish reason `length`." },
        "max_completion_tokens": { "type": ["integer", "null"], "minimum": 1, "maximum": u64_max,
            "description": "Preferred to `max_tokens` when both are given; the same ceiling applies." },
        "ignore_eos": { "type": "boolean", "default": false,
            "description": "Not OpenAI's (vLLM's and llama-server's extension): keep writing past the model's end-of-turn token, up to `max_tokens`." },
        "temperature": { "type": ["number", "null"], "minimum": 0, "maximum": MAX_TEMPERATURE, "default": 1 },
        "top_p": { "type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1 },
        "stop": { "oneOf": [ stop_item, { "type": "array", "items": stop_item, "maxItems": MAX_STOP_SEQUENCES }, { "type": "null" } ] },
        "seed": { "type": ["integer", "null"], "minimum": 0, "maximum": u64_max },
        "n": { "type": ["integer", "null"], "enum": [1, null] } } });

    json!({
        "openapi": "3.1.0",
        "info": { "title": "Wick inference APIs", "version": env!("CARGO_PKG_VERSION"),
                  "description": "OpenAI-compatible and Hugging Face Inference API / TGI endpoints for Wick's local model. Replies are at most the model's configured length: a larger `max_tokens` / `max_new_tokens` is served up to it." },
        "components": { "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } } },
        "security": [ { "bearer": [] } ],
        "paths": {
            "/v1/models": { "get": { "summary": "The models this server serves (OpenAI)",
                "responses": responses(ok_json(json!({ "type": "object" })), &GET_ERRORS, &openai_error) } },
            "/v1/chat/completions": { "post": { "summary": "Chat completion, streamed as chat.completion.chunk events or whole (OpenAI)",
                "requestBody": json_body(&chat_request),
                "responses": responses(json!({ "description": "a chat.completion, or with stream=true Server-Sent Events ending with data: [DONE]",
                    "content": { "application/json": { "schema": { "type": "object" } }, "text/event-stream": { "schema": sse } } }), &POST_ERRORS, &openai_error) } },
            "/models/{model_id}": { "post": { "summary": "Text generation, Hugging Face Inference API",
                "parameters": [ { "name": "model_id", "in": "path", "required": true, "schema": { "type": "string", "minLength": 1 } } ],
                "requestBody": json_body(&tgi_body),
                "responses": responses(json!({ "description": "`[{\"generated_text\"}]`, or with \"stream\": true TGI's token stream",
                    "content": { "application/json": { "schema": { "type": "array", "items": generated } }, "text/event-stream": { "schema": sse } } }), &POST_ERRORS, &tgi_error) } },
            "/generate": { "post": { "summary": "Text generation (TGI)", "requestBody": json_body(&tgi_body),
                "responses": responses(ok_json(generated.clone()), &POST_ERRORS, &tgi_error) } },
            "/generate_stream": { "post": { "summary": "Text generation as a token stream (TGI)", "requestBody": json_body(&tgi_body),
                "responses": responses(json!({ "description": "Server-Sent Events", "content": { "text/event-stream": { "schema": sse } } }), &POST_ERRORS, &tgi_error) } },
            "/info": { "get": { "summary": "What the server runs (TGI)",
                "responses": responses(ok_json(json!({ "type": "object" })), &GET_ERRORS, &tgi_error) } },
        },
    })
}
