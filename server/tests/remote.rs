//! Remote models end to end: a `wick` whose models file lists remote servers,
//! chatting through them as a browser's JavaScript does.
//!
//! The real servers here are a second `wick` serving its local model through
//! its own `/v1/chat/completions`, `/generate_stream` and `/models/{id}`, and
//! llama.cpp's server when it has been built (`scripts/build-llama-cpp.sh`).
//! What no real server does on demand (429, 503 while loading, a cut stream,
//! vLLM's flat errors, silence) comes from a stand-in that writes the exact
//! bytes those servers write.

mod common;
#[path = "../../inference/tests/support/stand_in.rs"]
mod stand_in;

use std::path::PathBuf;
use std::time::Duration;

use app::api::{GetConversation, RetryReply, SendMessage, SetConversationModel, StopReply};
use app::data::{ConversationView, Sent};
use common::{
    call, model_path, page, sse_events, start_with, start_with_env, text_of, Sse, TestServer,
};
use futures::StreamExt;
use reqwest::StatusCode;
use stand_in::{End, Reply, StandIn};

const UPSTREAM_KEY: &str = "upstream-secret-1";
const QUESTION: &str = "Name three colors.";
/// The id the upstream `wick` gives its model: the file's name.
const UPSTREAM_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

/// A TOML string, quoted and escaped.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Writes `text` as a models file in a directory that lives as long as the result.
fn models_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// A `wick` with the models of `toml`, greedy, short replies, and the upstream key.
async fn downstream(toml: &str, env: &[(&str, &str)]) -> (TestServer, tempfile::TempDir) {
    let (dir, path) = models_file(toml);
    let path = path.display().to_string();
    let mut all_env = vec![("UPSTREAM_KEY", UPSTREAM_KEY)];
    all_env.extend_from_slice(env);
    let server = start_with_env(
        &[
            "--models",
            &path,
            "--temperature",
            "0",
            "--max-new-tokens",
            "24",
        ],
        &all_env,
    )
    .await;
    (server, dir)
}

