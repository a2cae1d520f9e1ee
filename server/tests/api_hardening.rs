//! The audit's findings about the inference APIs and the remote backends
//! (issue 18: 7, and parts of 9 and 10), each kept fixed here, in process:
//! the whole router over `Router::oneshot`, scripted local models, and remote
//! models pointed at a stand-in server that writes the exact bytes a real (or
//! a hostile) one would.

#[path = "../../inference/tests/support/stand_in.rs"]
mod stand_in;

mod scripted;

use std::sync::Arc;
use std::time::Duration;

use app::api::SendMessage;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use inference::remote::{RemoteBackend, RemoteConfig};
use inference::scripted::{ScriptedBackend, Step};
use inference::{Backend, Event, FailureKind, Params};
use leptos::server_fn::ServerFn;
use scripted::{keyed, logged, logs, scripted_model, session_cookie, state_over, Scripted, KEY};
use serde_json::{json, Value};
use server::api::auth::ApiAccess;
use stand_in::{End, Reply, StandIn};
use tower::ServiceExt;
use wick_core::{Model, ModelKind};
use wick_types::Sent;

/// The key a remote model is configured with, which must never be shown.
const UPSTREAM_KEY: &str = "upstream-secret-1";
/// An address inside the remote side's network, as an error body might name it.
const INTERNAL_URL: &str = "http://10.9.8.7:8080/internal/v1";
/// The ceiling of every model's replies here (`WICK_MAX_NEW_TOKENS`).
const MAX_NEW_TOKENS: usize = 16;
const POSTS: [&str; 4] = [
    "/v1/chat/completions",
    "/generate",
    "/generate_stream",
    "/models/fake",
];

fn params() -> Params {
    Params {
        max_new_tokens: MAX_NEW_TOKENS,
        temperature: 0.0,
        ..Params::default()
    }
}

/// A local model that plays `script`.
fn scripted(script: Vec<Step>) -> (Model, ScriptedBackend) {
    scripted_model(script, params())
}

/// An OpenAI-compatible remote model at `url` (the stand-in's), with a key.
fn remote(id: &str, url: &str) -> Model {
    Model::new(
        id,
        id,
        ModelKind::OpenAi,
        Arc::new(RemoteBackend::openai(remote_config(url)).unwrap()),
        params(),
        4,
        None,
    )
}

fn remote_config(url: &str) -> RemoteConfig {
    let mut config = RemoteConfig::new(format!("{url}/v1"));
    config.model = Some("org/model".into());
    config.api_key = Some(UPSTREAM_KEY.into());
    config.api_key_env = Some("UPSTREAM_KEY".into());
    // Long enough that a test never fails by it; what used to wait for it fails here.
    config.idle_timeout = Duration::from_secs(10);
    config
}

struct Wick {
    router: Router,
    pool: sqlx::SqlitePool,
    _dir: tempfile::TempDir,
}

async fn wick(models: Vec<Model>, access: ApiAccess) -> Wick {
    let Scripted { state, pool, dir } = state_over(models, access).await;
    Wick {
        router: server::router(state),
        pool,
        _dir: dir,
    }
}

