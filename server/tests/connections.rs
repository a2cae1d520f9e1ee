//! How the real server (`server::serve` on a socket, in process, over a
//! scripted model) treats connections: half-sent headers and idle connections
//! are closed after the header timeout, the connection cap makes newcomers
//! wait until slow connections are cut, streams outlive the timeout, and
//! shutdown still ends open streams. Timeouts are 1 s here, so each test takes
//! a second or three.

mod scripted;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use app::api::SendMessage;
use inference::scripted::Step;
use inference::Params;
use leptos::server_fn::ServerFn;
use scripted::{keyed, scripted_model, session_cookie, state_over, Scripted, KEY};
use server::listen::ConnectionLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// The header timeout under test.
const TIMEOUT: Duration = Duration::from_secs(1);
/// How long a test waits for what should happen after `TIMEOUT` before it
/// says it did not happen (never a bound on how fast it happens).
const GIVE_UP: Duration = Duration::from_secs(15);

struct Wick {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<Result<(), server::ServerError>>,
    _dir: tempfile::TempDir,
}

/// Wick on 127.0.0.1 (a free port) under `limits`; its one model plays `script`.
async fn wick(limits: ConnectionLimits, script: Vec<Step>) -> Wick {
    let (model, _) = scripted_model(script, Params::default());
    let Scripted { state, dir, .. } = state_over(vec![model], keyed()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(server::serve(listener, state, limits, async move {
        let _ = stopped.await;
    }));
    Wick {
        addr,
        stop: Some(stop),
        served,
        _dir: dir,
    }
}

fn limits(max_connections: usize) -> ConnectionLimits {
    ConnectionLimits {
        header_timeout: TIMEOUT,
        max_connections,
        shutdown_grace: TIMEOUT,
    }
}

impl Wick {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A connection that has sent `bytes` and nothing more.
    async fn connect(&self, bytes: &str) -> TcpStream {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(bytes.as_bytes()).await.unwrap();
        stream
    }

    /// Stops the server as Ctrl-C does and waits for `serve` to return.
    async fn shut_down(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(GIVE_UP, &mut self.served)
            .await
            .expect("serve returns after the shutdown signal")
            .unwrap()
            .unwrap();
    }
}

/// Reads until the server closes the connection (EOF or a reset) and returns
/// what it sent; panics if the connection is still open after `GIVE_UP`.
async fn until_closed(mut stream: TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let closing = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(GIVE_UP, closing)
        .await
        .unwrap_or_else(|_| panic!("the server still holds the connection after {GIVE_UP:?}"));
    String::from_utf8_lossy(&received).into_owned()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(GIVE_UP).build().unwrap()
}

#[tokio::test]
async fn a_connection_that_sends_half_a_header_is_closed_after_the_header_timeout() {
    let w = wick(limits(64), vec![]).await;
    let slow = w
        .connect("GET /health HTTP/1.1\r\nHost: wick\r\nX-Slow: a")
        .await;
    let answer = until_closed(slow).await;
    assert!(
        !answer.contains("200 OK"),
        "a request whose headers never ended is not answered: {answer}"
    );
    // The server itself is fine.
    let health = client().get(w.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    w.shut_down().await;
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_header_timeout() {
    let w = wick(limits(64), vec![]).await;
    // One that never says anything…
    let silent = w.connect("").await;
    // …and one kept alive after its answer.
    let mut kept = w
        .connect("GET /health HTTP/1.1\r\nHost: wick\r\n\r\n")
        .await;
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    until_closed(silent).await;
    until_closed(kept).await;
    w.shut_down().await;
}

#[tokio::test]
async fn at_the_connection_cap_health_answers_once_slow_connections_are_cut() {
    const CAP: usize = 4;
    let w = wick(limits(CAP), vec![]).await;
    let mut slow = Vec::new();
    for i in 0..CAP {
        let stream = w
            .connect(&format!(
                "GET /health HTTP/1.1\r\nHost: wick\r\nX-Slow-{i}: "
            ))
            .await;
        slow.push(tokio::spawn(async move {
            until_closed(stream).await;
            Instant::now()
        }));
    }
    // The cap is reached: this one waits for a place.
    let health = client().get(w.url("/health")).send().await.unwrap();
    let answered = Instant::now();
    assert_eq!(health.status(), 200);
    let mut first_cut = None::<Instant>;
    for handle in slow {
        let cut = handle.await.unwrap();
        first_cut = Some(first_cut.map_or(cut, |c| c.min(cut)));
    }
    assert!(
        answered >= first_cut.unwrap(),
        "with {CAP} connections open, a new one waits until one is closed"
    );
    w.shut_down().await;
}

/// A model that writes "Hello", thinks for twice the header timeout, then " there".
fn slow_reply() -> Vec<Step> {
    vec![
        Step::token("Hello"),
        Step::Pause(TIMEOUT * 2),
        Step::token(" there"),
    ]
}

impl Wick {
    /// Sends a first message as the app does and opens its reply's stream.
    async fn chat_stream(&self) -> reqwest::Response {
        let client = client();
        let sent = client
            .post(self.url(SendMessage::url()))
            .form(&[("content", "Hi")])
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 200);
        let cookie = session_cookie(sent.headers());
        let sent: wick_types::Sent = sent.json().await.unwrap();
        let stream = client
            .get(self.url(&wick_types::reply::stream_url(&sent.message_id)))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), 200);
        stream
    }
}

