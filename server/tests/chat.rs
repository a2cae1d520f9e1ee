//! Streaming chat end to end: the real `wick` binary with the real model on a
//! loopback port, its SQLite file read back directly, and SSE read by a client
//! library. Replies are seeded so each run writes the same text.

mod common;

use std::time::{Duration, Instant};

use app::api::{GetConversation, RetryReply, SendMessage, StopReply};
use app::data::{ConversationView, Sent};
use common::{call, count, page, sse_events, start_with, stored, text_of, Sse, TestServer};
use futures::StreamExt;
use reqwest::StatusCode;

const STORY: &str = "Write a long story about a lighthouse keeper who finds a message in a bottle.";

async fn chat_server(extra: &[&str]) -> TestServer {
    let mut args = vec!["--seed", "7"];
    if !extra.contains(&"--max-new-tokens") {
        args.extend(["--max-new-tokens", "160"]);
    }
    args.extend_from_slice(extra);
    start_with(&args).await
}

/// A client with its own session, like one browser.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

/// Sends `content` as a new conversation, the way the app's JavaScript does.
async fn send_new(c: &reqwest::Client, s: &TestServer, content: &str) -> Sent {
    let r = call::<SendMessage>(c, s, &[("content", content)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn open_stream(
    c: &reqwest::Client,
    s: &TestServer,
    message_id: &str,
    last_event_id: Option<u64>,
) -> reqwest::Response {
    let mut request = c.get(format!(
        "{}{}",
        s.base,
        wick_types::reply::stream_url(message_id)
    ));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    request.send().await.unwrap()
}

/// Reads events until the final one (or `limit` events), within two minutes.
async fn read(events: &mut (impl futures::Stream<Item = Sse> + Unpin), limit: usize) -> Vec<Sse> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(e) = events.next().await {
            let last = e.event != "token";
            out.push(e);
            if last || out.len() == limit {
                break;
            }
        }
    })
    .await
    .expect("the stream went quiet for two minutes");
    out
}

