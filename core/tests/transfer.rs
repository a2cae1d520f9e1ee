//! Export and import (issue 14, items 3 and 4) over real SQLite files: Wick's
//! format round-trips a branched conversation exactly, a real-shaped ChatGPT
//! export imports with its tree, and every kind of broken file is refused
//! whole, with a message that says what and where.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use inference::scripted::Step;
use serde_json::{json, Value};
use wick_core::db::conversations::Owner;
use wick_core::transfer::{self, ImportSummary, TransferError};
use wick_core::{ChatSettings, SendRequest, UserId};
use wick_types::{GenerationSettings, Role};

/// ChatGPT's `conversations.json`, written by hand in its documented shape:
/// a null root, a hidden system message, an edit branch, an image part and a
/// tool message.
const CHATGPT: &str = include_str!("../../end2end/fixtures/chatgpt_conversations.json");

mod common;
use common::Fixture;

async fn fixture() -> Fixture {
    common::fixture_with(vec![Step::token("A1")], 8, ChatSettings::default()).await
}

impl Fixture {
    fn pool(&self) -> &sqlx::SqlitePool {
        self.chat.pool()
    }

    async fn finished(&self, id: &str) {
        let task = self.chat.generations().get(id).expect("the reply is known");
        tokio::time::timeout(Duration::from_secs(10), task.events_after(0).count())
            .await
            .expect("the reply ends");
    }

    async fn send(
        &self,
        user: Option<UserId>,
        conversation: Option<&str>,
        text: &str,
    ) -> (UserId, String, wick_types::Sent) {
        let sent = self
            .chat
            .send(
                user,
                SendRequest {
                    conversation_id: conversation.map(str::to_owned),
                    content: text.into(),
                    model: None,
                },
            )
            .await
            .unwrap()
            .sent;
        self.finished(&sent.message_id).await;
        let user = self.chat.generations().get(&sent.message_id).unwrap().user;
        (user, sent.conversation_id.clone(), sent)
    }

    /// A conversation with two branches (the second question edited), a
    /// system prompt and a setting of its own; its user and id.
    async fn branched(&self) -> (UserId, String) {
        let (user, c, _) = self.send(None, None, "Q1").await;
        self.backend.push(vec![Step::token("A2")]);
        let (_, _, second) = self.send(Some(user), Some(&c), "Q2").await;
        let q2 = second.user_message.unwrap().id;
        self.backend
            .push(vec![Step::token("A2 "), Step::token("edited")]);
        let edited = self
            .chat
            .edit(Some(user), &c, &q2, "Q2 fixed")
            .await
            .unwrap();
        self.finished(&edited.message_id).await;
        wick_core::db::conversations::set_settings(
            self.pool(),
            user,
            &c,
            "Answer briefly.",
            &GenerationSettings {
                temperature: Some(0.25),
                ..GenerationSettings::default()
            },
        )
        .await
        .unwrap();
        (user, c)
    }

    async fn import(&self, user: UserId, file: &[u8]) -> Result<ImportSummary, TransferError> {
        transfer::import(self.pool(), Owner::User(user), "fake", file)
            .await
            .map(|(_, summary)| summary)
    }

    async fn count(&self, user: UserId) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM conversations WHERE user_id = ?")
            .bind(user)
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    /// The ids of the user's conversations, oldest row first.
    async fn ids(&self, user: UserId) -> Vec<String> {
        sqlx::query_scalar("SELECT id FROM conversations WHERE user_id = ? ORDER BY rowid")
            .bind(user)
            .fetch_all(self.pool())
            .await
            .unwrap()
    }

    async fn export(&self, user: UserId, id: &str) -> Value {
        let export = wick_core::db::transfer::export_conversation(self.pool(), user, id)
            .await
            .unwrap();
        serde_json::to_value(export).unwrap()
    }
}