/// A server whose one local model plays `script`, with the API behind `KEY`.
async fn local(script: Vec<Step>) -> (Wick, ScriptedBackend) {
    let (model, backend) = scripted(script);
    (wick(vec![model], keyed()).await, backend)
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

impl Wick {
    async fn request(&self, request: Request<Body>) -> Answer {
        let response = tokio::time::timeout(
            Duration::from_secs(30),
            self.router.clone().oneshot(request),
        )
        .await
        .expect("the route answers")
        .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = tokio::time::timeout(
            Duration::from_secs(30),
            axum::body::to_bytes(response.into_body(), usize::MAX),
        )
        .await
        .expect("the body ends")
        .unwrap();
        Answer {
            status,
            content_type,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    /// A POST with the key, as JSON.
    async fn api(&self, path: &str, body: Value) -> Answer {
        self.post(path, Some(KEY), Some("application/json"), body.to_string())
            .await
    }

    async fn post(
        &self,
        path: &str,
        key: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> Answer {
        let mut request = Request::post(path);
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        self.request(request.body(body.into()).unwrap()).await
    }

    /// Sends a first message to `model` and waits for the reply's stream to end;
    /// the reply's id and its last event.
    async fn chat(&self, model: &str, content: &str) -> (String, Value) {
        let form = format!("content={content}&model={model}");
        let response = self
            .router
            .clone()
            .oneshot(
                Request::post(SendMessage::url())
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(form))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = session_cookie(response.headers());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let sent: Sent = serde_json::from_slice(&body).unwrap();
        let stream = self
            .request(
                Request::get(wick_types::reply::stream_url(&sent.message_id))
                    .header(header::COOKIE, cookie)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        let last = stream
            .body
            .split("\n\n")
            .filter_map(|block| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.trim().to_owned())
            })
            .last()
            .expect("the stream has events");
        (sent.message_id, serde_json::from_str(&last).unwrap())
    }

    /// A stored reply: (content, state, finish_reason, error).
    async fn stored(&self, id: &str) -> (String, String, Option<String>, Option<String>) {
        sqlx::query_as("SELECT content, state, finish_reason, error FROM messages WHERE id = ?")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

fn delta(text: &str) -> String {
    format!(
        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}},\"finish_reason\":null}}]}}\n\n",
        Value::String(text.into())
    )
}

/// What a hostile or careless server puts in an error body: the request's
/// headers echoed (the key with them), an internal address, the variable's name.
fn leaky_body() -> String {
    json!({ "error": {
        "message": format!("Unauthorized: bad credentials for UPSTREAM_KEY from {INTERNAL_URL}"),
        "echo": format!("authorization: Bearer {UPSTREAM_KEY}\r\nhost: 10.9.8.7"),
    }})
    .to_string()
}

fn assert_no_leak(text: &str, stand_in: &StandIn) {
    for leak in [
        UPSTREAM_KEY,
        "UPSTREAM_KEY",
        "10.9.8.7",
        "internal",
        "bad credentials",
        stand_in.url.as_str(),
    ] {
        assert!(!text.contains(leak), "{leak:?} shown: {text}");
    }
}

// Finding 7: upstream errors leak.

#[tokio::test]
async fn a_remote_error_is_shown_and_stored_as_a_sentence_and_logged_without_the_key() {
    let refusing = StandIn::start(vec![Reply::json("401 Unauthorized", &leaky_body())]).await;
    let failing = StandIn::start(vec![Reply::json(
        "500 Internal Server Error",
        &leaky_body(),
    )])
    .await;
    let (local_model, _) = scripted(vec![Step::token("hi")]);
    let w = wick(
        vec![
            local_model,
            remote("refusing", &refusing.url),
            remote("failing", &failing.url),
        ],
        keyed(),
    )
    .await;

    for (model, stand_in, words) in [
        ("refusing", &refusing, "refused Wick's API key (HTTP 401)"),
        ("failing", &failing, "failed (HTTP 500)"),
    ] {
        let (id, last) = w.chat(model, "Hello").await;
        let shown = last["message"].as_str().unwrap_or_else(|| panic!("{last}"));
        assert!(shown.contains(words), "{model}: {shown}");
        assert_no_leak(shown, stand_in);
        let (_, state, _, error) = w.stored(&id).await;
        assert_eq!(state, "error");
        let error = error.expect("the reply stores why it failed");
        assert_eq!(error, shown);
        assert_no_leak(&error, stand_in);
        // The key did reach the server: it is what the server echoed.
        assert!(stand_in.requests()[0]
            .0
            .to_ascii_lowercase()
            .contains(&format!("bearer {UPSTREAM_KEY}")));
    }

    // The operator's log has the detail, with the key redacted.
    let log = logged();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("remote model failed") && l.contains("10.9.8.7"))
        .collect();
    assert!(lines.len() >= 2, "the detail is logged: {log}");
    for line in lines {
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains("[redacted]"), "{line}");
        assert!(
            line.contains("UPSTREAM_KEY"),
            "the variable is named for the operator: {line}"
        );
    }
    assert!(!log.contains(UPSTREAM_KEY), "the key is in the log: {log}");
}

/// A model's reply: its text and how it ended.
async fn collect(backend: &RemoteBackend) -> (String, Event) {
    let request = inference::GenerationRequest {
        prompt: inference::Prompt::Chat(vec![inference::ChatMessage::new("user", "Hi")]),
        params: params(),
        drop_old_turns: false,
        continue_final: false,
        priority: inference::Priority::Normal,
    };
    let mut generation = backend.generate(request).unwrap();
    let mut text = String::new();
    loop {
        match generation.next().await.expect("a final event") {
            Event::Token { text: t, .. } => text.push_str(&t),
            last @ (Event::Done { .. } | Event::Error(_)) => return (text, last),
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
}

#[tokio::test]
async fn an_endless_error_body_is_read_only_up_to_its_cap_and_logged_cut() {
    logs();
    // 70 KB of error, then nothing, ever: reading it whole would wait forever.
    let endless = StandIn::start(vec![Reply {
        status: "500 Internal Server Error",
        headers: vec![("content-type".into(), "text/plain".into())],
        chunks: vec![format!("{UPSTREAM_KEY} {}", "Q".repeat(70_000))],
        delay: Duration::ZERO,
        end: End::Hang,
    }])
    .await;
    let backend = RemoteBackend::openai(remote_config(&endless.url)).unwrap();
    let (_, last) = collect(&backend).await;
    let Event::Error(failure) = last else {
        panic!("{last:?}")
    };
    assert_eq!(failure.kind, FailureKind::Internal, "{}", failure.message);
    assert!(failure.message.contains("HTTP 500"), "{}", failure.message);
    assert!(!failure.message.contains("QQQ"), "{}", failure.message);
    let log = logged();
    assert!(log.contains("QQQQQQQQ"), "the detail is logged");
    assert!(
        !log.contains(&"Q".repeat(1_001)),
        "the logged detail is capped at 1,000 characters"
    );
    assert!(!log.contains(UPSTREAM_KEY));
}

// Finding 9: limits.

#[tokio::test]
async fn a_remote_model_that_does_not_stop_is_cut_at_max_new_tokens() {
    // 200 tokens when 16 were asked, then the connection stays open.
    let words: Vec<String> = (0..200).map(|i| delta(&format!("w{i} "))).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let chatty = StandIn::start(vec![Reply::events("text/event-stream", &words)
        .every(Duration::ZERO)
        .ending(End::Hang)])
    .await;
    // One event of 100 KB of text.
    let huge = delta(&"many words ".repeat(10_000));
    let flood = StandIn::start(vec![
        Reply::events("text/event-stream", &[&huge]).ending(End::Hang)
    ])
    .await;
    // A whole (not streamed) answer of 50 KB.
    let whole = StandIn::start(vec![Reply::json(
        "200 OK",
        &json!({ "choices": [{ "index": 0, "finish_reason": "stop",
            "message": { "role": "assistant", "content": "long ".repeat(10_000) } }] })
        .to_string(),
    )])
    .await;
    let (local_model, _) = scripted(vec![Step::token("hi")]);
    let w = wick(
        vec![
            local_model,
            remote("chatty", &chatty.url),
            remote("flood", &flood.url),
            remote("whole", &whole.url),
        ],
        keyed(),
    )
    .await;

    let (id, last) = w.chat("chatty", "Talk").await;
    assert_eq!(last["finish_reason"], "length", "{last}");
    let (content, state, finish, _) = w.stored(&id).await;
    assert_eq!(
        (state.as_str(), finish.as_deref()),
        ("done", Some("length"))
    );
    let expected: String = (0..MAX_NEW_TOKENS).map(|i| format!("w{i} ")).collect();
    assert_eq!(content, expected, "exactly the tokens asked for are kept");

    // Text is capped too: about six bytes a token and a little slack.
    for model in ["flood", "whole"] {
        let (id, last) = w.chat(model, "Talk").await;
        assert_eq!(last["finish_reason"], "length", "{model}: {last}");
        let (content, state, ..) = w.stored(&id).await;
        assert_eq!(state, "done", "{model}");
        assert!(
            !content.is_empty() && content.len() <= MAX_NEW_TOKENS * 6 + 1024,
            "{model}: {} bytes stored",
            content.len()
        );
    }
}

#[tokio::test]
async fn api_requests_get_at_most_the_models_max_new_tokens() {
    let (w, backend) = local(vec![Step::token("ok")]).await;
    let chat = |max: Value| json!({ "model": "fake", "messages": [{"role": "user", "content": "hi"}], "max_tokens": max });
    let cases = [
        ("/v1/chat/completions", chat(json!(48))),
        ("/v1/chat/completions", chat(json!(u64::MAX))),
        (
            "/generate",
            json!({ "inputs": "Once", "parameters": { "max_new_tokens": 48 } }),
        ),
        (
            "/generate_stream",
            json!({ "inputs": "Once", "parameters": { "max_new_tokens": 9000 } }),
        ),
        ("/models/fake", json!({ "inputs": "Once" })),
        ("/models/fake", json!("Once")),
    ];
    for (path, body) in &cases {
        let r = w.api(path, body.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{path} {body}: {}", r.body);
    }
    let asked: Vec<usize> = backend
        .requests()
        .iter()
        .map(|r| r.params.max_new_tokens)
        .collect();
    assert_eq!(asked, vec![MAX_NEW_TOKENS; cases.len()]);

    // Less than the ceiling is served as asked.
    w.api(
        "/generate",
        json!({ "inputs": "Once", "parameters": { "max_new_tokens": 3 } }),
    )
    .await;
    assert_eq!(backend.requests().last().unwrap().params.max_new_tokens, 3);
}

#[tokio::test]
async fn json_type_errors_name_the_field() {
    let (w, backend) = local(vec![Step::token("ok")]).await;
    let r = w
        .api(
            "/v1/chat/completions",
            json!({ "model": "fake", "messages": [{"role": "user", "content": "hi"}], "max_tokens": -5 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let e = &r.json()["error"];
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("max_tokens: invalid value: integer `-5`, expected u64"),
        "{e}"
    );
    assert_eq!(e["param"], "max_tokens");
    assert_eq!(e["type"], "invalid_request_error");

    let r = w
        .api(
            "/v1/chat/completions",
            json!({ "model": "fake", "messages": [{"role": "user", "content": 7}] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["error"]["param"],
        "messages[0].content",
        "{}",
        r.body
    );

    for path in ["/generate", "/generate_stream", "/models/fake"] {
        let r = w
            .api(
                path,
                json!({ "inputs": "x", "parameters": { "max_new_tokens": -5 } }),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        let e = r.json();
        assert_eq!(e["error_type"], "validation");
        assert!(
            e["error"]
                .as_str()
                .unwrap()
                .contains("parameters.max_new_tokens: invalid value: integer `-5`, expected u64"),
            "{path}: {e}"
        );
    }
    assert!(backend.requests().is_empty());
}

#[tokio::test]
async fn a_temperature_of_zero_or_less_is_refused_as_tgi_refuses_it() {
    let (w, backend) = local(vec![Step::token("ok")]).await;
    for (path, temperature) in [
        ("/models/fake", json!(-3)),
        ("/generate", json!(0)),
        ("/generate_stream", json!(-0.5)),
    ] {
        let r = w
            .api(
                path,
                json!({ "inputs": "Once", "parameters": { "temperature": temperature } }),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            r.body
        );
        let e = r.json();
        assert_eq!(e["error_type"], "validation");
        assert!(
            e["error"]
                .as_str()
                .unwrap()
                .contains("`temperature` must be strictly positive"),
            "{e}"
        );
    }
    assert!(backend.requests().is_empty(), "nothing was generated");
    // Greedy is asked for by leaving the temperature out, or with do_sample: false.
    let r = w
        .api(
            "/models/fake",
            json!({ "inputs": "Once", "parameters": { "do_sample": false } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(backend.requests()[0].params.temperature, 0.0);
}

// Finding 10: other sites' pages driving generations.

#[tokio::test]
async fn anonymous_posts_must_be_declared_json() {
    let (model, backend) = scripted(vec![Step::token("ok")]);
    let w = wick(vec![model], ApiAccess::new(&[], true)).await;
    let chat = json!({ "model": "fake", "messages": [{"role": "user", "content": "hi"}] });
    let tgi = json!({ "inputs": "Once" });
    for path in POSTS {
        let body = if path.starts_with("/v1/") {
            &chat
        } else {
            &tgi
        };
        // What a form or a simple `fetch` on another site can send without asking.
        for content_type in [
            Some("text/plain"),
            Some("text/plain;charset=UTF-8"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            None,
        ] {
            let r = w.post(path, None, content_type, body.to_string()).await;
            assert_eq!(
                r.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{path} {content_type:?}: {}",
                r.body
            );
            let e = r.json();
            let message = if path.starts_with("/v1/") {
                assert_eq!(e["error"]["code"], "unsupported_media_type");
                e["error"]["message"].as_str().unwrap().to_owned()
            } else {
                assert_eq!(e["error_type"], "unsupported_media_type");
                e["error"].as_str().unwrap().to_owned()
            };
            assert!(message.contains("application/json"), "{message}");
        }
        let r = w
            .post(
                path,
                None,
                Some("application/json; charset=utf-8"),
                body.to_string(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    }
    assert_eq!(
        backend.requests().len(),
        POSTS.len(),
        "only the JSON ones ran"
    );
}

#[tokio::test]
async fn a_request_with_a_token_may_leave_the_content_type_out() {
    // curl -d, Python's requests with data=, the Inference API docs' fetch snippet.
    let (w, backend) = local(vec![Step::token("ok")]).await;
    let r = w
        .post("/models/fake", Some(KEY), None, json!("Once").to_string())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = w
        .post(
            "/generate",
            Some(KEY),
            Some("application/x-www-form-urlencoded"),
            json!({ "inputs": "Once" }).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Without a token it is still a 401 first.
    let r = w
        .post(
            "/generate",
            None,
            Some("text/plain"),
            json!({ "inputs": "Once" }).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(backend.requests().len(), 2);
}

// The OpenAPI document and the answers agree (a schemathesis run relies on it).

/// Whether `value` has the `required` keys of `schema` (one level, and the
/// `error` object's own).
fn has_required(value: &Value, schema: &Value) {
    for key in schema["required"].as_array().unwrap() {
        let key = key.as_str().unwrap();
        assert!(value.get(key).is_some(), "{key} missing in {value}");
        if let Some(inner) = schema["properties"][key].get("required") {
            let inner_schema = &schema["properties"][key];
            assert!(inner.is_array());
            has_required(&value[key], inner_schema);
        }
    }
}

#[tokio::test]
async fn every_status_the_api_answers_is_documented_with_its_shape() {
    let (w, _) = local(vec![Step::token("ok")]).await;
    let doc = w
        .request(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await
        .json();
    let chat = json!({ "model": "fake", "messages": [{"role": "user", "content": "hi"}] });
    let tgi = json!({ "inputs": "Once" });
    let too_large = "x".repeat(3 * 1024 * 1024);
    for (path, doc_path) in [
        ("/v1/chat/completions", "/v1/chat/completions"),
        ("/generate", "/generate"),
        ("/generate_stream", "/generate_stream"),
        ("/models/fake", "/models/{model_id}"),
    ] {
        let good = if path.starts_with("/v1/") {
            &chat
        } else {
            &tgi
        };
        let mut bad_field = good.clone();
        if path.starts_with("/v1/") {
            bad_field["max_tokens"] = json!(-5);
        } else {
            bad_field["parameters"] = json!({ "temperature": -3 });
        }
        let anonymous = wick(vec![scripted(vec![]).0], ApiAccess::new(&[], true)).await;
        let answers = [
            w.api(path, good.clone()).await,
            w.api(path, bad_field).await,
            w.post(path, None, Some("application/json"), good.to_string())
                .await,
            w.post(path, Some(KEY), Some("application/json"), "{not json")
                .await,
            w.post(path, Some(KEY), Some("application/json"), too_large.clone())
                .await,
            anonymous
                .post(path, None, Some("text/plain"), good.to_string())
                .await,
        ];
        let operation = &doc["paths"][doc_path]["post"];
        let mut statuses = Vec::new();
        for a in answers {
            let status = a.status.as_str().to_owned();
            let documented = &operation["responses"][&status];
            assert!(
                documented.is_object(),
                "{path}: {status} is not documented: {}",
                a.body
            );
            let media = a.content_type.split(';').next().unwrap().trim().to_owned();
            let content = &documented["content"][&media];
            assert!(
                content.is_object(),
                "{path}: {status} answered {media}, documented {}",
                documented["content"]
            );
            if a.status != StatusCode::OK {
                has_required(&a.json(), &content["schema"]);
            }
            statuses.push(status);
        }
        for status in ["200", "400", "401", "413", "415"] {
            if path.starts_with("/v1/") || status != "400" {
                assert!(statuses.iter().any(|s| s == status), "{path}: {statuses:?}");
            }
        }
        // With "stream": true the Inference API streams: documented too.
        if path == "/models/fake" {
            let a = w
                .api(path, json!({ "inputs": "Once", "stream": true }))
                .await;
            assert_eq!(a.content_type, "text/event-stream");
            assert!(operation["responses"]["200"]["content"]["text/event-stream"].is_object());
        }
        // And the statuses a failure can map to, before or after any of these.
        for status in ["404", "422", "429", "500", "502", "503", "504"] {
            assert!(
                operation["responses"][status].is_object(),
                "{path}: {status}"
            );
        }
    }
}
