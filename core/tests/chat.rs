//! The chat's operations and the generation runtime, in process, over a real
//! SQLite file and a scripted backend: what the model was asked, what the
//! stream carried, what was stored, and failures on cue — in milliseconds.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use inference::scripted::{ScriptedBackend, Step};
use inference::{ChatMessage, Failure, Params, Prompt};
use wick_core::{
    Chat, ChatError, ChatSettings, Generations, Model, ModelKind, Models, SendRequest,
};
use wick_types::{FinishReason, MessageState, ReplyEnd, ReplyEvent, Role};

struct Fixture {
    chat: Chat,
    backend: ScriptedBackend,
    _dir: tempfile::TempDir,
}

/// A chat over a fresh database and one scripted model (queue depth `depth`)
/// whose replies are `script` unless a test pushes another.
async fn fixture_with(script: Vec<Step>, depth: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/wick.db", dir.path().display());
    let pool = wick_core::db::open(&url).await.unwrap();
    let backend = ScriptedBackend::new(script);
    let model = Model::new(
        "fake",
        "Fake model",
        ModelKind::Local,
        Arc::new(backend.clone()),
        Params::default(),
        depth,
        Some(4096),
    );
    let generations = Generations::new(
        Models::new(vec![model]),
        pool.clone(),
        ChatSettings { seed: Some(7) },
    );
    Fixture {
        chat: Chat::new(pool, generations),
        backend,
        _dir: dir,
    }
}

async fn fixture(script: Vec<Step>) -> Fixture {
    fixture_with(script, 4).await
}

fn words(text: &[&str]) -> Vec<Step> {
    text.iter().map(|t| Step::token(t)).collect()
}

fn send(conversation: Option<&str>, content: &str) -> SendRequest {
    SendRequest {
        conversation_id: conversation.map(str::to_owned),
        content: content.into(),
        model: None,
    }
}

/// Every event of reply `id` from the start, until its end.
async fn all_events(chat: &Chat, id: &str) -> Vec<ReplyEvent> {
    let task = chat.generations().get(id).expect("the reply is known");
    tokio::time::timeout(
        Duration::from_secs(10),
        task.events_after(0).map(|(_, e)| e).collect::<Vec<_>>(),
    )
    .await
    .expect("the stream ends")
}

