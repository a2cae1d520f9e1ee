//! What the person running Wick sees of it, on the real binary with the real
//! model: `/metrics` (checked by Prometheus' own `promtool`), JSON log lines
//! that carry each request's id and no message text, and SIGTERM in the
//! middle of a reply (it runs to its end within the grace, its stream ends
//! with the final event, and the process exits cleanly).

mod common;

use std::process::{Command, Stdio};

use app::api::SendMessage;
use common::{start_logged, stored};
use leptos::server_fn::ServerFn;
use reqwest::StatusCode;

const METRICS_TOKEN: &str = "metrics-secret-for-tests";
/// Written in the message, so the test can look for it in the log.
const SECRET_WORDS: &str = "Purple elephants rehearse quietly";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

/// Sends `content` as the app's JavaScript does, with `request_id` as the
/// proxy's `X-Request-Id`; the stream of the reply it started.
async fn send(
    me: &reqwest::Client,
    base: &str,
    content: &str,
    request_id: &str,
) -> (wick_types::Sent, reqwest::Response) {
    let r = me
        .post(format!("{base}{}", SendMessage::url()))
        .header("x-request-id", request_id)
        .form(&[("content", content)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["x-request-id"],
        request_id,
        "the id from a trusted proxy comes back"
    );
    let sent: wick_types::Sent = r.json().await.unwrap();
    let stream = me
        .get(format!(
            "{base}{}",
            wick_types::reply::stream_url(&sent.message_id)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    (sent, stream)
}

/// `promtool check metrics` on `text`: its verdict, and what it said.
fn promtool(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian's prometheus package; `make test` installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[tokio::test]
async fn metrics_logs_and_sigterm_as_an_operator_sees_them() {
    let mut s = start_logged(
        &["--max-new-tokens", "48", "--seed", "7"],
        &[
            ("WICK_LOG", "info"),
            ("WICK_LOG_FORMAT", "json"),
            ("WICK_METRICS_TOKEN", METRICS_TOKEN),
            ("WICK_TRUSTED_PROXIES", "127.0.0.1"),
            ("WICK_SHUTDOWN_GRACE_SECS", "60"),
        ],
    )
    .await;
    let me = client();

    // A reply, read to its end.
    let (_, stream) = send(&me, &s.base, SECRET_WORDS, "proxy-id-0001").await;
    let body = stream.text().await.unwrap();
    assert!(body.contains("event: end"), "{body}");

    // /metrics: closed without the token, in Prometheus' format with it.
    let metrics_url = format!("{}/metrics", s.base);
    let refused = me.get(&metrics_url).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let wrong = me
        .get(&metrics_url)
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let scrape = me
        .get(&metrics_url)
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), StatusCode::OK);
    let text = scrape.text().await.unwrap();
    let (valid, said) = promtool(&text);
    assert!(valid, "promtool check metrics: {said}\n{text}");
    let model = "SmolLM2-135M-Instruct.Q4_1";
    for expected in [
        "wick_http_requests_total{route=\"/api/messages/{id}/stream\",method=\"GET\",status=\"200\"} 1"
            .to_owned(),
        format!("wick_time_to_first_token_seconds_count{{model=\"{model}\"}} 1"),
        format!("wick_time_per_output_token_seconds_bucket{{model=\"{model}\""),
        format!("wick_queue_wait_seconds_count{{model=\"{model}\"}} 1"),
        format!("wick_prompt_tokens_total{{model=\"{model}\"}}"),
        format!("wick_completion_tokens_total{{model=\"{model}\"}}"),
        format!("wick_replies_total{{model=\"{model}\",finish="),
        format!("wick_replies_in_queue{{model=\"{model}\"}} 0"),
        "\nwick_open_streams ".to_owned(),
        "wick_db_statement_duration_seconds_count".to_owned(),
        "wick_engine_batch_size_bucket{le=\"1\"}".to_owned(),
        "wick_http_request_duration_seconds_bucket".to_owned(),
    ] {
        assert!(text.contains(&expected), "/metrics lacks {expected}:\n{text}");
    }

    // SIGTERM while a second reply streams: it runs to its end within the
    // grace, its stream ends with the final event, and Wick exits cleanly.
    let (second, stream) = send(&me, &s.base, "Count from one to twenty.", "proxy-id-0002").await;
    let mut stream = stream;
    let mut seen = String::new();
    while !seen.contains("event: token") {
        let chunk = stream.chunk().await.unwrap().expect("a first token");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let base = s.base.clone();
    let reading = tokio::spawn(async move {
        while let Ok(Some(chunk)) = stream.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        seen
    });
    assert!(s.terminate().await, "wick exits with success after SIGTERM");
    let streamed = reading.await.unwrap();
    assert!(
        streamed.contains("event: end") && streamed.contains("\"done\""),
        "the reply ran to its end and the stream said so: {streamed}"
    );
    let (content, state, _, _) = stored(&s, &second.message_id).await;
    assert_eq!(state, "done");
    assert!(!content.is_empty());
    assert!(
        reqwest::get(format!("{base}/health")).await.is_err(),
        "nothing listens after the exit"
    );

    // The log: JSON, one object per line; the request's lines carry its id;
    // no line holds what was written in the chat.
    let log = std::fs::read_to_string(s.log.as_ref().unwrap()).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 3, "{log}");
    let of_request = |id: &str| {
        lines
            .iter()
            .filter(|l| l["span"]["request_id"] == id)
            .count()
    };
    assert!(of_request("proxy-id-0001") >= 1, "{log}");
    assert!(of_request("proxy-id-0002") >= 1, "{log}");
    // Requests without an id from a proxy get one made here.
    assert!(
        lines.iter().any(|l| l["span"]["request_id"]
            .as_str()
            .is_some_and(|id| id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()))),
        "{log}"
    );
    assert!(
        !log.contains("Purple elephants"),
        "message text in the log:\n{log}"
    );
}