/// An export with every id replaced by its order of first appearance, and
/// the time of export dropped: what must be equal after a round trip.
fn normalised(mut export: Value) -> Value {
    fn walk(value: &mut Value, seen: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    if matches!(key.as_str(), "id" | "parent_id" | "leaf_message_id") {
                        if let Value::String(id) = v {
                            let at = seen.iter().position(|s| s == id).unwrap_or_else(|| {
                                seen.push(id.clone());
                                seen.len() - 1
                            });
                            *v = json!(format!("#{at}"));
                        }
                    } else {
                        walk(v, seen);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, seen)),
            _ => {}
        }
    }
    export.as_object_mut().unwrap().remove("exported_at");
    walk(&mut export, &mut Vec::new());
    export
}

#[tokio::test]
async fn a_branched_conversation_round_trips_exactly_through_wicks_format() {
    let f = fixture().await;
    let (alice, c) = f.branched().await;
    let original = f.export(alice, &c).await;
    let messages = original["conversations"][0]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 6, "both branches are exported: {original}");
    assert_eq!(
        original["conversations"][0]["settings"],
        json!({"temperature": 0.25})
    );

    // Into someone else's history (a fresh visitor), then out again.
    let file = serde_json::to_vec(&original).unwrap();
    let (bob, summary) = transfer::import(
        f.pool(),
        Owner::NewVisitor {
            token_hash: [7; 32],
            lifetime: Duration::from_secs(60),
        },
        "fake",
        &file,
    )
    .await
    .unwrap();
    assert_ne!(bob, alice);
    assert_eq!(
        summary,
        ImportSummary {
            imported: 1,
            copies: 0,
            skipped_parts: 0,
            settings_restored: 0
        }
    );
    let copy = f.ids(bob).await;
    assert_eq!(copy.len(), 1);
    assert_ne!(copy[0], c, "an imported conversation gets a fresh id");
    let again = f.export(bob, &copy[0]).await;
    assert_eq!(normalised(again), normalised(original.clone()));

    // The branch shown is the same one, with its sibling still reachable.
    let view = f.chat.conversation(bob, &copy[0]).await.unwrap();
    let shown: Vec<&str> = view.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(shown, ["Q1", "A1", "Q2 fixed", "A2 edited"]);
    assert_eq!(view.messages[2].siblings.as_ref().map(|s| s.count), Some(2));
    assert_eq!(view.system_prompt, "Answer briefly.");
}

#[tokio::test]
async fn a_chatgpt_export_imports_with_its_tree_shown_branch_times_and_skipped_parts() {
    let f = fixture().await;
    let (user, _, _) = f.send(None, None, "Mine").await;
    let summary = f.import(user, CHATGPT.as_bytes()).await.unwrap();
    assert_eq!(
        summary,
        ImportSummary {
            imported: 2,
            copies: 0,
            // The image beside the Italy question, and the tool's output.
            skipped_parts: 2,
            settings_restored: 0
        }
    );
    let ids = f.ids(user).await;
    assert_eq!(ids.len(), 3);
    let export = f.export(user, &ids[1]).await;
    let c = &export["conversations"][0];
    assert_eq!(c["title"], "Capitals of Europe");
    assert_eq!(c["created_at"], 1_700_000_000_123_i64);
    assert_eq!(c["updated_at"], 1_700_000_400_900_i64);
    let messages = c["messages"].as_array().unwrap();
    let rows: Vec<(&str, &str, i64)> = messages
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap(),
                m["content"].as_str().unwrap(),
                m["created_at"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("user", "What is the capital of France?", 1_700_000_001_500),
            (
                "assistant",
                "The capital of France is **Paris**.",
                1_700_000_003_250
            ),
            ("user", "And of Spain?", 1_700_000_100_000),
            ("assistant", "Madrid.", 1_700_000_102_000),
            (
                "user",
                "And of Italy, as in this picture?",
                1_700_000_200_000
            ),
            (
                "assistant",
                "Rome is the capital of Italy.",
                1_700_000_204_750
            ),
        ]
    );
    // The tree: the null root and the hidden system message are gone, the
    // first question is a root, and both versions of the second answer it.
    let id = |i: usize| messages[i]["id"].clone();
    let parents: Vec<Value> = messages.iter().map(|m| m["parent_id"].clone()).collect();
    assert_eq!(
        parents,
        [Value::Null, id(0), id(1), id(2), id(1), id(4)],
        "{export}"
    );
    assert_eq!(messages[1]["model"], "gpt-4o");
    // `current_node` is the branch shown.
    assert_eq!(c["leaf_message_id"], id(5));
    let view = f.chat.conversation(user, &ids[1]).await.unwrap();
    let shown: Vec<(Role, &str)> = view
        .messages
        .iter()
        .map(|m| (m.role, m.content.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            (Role::User, "What is the capital of France?"),
            (Role::Assistant, "The capital of France is **Paris**."),
            (Role::User, "And of Italy, as in this picture?"),
            (Role::Assistant, "Rome is the capital of Italy."),
        ]
    );
    let siblings = view.messages[2].siblings.clone().unwrap();
    assert_eq!((siblings.position, siblings.count), (2, 2));
    // Wick's own models answer what comes next.
    assert_eq!(view.model, "fake");
    // It is a conversation like any other: it can be continued.
    f.backend.push(vec![Step::token("Yes")]);
    let (_, _, next) = f.send(Some(user), Some(&ids[1]), "Thanks").await;
    assert_eq!(next.reply.state, wick_types::MessageState::Generating);
}