async fn send(c: &reqwest::Client, s: &TestServer, model: &str, content: &str) -> Sent {
    let r = call::<SendMessage>(c, s, &[("content", content), ("model", model)]).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

/// Every event of a reply's stream, up to its final one.
async fn stream_of(c: &reqwest::Client, s: &TestServer, message_id: &str) -> Vec<Sse> {
    let r = c
        .get(format!(
            "{}{}",
            s.base,
            wick_types::reply::stream_url(message_id)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut events = sse_events(r);
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(e) = events.next().await {
            let last = e.event != "token";
            out.push(e);
            if last {
                break;
            }
        }
    })
    .await
    .expect("the stream went quiet for two minutes");
    out
}

/// A stored message: (content, state, finish_reason, error, model).
async fn stored(
    s: &TestServer,
    id: &str,
) -> (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
) {
    use sqlx::Connection;
    let mut db = sqlx::SqliteConnection::connect(&s.db_url).await.unwrap();
    let row = sqlx::query_as(
        "SELECT content, state, finish_reason, error, model FROM messages WHERE id = ?",
    )
    .bind(id)
    .fetch_one(&mut db)
    .await
    .unwrap();
    db.close().await.unwrap();
    row
}

async fn retry(c: &reqwest::Client, s: &TestServer, conversation: &str, message: &str) -> Sent {
    let r = call::<RetryReply>(
        c,
        s,
        &[("conversation_id", conversation), ("message_id", message)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

async fn switch(c: &reqwest::Client, s: &TestServer, conversation: &str, model: &str) {
    let r =
        call::<SetConversationModel>(c, s, &[("conversation_id", conversation), ("model", model)])
            .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn a_conversation_switches_between_the_local_model_and_remote_ones() {
    let upstream = start_with(&["--api-key", UPSTREAM_KEY]).await;
    let model = model_path().display().to_string();
    // The TGI routes take a rendered prompt: render it with the model's own template.
    let template = inference::gguf::chat_template(&model_path())
        .unwrap()
        .expect("SmolLM2 carries a chat template");
    let up = &upstream.base;
    let toml = format!(
        r#"
        [[models]]
        id = "here"
        name = "SmolLM2 on this server"
        backend = "local"
        path = {model}
        # The OpenAI and TGI routes apply no repetition penalty by default.
        [models.parameters]
        repetition_penalty = 1.0

        [[models]]
        id = "up-openai"
        name = "SmolLM2 upstream, OpenAI API"
        backend = "openai"
        url = "{up}/v1"
        model = "{UPSTREAM_MODEL}"
        api_key_env = "UPSTREAM_KEY"

        [[models]]
        id = "up-tgi"
        name = "SmolLM2 upstream, TGI"
        backend = "tgi"
        url = "{up}"
        api_key_env = "UPSTREAM_KEY"
        chat_template = {template}

        [[models]]
        id = "up-hf"
        name = "SmolLM2 upstream, Inference API"
        backend = "tgi"
        url = "{up}"
        model = "{UPSTREAM_MODEL}"
        api_key_env = "UPSTREAM_KEY"
        chat_template = {template}
        "#,
        model = quoted(&model),
        template = quoted(&template),
    );
    let (s, _dir) = downstream(&toml, &[]).await;
    let me = client();

    // The local model first; greedy, so every backend must write the same words.
    let first = send(&me, &s, "here", QUESTION).await;
    let local = stream_of(&me, &s, &first.message_id).await;
    let text = text_of(&local);
    assert!(!text.trim().is_empty());
    assert_eq!(local.last().unwrap().event, "end");
    let (_, _, local_finish, _, local_model) = stored(&s, &first.message_id).await;
    assert_eq!(local_model.as_deref(), Some("here"));

    // Switch the conversation to the upstream server and ask again: same model, same words.
    let conversation = first.conversation_id.clone();
    let mut last = first.message_id.clone();
    for remote in ["up-openai", "up-tgi"] {
        switch(&me, &s, &conversation, remote).await;
        let again = retry(&me, &s, &conversation, &last).await;
        let events = stream_of(&me, &s, &again.message_id).await;
        assert_eq!(events.last().unwrap().event, "end", "{remote}: {events:?}");
        assert!(events.len() > 3, "{remote}: the reply streamed in pieces");
        assert_eq!(text_of(&events), text, "{remote}");
        let (content, state, finish, _, model) = stored(&s, &again.message_id).await;
        assert_eq!(
            (content.as_str(), state.as_str()),
            (text.as_str(), "done"),
            "{remote}"
        );
        assert_eq!(finish, local_finish, "{remote}");
        assert_eq!(model.as_deref(), Some(remote));
        last = again.message_id;
    }

    // The Inference API form, chosen when starting a conversation.
    let hf = send(&me, &s, "up-hf", QUESTION).await;
    assert_eq!(text_of(&stream_of(&me, &s, &hf.message_id).await), text);

    // The conversation remembers its model; each reply shows who wrote it.
    let r = call::<GetConversation>(&me, &s, &[("id", &conversation)]).await;
    let view: ConversationView = r.json().await.unwrap();
    assert_eq!(view.model, "up-tgi");
    assert_eq!(view.models.len(), 4);
    assert_eq!(
        view.messages.last().unwrap().model.as_deref(),
        Some("SmolLM2 upstream, TGI")
    );
    let html = page(&me, &s, &format!("/c/{conversation}")).await;
    assert!(html.contains("SmolLM2 upstream, TGI"), "{html}");
    assert!(html.contains(r#"<option value="up-openai""#), "{html}");
    // The key never reaches the database.
    let keys = common::count(
        &s,
        &format!("SELECT count(*) FROM messages WHERE content LIKE '%{UPSTREAM_KEY}%' OR error LIKE '%{UPSTREAM_KEY}%'"),
    )
    .await;
    assert_eq!(keys, 0);
}

/// A stand-in's OpenAI event carrying `text`.
fn delta(text: &str) -> String {
    format!(
        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}},\"finish_reason\":null}}]}}\n\n",
        serde_json::Value::String(text.into())
    )
}

fn openai_entry(id: &str, url: &str, extra: &str) -> String {
    format!(
        "[[models]]\nid = \"{id}\"\nbackend = \"openai\"\nurl = \"{url}\"\nmodel = \"org/model\"\n{extra}\n"
    )
}

#[tokio::test]
async fn remote_failures_show_clear_messages_and_keep_the_text() {
    let upstream = start_with(&["--api-key", UPSTREAM_KEY]).await;
    let cut_then_whole = StandIn::start(vec![
        Reply::events("text/event-stream", &[&delta("The first"), &delta(" half")])
            .ending(End::Cut),
        Reply::events(
            "text/event-stream",
            &[
                &delta("Second try."),
                "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
                "data: [DONE]\n\n",
            ],
        ),
    ])
    .await;
    let limited = StandIn::start(vec![Reply::json(
        "429 Too Many Requests",
        r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
    )
    .header("retry-after", "30")])
    .await;
    let loading = StandIn::start(vec![
        Reply::json("503 Service Unavailable", r#"{"error":"Model org/model is currently loading","estimated_time":0.3}"#),
        Reply::events(
            "text/event-stream",
            &[
                "data:{\"index\":1,\"token\":{\"id\":1,\"text\":\"Loaded\",\"logprob\":-0.1,\"special\":false},\"generated_text\":null,\"details\":null}\n\n",
                "data:{\"index\":2,\"token\":{\"id\":2,\"text\":\"</s>\",\"logprob\":0.0,\"special\":true},\"generated_text\":\"Loaded\",\"details\":{\"finish_reason\":\"eos_token\",\"generated_tokens\":2,\"seed\":null}}\n\n",
            ],
        ),
    ])
    .await;
    let flat = StandIn::start(vec![Reply::events(
        "text/event-stream",
        &[&delta("Partial"), "data: {\"object\":\"error\",\"message\":\"The engine ran out of memory\",\"type\":\"InternalServerError\",\"param\":null,\"code\":500}\n\n"],
    )])
    .await;
    let silent = StandIn::start(vec![
        Reply::events("text/event-stream", &[&delta("Hello")]).ending(End::Hang)
    ])
    .await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let up = &upstream.base;
    let toml = [
        openai_entry("cut", &format!("{}/v1", cut_then_whole.url), ""),
        openai_entry("limited", &format!("{}/v1", limited.url), ""),
        format!("[[models]]\nid = \"loading\"\nbackend = \"tgi\"\nurl = \"{}\"\n", loading.url),
        openai_entry("flat", &format!("{}/v1", flat.url), ""),
        openai_entry("silent", &format!("{}/v1", silent.url), "idle_timeout_secs = 0.5"),
        openai_entry("gone", &format!("http://127.0.0.1:{closed}/v1"), ""),
        openai_entry("bad-key", &format!("{up}/v1"), "api_key_env = \"WRONG_KEY\""),
        format!("[[models]]\nid = \"no-model\"\nbackend = \"openai\"\nurl = \"{up}/v1\"\nmodel = \"no/such-model\"\napi_key_env = \"UPSTREAM_KEY\"\n"),
    ]
    .join("\n");
    let (s, _dir) = downstream(&toml, &[("WRONG_KEY", "not-the-key")]).await;
    let me = client();

    let cases = [
        ("cut", "The first half", "lost before the reply finished"),
        (
            "limited",
            "",
            "limiting requests (HTTP 429). Try again in 30 s",
        ),
        (
            "flat",
            "Partial",
            "reported an error while writing the reply",
        ),
        ("silent", "Hello", "sent nothing for 0.5 s"),
        ("gone", "", "Could not connect to the model server"),
        ("bad-key", "", "HTTP 401"),
        ("no-model", "", "does not know this model (HTTP 404)"),
    ];
    let mut cut_reply = None;
    for (model, kept, words) in cases {
        let sent = send(&me, &s, model, QUESTION).await;
        if model == "cut" {
            cut_reply = Some((sent.conversation_id.clone(), sent.message_id.clone()));
        }
        let events = stream_of(&me, &s, &sent.message_id).await;
        let last = events.last().unwrap();
        assert_eq!(last.event, "failed", "{model}: {events:?}");
        let message = last.data["message"].as_str().unwrap();
        assert!(message.contains(words), "{model}: {message}");
        // The server's own words, its address and the key's variable stay in the log.
        for leak in [
            "Rate limit reached",
            "engine",
            "no/such-model",
            "WRONG_KEY",
            "127.0.0.1",
        ] {
            assert!(!message.contains(leak), "{model}: {leak} in {message}");
        }
        assert_eq!(text_of(&events), kept, "{model}");
        // Stored with the text received so far and the message.
        let (content, state, finish, error, _) = stored(&s, &sent.message_id).await;
        assert_eq!(
            (content.as_str(), state.as_str()),
            (kept, "error"),
            "{model}"
        );
        assert_eq!(finish.as_deref(), Some("error"));
        assert_eq!(error.as_deref(), Some(message));
    }
    // The refused key is neither shown nor named (its variable is in the log).
    let sent = send(&me, &s, "bad-key", QUESTION).await;
    let events = stream_of(&me, &s, &sent.message_id).await;
    let message = events.last().unwrap().data["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("refused Wick's API key")
            && !message.contains("WRONG_KEY")
            && !message.contains("not-the-key"),
        "{message}"
    );

    // A model that was loading is waited for.
    let sent = send(&me, &s, "loading", QUESTION).await;
    let events = stream_of(&me, &s, &sent.message_id).await;
    assert_eq!(
        (
            text_of(&events).as_str(),
            events.last().unwrap().event.as_str()
        ),
        ("Loaded", "end")
    );
    assert_eq!(replies_asked(&loading), 2);

    // After the cut, Retry asks again; the failed reply stays, as a branch.
    let (conversation, cut) = cut_reply.expect("the cut case ran");
    let again = retry(&me, &s, &conversation, &cut).await;
    let events = stream_of(&me, &s, &again.message_id).await;
    assert_eq!(text_of(&events), "Second try.");
    assert_eq!(events.last().unwrap().event, "end");
    assert_eq!(replies_asked(&cut_then_whole), 2);
    let (content, state, ..) = stored(&s, &cut).await;
    assert_eq!(
        (content.as_str(), state.as_str()),
        ("The first half", "error")
    );
}

#[tokio::test]
async fn stop_drops_the_upstream_request() {
    let server = StandIn::start(vec![Reply::events(
        "text/event-stream",
        &[&delta("Once upon")],
    )
    .ending(End::Hang)])
    .await;
    let (s, _dir) = downstream(
        &openai_entry("slow", &format!("{}/v1", server.url), ""),
        &[],
    )
    .await;
    let me = client();
    let sent = send(&me, &s, "slow", "Tell me a story.").await;
    let r = me
        .get(format!(
            "{}{}",
            s.base,
            wick_types::reply::stream_url(&sent.message_id)
        ))
        .send()
        .await
        .unwrap();
    let mut events = sse_events(r);
    let first = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.data["text"], "Once upon");
    let r = call::<StopReply>(&me, &s, &[("message_id", &sent.message_id)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let end = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (end.event.as_str(), end.data["finish_reason"].as_str()),
        ("end", Some("stopped"))
    );
    let (content, state, finish, ..) = stored(&s, &sent.message_id).await;
    assert_eq!(
        (content.as_str(), state.as_str(), finish.as_deref()),
        ("Once upon", "done", Some("stopped"))
    );
    for _ in 0..50 {
        if server.client_left() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the upstream connection was still open 5 s after Stop");
}

/// `wick` with `--models FILE` (and `env`): its exit status and stderr.
fn start_fails(toml: &str, env: &[(&str, &str)]) -> String {
    let (_dir, path) = models_file(toml);
    let db = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wick"))
        .args(["--addr", "127.0.0.1:0", "--models"])
        .arg(&path)
        .arg("--database-url")
        .arg(format!("sqlite://{}/wick.db", db.path().display()))
        .envs(env.iter().copied())
        .env_remove("HF_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success(), "wick started with {toml}");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn invalid_models_files_stop_start_up_naming_the_entry_and_field() {
    let ok = "[[models]]\nid = \"a\"\nbackend = \"openai\"\nurl = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n";
    let err = start_fails(
        &format!("{ok}[[models]]\nid = \"b\"\nbackend = \"openai\"\nmodel = \"m\"\n"),
        &[],
    );
    assert!(
        err.contains("models[1] (id \"b\"): field `url` is required"),
        "{err}"
    );
    let err = start_fails(&format!("{ok}api_key_env = \"HF_TOKEN\"\n"), &[]);
    assert!(
        err.contains("models[0] (id \"a\")") && err.contains("HF_TOKEN, which is not set"),
        "{err}"
    );
    let err = start_fails(
        "[[models]]\nid = \"x\"\nbackend = \"local\"\npath = \"/nowhere/m.gguf\"\n",
        &[],
    );
    assert!(
        err.contains("models[0] (id \"x\")") && err.contains("/nowhere/m.gguf"),
        "{err}"
    );
    let err = start_fails("[[models]\nid = 1", &[]);
    assert!(err.contains("models file"), "{err}");
}

/// A child process that is killed (and reaped) however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// llama.cpp's own server, when `scripts/build-llama-cpp.sh` has built it
/// (`make bench` does); otherwise this says so and checks nothing else.
#[tokio::test]
async fn llama_cpp_server_as_an_openai_backend() {
    let bin = std::env::var("WICK_LLAMA_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/wick/llama.cpp-0.3.36/src/vendor/llama.cpp/BUILD/bin/llama-server")
        });
    let required = std::env::var_os("WICK_LLAMA_SERVER").is_some();
    assert!(
        bin.exists() || !required,
        "WICK_LLAMA_SERVER names {}, which does not exist",
        bin.display()
    );
    if !bin.exists() {
        eprintln!(
            "llama.cpp's server is not built ({} is missing): run scripts/build-llama-cpp.sh to include it",
            bin.display()
        );
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _llama = KillOnDrop(
        std::process::Command::new(&bin)
            .args([
                "-m",
                &model_path().display().to_string(),
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "-t",
                "2",
                "-c",
                "2048",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(r) = reqwest::get(format!("{base}/health")).await {
            if r.status().is_success() {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "llama-server did not become ready");
    let (s, _dir) = downstream(&openai_entry("llama", &format!("{base}/v1"), ""), &[]).await;
    let me = client();
    let sent = send(&me, &s, "llama", QUESTION).await;
    let events = stream_of(&me, &s, &sent.message_id).await;
    assert_eq!(events.last().unwrap().event, "end", "{events:?}");
    assert!(
        events.len() > 3 && !text_of(&events).trim().is_empty(),
        "{events:?}"
    );
    let (content, state, ..) = stored(&s, &sent.message_id).await;
    assert_eq!((content, state.as_str()), (text_of(&events), "done"));
    eprintln!(
        "llama-server's reply, streamed through wick: {:?}",
        text_of(&events)
    );
}

/// The requests a stand-in got for replies: after a conversation's first good
/// reply, Wick also asks the model for a title, in the background.
fn replies_asked(stand_in: &StandIn) -> usize {
    stand_in
        .requests()
        .iter()
        .filter(|(_, body)| !body.contains("Write a title of at most six words"))
        .count()
}
