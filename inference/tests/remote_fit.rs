//! Fitting a conversation for a TGI server (finding 8 of issue 18): the
//! prompt is fitted and rendered on a blocking thread, not on the async
//! runtime, and keeps the newest turns.

mod support {
    pub mod stand_in;
}

use inference::remote::{RemoteBackend, RemoteConfig};
use inference::template::ChatTemplate;
use inference::{Backend, ChatMessage, Event, FailureKind, GenerationRequest, Params, Prompt};
use support::stand_in::{Reply, StandIn};

fn chat(messages: Vec<ChatMessage>) -> GenerationRequest {
    GenerationRequest {
        prompt: Prompt::Chat(messages),
        params: Params {
            temperature: 0.0,
            max_new_tokens: 16,
            ..Params::default()
        },
        drop_old_turns: true,
        continue_final: false,
        priority: inference::Priority::Normal,
    }
}

/// `generate` only starts the work: the template is rendered later, on a
/// blocking thread, so a template's failure arrives as the generation's
/// error event. (Rendered inside `generate`, on the caller's runtime
/// thread, it was returned by `generate` itself.)
#[tokio::test(flavor = "current_thread")]
async fn tgi_prompts_are_rendered_off_the_runtime() {
    let template = ChatTemplate::new(
        Some("{{ raise_exception('no') }}".into()),
        "<s>".into(),
        "</s>".into(),
    )
    .unwrap();
    // Nothing is sent: the port is never reached.
    let backend = RemoteBackend::tgi(RemoteConfig::new("http://127.0.0.1:9"), template).unwrap();
    let mut generation = backend
        .generate(chat(vec![ChatMessage::new("user", "Hi")]))
        .expect("generate starts the work and returns");
    match generation.next().await {
        Some(Event::Error(e)) => assert_eq!(e.kind, FailureKind::Internal),
        other => panic!("{other:?}"),
    }
}

/// A long conversation sent to a TGI server with a known window keeps its
/// system prompt and newest turns, and starts with a user turn.
#[tokio::test]
async fn tgi_prompts_keep_the_newest_turns_that_fit() {
    let events = ["data:{\"token\":{\"id\":5,\"text\":\"ok\",\"special\":false},\"generated_text\":\"ok\",\"details\":{\"finish_reason\":\"eos_token\",\"generated_tokens\":1}}\n\n"];
    let server = StandIn::start(vec![Reply::events("text/event-stream", &events)]).await;
    let mut config = RemoteConfig::new(&server.url);
    // 100 tokens of room for the prompt after the reply's 16 (by the
    // estimate of a token per three characters, and 4 a message).
    config.context_length = Some(116);
    let template = ChatTemplate::new(None, "<s>".into(), "</s>".into()).unwrap();
    let backend = RemoteBackend::tgi(config, template).unwrap();
    let mut messages = vec![ChatMessage::new("system", "sys")];
    for i in 0..30 {
        messages.push(ChatMessage::new(
            "user",
            format!("question {i:02} {}", "q".repeat(48)),
        ));
        messages.push(ChatMessage::new(
            "assistant",
            format!("answer {i:02} {}", "a".repeat(50)),
        ));
    }
    messages.push(ChatMessage::new("user", "last"));
    let mut generation = backend.generate(chat(messages)).unwrap();
    while let Some(event) = generation.next().await {
        assert!(!matches!(event, Event::Error(_)), "{event:?}");
    }
    let (_, body) = &server.requests()[0];
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    let inputs = body["inputs"].as_str().unwrap();
    // sys (5) and last (5) leave 90: the newest exchange (24 a turn) fits,
    // two do not; the assistant turn before it would fit alone but would
    // lead, so it goes too.
    let system = "<|im_start|>system\nsys<|im_end|>\n";
    assert!(
        inputs.starts_with(&format!("{system}<|im_start|>user\nquestion 29 ")),
        "{inputs}"
    );
    assert!(
        inputs.contains("<|im_start|>assistant\nanswer 29 "),
        "{inputs}"
    );
    assert!(
        inputs.ends_with("<|im_start|>user\nlast<|im_end|>\n<|im_start|>assistant\n"),
        "{inputs}"
    );
    assert!(!inputs.contains(" 28 "), "{inputs}");
}
