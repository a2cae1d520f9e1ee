//! Issue 13's chat operations, in process over a real SQLite file and a
//! scripted backend: edits and branches, Continue, per-conversation and
//! personal settings, titles from the model, and reasoning kept from the
//! model's later turns — asserting on what the model was asked.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use inference::scripted::{ScriptedBackend, Step};
use inference::{ChatMessage, FinishReason as Engine, Params, Prompt};
use wick_core::{
    Chat, ChatError, ChatSettings, Generations, Model, ModelKind, Models, SendRequest,
    SettingsForm, UserId,
};
use wick_types::{FinishReason, MessageState, ReplyEvent, Role};

struct Fixture {
    chat: Chat,
    backend: ScriptedBackend,
    remote: ScriptedBackend,
    _dir: tempfile::TempDir,
}

/// A chat with a local scripted model ("fake", the default) and an
/// OpenAI-compatible one ("remote") that cannot continue replies.
async fn fixture(script: Vec<Step>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/wick.db", dir.path().display());
    let pool = wick_core::db::open(&url).await.unwrap();
    let backend = ScriptedBackend::new(script);
    let remote = ScriptedBackend::new(vec![Step::token("remote")]);
    let model = |id: &str, name: &str, kind, backend: &ScriptedBackend| {
        Model::new(
            id,
            name,
            kind,
            Arc::new(backend.clone()),
            Params::default(),
            8,
            Some(4096),
        )
    };
    let models = Models::new(vec![
        model("fake", "Fake model", ModelKind::Local, &backend),
        model("remote", "Remote model", ModelKind::OpenAi, &remote),
    ]);
    let generations = Generations::new(
        models,
        pool.clone(),
        ChatSettings {
            seed: Some(7),
            replies_per_user: 8,
        },
    );
    Fixture {
        chat: Chat::new(pool, generations),
        backend,
        remote,
        _dir: dir,
    }
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

/// Waits for reply `id` to end.
async fn finished(chat: &Chat, id: &str) -> Vec<ReplyEvent> {
    let task = chat.generations().get(id).expect("the reply is known");
    tokio::time::timeout(
        Duration::from_secs(10),
        task.events_after(0).map(|(_, e)| e).collect::<Vec<_>>(),
    )
    .await
    .expect("the stream ends")
}

/// The first message of a new conversation and its reply, ended; the user and ids.
async fn start(f: &Fixture, content: &str) -> (UserId, String, String) {
    let sent = f.chat.send(None, send(None, content)).await.unwrap().sent;
    finished(&f.chat, &sent.message_id).await;
    let user = f.chat.generations().get(&sent.message_id).unwrap().user;
    (user, sent.conversation_id, sent.message_id)
}

fn contents(c: &wick_types::ConversationView) -> Vec<&str> {
    c.messages.iter().map(|m| m.content.as_str()).collect()
}

fn chat_of(request: &inference::GenerationRequest) -> &[ChatMessage] {
    match &request.prompt {
        Prompt::Chat(m) => m,
        Prompt::Raw(_) => panic!("a chat prompt"),
    }
}

#[tokio::test]
async fn an_edit_makes_a_branch_which_is_kept_and_is_all_the_model_reads() {
    let f = fixture(words(&["A1"])).await;
    let (user, c, _) = start(&f, "Q1").await;
    f.backend.push(words(&["A2"]));
    let second = f
        .chat
        .send(Some(user), send(Some(&c), "Q2"))
        .await
        .unwrap()
        .sent;
    finished(&f.chat, &second.message_id).await;
    let q2 = second.user_message.unwrap().id;

    f.backend.push(words(&["A2 edited"]));
    let edited = f.chat.edit(Some(user), &c, &q2, "Q2 fixed").await.unwrap();
    finished(&f.chat, &edited.message_id).await;
    let view = f.chat.conversation(user, &c).await.unwrap();
    assert_eq!(contents(&view), ["Q1", "A1", "Q2 fixed", "A2 edited"]);
    let siblings = view.messages[2]
        .siblings
        .clone()
        .expect("the edit has a sibling");
    assert_eq!((siblings.position, siblings.count), (2, 2));
    assert_eq!(siblings.previous.as_deref(), Some(q2.as_str()));
    assert!(siblings.next.is_none());
    assert!(view.messages[0].siblings.is_none());
    // The model answered the edit from the branch alone.
    let asked = f.backend.requests();
    assert_eq!(
        chat_of(asked.last().unwrap()),
        [
            ChatMessage::new("user", "Q1"),
            ChatMessage::new("assistant", "A1"),
            ChatMessage::new("user", "Q2 fixed"),
        ]
    );

    // Back to the first version: stored, so a reload (another read) shows it.
    f.chat.switch_branch(Some(user), &c, &q2).await.unwrap();
    let view = f.chat.conversation(user, &c).await.unwrap();
    assert_eq!(contents(&view), ["Q1", "A1", "Q2", "A2"]);
    let s = view.messages[2].siblings.clone().unwrap();
    assert_eq!((s.position, s.count, s.next.is_some()), (1, 2, true));
    // The next turn continues the branch shown, and only it.
    f.backend.push(words(&["A3"]));
    let third = f
        .chat
        .send(Some(user), send(Some(&c), "Q3"))
        .await
        .unwrap()
        .sent;
    finished(&f.chat, &third.message_id).await;
    let asked = f.backend.requests();
    let turns: Vec<&str> = chat_of(asked.last().unwrap())
        .iter()
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(turns, ["Q1", "A1", "Q2", "A2", "Q3"]);
}

#[tokio::test]
async fn retries_are_versions_of_a_reply_and_can_be_switched_back() {
    let f = fixture(words(&["first"])).await;
    let (user, c, first) = start(&f, "Q").await;
    f.backend.push(words(&["second"]));
    let again = f.chat.retry(Some(user), &c, &first).await.unwrap();
    finished(&f.chat, &again.message_id).await;
    let view = f.chat.conversation(user, &c).await.unwrap();
    let s = view.messages[1].siblings.clone().unwrap();
    assert_eq!((s.position, s.count), (2, 2));
    assert_eq!(s.previous.as_deref(), Some(first.as_str()));
    f.chat.switch_branch(Some(user), &c, &first).await.unwrap();
    let view = f.chat.conversation(user, &c).await.unwrap();
    assert_eq!(contents(&view), ["Q", "first"]);
}

#[tokio::test]
async fn bad_edits_and_switches_are_refused_and_store_nothing() {
    let f = fixture(words(&["A"])).await;
    let (alice, c, reply) = start(&f, "Q").await;
    let (bob, other, other_reply) = start(&f, "Bob's").await;
    let view = f.chat.conversation(alice, &c).await.unwrap();
    let question = view.messages[0].id.clone();
    let before = f.backend.requests().len();

    match f.chat.edit(Some(alice), &c, &question, "  \n").await {
        Err(ChatError::Invalid(m)) => assert_eq!(m, "Type a message before sending."),
        other => panic!("an empty edit is refused, got {other:?}"),
    }
    // A reply is not a question to edit; someone else's conversation, or a
    // message of another conversation, does not exist for the caller.
    for (user, conversation, message) in [
        (alice, c.as_str(), reply.as_str()),
        (bob, c.as_str(), question.as_str()),
        (alice, other.as_str(), question.as_str()),
    ] {
        assert!(
            matches!(
                f.chat.edit(Some(user), conversation, message, "x").await,
                Err(ChatError::NotFound)
            ),
            "edit {message} in {conversation} as {user}"
        );
    }
    for (user, conversation, message) in [
        (bob, c.as_str(), reply.as_str()),
        (alice, c.as_str(), other_reply.as_str()),
        (alice, c.as_str(), "no-such-message"),
    ] {
        assert!(
            matches!(
                f.chat
                    .switch_branch(Some(user), conversation, message)
                    .await,
                Err(ChatError::NotFound)
            ),
            "switch to {message} in {conversation} as {user}"
        );
    }
    assert!(matches!(
        f.chat.edit(None, &c, &question, "x").await,
        Err(ChatError::NotFound)
    ));
    assert_eq!(f.backend.requests().len(), before, "nothing was generated");
    let view = f.chat.conversation(alice, &c).await.unwrap();
    assert_eq!(contents(&view), ["Q", "A"]);
    assert!(view.messages.iter().all(|m| m.siblings.is_none()));
}

#[tokio::test]
async fn continue_extends_the_same_reply_from_where_it_stopped() {
    let f = fixture(vec![Step::token("Once upon"), Step::Done(Engine::Length)]).await;
    let (user, c, reply) = start(&f, "Tell a story").await;
    let view = f.chat.conversation(user, &c).await.unwrap();
    assert_eq!(view.messages[1].finish_reason, Some(FinishReason::Length));
    assert!(view.can_continue);

    f.backend.push(words(&[" a time", "."]));
    let sent = f.chat.continue_reply(Some(user), &c, &reply).await.unwrap();
    assert_eq!(sent.message_id, reply, "the same message grows");
    assert_eq!(sent.reply.content, "Once upon");
    finished(&f.chat, &reply).await;
    let asked = f.backend.requests();
    let last = asked.last().unwrap();
    assert!(
        last.continue_final,
        "the backend is asked to continue, not to answer"
    );
    assert_eq!(
        chat_of(last),
        [
            ChatMessage::new("user", "Tell a story"),
            ChatMessage::new("assistant", "Once upon"),
        ]
    );
    let view = f.chat.conversation(user, &c).await.unwrap();
    assert_eq!(contents(&view), ["Tell a story", "Once upon a time."]);
    assert_eq!(view.messages[1].finish_reason, Some(FinishReason::Eos));
    assert!(
        view.messages[1].siblings.is_none(),
        "no new version was made"
    );

    // A finished reply has nothing to continue.
    match f.chat.continue_reply(Some(user), &c, &reply).await {
        Err(ChatError::Invalid(m)) => assert!(m.contains("cut short"), "{m}"),
        other => panic!("refused, got {other:?}"),
    }
    // Nor does someone else's.
    assert!(matches!(
        f.chat.continue_reply(Some(user + 1), &c, &reply).await,
        Err(ChatError::NotFound)
    ));
}

#[tokio::test]
async fn a_stopped_reply_continues_but_not_on_a_server_that_cannot() {
    let f = fixture(vec![Step::token("Part"), Step::pause_ms(5_000)]).await;
    let sent = f.chat.send(None, send(None, "Go")).await.unwrap().sent;
    let user = f.chat.generations().get(&sent.message_id).unwrap().user;
    tokio::time::sleep(Duration::from_millis(50)).await;
    f.chat.stop(Some(user), &sent.message_id).await.unwrap();
    f.chat
        .set_model(Some(user), &sent.conversation_id, "remote")
        .await
        .unwrap();
    let view = f
        .chat
        .conversation(user, &sent.conversation_id)
        .await
        .unwrap();
    assert!(!view.can_continue, "the page hides Continue");
    match f
        .chat
        .continue_reply(Some(user), &sent.conversation_id, &sent.message_id)
        .await
    {
        Err(ChatError::Invalid(m)) => assert!(m.contains("cannot continue"), "{m}"),
        other => panic!("refused, got {other:?}"),
    }
    assert!(f.remote.requests().is_empty());
    f.chat
        .set_model(Some(user), &sent.conversation_id, "fake")
        .await
        .unwrap();
    f.backend.push(words(&[" two"]));
    f.chat
        .continue_reply(Some(user), &sent.conversation_id, &sent.message_id)
        .await
        .unwrap();
    finished(&f.chat, &sent.message_id).await;
    let view = f
        .chat
        .conversation(user, &sent.conversation_id)
        .await
        .unwrap();
    assert_eq!(view.messages[1].content, "Part two");
}

#[tokio::test]
async fn conversation_settings_reach_the_model_and_bad_ones_are_named() {
    let f = fixture(words(&["ok"])).await;
    let (user, c, _) = start(&f, "Hi").await;
    let form = |t: &str, p: &str, n: &str| SettingsForm {
        system_prompt: "You are a pirate.".into(),
        temperature: t.into(),
        top_p: p.into(),
        max_new_tokens: n.into(),
    };
    for (bad, message) in [
        (
            form("3", "", ""),
            "temperature must be a number from 0 to 2 (got 3)",
        ),
        (
            form("warm", "", ""),
            "temperature must be a number (got \"warm\")",
        ),
        (
            form("", "0", ""),
            "top_p must be greater than 0 and at most 1 (got 0)",
        ),
        (
            form("", "", "9000"),
            "max_new_tokens must be from 1 to 8192 (got 9000)",
        ),
        (
            form("", "", "0"),
            "max_new_tokens must be from 1 to 8192 (got 0)",
        ),
    ] {
        match f.chat.save_settings(Some(user), &c, bad).await {
            Err(ChatError::Invalid(m)) => assert_eq!(m, message),
            other => panic!("refused with {message:?}, got {other:?}"),
        }
    }
    let unchanged = f.chat.conversation(user, &c).await.unwrap();
    assert_eq!(unchanged.system_prompt, "");
    assert_eq!(unchanged.settings, Default::default());
    assert!(matches!(
        f.chat
            .save_settings(Some(user + 1), &c, form("", "", ""))
            .await,
        Err(ChatError::NotFound)
    ));

    f.chat
        .save_settings(Some(user), &c, form("0.3", "0.5", "40"))
        .await
        .unwrap();
    let view = f.chat.conversation(user, &c).await.unwrap();
    assert_eq!(view.system_prompt, "You are a pirate.");
    assert_eq!(view.settings.temperature, Some(0.3));
    assert_eq!(
        view.defaults.temperature,
        Some(Params::default().temperature)
    );
    let next = f
        .chat
        .send(Some(user), send(Some(&c), "Again"))
        .await
        .unwrap()
        .sent;
    finished(&f.chat, &next.message_id).await;
    let asked = f.backend.requests();
    let last = asked.last().unwrap();
    assert_eq!(
        chat_of(last)[0],
        ChatMessage::new("system", "You are a pirate.")
    );
    assert_eq!(
        (
            last.params.temperature,
            last.params.top_p,
            last.params.max_new_tokens
        ),
        (0.3, Some(0.5), 40)
    );
    // Retry uses them too.
    let again = f
        .chat
        .retry(Some(user), &c, &next.message_id)
        .await
        .unwrap();
    finished(&f.chat, &again.message_id).await;
    let asked = f.backend.requests();
    assert_eq!(asked.last().unwrap().params.max_new_tokens, 40);
    assert_eq!(chat_of(asked.last().unwrap())[0].role, "system");
}

#[tokio::test]
async fn personal_defaults_choose_the_model_and_prompt_of_new_conversations() {
    let f = fixture(words(&["ok"])).await;
    let (user, _, _) = start(&f, "Hi").await;
    let defaults = f.chat.user_settings(Some(user)).await.unwrap();
    assert_eq!(defaults.default_model, "fake");
    assert_eq!(defaults.prompts, ["", ""]);
    // Unknown models and over-long prompts are refused, and nothing is stored.
    assert!(matches!(
        f.chat.save_user_settings(Some(user), "nope", vec![]).await,
        Err(ChatError::Invalid(_))
    ));
    let long = "x".repeat(32_001);
    match f
        .chat
        .save_user_settings(Some(user), "fake", vec![("fake".into(), long)])
        .await
    {
        Err(ChatError::Invalid(m)) => assert!(m.contains("limit is 32000"), "{m}"),
        other => panic!("refused, got {other:?}"),
    }
    f.chat
        .save_user_settings(
            Some(user),
            "remote",
            vec![
                ("fake".into(), "".into()),
                ("remote".into(), "Answer briefly.".into()),
            ],
        )
        .await
        .unwrap();
    let defaults = f.chat.user_settings(Some(user)).await.unwrap();
    assert_eq!(defaults.default_model, "remote");
    assert_eq!(defaults.prompts, ["", "Answer briefly."]);

    let sent = f
        .chat
        .send(Some(user), send(None, "New one"))
        .await
        .unwrap()
        .sent;
    finished(&f.chat, &sent.message_id).await;
    let asked = f.remote.requests();
    assert_eq!(
        chat_of(&asked[0]),
        [
            ChatMessage::new("system", "Answer briefly."),
            ChatMessage::new("user", "New one"),
        ]
    );
    let view = f
        .chat
        .conversation(user, &sent.conversation_id)
        .await
        .unwrap();
    assert_eq!(view.system_prompt, "Answer briefly.");
    // Someone else's defaults are their own.
    let (other, _, _) = start(&f, "Hello").await;
    assert_eq!(
        f.chat
            .user_settings(Some(other))
            .await
            .unwrap()
            .default_model,
        "fake"
    );
}

#[tokio::test]
async fn the_model_titles_a_new_conversation_after_its_first_reply() {
    let f = fixture(words(&["Bread needs flour."])).await;
    f.backend.set_background(words(&["\"Baking", " Bread\"."]));
    let (user, c, _) = start(&f, "how do i bake bread at home").await;
    assert_eq!(f.chat.title(Some(user), &c).await.unwrap(), "Baking Bread");
    let titles = f.backend.background_requests();
    assert_eq!(titles.len(), 1);
    assert_eq!(titles[0].priority, inference::Priority::Background);
    assert!(chat_of(&titles[0])[0]
        .content
        .contains("how do i bake bread at home"));
    let view = f.chat.conversation(user, &c).await.unwrap();
    assert!(!view.title_provisional);
    let sidebar = f.chat.sidebar(user, 50).await.unwrap().groups;
    assert_eq!(sidebar[0].conversations[0].title, "Baking Bread");
    // The second reply does not title it again.
    let next = f
        .chat
        .send(Some(user), send(Some(&c), "more"))
        .await
        .unwrap()
        .sent;
    finished(&f.chat, &next.message_id).await;
    f.chat.title(Some(user), &c).await.unwrap();
    assert_eq!(f.backend.background_requests().len(), 1);
    // Nobody else may wait on it.
    assert!(matches!(
        f.chat.title(Some(user + 1), &c).await,
        Err(ChatError::NotFound)
    ));
}

#[tokio::test]
async fn a_title_the_person_typed_is_never_replaced() {
    let f = fixture(vec![Step::token("slow"), Step::pause_ms(300)]).await;
    f.backend.set_background(words(&["Model title"]));
    let sent = f
        .chat
        .send(None, send(None, "first words here"))
        .await
        .unwrap()
        .sent;
    let user = f.chat.generations().get(&sent.message_id).unwrap().user;
    let c = sent.conversation_id.clone();
    // Renamed while the first reply is still being written.
    assert_eq!(
        f.chat
            .rename(Some(user), &c, "  My own\ttitle ")
            .await
            .unwrap(),
        "My own title"
    );
    finished(&f.chat, &sent.message_id).await;
    assert_eq!(f.chat.title(Some(user), &c).await.unwrap(), "My own title");
    assert!(
        f.backend.background_requests().is_empty(),
        "no title was asked for"
    );
    match f.chat.rename(Some(user), &c, " ").await {
        Err(ChatError::Invalid(m)) => assert_eq!(m, "Type a title, or leave the title as it is."),
        other => panic!("refused, got {other:?}"),
    }
    assert!(matches!(
        f.chat.rename(Some(user + 1), &c, "mine").await,
        Err(ChatError::NotFound)
    ));
}

#[tokio::test]
async fn a_failed_title_keeps_the_provisional_one() {
    let f = fixture(words(&["Answer"])).await;
    f.backend
        .set_background(vec![Step::Fail(inference::Failure::internal("model gone"))]);
    let (user, c, _) = start(&f, "What is the capital of France").await;
    assert_eq!(
        f.chat.title(Some(user), &c).await.unwrap(),
        "What is the capital of France"
    );
    assert!(
        f.chat
            .conversation(user, &c)
            .await
            .unwrap()
            .title_provisional
    );
}

#[tokio::test]
async fn the_model_never_reads_its_own_reasoning_back() {
    let f = fixture(words(&[
        "<think>",
        "secret plan",
        "</think>",
        "\n\nThe answer.",
    ]))
    .await;
    let (user, c, _) = start(&f, "Q").await;
    let view = f.chat.conversation(user, &c).await.unwrap();
    assert_eq!(
        view.messages[1].content, "<think>secret plan</think>\n\nThe answer.",
        "the reasoning is stored and shown"
    );
    f.backend.push(words(&["ok"]));
    let next = f
        .chat
        .send(Some(user), send(Some(&c), "Q2"))
        .await
        .unwrap()
        .sent;
    finished(&f.chat, &next.message_id).await;
    let asked = f.backend.requests();
    let sent_back = &chat_of(asked.last().unwrap())[1];
    assert_eq!(sent_back.role, Role::Assistant.as_str());
    assert_eq!(sent_back.content, "The answer.");
    let _ = MessageState::Done;
}