/// The whole stream of a reply, from its first event to its end.
async fn read_all(c: &reqwest::Client, s: &TestServer, message_id: &str) -> Vec<Sse> {
    let r = open_stream(c, s, message_id, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    read(&mut sse_events(r), usize::MAX).await
}

fn assert_numbered_from(events: &[Sse], first: u64) {
    let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    let expected: Vec<u64> = (first..first + ids.len() as u64).collect();
    assert_eq!(ids, expected, "event ids have no gaps and no repeats");
}

#[tokio::test]
async fn a_streamed_reply_is_stored_exactly_as_streamed() {
    let s = chat_server(&[]).await;
    let me = client();
    let sent = send_new(&me, &s, STORY).await;

    // The reply row exists from the start, in state generating.
    let (_, state, ..) = stored(&s, &sent.message_id).await;
    assert!(state == "generating" || state == "done", "{state}");

    let r = open_stream(&me, &s, &sent.message_id, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    assert_eq!(r.headers()["x-accel-buffering"], "no");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let events = read(&mut sse_events(r), usize::MAX).await;
    assert_numbered_from(&events, 1);
    let end = events.last().unwrap();
    assert_eq!(end.event, "end", "{end:?}");
    let text = text_of(&events);
    assert!(
        events.len() > 20,
        "a story takes more than a few tokens: {text:?}"
    );
    assert!(end.data["completion_tokens"].as_u64().unwrap() >= events.len() as u64 - 1);
    assert!(end.data["prompt_tokens"].as_u64().unwrap() > 10);

    let (content, state, finish, error) = stored(&s, &sent.message_id).await;
    assert_eq!(content, text);
    assert_eq!(state, "done");
    assert_eq!(finish.as_deref(), end.data["finish_reason"].as_str());
    assert_eq!(error, None);

    // The page's data says the same, and a late subscriber still gets the whole log.
    let r = call::<GetConversation>(&me, &s, &[("id", &sent.conversation_id)]).await;
    let view: ConversationView = r.json().await.unwrap();
    assert_eq!(view.messages.len(), 2);
    assert_eq!(view.messages[1].content, text);
    let again = read_all(&me, &s, &sent.message_id).await;
    assert_eq!(text_of(&again), text);
}

#[tokio::test]
async fn reconnecting_with_last_event_id_misses_nothing_and_repeats_nothing() {
    let s = chat_server(&[]).await;
    let me = client();
    let sent = send_new(&me, &s, STORY).await;

    let first = read(
        &mut sse_events(open_stream(&me, &s, &sent.message_id, None).await),
        5,
    )
    .await;
    assert_eq!(first.len(), 5);
    assert!(first.iter().all(|e| e.event == "token"));
    // The connection is gone (dropped above); come back from the last event seen.
    let rest = read(
        &mut sse_events(open_stream(&me, &s, &sent.message_id, Some(5)).await),
        usize::MAX,
    )
    .await;
    assert_eq!(rest[0].id, 6);
    let all: Vec<Sse> = first.into_iter().chain(rest).collect();
    assert_numbered_from(&all, 1);
    assert_eq!(all.last().unwrap().event, "end");
    let (content, ..) = stored(&s, &sent.message_id).await;
    assert_eq!(content, text_of(&all));

    // `?after=` (what the page uses when it first connects) works the same way.
    let tail = read(
        &mut sse_events(
            me.get(format!(
                "{}{}?after=10",
                s.base,
                wick_types::reply::stream_url(&sent.message_id)
            ))
            .send()
            .await
            .unwrap(),
        ),
        usize::MAX,
    )
    .await;
    assert_eq!(tail[0].id, 11);
    assert_eq!(text_of(&tail), text_of(&all[10..]));
}

#[tokio::test]
async fn stop_ends_the_reply_at_once_and_keeps_its_text() {
    let s = chat_server(&["--max-new-tokens", "400"]).await;
    let me = client();
    let sent = send_new(&me, &s, STORY).await;
    let mut events = sse_events(open_stream(&me, &s, &sent.message_id, None).await);
    let mut seen = read(&mut events, 3).await;
    assert!(seen.iter().all(|e| e.event == "token"), "{seen:?}");

    let r = call::<StopReply>(&me, &s, &[("message_id", &sent.message_id)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let after_stop = read(&mut events, usize::MAX).await;
    let end = after_stop.last().unwrap();
    assert_eq!(end.event, "end");
    assert_eq!(end.data["finish_reason"], "stopped");
    // Within a token or two of the stop (one may have been on its way).
    assert!(after_stop.len() <= 3, "{after_stop:?}");
    seen.extend(after_stop);

    let (content, state, finish, _) = stored(&s, &sent.message_id).await;
    assert_eq!(content, text_of(&seen));
    assert_eq!(state, "done");
    assert_eq!(finish.as_deref(), Some("stopped"));

    // The page says it was stopped; the composer offers "Send" again.
    let html = page(&me, &s, &format!("/c/{}", sent.conversation_id)).await;
    assert!(html.contains("Stopped."), "{html}");
    assert!(html.contains(">Send<"), "{html}");
}

#[tokio::test]
async fn a_killed_server_leaves_the_reply_interrupted_with_its_text() {
    let mut s = chat_server(&["--max-new-tokens", "400"]).await;
    let me = client();
    let sent = send_new(&me, &s, STORY).await;
    let started = Instant::now();
    let mut events = sse_events(open_stream(&me, &s, &sent.message_id, None).await);
    // Past the first flush (32 tokens or 500 ms).
    let mut seen = Vec::new();
    while seen.len() < 40 || started.elapsed() < Duration::from_millis(800) {
        let more = read(&mut events, 1).await;
        assert_eq!(more[0].event, "token", "the reply ended too soon: {more:?}");
        seen.extend(more);
    }
    s.kill_and_restart().await;

    let (content, state, finish, _) = stored(&s, &sent.message_id).await;
    assert_eq!(state, "interrupted");
    assert_eq!(finish, None);
    assert!(!content.is_empty(), "the flushed text survives");
    assert!(
        text_of(&seen).starts_with(&content),
        "stored {content:?} is a prefix of what was streamed"
    );
    let html = page(&me, &s, &format!("/c/{}", sent.conversation_id)).await;
    assert!(html.contains("Interrupted"), "{html}");
    // The stream of a reply the new process is not generating is a clean 404.
    let r = open_stream(&me, &s, &sent.message_id, None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn past_the_queue_depth_a_send_is_refused_with_429_and_stores_nothing() {
    let s = chat_server(&["--queue-depth", "1", "--max-new-tokens", "400"]).await;
    let me = client();
    let first = send_new(&me, &s, STORY).await;

    let r = call::<SendMessage>(&me, &s, &[("content", "Another question")]).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let body = r.text().await.unwrap();
    assert!(body.contains("The server is busy"), "{body}");
    assert_eq!(count(&s, "SELECT count(*) FROM conversations").await, 1);
    assert_eq!(count(&s, "SELECT count(*) FROM messages").await, 2);

    // Sending again into the conversation that is still generating is refused too.
    let r = call::<SendMessage>(
        &me,
        &s,
        &[
            ("content", "more"),
            ("conversation_id", &first.conversation_id),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("still being written"));
    assert_eq!(count(&s, "SELECT count(*) FROM messages").await, 2);

    // Once the reply ends, the place is free again.
    call::<StopReply>(&me, &s, &[("message_id", &first.message_id)]).await;
    read_all(&me, &s, &first.message_id).await;
    let r = call::<SendMessage>(&me, &s, &[("content", "Another question")]).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn someone_elses_reply_cannot_be_read_or_stopped() {
    let s = chat_server(&[]).await;
    let alice = client();
    let sent = send_new(&alice, &s, STORY).await;

    let bob = client();
    send_new(&bob, &s, "Hello").await;
    let r = open_stream(&bob, &s, &sent.message_id, None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = open_stream(&reqwest::Client::new(), &s, &sent.message_id, None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = call::<StopReply>(&bob, &s, &[("message_id", &sent.message_id)]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = call::<RetryReply>(
        &bob,
        &s,
        &[
            ("conversation_id", &sent.conversation_id),
            ("message_id", &sent.message_id),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Alice's reply carries on to its end, untouched.
    let events = read_all(&alice, &s, &sent.message_id).await;
    assert_eq!(events.last().unwrap().event, "end");
    assert_ne!(events.last().unwrap().data["finish_reason"], "stopped");
}

#[tokio::test]
async fn three_conversations_stream_at_once() {
    let s = chat_server(&[]).await;
    let prompts = [
        "Write a long story about a lighthouse keeper.",
        "Explain how bread is made, step by step.",
        "Describe a walk through a forest in autumn.",
    ];
    let mut runs = Vec::new();
    for prompt in prompts {
        let c = client();
        let sent = send_new(&c, &s, prompt).await;
        runs.push((c, sent));
    }
    let reads = runs.iter().map(|(c, sent)| {
        let s = &s;
        async move {
            let r = open_stream(c, s, &sent.message_id, None).await;
            read(&mut sse_events(r), usize::MAX).await
        }
    });
    let results = futures::future::join_all(reads).await;
    for ((_, sent), events) in runs.iter().zip(results) {
        assert_numbered_from(&events, 1);
        assert_eq!(events.last().unwrap().event, "end");
        let (content, state, ..) = stored(&s, &sent.message_id).await;
        assert_eq!(state, "done");
        assert_eq!(content, text_of(&events));
    }
}

#[tokio::test]
async fn retry_writes_a_new_reply_in_place_of_the_old() {
    let s = chat_server(&["--max-new-tokens", "24"]).await;
    let me = client();
    let sent = send_new(&me, &s, "Say something about the sea.").await;
    read_all(&me, &s, &sent.message_id).await;

    let r = call::<RetryReply>(
        &me,
        &s,
        &[
            ("conversation_id", &sent.conversation_id),
            ("message_id", &sent.message_id),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let again: Sent = r.json().await.unwrap();
    assert_ne!(again.message_id, sent.message_id);
    let events = read_all(&me, &s, &again.message_id).await;
    assert_eq!(events.last().unwrap().event, "end");

    let r = call::<GetConversation>(&me, &s, &[("id", &sent.conversation_id)]).await;
    let view: ConversationView = r.json().await.unwrap();
    let ids: Vec<&str> = view.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), 2, "the question and the new reply");
    assert_eq!(ids[1], again.message_id);
    // The old reply is kept, on its own branch.
    assert_eq!(
        count(&s, "SELECT count(*) FROM messages WHERE role = 'assistant'").await,
        2
    );
}
