//! Wick's whole router in process (`Router::oneshot`, no socket, no model):
//! scripted models behind the chat's server functions, its reply stream and
//! every inference API route, over a real SQLite file. Fast, deterministic,
//! and with failures on cue — the model's worker vanishing mid-reply above all.

mod scripted;

use app::api::{
    ContinueReply, ConversationTitle, CopyShared, DeleteAllConversations, DeleteConversation,
    EditMessage, GetConversation, ListConversations, PinConversation, RenameConversation,
    RevokeShare, SaveConversationSettings, SearchConversations, SendMessage, ShareConversation,
    StopReply, SwitchBranch,
};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use inference::scripted::{ScriptedBackend, Step};
use inference::{Failure, Params};
use leptos::server_fn::ServerFn;
use scripted::{keyed, logged, scripted_model, session_cookie, state_over, Scripted, KEY};
use serde_json::{json, Value};
use tower::ServiceExt;
use wick_types::{MessageState, Sent};

/// What the vanishing worker's failure is logged as (by `inference::Generation`).
const VANISHED_DETAIL: &str = "the model's worker stopped without finishing the reply";

struct Wick {
    router: Router,
    backend: ScriptedBackend,
    pool: sqlx::SqlitePool,
    _dir: tempfile::TempDir,
    _one_at_a_time: OneAtATime,
}

/// Held by each test of this file while it runs, so that they run one after
/// the other. Run at once, each on its own runtime (one per test), a
/// server-rendered page hung about 1 run in 15 here (every runtime idle, the
/// page never answered; 0 in 40 runs one at a time, 0 in 40 taking turns).
/// The cause is not found: it may be these separate runtimes, or two pages
/// rendered in parallel, which a server's worker threads also do. Until it
/// is found, these tests take turns rather than fail at random.
type OneAtATime = tokio::sync::MutexGuard<'static, ()>;

async fn one_at_a_time() -> OneAtATime {
    // A tokio lock: it waits without blocking, and a test that panics
    // releases it as it unwinds.
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// A server whose one (local) model plays `script`.
async fn wick(script: Vec<Step>) -> Wick {
    let turn = one_at_a_time().await;
    let (model, backend) = scripted_model(script, Params::default());
    let Scripted { state, pool, dir } = state_over(vec![model], keyed()).await;
    Wick {
        router: server::router(state),
        backend,
        pool,
        _dir: dir,
        _one_at_a_time: turn,
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The `data:` lines of an SSE body, and the `event:` name before each.
    fn sse(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for block in self.body.split("\n\n") {
            let mut name = String::from("message");
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = n.trim().to_owned();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push(d.strip_prefix(' ').unwrap_or(d));
                }
            }
            if !data.is_empty() {
                out.push((name, data.join("\n")));
            }
        }
        out
    }
}

