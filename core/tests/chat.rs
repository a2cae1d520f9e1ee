//! The chat's operations and the generation runtime, in process, over a real
//! SQLite file and a scripted backend: what the model was asked, what the
//! stream carried, what was stored, and failures on cue — in milliseconds.

use std::time::Duration;

use futures::StreamExt;
use inference::scripted::Step;
use inference::{ChatMessage, Failure, Prompt};
use wick_core::{Chat, ChatError, ChatSettings, SendRequest};
use wick_types::{FinishReason, MessageState, ReplyEnd, ReplyEvent, Role};

mod common;
use common::Fixture;

/// A chat over a fresh database and one scripted model (queue depth `depth`)
/// whose replies are `script` unless a test pushes another.
async fn fixture_with(script: Vec<Step>, depth: usize) -> Fixture {
    common::fixture_with(script, depth, ChatSettings::default()).await
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
async fn a_drain_lets_a_reply_finish_within_the_grace_and_takes_no_new_one() {
    let f = fixture(vec![
        Step::token("Part"),
        Step::pause_ms(300),
        Step::token(" two"),
        Step::Done(inference::FinishReason::Eos),
    ])
    .await;
    let sent = f.chat.send(None, send(None, "go")).await.unwrap().sent;
    let task = f.chat.generations().get(&sent.message_id).unwrap();
    let mut live = Box::pin(task.events_after(0));
    live.next().await;
    let draining = tokio::spawn(f.chat.generations().drain(Duration::from_secs(20)));
    // Once the drain has begun, a new message is refused before anything is stored.
    let refused = f
        .chat
        .send(Some(task.user), send(None, "another"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ChatError::Busy(wick_core::Busy::ShuttingDown)),
        "{refused:?}"
    );
    assert_eq!(draining.await.unwrap(), 0, "nothing was left running");
    let c = f
        .chat
        .conversation(task.user, &sent.conversation_id)
        .await
        .unwrap();
    let reply = c.messages.last().unwrap();
    assert_eq!(reply.state, MessageState::Done);
    assert_eq!(reply.content, "Part two");
    assert_eq!(c.messages.len(), 2, "the refused message was not stored");
}

#[tokio::test]
async fn a_reply_still_running_when_the_grace_ends_is_stored_interrupted_with_its_text() {
    let f = fixture(vec![Step::token("Part"), Step::pause_ms(30_000)]).await;
    let sent = f.chat.send(None, send(None, "go")).await.unwrap().sent;
    let task = f.chat.generations().get(&sent.message_id).unwrap();
    let mut live = Box::pin(task.events_after(0));
    live.next().await;
    let still_running = f.chat.generations().drain(Duration::from_millis(200)).await;
    assert_eq!(still_running, 1);
    // Stored by the time the drain is over: the process may exit next.
    let (state, content): (String, String) =
        sqlx::query_as("SELECT state, content FROM messages WHERE id = ?")
            .bind(&sent.message_id)
            .fetch_one(f.chat.pool())
            .await
            .unwrap();
    assert_eq!((state.as_str(), content.as_str()), ("interrupted", "Part"));
    let end = live.next().await.map(|(_, e)| e);
    assert!(
        matches!(
            end,
            Some(ReplyEvent::End(ReplyEnd {
                state: MessageState::Interrupted,
                ..
            }))
        ),
        "{end:?}"
    );
    let c = f
        .chat
        .conversation(task.user, &sent.conversation_id)
        .await
        .unwrap();
    let reply = c.messages.last().unwrap();
    assert_eq!(reply.state, MessageState::Interrupted);
    assert_eq!(reply.content, "Part");
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
        f.chat.sidebar(user, 50).await.unwrap().groups[0]
            .conversations
            .len(),
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

/// A reply that waits for a place at the model streams `waiting` events
/// first, then `reading` while the model reads a long conversation (the chat
/// shows both); they are not text, and the snapshot a page
/// renders counts them, so a reader resuming after it misses no token.
#[tokio::test]
async fn waiting_and_reading_are_streamed_before_the_tokens() {
    let f = fixture(vec![
        Step::Waiting(2),
        Step::Waiting(1),
        Step::Waiting(0),
        Step::Prefill(512, 1200),
        Step::Prefill(1024, 1200),
        // The end of the reading is the first token's business: not shown.
        Step::Prefill(1200, 1200),
        Step::token("a"),
        Step::token("b"),
    ])
    .await;
    let sent = f.chat.send(None, send(None, "go")).await.unwrap().sent;
    let all = all_events(&f.chat, &sent.message_id).await;
    assert_eq!(
        all[..7],
        [
            ReplyEvent::Waiting { ahead: 2 },
            ReplyEvent::Waiting { ahead: 1 },
            ReplyEvent::Waiting { ahead: 0 },
            ReplyEvent::Reading {
                done: 512,
                total: 1200
            },
            ReplyEvent::Reading {
                done: 1024,
                total: 1200
            },
            ReplyEvent::Token { text: "a".into() },
            ReplyEvent::Token { text: "b".into() },
        ]
    );
    assert!(matches!(all[7], ReplyEvent::End(_)));
    let task = f.chat.generations().get(&sent.message_id).unwrap();
    // "ab" is events 1..=7; resuming after 7 gives only the end.
    assert_eq!(task.snapshot(), ("ab".to_owned(), 7));
    let rest: Vec<_> = task.events_after(7).collect().await;
    assert_eq!(rest.len(), 1);
    assert!(matches!(rest[0].1, ReplyEvent::End(_)));
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

/// A chat over a fresh database whose model takes `depth` replies at once.
async fn roomy_fixture(script: Vec<Step>, depth: usize) -> Fixture {
    fixture_with(script, depth).await
}

#[tokio::test]
async fn one_visitor_cannot_take_every_place_in_the_queue() {
    // Eight places, as the audit's server had; replies that wait a long time.
    let f = roomy_fixture(vec![Step::token("a"), Step::pause_ms(30_000)], 8).await;
    let first = f.chat.send(None, send(None, "one")).await.unwrap().sent;
    let user = f.chat.generations().get(&first.message_id).unwrap().user;
    f.chat.send(Some(user), send(None, "two")).await.unwrap();
    let refused = f
        .chat
        .send(Some(user), send(None, "three"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ChatError::Busy(wick_core::Busy::User(2))),
        "{refused:?}"
    );
    assert_eq!(
        refused.to_string(),
        "You already have 2 replies being written. Wait for one to finish, or stop it, before starting another."
    );
    assert_eq!(
        f.chat.sidebar(user, 50).await.unwrap().groups[0]
            .conversations
            .len(),
        2,
        "the refused message stored nothing"
    );
    // Everyone else still gets in.
    let other = f.chat.send(None, send(None, "hello")).await.unwrap().sent;
    // A retry counts too; once a reply ends, its place is the user's again.
    f.chat.stop(Some(user), &first.message_id).await.unwrap();
    f.chat.send(Some(user), send(None, "four")).await.unwrap();
    let other_user = f.chat.generations().get(&other.message_id).unwrap().user;
    assert_ne!(other_user, user);
}

#[tokio::test]
async fn retry_takes_only_the_latest_reply() {
    let f = fixture(words(&["answer"])).await;
    let first = f.chat.send(None, send(None, "Q1")).await.unwrap().sent;
    all_events(&f.chat, &first.message_id).await;
    let user = f.chat.generations().get(&first.message_id).unwrap().user;
    let second = f
        .chat
        .send(Some(user), send(Some(&first.conversation_id), "Q2"))
        .await
        .unwrap()
        .sent;
    all_events(&f.chat, &second.message_id).await;
    let refused = f
        .chat
        .retry(Some(user), &first.conversation_id, &first.message_id)
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "Only the latest reply can be written again; earlier ones keep their answers."
    );
    let c = f
        .chat
        .conversation(user, &first.conversation_id)
        .await
        .unwrap();
    let shown: Vec<&str> = c.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        shown,
        ["Q1", "answer", "Q2", "answer"],
        "no turn was hidden"
    );
    f.chat
        .retry(Some(user), &first.conversation_id, &second.message_id)
        .await
        .unwrap();
}

#[tokio::test]
async fn forty_parallel_sends_all_start_and_store_everything() {
    let f = roomy_fixture(words(&["ok"]), 64).await;
    let sends = (0..40).map(|i| {
        let chat = f.chat.clone();
        tokio::spawn(async move { chat.send(None, send(None, &format!("message {i}"))).await })
    });
    let sent: Vec<_> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.unwrap().expect("every send is stored").sent)
        .collect();
    for s in &sent {
        all_events(&f.chat, &s.message_id).await;
    }
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT role, state FROM messages ORDER BY created_at")
            .fetch_all(f.chat.pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), 80);
    assert!(
        rows.iter()
            .all(|(role, state)| state == "done" && (role == "user" || role == "assistant")),
        "{rows:?}"
    );
}