#[tokio::test]
async fn a_reply_stream_stays_open_past_the_header_timeout() {
    let w = wick(limits(64), slow_reply()).await;
    let started = Instant::now();
    let stream = w.chat_stream().await;
    let body = stream.text().await.unwrap();
    assert!(
        started.elapsed() > TIMEOUT,
        "the reply outlived the timeout"
    );
    assert!(body.contains("Hello") && body.contains("there"), "{body}");
    assert!(
        body.contains("event: end"),
        "the stream ran to its end: {body}"
    );
    w.shut_down().await;
}

#[tokio::test]
async fn an_api_stream_stays_open_past_the_header_timeout() {
    let w = wick(limits(64), slow_reply()).await;
    let started = Instant::now();
    let stream = client()
        .post(w.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({
            "model": "fake",
            "messages": [{ "role": "user", "content": "Hi" }],
            "stream": true,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let body = stream.text().await.unwrap();
    assert!(
        started.elapsed() > TIMEOUT,
        "the reply outlived the timeout"
    );
    assert!(body.contains("there"), "{body}");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    w.shut_down().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_serve_returns() {
    let w = wick(
        limits(64),
        vec![Step::token("Hello"), Step::Pause(Duration::from_secs(600))],
    )
    .await;
    let mut stream = w.chat_stream().await;
    // The reply is under way (its first token came) when the server is stopped.
    let mut body = String::new();
    while !body.contains("Hello") {
        let chunk = stream.chunk().await.unwrap().expect("the first token");
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    let addr = w.addr;
    w.shut_down().await;
    let rest = rest_of(stream).await;
    assert!(
        rest.contains("event: end") && rest.contains("interrupted"),
        "the reply ends as interrupted: {rest}"
    );
    // Nothing listens any more.
    assert!(TcpStream::connect(addr).await.is_err());
}

/// Reads what is left of `stream` until it ends (within `GIVE_UP`).
async fn rest_of(mut stream: reqwest::Response) -> String {
    tokio::time::timeout(GIVE_UP, async {
        let mut rest = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            rest.push_str(&String::from_utf8_lossy(&chunk));
        }
        rest
    })
    .await
    .expect("the stream ends")
}

#[tokio::test]
async fn at_shutdown_a_reply_that_ends_within_the_grace_streams_to_its_end() {
    let w = wick(
        ConnectionLimits {
            shutdown_grace: GIVE_UP,
            ..limits(64)
        },
        vec![
            Step::token("Hello"),
            Step::pause_ms(1500),
            Step::token(" there"),
            Step::Done(inference::FinishReason::Eos),
        ],
    )
    .await;
    let mut stream = w.chat_stream().await;
    let mut body = String::new();
    while !body.contains("Hello") {
        let chunk = stream.chunk().await.unwrap().expect("the first token");
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    let addr = w.addr;
    let stopping = tokio::spawn(w.shut_down());
    let rest = rest_of(stream).await;
    assert!(
        rest.contains(" there") && rest.contains("event: end") && rest.contains("\"done\""),
        "the reply ran to its end: {rest}"
    );
    stopping.await.unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn at_shutdown_an_api_stream_past_the_grace_ends_with_its_final_event() {
    let w = wick(
        limits(64),
        vec![Step::token("Hello"), Step::Pause(Duration::from_secs(600))],
    )
    .await;
    let mut stream = client()
        .post(w.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({
            "model": "fake",
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": true
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut body = String::new();
    while !body.contains("Hello") {
        let chunk = stream.chunk().await.unwrap().expect("the first token");
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    w.shut_down().await;
    let rest = rest_of(stream).await;
    assert!(
        rest.contains("finish_reason") && rest.contains("data: [DONE]"),
        "the stream ends as the API ends one, not with a cut: {rest}"
    );
}

#[tokio::test]
async fn a_request_body_that_stops_mid_way_is_cut_after_the_timeout() {
    let w = wick(limits(64), vec![]).await;
    // Headers promise 100 bytes; 10 come, then nothing.
    let slow = w
        .connect(&format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: wick\r\nAuthorization: Bearer {KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"model\":"
        ))
        .await;
    let answer = until_closed(slow).await;
    assert!(
        !answer.contains("200 OK"),
        "a request whose body never ended is not served: {answer}"
    );
    let health = client().get(w.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    w.shut_down().await;
}
