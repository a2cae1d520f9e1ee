//! `GET /openapi.json`: the inference APIs described for tools and people.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::ServerState;

pub async fn document(State(state): State<ServerState>) -> Json<Value> {
    let error = |shape: Value| json!({ "description": "error", "content": { "application/json": { "schema": shape } } });
    let openai_error = json!({ "type": "object", "properties": { "error": { "type": "object", "properties": {
        "message": { "type": "string" }, "type": { "type": "string" },
        "param": { "type": ["string", "null"] }, "code": { "type": ["string", "null"] } } } } });
    let tgi_error = json!({ "type": "object", "properties": {
        "error": { "type": "string" }, "error_type": { "type": "string" } } });
    let parameters = json!({ "type": "object", "properties": {
        "max_new_tokens": { "type": "integer", "minimum": 1, "maximum": inference::request::MAX_NEW_TOKENS, "default": 100 },
        "temperature": { "type": "number", "minimum": 0, "maximum": inference::request::MAX_TEMPERATURE },
        "top_p": { "type": "number", "exclusiveMinimum": 0, "maximum": 1 },
        "top_k": { "type": "integer", "minimum": 1 },
        "repetition_penalty": { "type": "number" },
        "stop": { "type": "array", "items": { "type": "string" }, "maxItems": inference::request::MAX_STOP_SEQUENCES },
        "seed": { "type": "integer" },
        "do_sample": { "type": "boolean", "default": false },
        "return_full_text": { "type": "boolean" },
        "details": { "type": "boolean", "default": false } } });
    let tgi_body = json!({ "oneOf": [
        { "type": "object", "required": ["inputs"], "properties": {
            "inputs": { "type": "string" }, "parameters": parameters, "stream": { "type": "boolean" },
            "options": { "type": "object" } } },
        { "type": "string", "description": "the prompt alone" } ] });
    let generated = json!({ "type": "object", "properties": {
        "generated_text": { "type": "string" }, "details": { "type": "object" } } });
    let sse = json!({ "description": "Server-Sent Events", "content": { "text/event-stream": { "schema": { "type": "string" } } } });
    let json_body = |schema: &Value| json!({ "required": true, "content": { "application/json": { "schema": schema } } });
    let responses = |ok: Value, err: &Value| {
        json!({
        "200": ok, "401": error(err.clone()), "404": error(err.clone()), "422": error(err.clone()),
        "400": error(err.clone()), "429": error(err.clone()) })
    };
    let ok_json = |schema: Value| json!({ "description": "OK", "content": { "application/json": { "schema": schema } } });
    let chat_request = json!({ "type": "object", "required": ["model", "messages"], "properties": {
        "model": { "type": "string", "enum": super::local_ids(&state) },
        "messages": { "type": "array", "items": { "type": "object", "required": ["role", "content"], "properties": {
            "role": { "type": "string", "enum": ["system", "developer", "user", "assistant"] },
            "content": { "oneOf": [ { "type": "string" }, { "type": "array", "items": { "type": "object" } } ] } } } },
        "stream": { "type": "boolean", "default": false },
        "stream_options": { "type": "object", "properties": { "include_usage": { "type": "boolean" } } },
        "max_tokens": { "type": "integer", "minimum": 1 },
        "max_completion_tokens": { "type": "integer", "minimum": 1 },
        "temperature": { "type": "number", "minimum": 0, "maximum": 2, "default": 1 },
        "top_p": { "type": "number" },
        "stop": { "oneOf": [ { "type": "string" }, { "type": "array", "items": { "type": "string" } } ] },
        "seed": { "type": "integer" },
        "n": { "type": "integer", "enum": [1] } } });

    Json(json!({
        "openapi": "3.1.0",
        "info": { "title": "Wick inference APIs", "version": env!("CARGO_PKG_VERSION"),
                  "description": "OpenAI-compatible and Hugging Face Inference API / TGI endpoints for Wick's local model." },
        "components": { "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } } },
        "security": [ { "bearer": [] } ],
        "paths": {
            "/v1/models": { "get": { "summary": "The models this server serves (OpenAI)",
                "responses": responses(ok_json(json!({ "type": "object" })), &openai_error) } },
            "/v1/chat/completions": { "post": { "summary": "Chat completion, streamed as chat.completion.chunk events or whole (OpenAI)",
                "requestBody": json_body(&chat_request),
                "responses": responses(json!({ "description": "a chat.completion, or with stream=true Server-Sent Events ending with data: [DONE]",
                    "content": { "application/json": { "schema": { "type": "object" } }, "text/event-stream": { "schema": { "type": "string" } } } }), &openai_error) } },
            "/models/{model_id}": { "post": { "summary": "Text generation, Hugging Face Inference API",
                "parameters": [ { "name": "model_id", "in": "path", "required": true, "schema": { "type": "string" } } ],
                "requestBody": json_body(&tgi_body),
                "responses": responses(ok_json(json!({ "type": "array", "items": generated })), &tgi_error) } },
            "/generate": { "post": { "summary": "Text generation (TGI)", "requestBody": json_body(&tgi_body),
                "responses": responses(ok_json(generated.clone()), &tgi_error) } },
            "/generate_stream": { "post": { "summary": "Text generation as a token stream (TGI)", "requestBody": json_body(&tgi_body),
                "responses": responses(sse, &tgi_error) } },
            "/info": { "get": { "summary": "What the server runs (TGI)",
                "responses": responses(ok_json(json!({ "type": "object" })), &tgi_error) } },
        },
    }))
}