impl Wick {
    async fn request(&self, request: Request<Body>) -> Answer {
        let what = format!(
            "{} {} (cookie {:?})",
            request.method(),
            request.uri(),
            request.headers().get("cookie").map(|c| c.len())
        );
        let response = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            self.router.clone().oneshot(request),
        )
        .await
        .unwrap_or_else(|_| panic!("{what} answers within 20 s"))
        .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            axum::body::to_bytes(response.into_body(), usize::MAX),
        )
        .await
        .expect("the body ends: a stream never ends in silence")
        .unwrap();
        Answer {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    /// Calls a server function as the app's JavaScript does.
    async fn call<F: ServerFn>(&self, cookie: Option<&str>, form: &[(&str, &str)]) -> Answer {
        let mut request = Request::post(F::url())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let body = serde_urlencoded(form);
        self.request(request.body(Body::from(body)).unwrap()).await
    }

    async fn api(&self, path: &str, body: Value) -> Answer {
        self.request(
            Request::post(path)
                .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    /// Starts a conversation; the session cookie and what `send_message` answered.
    async fn send_first(&self, content: &str) -> (String, Sent) {
        let r = self
            .call::<SendMessage>(None, &[("content", content)])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let cookie = session_cookie(&r.headers);
        (cookie, serde_json::from_str(&r.body).unwrap())
    }

    async fn reply_stream(&self, cookie: &str, message_id: &str) -> Answer {
        self.request(
            Request::get(wick_types::reply::stream_url(message_id))
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }
}

fn serde_urlencoded(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn assert_logged(detail: &str) {
    let logs = logged();
    assert!(logs.contains(detail), "the log has the detail: {logs}");
}

fn vanishing() -> Vec<Step> {
    vec![Step::token("Half"), Step::token(" a reply"), Step::Vanish]
}

#[tokio::test]
async fn a_chat_reply_streams_from_what_send_message_answers() {
    let w = wick(vec![Step::token("Hello"), Step::token(" there")]).await;
    let (cookie, sent) = w.send_first("Hi").await;
    assert_eq!(
        sent.user_message.as_ref().map(|m| m.content.as_str()),
        Some("Hi")
    );
    assert_eq!(sent.reply.id, sent.message_id);
    assert_eq!(sent.reply.state, MessageState::Generating);
    let stream = w.reply_stream(&cookie, &sent.message_id).await;
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(stream.headers["x-accel-buffering"], "no");
    assert_eq!(stream.headers[header::CACHE_CONTROL], "no-cache");
    let events = stream.sse();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["token", "token", "end"]);
    let end: Value = serde_json::from_str(&events[2].1).unwrap();
    assert_eq!(
        (end["state"].as_str(), end["finish_reason"].as_str()),
        (Some("done"), Some("eos"))
    );

    // Someone else (no cookie, or another session) cannot attach to it.
    let stranger = w.reply_stream("wick_session=x", &sent.message_id).await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_chat_stream_ends_with_a_failure_when_the_worker_vanishes() {
    let w = wick(vanishing()).await;
    let (cookie, sent) = w.send_first("Tell me").await;
    let events = w.reply_stream(&cookie, &sent.message_id).await.sse();
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "failed");
    let failed: Value = serde_json::from_str(data).unwrap();
    assert_eq!(failed["message"], Failure::INTERNAL_MESSAGE);
    assert_logged(VANISHED_DETAIL);
}

#[tokio::test]
async fn every_api_stream_ends_with_an_error_event_when_the_worker_vanishes() {
    let w = wick(vanishing()).await;
    let chat =
        json!({ "model": "fake", "messages": [{"role": "user", "content": "hi"}], "stream": true });
    let r = w.api("/v1/chat/completions", chat).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-accel-buffering"], "no");
    let events = r.sse();
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let error: Value = serde_json::from_str(&events[events.len() - 2].1).unwrap();
    assert_eq!(
        error["error"]["message"],
        Failure::INTERNAL_MESSAGE,
        "{}",
        r.body
    );
    assert_eq!(error["error"]["type"], "server_error");

    let tgi = json!({ "inputs": "Once", "parameters": { "max_new_tokens": 5 } });
    for path in ["/generate_stream", "/models/fake"] {
        let body = if path == "/models/fake" {
            json!({ "inputs": "Once", "stream": true })
        } else {
            tgi.clone()
        };
        let r = w.api(path, body).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let last: Value = serde_json::from_str(&r.sse().last().unwrap().1).unwrap();
        assert_eq!(
            last["error"],
            Failure::INTERNAL_MESSAGE,
            "{path}: {}",
            r.body
        );
        assert_eq!(last["error_type"], "generation", "{path}");
    }
    assert_logged(VANISHED_DETAIL);
}

#[tokio::test]
async fn every_whole_api_answer_is_a_500_with_a_sentence_when_the_worker_vanishes() {
    let w = wick(vanishing()).await;
    let chat = json!({ "model": "fake", "messages": [{"role": "user", "content": "hi"}] });
    let r = w.api("/v1/chat/completions", chat).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.json()["error"]["message"], Failure::INTERNAL_MESSAGE);
    for path in ["/generate", "/models/fake"] {
        let r = w.api(path, json!({ "inputs": "Once" })).await;
        assert_eq!(
            r.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{path}: {}",
            r.body
        );
        assert_eq!(r.json()["error"], Failure::INTERNAL_MESSAGE, "{path}");
        assert!(
            !r.body.contains("worker"),
            "no internal detail reaches the client: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn the_api_streams_what_the_model_wrote() {
    let w = wick(vec![Step::token("Hi"), Step::token("!")]).await;
    let chat =
        json!({ "model": "fake", "messages": [{"role": "user", "content": "hi"}], "stream": true });
    let events = w.api("/v1/chat/completions", chat).await.sse();
    let text: String = events
        .iter()
        .filter(|(_, d)| d != "[DONE]")
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "Hi!");
    let r = w.api("/generate", json!({ "inputs": "Say" })).await;
    assert_eq!(r.json()["generated_text"], "Hi!");
    assert_eq!(w.backend.requests().len(), 2);
}

#[tokio::test]
async fn two_concurrent_sends_into_one_conversation_start_exactly_one_reply() {
    let w = wick(vec![Step::token("slow"), Step::pause_ms(300)]).await;
    w.backend.push(vec![Step::token("first")]);
    let (cookie, sent) = w.send_first("start").await;
    w.reply_stream(&cookie, &sent.message_id).await;
    let form = |text: &'static str| {
        [
            ("conversation_id", sent.conversation_id.clone()),
            ("content", text.to_owned()),
        ]
    };
    let (a, b) = (form("one"), form("two"));
    let a: Vec<(&str, &str)> = a.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let b: Vec<(&str, &str)> = b.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (ra, rb) = tokio::join!(
        w.call::<SendMessage>(Some(&cookie), &a),
        w.call::<SendMessage>(Some(&cookie), &b),
    );
    let mut statuses = [ra.status, rb.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::BAD_REQUEST],
        "{} / {}",
        ra.body,
        rb.body
    );
    let refused = if ra.status == StatusCode::OK {
        &rb
    } else {
        &ra
    };
    assert!(
        refused.body.contains("still being written"),
        "{}",
        refused.body
    );
    assert_eq!(
        w.backend.requests().len(),
        2,
        "exactly one more reply started"
    );

    // Stop is the owner's only.
    let started: Sent = serde_json::from_str(if ra.status == StatusCode::OK {
        &ra.body
    } else {
        &rb.body
    })
    .unwrap();
    let r = w
        .call::<StopReply>(None, &[("message_id", &started.message_id)])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = w
        .call::<StopReply>(Some(&cookie), &[("message_id", &started.message_id)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn a_session_in_use_slides_and_its_cookie_is_renewed() {
    let w = wick(vec![Step::token("ok")]).await;
    let (cookie, sent) = w.send_first("hello").await;
    w.reply_stream(&cookie, &sent.message_id).await;
    // Used just now: nothing to renew.
    let r = w.call::<ListConversations>(Some(&cookie), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.headers.get(header::SET_COOKIE).is_none());
    // Last seen two hours ago: the session slides and the browser gets its cookie again.
    let two_hours_ago = wick_core::db::now_ms() - 2 * 3_600_000;
    sqlx::query("UPDATE sessions SET last_seen_at = ?")
        .bind(two_hours_ago)
        .execute(&w.pool)
        .await
        .unwrap();
    let r = w.call::<ListConversations>(Some(&cookie), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let renewed = r.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        renewed.starts_with(&format!("{cookie};")),
        "the same session: {renewed}"
    );
    assert!(renewed.contains("Max-Age=31536000"), "{renewed}");
    let seen: i64 = sqlx::query_scalar("SELECT last_seen_at FROM sessions")
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert!(seen > two_hours_ago);
}

/// A `send_message` post as a browser on `site` (its `Sec-Fetch-Site`, or
/// only an `Origin` when `site` is `None`) would send it.
async fn post_from(w: &Wick, cookie: Option<&str>, site: Option<&str>, origin: &str) -> Answer {
    let mut request = Request::post(SendMessage::url())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::HOST, "127.0.0.1:3000")
        .header(header::ORIGIN, origin);
    if let Some(site) = site {
        request = request.header("sec-fetch-site", site);
    }
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    w.request(request.body(Body::from("content=from+elsewhere")).unwrap())
        .await
}

#[tokio::test]
async fn state_changes_from_other_sites_are_refused_and_store_nothing() {
    let w = wick(vec![Step::token("ok")]).await;
    let (cookie, _) = w.send_first("mine").await;
    let cases = [
        (Some("cross-site"), "https://evil.example"),
        // Another port of the same host, a sibling subdomain: same site, other origin.
        (Some("same-site"), "http://127.0.0.1:8080"),
        // An older browser that sends only `Origin`.
        (None, "http://127.0.0.1:8080"),
        (None, "null"),
    ];
    for (site, origin) in cases {
        for cookie in [None, Some(cookie.as_str())] {
            let r = post_from(&w, cookie, site, origin).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{site:?} {origin}: {}",
                r.body
            );
            assert_eq!(r.body, server::protect::CROSS_SITE_MESSAGE);
            assert!(
                r.headers.get(header::SET_COOKIE).is_none(),
                "no session is made or replaced"
            );
        }
    }
    let (users, messages): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM messages)")
            .fetch_one(&w.pool)
            .await
            .unwrap();
    assert_eq!(
        (users, messages),
        (1, 2),
        "only the visitor's own first exchange"
    );

    // The page's own origin, by either header, still works.
    let r = post_from(
        &w,
        Some(&cookie),
        Some("same-origin"),
        "http://127.0.0.1:3000",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = post_from(&w, None, None, "http://127.0.0.1:3000").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let w = wick(vec![Step::token("ok")]).await;
    for path in ["/health", "/v1/models", "/no-such-page"] {
        let r = w
            .request(Request::get(path).body(Body::empty()).unwrap())
            .await;
        let h = |name: &str| {
            r.headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(h("x-frame-options"), "DENY", "{path}");
        assert!(
            h("content-security-policy").contains("frame-ancestors 'none'"),
            "{path}: {}",
            h("content-security-policy")
        );
        assert!(!h("referrer-policy").is_empty(), "{path}");
    }
}

#[tokio::test]
async fn every_page_load_carries_its_own_nonce_policy_and_other_answers_the_strict_one() {
    let w = wick(vec![Step::token("ok")]).await;
    // Many loads in a row: the policy once went missing about one load in fifty.
    for _ in 0..60 {
        let r = w
            .request(Request::get("/").body(Body::empty()).unwrap())
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let policy = r
            .headers
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let nonce = policy
            .split("'nonce-")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap_or_else(|| panic!("no nonce in the page's policy: {policy}"));
        // The same nonce is on the page's scripts, and only that one.
        assert!(r.body.contains(&format!("nonce=\"{nonce}\"")), "{policy}");
        assert_eq!(
            r.body.matches("nonce=\"").count(),
            r.body.matches(&format!("nonce=\"{nonce}\"")).count()
        );
    }
    let r = w
        .request(Request::get("/health").body(Body::empty()).unwrap())
        .await;
    let policy = r
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
}

#[tokio::test]
async fn health_says_when_the_database_cannot_write_and_the_stream_says_the_reply_was_not_saved() {
    let w = wick(vec![Step::token("Hello"), Step::token(" there")]).await;
    let health = w
        .request(Request::get("/health").body(Body::empty()).unwrap())
        .await;
    assert_eq!(health.status, StatusCode::OK);
    // Every write of a message fails from now on, as on a full disk.
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE UPDATE ON messages
         BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END",
    )
    .execute(&w.pool)
    .await
    .unwrap();
    let (cookie, sent) = w.send_first("Hi").await;
    let events = w.reply_stream(&cookie, &sent.message_id).await.sse();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["token", "token", "failed"]);
    assert!(
        events[2].1.contains("could not be saved"),
        "{}",
        events[2].1
    );
    let health = w
        .request(Request::get("/health").body(Body::empty()).unwrap())
        .await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.json()["database"], "cannot write");
}

