//! The inference APIs on the wire: the real `wick` binary and model on a
//! loopback port, requests and answers checked byte-level where the format
//! matters (OpenAI's and TGI's JSON and their event streams).

mod common;

use common::{call, start_with, wick_cli, TestServer};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1";
const KEY: &str = "test-key-1";

async fn api_server(extra: &[&str]) -> TestServer {
    let mut args = vec!["--api-key", KEY];
    args.extend_from_slice(extra);
    start_with(&args).await
}

fn post(s: &TestServer, path: &str, key: Option<&str>, body: Value) -> reqwest::RequestBuilder {
    let mut r = reqwest::Client::new()
        .post(format!("{}{path}", s.base))
        .json(&body);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    r
}

async fn get(s: &TestServer, path: &str, key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{path}", s.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// The `data:` payloads of an event stream, in order.
async fn data_lines(r: reqwest::Response) -> Vec<String> {
    use eventsource_stream::Eventsource;
    r.bytes_stream()
        .eventsource()
        .map(|e| e.expect("a well-formed event stream").data)
        .collect()
        .await
}

#[tokio::test]
async fn no_token_or_a_wrong_one_is_refused_in_each_apis_own_shape() {
    let s = api_server(&[]).await;
    let chat = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]});
    for key in [None, Some("wrong"), Some("wick_AAAA")] {
        let r = post(&s, "/v1/chat/completions", key, chat.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{key:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("token"));

        let r = post(&s, "/generate", key, json!({"inputs": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error_type"], "authentication", "{body}");
    }
    let r = reqwest::get(format!("{}/v1/models", s.base)).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tokens_from_the_command_line_work_until_revoked() {
    let s = api_server(&[]).await;
    let wick = |args: &[&str]| wick_cli(&s, args);
    let token = wick(&["token", "create", "--name", "laptop script"])
        .trim()
        .to_owned();
    assert!(token.starts_with("wick_"), "{token}");
    let list = wick(&["token", "list"]);
    assert!(
        list.contains("laptop script") && list.contains("active"),
        "{list}"
    );
    assert!(!list.contains(&token), "the list never shows the token");

    let r = get(&s, "/v1/models", &token).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][0]["id"], MODEL);
    assert!(wick(&["token", "list"]).contains("last used 2"));

    let id = list.split('\t').next().unwrap().to_owned();
    wick(&["token", "revoke", &id]);
    assert!(wick(&["token", "list"]).contains("revoked"));
    let r = get(&s, "/v1/models", &token).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn chat_completions_whole_and_streamed() {
    let s = api_server(&[]).await;
    let request = json!({
        "model": MODEL,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}],
        "max_tokens": 6, "temperature": 0, "seed": 3,
    });
    let r = post(&s, "/v1/chat/completions", Some(KEY), request.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let whole: Value = r.json().await.unwrap();
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["model"], MODEL);
    assert!(whole["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let choice = &whole["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    let text = choice["message"]["content"].as_str().unwrap().to_owned();
    assert!(!text.is_empty());
    let usage = &whole["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 5);
    assert!(usage["completion_tokens"].as_u64().unwrap() <= 6);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let r = post(&s, "/v1/chat/completions", Some(KEY), streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let lines = data_lines(r).await;
    assert_eq!(lines.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = lines[..lines.len() - 1]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    for field in ["prompt_tokens", "completion_tokens", "total_tokens"] {
        assert_eq!(
            usage_chunk["usage"][field], whole["usage"][field],
            "{field}"
        );
    }
    // The same prompt again: all but its last token come from the prefix cache.
    assert_eq!(
        usage_chunk["usage"]["prompt_tokens_details"]["cached_tokens"],
        json!(whole["usage"]["prompt_tokens"].as_u64().unwrap() - 1)
    );
    let finish = &chunks[chunks.len() - 2]["choices"][0];
    assert_eq!(finish["finish_reason"], choice["finish_reason"]);
    let streamed_text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    // Greedy with the same seed: the same words either way.
    assert_eq!(streamed_text, text);
}

#[tokio::test]
async fn bad_requests_name_the_field() {
    let s = api_server(&[]).await;
    let base = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]});
    let cases = [
        (
            json!({"temperature": 5}),
            StatusCode::BAD_REQUEST,
            "temperature",
        ),
        (
            json!({"max_tokens": 0}),
            StatusCode::BAD_REQUEST,
            "max_tokens",
        ),
        (json!({"n": 2}), StatusCode::BAD_REQUEST, "n"),
        (json!({"model": "gpt-9"}), StatusCode::NOT_FOUND, "model"),
        (
            json!({"messages": [{"role": "wizard", "content": "x"}]}),
            StatusCode::BAD_REQUEST,
            "messages",
        ),
    ];
    for (patch, status, param) in cases {
        let mut body = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = post(&s, "/v1/chat/completions", Some(KEY), body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{patch}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["param"], param, "{e}");
        assert!(!e["error"]["message"].as_str().unwrap().is_empty());
    }
    let r = post(
        &s,
        "/generate",
        Some(KEY),
        json!({"inputs": "hi", "parameters": {"max_new_tokens": 0}}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error_type"], "validation");
    assert!(
        e["error"].as_str().unwrap().contains("max_new_tokens"),
        "{e}"
    );
}

#[tokio::test]
async fn tgi_and_the_inference_api() {
    let s = api_server(&[]).await;
    let prompt = "The capital of France is";
    let r = post(
        &s,
        "/generate",
        Some(KEY),
        json!({"inputs": prompt, "parameters": {"max_new_tokens": 5, "details": true}}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let out: Value = r.json().await.unwrap();
    let text = out["generated_text"].as_str().unwrap().to_owned();
    assert!(!text.starts_with(prompt), "TGI returns only the new text");
    assert_eq!(
        out["details"]["generated_tokens"].as_u64().unwrap() as usize,
        out["details"]["tokens"].as_array().unwrap().len()
    );

    // The Inference API: the model in the path, the prompt as a bare string, the prompt returned too.
    let r = reqwest::Client::new()
        .post(format!("{}/models/{MODEL}", s.base))
        .bearer_auth(KEY)
        .body(serde_json::to_string(prompt).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let out: Value = r.json().await.unwrap();
    let full = out[0]["generated_text"].as_str().unwrap();
    assert!(full.starts_with(prompt), "{full}");
    let r = post(
        &s,
        "/models/someone/else",
        Some(KEY),
        json!({"inputs": "x"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let r = post(
        &s,
        "/generate_stream",
        Some(KEY),
        json!({"inputs": prompt, "parameters": {"max_new_tokens": 5}}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let events: Vec<Value> = data_lines(r)
        .await
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = events.last().unwrap();
    assert_eq!(last["details"]["finish_reason"], "length");
    assert_eq!(last["details"]["generated_tokens"], 5);
    let joined: String = events
        .iter()
        .map(|e| e["token"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(last["generated_text"].as_str().unwrap(), joined);
    assert_eq!(joined, text, "greedy: the same text streamed or not");
    assert!(events[..events.len() - 1]
        .iter()
        .all(|e| e["generated_text"].is_null()));

    let r = get(&s, "/info", KEY).await;
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["model_id"], MODEL);
    assert_eq!(info["max_total_tokens"], 8192);

    let doc: Value = reqwest::get(format!("{}/openapi.json", s.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/models",
        "/v1/chat/completions",
        "/models/{model_id}",
        "/generate",
        "/generate_stream",
        "/info",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
}

#[tokio::test]
async fn the_api_shares_the_chats_queue_and_gets_429_before_any_byte() {
    let s = api_server(&[
        "--queue-depth",
        "1",
        "--max-new-tokens",
        "400",
        "--seed",
        "7",
    ])
    .await;
    let me = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let r =
        call::<app::api::SendMessage>(&me, &s, &[("content", "Write a long story about the sea.")])
            .await;
    assert_eq!(r.status(), StatusCode::OK);
    let sent: app::data::Sent = r.json().await.unwrap();

    let body =
        json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let r = post(&s, "/v1/chat/completions", Some(KEY), body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "rate_limit_exceeded");
    let r = post(&s, "/generate_stream", Some(KEY), json!({"inputs": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error_type"], "overloaded");

    call::<app::api::StopReply>(&me, &s, &[("message_id", &sent.message_id)]).await;
}

/// `ignore_eos` (vLLM's and llama-server's extension) keeps a reply going past
/// the end-of-turn token to `max_tokens`; without it the same reply ends early.
#[tokio::test]
async fn ignore_eos_writes_up_to_max_tokens() {
    let s = api_server(&[]).await;
    let ask = |ignore_eos: bool| {
        json!({
            "model": MODEL,
            "messages": [{"role": "user", "content": "What is the capital of France? One word."}],
            "max_tokens": 12, "temperature": 0, "ignore_eos": ignore_eos,
        })
    };
    let mut answers = Vec::new();
    for ignore_eos in [false, true] {
        let r = post(&s, "/v1/chat/completions", Some(KEY), ask(ignore_eos))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        answers.push((
            v["usage"]["completion_tokens"].as_u64().unwrap(),
            v["choices"][0]["finish_reason"].clone(),
        ));
    }
    assert!(answers[0].0 < 12, "{answers:?}");
    assert_eq!(answers[0].1, "stop");
    assert_eq!(answers[1], (12, json!("length")));
}
