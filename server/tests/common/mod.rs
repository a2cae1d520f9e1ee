//! A real `wick` process on a loopback port with its own SQLite file and the
//! real model, and the ways the tests talk to it: as a browser without
//! JavaScript (form posts, redirects), as the app's own JavaScript (server
//! functions answering JSON), and as an SSE client.
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use app::api::SendMessage;
use futures::StreamExt;
use leptos::server_fn::ServerFn;
use reqwest::header::ACCEPT;
use reqwest::redirect::Policy;

pub struct TestServer {
    pub base: String,
    pub db_url: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Child,
    /// Where its stderr (the log) goes, when it is kept (`start_logged`).
    pub log: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn model_path() -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `make model` first",
        path.display()
    );
    path
}

/// Starts `wick` with `extra` flags; returns once it answers.
pub async fn start_with(extra: &[&str]) -> TestServer {
    start_with_env(extra, &[]).await
}

/// Starts `wick` with `extra` flags and environment variables.
pub async fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> TestServer {
    start_inner(extra, env, false).await
}

/// Starts `wick` with its log (stderr) kept in a file, `TestServer::log`.
pub async fn start_logged(extra: &[&str], env: &[(&str, &str)]) -> TestServer {
    start_inner(extra, env, true).await
}

async fn start_inner(extra: &[&str], env: &[(&str, &str)], keep_log: bool) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let log = keep_log.then(|| dir.path().join("wick.log"));
    let db_url = format!("sqlite://{}/wick.db", dir.path().display());
    let mut args: Vec<String> = vec![
        "--addr".into(),
        "127.0.0.1:0".into(),
        "--database-url".into(),
        db_url.clone(),
        "--model".into(),
        model_path().display().to_string(),
    ];
    // Warnings only, unless the test asks for more (`WICK_LOG`).
    if !env.iter().any(|(k, _)| *k == "WICK_LOG") {
        args.extend(["--log".into(), "warn".into()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (child, base) = spawn(&args, &env, log.as_deref()).await;
    TestServer {
        base,
        db_url,
        args,
        env,
        child,
        log,
        _dir: dir,
    }
}

async fn spawn(
    args: &[String],
    env: &[(String, String)],
    log: Option<&std::path::Path>,
) -> (Child, String) {
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
        None => Stdio::inherit(),
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_wick"))
        .args(args)
        .envs(env.iter().cloned())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start wick");
    // The server announces the address it bound once it is ready to answer.
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let base = line
        .trim()
        .rsplit(' ')
        .next()
        .filter(|u| u.starts_with("http://"))
        .unwrap_or_else(|| panic!("unexpected first line from wick: {line:?}"))
        .to_owned();
    (child, base)
}

impl TestServer {
    /// Kills the process without warning (SIGKILL: no shutdown code runs) and
    /// starts a new one on the same database.
    pub async fn kill_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let (child, base) = spawn(&self.args, &self.env, None).await;
        self.child = child;
        self.base = base;
    }

    /// Sends SIGTERM (what systemd and `docker stop` send) and waits for the
    /// process to exit; whether it exited successfully.
    pub async fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "wick still runs a minute after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Runs `wick ARGS` (e.g. `token create`) on the server's database; its stdout.
pub fn wick_cli(s: &TestServer, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_wick"))
        .args(args)
        .args(["--database-url", &s.db_url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "wick {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The server with short replies: the tests here are about pages, not streams.
pub async fn start() -> TestServer {
    start_with(&["--max-new-tokens", "8"]).await
}

/// A browser without JavaScript: keeps cookies, does not follow redirects (so they can be checked).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// Posts the composer form the way a browser without JavaScript does, from `page`.
pub async fn send(
    client: &reqwest::Client,
    s: &TestServer,
    page: &str,
    conversation: Option<&str>,
    content: &str,
) -> reqwest::Response {
    let mut form = vec![("content", content)];
    if let Some(c) = conversation {
        form.push(("conversation_id", c));
    }
    client
        .post(format!("{}{}", s.base, SendMessage::url()))
        .header(ACCEPT, "text/html,application/xhtml+xml")
        .header("Referer", format!("{}{page}", s.base))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// Calls server function `F` the way the app's JavaScript does (a form-encoded
/// POST answered with JSON).
pub async fn call<F: ServerFn>(
    client: &reqwest::Client,
    s: &TestServer,
    form: &[(&str, &str)],
) -> reqwest::Response {
    client
        .post(format!("{}{}", s.base, F::url()))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// The HTML of `path`, as `client` sees it.
pub async fn page(client: &reqwest::Client, s: &TestServer, path: &str) -> String {
    let r = client
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .unwrap();
    r.text().await.unwrap()
}

/// Reads a number straight from the server's database file.
pub async fn count(s: &TestServer, sql: &str) -> i64 {
    use sqlx::Connection;
    let mut db = sqlx::SqliteConnection::connect(&s.db_url).await.unwrap();
    let n = sqlx::query_scalar(sql).fetch_one(&mut db).await.unwrap();
    db.close().await.unwrap();
    n
}

/// A stored message: (content, state, finish_reason, error).
pub async fn stored(s: &TestServer, id: &str) -> (String, String, Option<String>, Option<String>) {
    use sqlx::Connection;
    let mut db = sqlx::SqliteConnection::connect(&s.db_url).await.unwrap();
    let row =
        sqlx::query_as("SELECT content, state, finish_reason, error FROM messages WHERE id = ?")
            .bind(id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    db.close().await.unwrap();
    row
}

/// Waits (up to two minutes) until no reply is generating.
pub async fn replies_finished(s: &TestServer) {
    for _ in 0..1200 {
        if count(
            s,
            "SELECT count(*) FROM messages WHERE state = 'generating'",
        )
        .await
            == 0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("replies were still generating after two minutes");
}

/// One Server-Sent Event as received.
#[derive(Debug, Clone)]
pub struct Sse {
    pub id: u64,
    pub event: String,
    pub data: serde_json::Value,
}

/// The events of an open `text/event-stream` response, parsed by a client
/// library nobody here wrote.
pub fn sse_events(response: reqwest::Response) -> impl futures::Stream<Item = Sse> + Unpin {
    use eventsource_stream::Eventsource;
    Box::pin(response.bytes_stream().eventsource().map(|e| {
        let e = e.expect("a well-formed event stream");
        Sse {
            id: e.id.parse().expect("numeric event ids"),
            event: e.event,
            data: serde_json::from_str(&e.data).expect("JSON event data"),
        }
    }))
}

/// The text of a reply's `token` events.
pub fn text_of(events: &[Sse]) -> String {
    events
        .iter()
        .filter(|e| e.event == "token")
        .map(|e| e.data["text"].as_str().unwrap())
        .collect()
}