#[tokio::test]
async fn an_api_token_has_its_own_allowance_of_replies_at_once() {
    let w = wick(vec![Step::token("a"), Step::pause_ms(30_000)]).await;
    let (token, hash) = server::api::auth::new_token();
    wick_core::db::tokens::create_api_token(&w.pool, None, "script", &hash)
        .await
        .unwrap();
    let stream = |bearer: &str| {
        Request::post("/generate_stream")
            .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({ "inputs": "hi" }).to_string()))
            .unwrap()
    };
    // Two streams held open (their replies wait), a third refused.
    let first = w.router.clone().oneshot(stream(&token)).await.unwrap();
    let second = w.router.clone().oneshot(stream(&token)).await.unwrap();
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let third = w.router.clone().oneshot(stream(&token)).await.unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let body = axum::body::to_bytes(third.into_body(), usize::MAX)
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&body).contains("You already have 2 replies"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    // The queue (four places) still takes someone else's request.
    let other = w.router.clone().oneshot(stream(KEY)).await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    drop((first, second, other));
}

/// Issue 13's server functions take a conversation's and a message's ids:
/// another person's (or nobody's) are a 404 for each, and change nothing.
#[tokio::test]
async fn every_branch_and_settings_function_is_the_owners_only() {
    let w = wick(vec![
        Step::token("Answer"),
        Step::Done(inference::FinishReason::Length),
    ])
    .await;
    let (alice, sent) = w.send_first("Alice's question").await;
    w.reply_stream(&alice, &sent.message_id).await;
    let (mallory, theirs) = w.send_first("Mallory's own").await;
    w.reply_stream(&mallory, &theirs.message_id).await;
    let c = sent.conversation_id.as_str();
    let question = sent.user_message.as_ref().unwrap().id.as_str();
    let reply = sent.message_id.as_str();
    let before = w.backend.requests().len();
    let w = &w;
    let view = |cookie: String| async move {
        w.call::<GetConversation>(Some(&cookie), &[("id", c)])
            .await
            .json()
    };
    let alice_saw = view(alice.clone()).await;

    for cookie in [Some(mallory.as_str()), None] {
        let answers = [
            w.call::<EditMessage>(
                cookie,
                &[
                    ("conversation_id", c),
                    ("message_id", question),
                    ("content", "hijacked"),
                ],
            )
            .await,
            w.call::<ContinueReply>(cookie, &[("conversation_id", c), ("message_id", reply)])
                .await,
            w.call::<SwitchBranch>(cookie, &[("conversation_id", c), ("message_id", question)])
                .await,
            w.call::<SaveConversationSettings>(
                cookie,
                &[
                    ("conversation_id", c),
                    ("system_prompt", "obey me"),
                    ("temperature", ""),
                    ("top_p", ""),
                    ("max_new_tokens", ""),
                ],
            )
            .await,
            w.call::<RenameConversation>(cookie, &[("conversation_id", c), ("title", "pwned")])
                .await,
            w.call::<ConversationTitle>(cookie, &[("conversation_id", c)])
                .await,
            // A message of Alice's named in Mallory's own conversation.
            w.call::<SwitchBranch>(
                cookie,
                &[
                    ("conversation_id", &theirs.conversation_id),
                    ("message_id", question),
                ],
            )
            .await,
            w.call::<EditMessage>(
                cookie,
                &[
                    ("conversation_id", &theirs.conversation_id),
                    ("message_id", question),
                    ("content", "x"),
                ],
            )
            .await,
        ];
        for (i, a) in answers.iter().enumerate() {
            assert_eq!(
                a.status,
                StatusCode::NOT_FOUND,
                "call {i} as {cookie:?}: {}",
                a.body
            );
        }
    }
    assert_eq!(w.backend.requests().len(), before, "nothing was generated");
    assert_eq!(
        view(alice.clone()).await,
        alice_saw,
        "Alice's conversation is unchanged"
    );

    // Alice's own calls work, and a bad setting is a 400 that names the bound.
    let bad = w
        .call::<SaveConversationSettings>(
            Some(&alice),
            &[
                ("conversation_id", c),
                ("system_prompt", ""),
                ("temperature", "2.5"),
                ("top_p", ""),
                ("max_new_tokens", ""),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body
            .contains("temperature must be a number from 0 to 2 (got 2.5)"),
        "{}",
        bad.body
    );
    let r = w
        .call::<RenameConversation>(Some(&alice), &[("conversation_id", c), ("title", "Mine")])
        .await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!("Mine")));
    let r = w
        .call::<ContinueReply>(
            Some(&alice),
            &[("conversation_id", c), ("message_id", reply)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Text a person typed into a box comes back in that box as text: Leptos
/// writes a `<textarea>`'s content unescaped, so a system prompt (or a message,
/// in its Edit box) holding `</textarea>` would otherwise end the box and
/// become markup on the conversation page.
#[tokio::test]
async fn text_shown_in_a_box_never_becomes_markup() {
    let w = wick(vec![Step::token("ok")]).await;
    let typed = "</textarea><b id=\"injected\">bold</b><textarea>";
    let (cookie, sent) = w.send_first(typed).await;
    w.reply_stream(&cookie, &sent.message_id).await;
    let c = sent.conversation_id.as_str();
    let r = w
        .call::<SaveConversationSettings>(
            Some(&cookie),
            &[
                ("conversation_id", c),
                ("system_prompt", typed),
                ("temperature", ""),
                ("top_p", ""),
                ("max_new_tokens", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let page = w
        .request(
            Request::get(format!("/c/{c}"))
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<b id=\"injected\">"), "{}", page.body);
    // Both boxes hold the text, escaped: the Edit box and the system prompt.
    assert_eq!(
        page.body
            .matches(
                "&lt;/textarea&gt;&lt;b id=&quot;injected&quot;&gt;bold&lt;/b&gt;&lt;textarea&gt;</textarea>"
            )
            .count(),
        2,
        "{}",
        page.body
    );
}

impl Wick {
    async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        let mut request = Request::get(path);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.request(request.body(Body::empty()).unwrap()).await
    }
}

#[tokio::test]
async fn every_history_function_is_the_owners_only_and_a_revoked_link_is_gone() {
    let w = wick(vec![Step::token("Saffron and "), Step::token("zanzibar")]).await;
    let (alice, sent) = w.send_first("Alice's recipe").await;
    w.reply_stream(&alice, &sent.message_id).await;
    w.backend.push(vec![Step::token("Nothing to see")]);
    let (mallory, theirs) = w.send_first("Mallory's own").await;
    w.reply_stream(&mallory, &theirs.message_id).await;
    let c = sent.conversation_id.as_str();
    let share = w
        .call::<ShareConversation>(Some(&alice), &[("conversation_id", c), ("expiry", "never")])
        .await;
    assert_eq!(share.status, StatusCode::OK, "{}", share.body);
    let link = share.json()["id"].as_str().unwrap().to_owned();

    for cookie in [Some(mallory.as_str()), None] {
        let answers = [
            w.call::<PinConversation>(cookie, &[("conversation_id", c), ("pinned", "true")])
                .await,
            w.call::<ShareConversation>(cookie, &[("conversation_id", c), ("expiry", "never")])
                .await,
            w.call::<RevokeShare>(cookie, &[("share_id", &link)]).await,
            w.call::<DeleteConversation>(cookie, &[("conversation_id", c)])
                .await,
        ];
        for (i, a) in answers.iter().enumerate() {
            assert_eq!(
                a.status,
                StatusCode::NOT_FOUND,
                "call {i} as {cookie:?}: {}",
                a.body
            );
        }
        // Searching finds none of Alice's words; deleting "all" deletes none of hers.
        let found = w
            .call::<SearchConversations>(cookie, &[("q", "zanzibar")])
            .await;
        assert_eq!(found.status, StatusCode::OK);
        assert_eq!(found.json()["hits"], json!([]));
        assert_eq!(
            w.call::<DeleteAllConversations>(cookie, &[]).await.status,
            StatusCode::OK
        );
    }
    let mine = w
        .call::<SearchConversations>(Some(&alice), &[("q", "zanzibar")])
        .await;
    assert_eq!(mine.json()["hits"][0]["conversation_id"], json!(c));

    // The link opens for anyone, without JavaScript: the page is all there,
    // with nobody's sidebar and kept out of search engines.
    let page = w.get(&format!("/s/{link}"), None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Saffron and zanzibar"), "{}", page.body);
    assert!(!page.body.contains(r#"aria-label="Conversations""#));
    assert_eq!(page.headers["x-robots-tag"], "noindex");
    assert!(page
        .body
        .contains(r#"<meta name="robots" content="noindex""#));
    // Continuing it gives a stranger a session and a copy of their own.
    let copied = w.call::<CopyShared>(None, &[("share_id", &link)]).await;
    assert_eq!(copied.status, StatusCode::OK, "{}", copied.body);
    let stranger = session_cookie(&copied.headers);
    let copy = copied.json().as_str().unwrap().to_owned();
    assert_ne!(copy, c);
    assert_eq!(
        w.get(&format!("/c/{copy}"), Some(&stranger)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        w.get(&format!("/c/{copy}"), Some(&alice)).await.status,
        StatusCode::NOT_FOUND
    );

    let revoked = w
        .call::<RevokeShare>(Some(&alice), &[("share_id", &link)])
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert_eq!(
        w.get(&format!("/s/{link}"), None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.call::<CopyShared>(None, &[("share_id", &link)])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Alice's conversation survived it all.
    let view = w.call::<GetConversation>(Some(&alice), &[("id", c)]).await;
    assert_eq!(view.status, StatusCode::OK);
}

#[tokio::test]
async fn the_search_page_works_without_javascript_and_marks_the_words() {
    let w = wick(vec![Step::token("The keeper trims the wick")]).await;
    let (alice, sent) = w.send_first("Lighthouse chores").await;
    w.reply_stream(&alice, &sent.message_id).await;
    let page = w.get("/search?q=wick", Some(&alice)).await;
    assert_eq!(page.status, StatusCode::OK);
    // (Leptos may put an empty comment, `<!>`, before the closing tag.)
    assert!(page.body.contains("<mark>wick<"), "{}", page.body);
    let at = format!(
        "/c/{}?at={}#m-{}",
        sent.conversation_id, sent.message_id, sent.message_id
    );
    assert!(page.body.contains(&at), "{}", page.body);
    for q in ["%22", "NEAR(", "*", "AND", "%22unclosed"] {
        let page = w.get(&format!("/search?q={q}"), Some(&alice)).await;
        assert_eq!(page.status, StatusCode::OK, "{q}");
        assert!(
            page.body.contains("No conversation matches"),
            "{q}: {}",
            page.body
        );
    }
}

/// Pages rendered at once on a server's worker threads each get their own
/// title: a response is finished (its `<title>` read) on whichever thread
/// polls it then. Before the title was kept out of the page's arena, about 1
/// load in 20 of a conversation page panicked there ("a reactive value that
/// has already been disposed") and the connection dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_rendered_at_once_on_several_threads_all_answer_with_their_title() {
    let w = wick(vec![Step::token("Fennel")]).await;
    let (alice, sent) = w.send_first("Garden notes").await;
    w.reply_stream(&alice, &sent.message_id).await;
    let paths = [
        format!("/c/{}", sent.conversation_id),
        "/search?q=fennel".to_owned(),
    ];
    let mut loads = tokio::task::JoinSet::new();
    for i in 0..400 {
        let request = Request::get(&paths[i % 2])
            .header("cookie", &alice)
            .body(Body::empty())
            .unwrap();
        let router = w.router.clone();
        loads.spawn(async move {
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (i, status, String::from_utf8(body.to_vec()).unwrap())
        });
    }
    let mut answered = 0;
    while let Some(load) = loads.join_next().await {
        let (i, status, body) = load.expect("the load neither panics nor is lost");
        assert_eq!(status, StatusCode::OK, "{body}");
        let title = if i % 2 == 0 {
            "<title>Garden notes"
        } else {
            "<title>Search: fennel"
        };
        assert!(body.contains(title), "load {i}: {body}");
        answered += 1;
    }
    assert_eq!(answered, 400);
}

#[tokio::test]
async fn with_sharing_off_no_link_is_made_or_opened() {
    let turn = one_at_a_time().await;
    let (model, _backend) = scripted_model(vec![Step::token("ok")], Params::default());
    let Scripted { state, pool, dir } = state_over(vec![model], keyed()).await;
    let on = Wick {
        router: server::router(state.clone()),
        backend: _backend.clone(),
        pool: pool.clone(),
        _dir: dir,
        _one_at_a_time: turn,
    };
    let (alice, sent) = on.send_first("Share me").await;
    on.reply_stream(&alice, &sent.message_id).await;
    let c = sent.conversation_id.as_str();
    let made = on
        .call::<ShareConversation>(Some(&alice), &[("conversation_id", c), ("expiry", "1d")])
        .await;
    let link = made.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        on.get(&format!("/s/{link}"), None).await.status,
        StatusCode::OK
    );

    let off_router = server::router(state.with_sharing(false));
    let off = |request: Request<Body>| {
        let router = off_router.clone();
        async move { router.oneshot(request).await.unwrap().status() }
    };
    let form = format!("conversation_id={c}&expiry=1d");
    let refused = off(Request::post(ShareConversation::url())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, &alice)
        .body(Body::from(form))
        .unwrap())
    .await;
    assert_eq!(refused, StatusCode::BAD_REQUEST);
    let opened = off(Request::get(format!("/s/{link}"))
        .body(Body::empty())
        .unwrap())
    .await;
    assert_eq!(opened, StatusCode::NOT_FOUND);
}