#[tokio::test]
async fn a_first_message_that_cannot_be_stored_leaves_no_user_behind() {
    let f = fixture(words(&["x"])).await;
    // A write that fails on cue, as a full disk would.
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON conversations
         BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END",
    )
    .execute(f.chat.pool())
    .await
    .unwrap();
    let refused = f.chat.send(None, send(None, "hi")).await.unwrap_err();
    assert!(matches!(refused, ChatError::Store(_)), "{refused:?}");
    let (users, sessions): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM sessions)")
            .fetch_one(f.chat.pool())
            .await
            .unwrap();
    assert_eq!((users, sessions), (0, 0), "nothing half-written");
}

#[tokio::test]
async fn a_reply_whose_final_save_fails_keeps_its_text_and_is_stored_once_writes_work() {
    let f = fixture(vec![
        Step::token("kept"),
        Step::pause_ms(300),
        Step::token(" text"),
    ])
    .await;
    let sent = f.chat.send(None, send(None, "hi")).await.unwrap().sent;
    let user = f.chat.generations().get(&sent.message_id).unwrap().user;
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE UPDATE ON messages
         BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END",
    )
    .execute(f.chat.pool())
    .await
    .unwrap();
    let events = all_events(&f.chat, &sent.message_id).await;
    assert_eq!(text(&events), "kept text");
    assert_eq!(
        events.last(),
        Some(&ReplyEvent::Failed {
            message: wick_core::generation::NOT_SAVED_MESSAGE.to_owned()
        }),
        "the visitor is told, not shown a clean end"
    );
    assert!(f.chat.write_failing(), "/health can say so");
    // Meanwhile the page shows the text from memory.
    let c = f
        .chat
        .conversation(user, &sent.conversation_id)
        .await
        .unwrap();
    assert_eq!(c.messages.last().unwrap().content, "kept text");

    sqlx::query("DROP TRIGGER refuse")
        .execute(f.chat.pool())
        .await
        .unwrap();
    let stored = async {
        loop {
            let row: (String, String, Option<String>) =
                sqlx::query_as("SELECT content, state, error FROM messages WHERE id = ?")
                    .bind(&sent.message_id)
                    .fetch_one(f.chat.pool())
                    .await
                    .unwrap();
            if row.1 != "generating" {
                return row;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (content, state, error) = tokio::time::timeout(Duration::from_secs(10), stored)
        .await
        .expect("the reply is stored once the database takes writes");
    assert_eq!((content.as_str(), state.as_str()), ("kept text", "error"));
    assert_eq!(
        error.as_deref(),
        Some(wick_core::generation::NOT_SAVED_MESSAGE)
    );
    assert!(!f.chat.write_failing());
}

#[tokio::test]
async fn a_reply_stored_as_generating_with_no_writer_is_shown_interrupted() {
    let f = fixture(words(&["x"])).await;
    let (user, token) = wick_core::session::new_anonymous_session(f.chat.pool())
        .await
        .unwrap();
    let _ = token;
    // Stored as the start of a reply, but no generation writes it (as after a
    // final save that was given up): no browser may wait for its stream.
    let (_, reply) = wick_core::db::conversations::create_with_reply(
        f.chat.pool(),
        wick_core::db::conversations::Owner::User(user),
        "t",
        "fake",
        None,
        "hi",
    )
    .await
    .unwrap();
    let c = f
        .chat
        .conversation(user, &reply.conversation_id)
        .await
        .unwrap();
    assert_eq!(c.messages.last().unwrap().state, MessageState::Interrupted);
}