fn text(events: &[ReplyEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ReplyEvent::Token { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_reply_streams_is_stored_and_the_model_saw_the_conversation() {
    let f = fixture(words(&["Hel", "lo", "!"])).await;
    let sending = f.chat.send(None, send(None, "Hi there")).await.unwrap();
    assert!(sending.new_session.is_some(), "a visitor gets a session");
    let sent = sending.sent;
    assert_eq!(sent.user_message.as_ref().unwrap().content, "Hi there");
    assert_eq!(sent.reply.state, MessageState::Generating);
    assert_eq!(sent.reply.model.as_deref(), Some("Fake model"));

    let events = all_events(&f.chat, &sent.message_id).await;
    assert_eq!(text(&events), "Hello!");
    assert_eq!(
        events.last(),
        Some(&ReplyEvent::End(ReplyEnd {
            state: MessageState::Done,
            finish_reason: Some(FinishReason::Eos),
            prompt_tokens: 1,
            completion_tokens: 3,
        }))
    );
    let user = f.chat.generations().get(&sent.message_id).unwrap().user;
    let c = f
        .chat
        .conversation(user, &sent.conversation_id)
        .await
        .unwrap();
    let last = c.messages.last().unwrap();
    assert_eq!(
        (last.content.as_str(), last.state, last.finish_reason),
        ("Hello!", MessageState::Done, Some(FinishReason::Eos))
    );
    assert_eq!(c.title, "Hi there");

    // The next turn: the model is asked the whole branch, in order.
    f.backend.push(words(&["Fine."]));
    let next = f
        .chat
        .send(Some(user), send(Some(&c.id), "How are you?"))
        .await
        .unwrap()
        .sent;
    all_events(&f.chat, &next.message_id).await;
    let asked = f.backend.requests();
    assert_eq!(asked.len(), 2);
    assert_eq!(
        asked[1].prompt,
        Prompt::Chat(vec![
            ChatMessage::new("user", "Hi there"),
            ChatMessage::new("assistant", "Hello!"),
            ChatMessage::new("user", "How are you?"),
        ])
    );
    assert_eq!(asked[1].params.seed, 7, "the configured seed is used");
    assert!(asked[1].drop_old_turns);
}

#[tokio::test]
async fn concurrent_sends_into_one_conversation_start_exactly_one_reply() {
    let f = fixture(vec![
        Step::token("a"),
        Step::pause_ms(200),
        Step::token("b"),
    ])
    .await;
    f.backend.push(words(&["first"]));
    let first = f.chat.send(None, send(None, "start")).await.unwrap().sent;
    let user = f.chat.generations().get(&first.message_id).unwrap().user;
    all_events(&f.chat, &first.message_id).await;

    let sends = (0..2).map(|i| {
        let chat = f.chat.clone();
        let id = first.conversation_id.clone();
        tokio::spawn(async move {
            chat.send(Some(user), send(Some(&id), &format!("message {i}")))
                .await
        })
    });
    let results: Vec<_> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let started: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(started.len(), 1, "{results:?}");
    let refused = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert!(matches!(refused, ChatError::ReplyRunning), "{refused:?}");
    assert_eq!(
        refused.to_string(),
        "A reply is still being written. Stop it or wait for it before sending."
    );
    assert_eq!(
        f.backend.requests().len(),
        2,
        "only one more reply reached the model"
    );
    all_events(&f.chat, &started[0].sent.message_id).await;
    let c = f
        .chat
        .conversation(user, &first.conversation_id)
        .await
        .unwrap();
    let users_turns = c.messages.iter().filter(|m| m.role == Role::User).count();
    assert_eq!(
        (c.messages.len(), users_turns),
        (4, 2),
        "the loser stored nothing"
    );
}

#[tokio::test]
async fn a_vanished_worker_ends_the_reply_with_a_generic_failure_and_keeps_its_text() {
    let f = fixture(vec![
        Step::token("Half "),
        Step::token("a reply"),
        Step::Vanish,
    ])
    .await;
    let sent = f.chat.send(None, send(None, "Tell me")).await.unwrap().sent;
    let events = all_events(&f.chat, &sent.message_id).await;
    assert_eq!(text(&events), "Half a reply");
    assert_eq!(
        events.last(),
        Some(&ReplyEvent::Failed {
            message: Failure::INTERNAL_MESSAGE.into()
        })
    );
    let user = f.chat.generations().get(&sent.message_id).unwrap().user;
    let c = f
        .chat
        .conversation(user, &sent.conversation_id)
        .await
        .unwrap();
    let last = c.messages.last().unwrap();
    assert_eq!(last.state, MessageState::Error);
    assert_eq!(last.finish_reason, Some(FinishReason::Error));
    assert_eq!(last.content, "Half a reply", "the text so far is kept");
    assert_eq!(last.error.as_deref(), Some(Failure::INTERNAL_MESSAGE));
}

#[tokio::test]
async fn a_failure_the_user_can_act_on_keeps_its_words() {
    let words = "The prompt is 9000 tokens long; the model's context window is 4096 tokens";
    let f = fixture(vec![Step::Fail(Failure::new(
        inference::FailureKind::ContextOverflow,
        words,
    ))])
    .await;
    let sent = f.chat.send(None, send(None, "long")).await.unwrap().sent;
    let events = all_events(&f.chat, &sent.message_id).await;
    assert_eq!(
        events,
        vec![ReplyEvent::Failed {
            message: words.into()
        }]
    );
}

#[tokio::test]
async fn stop_saves_the_text_so_far_as_stopped_and_only_for_the_owner() {
    let f = fixture(vec![
        Step::token("One"),
        Step::pause_ms(30_000),
        Step::token("never"),
    ])
    .await;
    let sent = f.chat.send(None, send(None, "go")).await.unwrap().sent;
    let task = f.chat.generations().get(&sent.message_id).unwrap();
    let mut live = Box::pin(task.events_after(0));
    assert_eq!(
        live.next().await.map(|(_, e)| e),
        Some(ReplyEvent::Token { text: "One".into() })
    );
    let stranger = task.user + 1000;
    assert!(matches!(
        f.chat.stop(Some(stranger), &sent.message_id).await,
        Err(ChatError::NotFound)
    ));
    assert!(matches!(
        f.chat.stop(None, &sent.message_id).await,
        Err(ChatError::NotFound)
    ));
    f.chat
        .stop(Some(task.user), &sent.message_id)
        .await
        .unwrap();
    // `stop` answers once the reply is saved.
    let c = f
        .chat
        .conversation(task.user, &sent.conversation_id)
        .await
        .unwrap();
    let last = c.messages.last().unwrap();
    assert_eq!(
        (last.content.as_str(), last.state, last.finish_reason),
        ("One", MessageState::Done, Some(FinishReason::Stopped))
    );
    let end = live.next().await.map(|(_, e)| e);
    assert!(
        matches!(&end, Some(ReplyEvent::End(e)) if e.finish_reason == Some(FinishReason::Stopped)),
        "{end:?}"
    );
    assert_eq!(live.next().await, None);
}

#[tokio::test]
async fn a_shutdown_leaves_replies_interrupted() {
    let f = fixture(vec![Step::token("Part"), Step::pause_ms(30_000)]).await;
    let sent = f.chat.send(None, send(None, "go")).await.unwrap().sent;
    let task = f.chat.generations().get(&sent.message_id).unwrap();
    let mut live = Box::pin(task.events_after(0));
    live.next().await;
    f.chat.generations().shutdown();
    let end = live.next().await.map(|(_, e)| e);
    assert_eq!(
        end,
        Some(ReplyEvent::End(ReplyEnd {
            state: MessageState::Interrupted,
            finish_reason: None,
            prompt_tokens: 1,
            completion_tokens: 1,
        }))
    );
    let c = f
        .chat
        .conversation(task.user, &sent.conversation_id)
        .await
        .unwrap();
    assert_eq!(c.messages.last().unwrap().state, MessageState::Interrupted);
}

#[tokio::test]
async fn a_full_queue_is_busy_and_stores_nothing() {
    let f = fixture_with(vec![Step::token("a"), Step::pause_ms(30_000)], 1).await;
    let first = f.chat.send(None, send(None, "one")).await.unwrap().sent;
    let user = f.chat.generations().get(&first.message_id).unwrap().user;
    let refused = f
        .chat
        .send(Some(user), send(None, "two"))
        .await
        .unwrap_err();
    assert!(matches!(refused, ChatError::Busy(_)), "{refused:?}");
    assert!(refused.to_string().contains("busy"), "{refused}");
    assert_eq!(
        f.chat.sidebar(user).await.unwrap()[0].conversations.len(),
        1
    );
    // Once the reply ends, its place is free again.
    f.chat.stop(Some(user), &first.message_id).await.unwrap();
    f.chat.send(Some(user), send(None, "three")).await.unwrap();
}

#[tokio::test]
async fn retry_answers_the_same_question_again_with_a_new_reply() {
    let f = fixture(words(&["first"])).await;
    let sent = f.chat.send(None, send(None, "Q")).await.unwrap().sent;
    all_events(&f.chat, &sent.message_id).await;
    let user = f.chat.generations().get(&sent.message_id).unwrap().user;
    f.backend.push(words(&["second"]));
    let again = f
        .chat
        .retry(Some(user), &sent.conversation_id, &sent.message_id)
        .await
        .unwrap();
    assert_ne!(again.message_id, sent.message_id);
    assert!(again.user_message.is_none());
    assert_eq!(
        text(&all_events(&f.chat, &again.message_id).await),
        "second"
    );
    let asked = f.backend.requests();
    assert_eq!(
        asked[0].prompt, asked[1].prompt,
        "the same turns are asked again"
    );
    let c = f
        .chat
        .conversation(user, &sent.conversation_id)
        .await
        .unwrap();
    let shown: Vec<&str> = c.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(shown, ["Q", "second"]);
    // Someone else's retry finds nothing.
    assert!(matches!(
        f.chat
            .retry(Some(user + 1000), &sent.conversation_id, &again.message_id)
            .await,
        Err(ChatError::NotFound)
    ));
}

#[tokio::test]
async fn late_subscribers_resume_after_the_event_they_saw() {
    let f = fixture(words(&["a", "b", "c"])).await;
    let sent = f.chat.send(None, send(None, "go")).await.unwrap().sent;
    let all = all_events(&f.chat, &sent.message_id).await;
    let task = f.chat.generations().get(&sent.message_id).unwrap();
    let rest: Vec<_> = task.events_after(2).collect().await;
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[0], (3, ReplyEvent::Token { text: "c".into() }));
    assert_eq!(rest[1].1, all[3]);
    assert!(matches!(rest[1].1, ReplyEvent::End(_)));
    assert_eq!(task.snapshot(), ("abc".to_owned(), 3));
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_stored() {
    let f = fixture(words(&["x"])).await;
    let empty = f.chat.send(None, send(None, "   ")).await.unwrap_err();
    assert_eq!(empty.to_string(), "Type a message before sending.");
    let unknown = f
        .chat
        .send(
            None,
            SendRequest {
                model: Some("gpt-9".into()),
                ..send(None, "hi")
            },
        )
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("\"gpt-9\""), "{unknown}");
    let nobody = f
        .chat
        .send(None, send(Some("0123456789abcdef0123456789abcdef"), "hi"))
        .await
        .unwrap_err();
    assert!(matches!(nobody, ChatError::NotFound));
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(f.chat.pool())
        .await
        .unwrap();
    assert_eq!(users, 0, "no session was made for refused sends");
    assert!(f.backend.requests().is_empty());
}