#[tokio::test]
async fn importing_the_same_file_twice_makes_copies_and_says_so() {
    let f = fixture().await;
    let (user, c, _) = f.send(None, None, "Mine").await;
    let first = f.import(user, CHATGPT.as_bytes()).await.unwrap();
    assert_eq!((first.imported, first.copies), (2, 0));
    let second = f.import(user, CHATGPT.as_bytes()).await.unwrap();
    assert_eq!((second.imported, second.copies), (2, 2));
    assert_eq!(f.count(user).await, 5);
    // A Wick export of one's own conversation, imported back, is a copy too.
    let own = serde_json::to_vec(&f.export(user, &c).await).unwrap();
    let back = f.import(user, &own).await.unwrap();
    assert_eq!((back.imported, back.copies), (1, 1));
    assert_eq!(f.count(user).await, 6);
}

/// The fixture as a value, for breaking.
fn chatgpt() -> Value {
    serde_json::from_str(CHATGPT).unwrap()
}

#[tokio::test]
async fn malformed_and_foreign_files_are_refused_whole_with_what_and_where() {
    let f = fixture().await;
    let (user, c, _) = f.send(None, None, "Mine").await;
    let before = f.count(user).await;
    let refuse = |file: Vec<u8>| {
        let f = &f;
        async move {
            let e = f
                .import(user, &file)
                .await
                .expect_err("the file is refused");
            assert!(e.is_client_error(), "{e}");
            assert_eq!(f.count(user).await, before, "nothing was imported: {e}");
            (e.to_string(), e)
        }
    };

    // Cut off in the middle.
    let (message, e) = refuse(CHATGPT.as_bytes()[..CHATGPT.len() / 2].to_vec()).await;
    assert!(
        matches!(e, TransferError::Truncated { line, .. } if line > 10),
        "{message}"
    );
    assert!(message.contains("line"), "{message}");

    // Not JSON at all.
    let (message, _) = refuse(b"title: hello\n".to_vec()).await;
    assert!(
        message.contains("not valid JSON") && message.contains("line 1"),
        "{message}"
    );

    // A wrong type in the second conversation: the first was fine, and
    // still nothing is stored.
    let mut file = chatgpt();
    file[1]["title"] = json!(5);
    let (message, _) = refuse(serde_json::to_vec(&file).unwrap()).await;
    assert!(message.starts_with("Conversation 1 "), "{message}");
    assert!(message.contains("field `title`"), "{message}");
    assert!(message.contains("invalid type"), "{message}");

    let mut file = chatgpt();
    file[0]["mapping"]["user-1"]["message"]["create_time"] = json!("yesterday");
    let (message, _) = refuse(serde_json::to_vec(&file).unwrap()).await;
    assert!(message.starts_with("Conversation 0 "), "{message}");
    assert!(
        message.contains("field `mapping.user-1.message.create_time`"),
        "{message}"
    );

    let mut file = chatgpt();
    file[1].as_object_mut().unwrap().remove("mapping");
    let (message, _) = refuse(serde_json::to_vec(&file).unwrap()).await;
    assert!(
        message.contains("Conversation 1 ") && message.contains("`mapping`"),
        "{message}"
    );

    // A cycle: two nodes each the other's parent.
    let mut file = chatgpt();
    file[0]["mapping"]["user-1"]["parent"] = json!("asst-1");
    let (message, e) = refuse(serde_json::to_vec(&file).unwrap()).await;
    assert!(
        matches!(e, TransferError::Cycle { index: 0, .. }),
        "{message}"
    );
    assert!(message.contains("cycle"), "{message}");

    // A parent, a child, a current node that are not there.
    let mut file = chatgpt();
    file[1]["mapping"]["a-2"]["parent"] = json!("gone");
    let (message, _) = refuse(serde_json::to_vec(&file).unwrap()).await;
    assert!(
        message.contains("Conversation 1 ")
            && message.contains("mapping.a-2.parent")
            && message.contains("\"gone\""),
        "{message}"
    );
    let mut file = chatgpt();
    file[0]["mapping"]["asst-2b"]["children"] = json!(["ghost"]);
    let (message, _) = refuse(serde_json::to_vec(&file).unwrap()).await;
    assert!(message.contains("mapping.asst-2b.children"), "{message}");
    let mut file = chatgpt();
    file[0]["current_node"] = json!("nowhere");
    let (message, _) = refuse(serde_json::to_vec(&file).unwrap()).await;
    assert!(message.contains("current_node"), "{message}");

    // Neither format.
    let (message, e) = refuse(br#"{"hello": "world"}"#.to_vec()).await;
    assert!(matches!(e, TransferError::NotRecognised), "{message}");
    let (_, e) = refuse(b"42".to_vec()).await;
    assert!(matches!(e, TransferError::NotRecognised));
    let (_, e) = refuse(b"  \n".to_vec()).await;
    assert!(matches!(e, TransferError::Empty));

    // Wick's format, broken: a missing parent, a leaf elsewhere, a wrong
    // type, a later version.
    let export = f.export(user, &c).await;
    let mut file = export.clone();
    file["conversations"][0]["messages"][1]["parent_id"] = json!("0123");
    let (message, _) = refuse(serde_json::to_vec(&file).unwrap()).await;
    assert!(message.contains("messages[1].parent_id"), "{message}");
    let mut file = export.clone();
    file["conversations"][0]["leaf_message_id"] = json!("elsewhere");
    let (message, _) = refuse(serde_json::to_vec(&file).unwrap()).await;
    assert!(message.contains("leaf_message_id"), "{message}");
    let mut file = export.clone();
    file["conversations"][0]["messages"][0]["role"] = json!("wizard");
    let (message, _) = refuse(serde_json::to_vec(&file).unwrap()).await;
    assert!(
        message.starts_with("Conversation 0 ") && message.contains("field `messages[0].role`"),
        "{message}"
    );
    let mut file = export.clone();
    file["conversations"][0]["messages"][0]["parent_id"] =
        file["conversations"][0]["messages"][1]["id"].clone();
    let (_, e) = refuse(serde_json::to_vec(&file).unwrap()).await;
    assert!(matches!(e, TransferError::Cycle { .. }), "{e}");
    let mut file = export.clone();
    file["version"] = json!(2);
    let (_, e) = refuse(serde_json::to_vec(&file).unwrap()).await;
    assert!(matches!(e, TransferError::Version(2)));
    let mut file = export.clone();
    file.as_object_mut().unwrap().remove("version");
    let (_, e) = refuse(serde_json::to_vec(&file).unwrap()).await;
    assert!(matches!(e, TransferError::NoVersion));
    let mut file = export.clone();
    file["conversations"] = json!({"a": 1});
    let (message, _) = refuse(serde_json::to_vec(&file).unwrap()).await;
    assert!(
        message.starts_with("Field `conversations`: invalid type: map"),
        "{message}"
    );

    // Over the limit, before any of it is read.
    let mut big = vec![b' '; 101 * 1000 * 1000];
    big[0] = b'[';
    let (message, e) = refuse(big).await;
    assert!(matches!(e, TransferError::TooLarge));
    assert!(
        message.starts_with("The file is larger than 100 MB"),
        "{message}"
    );
}

#[tokio::test]
async fn an_export_of_everything_streams_the_users_conversations_only() {
    let f = fixture().await;
    let (alice, a1, _) = f.send(None, None, "Alice one").await;
    f.backend.push(vec![Step::token("A")]);
    let (_, a2, _) = f.send(Some(alice), None, "Alice two").await;
    f.backend.push(vec![Step::token("B")]);
    let (bob, _, _) = f.send(None, None, "Bob's secret").await;

    let pieces: Vec<String> = wick_core::db::transfer::export_all(f.pool().clone(), Some(alice))
        .try_collect()
        .await
        .unwrap();
    // The head, one piece per conversation, the end.
    assert_eq!(pieces.len(), 4, "{pieces:?}");
    let all: Value = serde_json::from_str(&pieces.concat()).unwrap();
    assert_eq!(all["format"], "wick");
    let ids: Vec<&str> = all["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a1.as_str(), a2.as_str()]);
    assert!(!pieces.concat().contains("Bob's secret"));

    // A visitor without a session: an empty export.
    let none: Vec<String> = wick_core::db::transfer::export_all(f.pool().clone(), None)
        .try_collect()
        .await
        .unwrap();
    let none: Value = serde_json::from_str(&none.concat()).unwrap();
    assert_eq!(none["conversations"], json!([]));

    // What everything exports, imports again whole.
    let summary = f.import(bob, pieces.concat().as_bytes()).await.unwrap();
    assert_eq!((summary.imported, summary.copies), (2, 0));
    assert_eq!(f.count(bob).await, 3);

    // Someone else's conversation is not found.
    assert!(matches!(
        wick_core::db::transfer::export_conversation(f.pool(), bob, &a1).await,
        Err(wick_core::StoreError::NotFound)
    ));
}

#[tokio::test]
async fn an_export_of_everything_carries_the_settings_and_an_import_fills_only_what_is_unset() {
    use wick_core::db::settings;
    let f = fixture().await;
    let (alice, _, _) = f.send(None, None, "Alice").await;
    let prompts = [
        ("fake".to_owned(), "Be brief.".to_owned()),
        ("gone-model".to_owned(), "Speak French.".to_owned()),
    ];
    settings::save(f.pool(), alice, "fake", &prompts)
        .await
        .unwrap();
    let file: String = wick_core::db::transfer::export_all(f.pool().clone(), Some(alice))
        .try_collect::<Vec<String>>()
        .await
        .unwrap()
        .concat();
    let all: Value = serde_json::from_str(&file).unwrap();
    assert_eq!(
        all["preferences"],
        json!({
            "default_model": "fake",
            "model_prompts": { "fake": "Be brief.", "gone-model": "Speak French." }
        })
    );

    // Someone with no settings of their own gets all three…
    f.backend.push(vec![Step::token("B")]);
    let (bob, _, _) = f.send(None, None, "Bob").await;
    let summary = f.import(bob, file.as_bytes()).await.unwrap();
    assert_eq!((summary.imported, summary.settings_restored), (1, 3));
    assert_eq!(
        settings::default_model(f.pool(), bob)
            .await
            .unwrap()
            .as_deref(),
        Some("fake")
    );
    assert_eq!(
        settings::model_prompts(f.pool(), bob).await.unwrap(),
        prompts
    );
    // …and a second import changes nothing of them.
    let again = f.import(bob, file.as_bytes()).await.unwrap();
    assert_eq!((again.copies, again.settings_restored), (1, 0));

    // What someone chose here is never overwritten: only the missing prompt is added.
    f.backend.push(vec![Step::token("C")]);
    let (carol, _, _) = f.send(None, None, "Carol").await;
    let mine = [("fake".to_owned(), "Mine.".to_owned())];
    settings::save(f.pool(), carol, "fake", &mine)
        .await
        .unwrap();
    let summary = f.import(carol, file.as_bytes()).await.unwrap();
    assert_eq!(summary.settings_restored, 1);
    assert_eq!(
        settings::model_prompts(f.pool(), carol).await.unwrap(),
        [
            ("fake".to_owned(), "Mine.".to_owned()),
            ("gone-model".to_owned(), "Speak French.".to_owned())
        ]
    );

    // A prompt longer than the Settings page allows refuses the file whole.
    let mut long = all.clone();
    long["preferences"]["model_prompts"]["fake"] = json!("x".repeat(32_001));
    let before = f.count(carol).await;
    let refused = f
        .import(carol, long.to_string().as_bytes())
        .await
        .unwrap_err();
    let message = refused.to_string();
    assert!(
        message.contains("preferences.model_prompts.fake") && message.contains("32001"),
        "{message}"
    );
    assert_eq!(f.count(carol).await, before);
}

/// A ChatGPT conversation of `turns` messages in one chain.
fn chatgpt_chain(n: usize, turns: usize) -> Value {
    let mut mapping = serde_json::Map::new();
    for i in 0..turns {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        mapping.insert(
            format!("m{i}"),
            json!({"id": format!("m{i}"),
                   "parent": (i > 0).then(|| format!("m{}", i - 1)),
                   "children": if i + 1 < turns { vec![format!("m{}", i + 1)] } else { vec![] },
                   "message": {"id": format!("m{i}"), "author": {"role": role},
                               "create_time": 1_700_000_000.0 + i as f64,
                               "content": {"content_type": "text", "parts": [format!("{n}: turn {i}")]}}}),
        );
    }
    json!({"title": format!("Conversation {n}"), "create_time": 1_700_000_000.0,
           "mapping": mapping, "current_node": format!("m{}", turns - 1), "id": format!("c{n}")})
}

#[tokio::test]
async fn a_long_history_exports_whole_across_pages() {
    let f = fixture().await;
    let (user, _, _) = f.send(None, None, "Mine").await;
    // More conversations than a page holds, and two longer than a page's
    // messages: every page boundary is crossed.
    let mut file: Vec<Value> = (0..150).map(|n| chatgpt_chain(n, 2)).collect();
    file.insert(40, chatgpt_chain(1000, 3000));
    file.insert(41, chatgpt_chain(1001, 6000));
    let summary = f
        .import(user, &serde_json::to_vec(&file).unwrap())
        .await
        .unwrap();
    assert_eq!(summary.imported, 152);

    let pieces: Vec<String> = wick_core::db::transfer::export_all(f.pool().clone(), Some(user))
        .try_collect()
        .await
        .unwrap();
    let all: Value = serde_json::from_str(&pieces.concat()).unwrap();
    let conversations = all["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 153);
    assert_eq!(conversations[0]["title"], "Mine");
    for (c, expected) in conversations[1..].iter().zip(&file) {
        assert_eq!(c["title"], expected["title"]);
        let messages = c["messages"].as_array().unwrap();
        assert_eq!(
            messages.len(),
            expected["mapping"].as_object().unwrap().len()
        );
        let last = messages.last().unwrap();
        assert_eq!(c["leaf_message_id"], last["id"]);
        let n = expected["id"].as_str().unwrap().trim_start_matches('c');
        assert_eq!(
            last["content"].as_str().unwrap(),
            format!("{n}: turn {}", messages.len() - 1)
        );
    }
}
