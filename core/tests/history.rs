//! Issue 14's history operations, in process over a real SQLite file and a
//! scripted backend: full-text search (every branch, the owner's text only,
//! any typed syntax, kept in step with renames, deletes and new messages),
//! pins and the sidebar's pages, deletion, and share links.

use std::time::Duration;

use futures::StreamExt;
use inference::scripted::Step;
use wick_core::{ChatError, ChatSettings, SendRequest, UserId};
use wick_types::{Period, Role};

mod common;
use common::Fixture;

async fn fixture() -> Fixture {
    let settings = ChatSettings {
        replies_per_user: 8,
        ..ChatSettings::default()
    };
    common::fixture_with(vec![], 8, settings).await
}

impl Fixture {
    /// Sends `content` (into `conversation`, or starting one) with the reply
    /// `answer`, and waits for the reply to end. The user, conversation and reply.
    async fn say(
        &self,
        user: Option<UserId>,
        conversation: Option<&str>,
        content: &str,
        answer: &str,
    ) -> (UserId, String, String) {
        self.backend.push(vec![Step::token(answer)]);
        let request = SendRequest {
            conversation_id: conversation.map(str::to_owned),
            content: content.into(),
            model: None,
        };
        let sent = self.chat.send(user, request).await.unwrap().sent;
        self.finished(&sent.message_id).await;
        let user = self.chat.generations().get(&sent.message_id).unwrap().user;
        (user, sent.conversation_id, sent.message_id)
    }

    async fn finished(&self, reply: &str) {
        let task = self
            .chat
            .generations()
            .get(reply)
            .expect("the reply is known");
        tokio::time::timeout(Duration::from_secs(10), task.events_after(0).count())
            .await
            .expect("the reply ends");
    }

    /// The conversations a search finds, by id.
    async fn found(&self, user: UserId, query: &str) -> Vec<String> {
        let results = self.chat.search(Some(user), query).await.unwrap();
        results
            .hits
            .into_iter()
            .map(|h| h.conversation_id)
            .collect()
    }
}

#[tokio::test]
async fn search_finds_any_branch_and_only_the_owners_text() {
    let f = fixture().await;
    let (alice, c, first) = f
        .say(
            None,
            None,
            "Tell me about lighthouses",
            "Keepers trim the wick nightly",
        )
        .await;
    // A retry makes branch 2 of 2; "wick" is only in branch 1, no longer shown.
    f.backend.push(vec![Step::token("Lamps need oil")]);
    let again = f.chat.retry(Some(alice), &c, &first).await.unwrap();
    f.finished(&again.message_id).await;
    let shown = f.chat.conversation(alice, &c).await.unwrap();
    assert_eq!(shown.messages[1].content, "Lamps need oil");

    let results = f.chat.search(Some(alice), "wick").await.unwrap();
    assert_eq!(results.hits.len(), 1);
    let hit = &results.hits[0];
    assert_eq!(hit.conversation_id, c);
    assert_eq!(hit.message_id.as_deref(), Some(first.as_str()));
    assert_eq!(hit.role, Some(Role::Assistant));
    let marked: Vec<&str> = hit
        .snippet
        .iter()
        .filter(|p| p.hit)
        .map(|p| p.text.as_str())
        .collect();
    assert_eq!(marked, ["wick"]);
    // Opened at the hit, the conversation shows the hit's branch (stored).
    let opened = f
        .chat
        .conversation_at(alice, &c, Some(&first))
        .await
        .unwrap();
    assert_eq!(opened.messages[1].content, "Keepers trim the wick nightly");
    let reloaded = f.chat.conversation(alice, &c).await.unwrap();
    assert_eq!(reloaded.messages[1].id, first);

    // Bob's text is never Alice's result, and hers never his.
    let (bob, bobs, _) = f
        .say(None, None, "Wick candles for my lighthouse", "Sure")
        .await;
    assert_eq!(f.found(alice, "candles").await, Vec::<String>::new());
    assert_eq!(f.found(bob, "candles").await, vec![bobs.clone()]);
    assert_eq!(f.found(bob, "keepers").await, Vec::<String>::new());
    assert_eq!(f.found(alice, "lighthouse*").await, vec![c.clone()]);
    // No session: nothing, not an error.
    assert!(f.chat.search(None, "wick").await.unwrap().hits.is_empty());
}

#[tokio::test]
async fn typed_search_syntax_never_fails_and_is_read_as_words() {
    let f = fixture().await;
    let (alice, c, _) = f
        .say(
            None,
            None,
            "Salt AND pepper, near the stove",
            "The \"best\" blend",
        )
        .await;
    for query in [
        "\"",
        "*",
        "NEAR(",
        "AND",
        "OR",
        "NOT",
        "(",
        ")",
        "^",
        "-",
        ":",
        "a:b",
        "\"unclosed phrase",
        "NEAR(salt pepper, 2)",
        "salt OR",
        "col:value",
        "***",
        "\"\"",
        "'",
        "{a b}",
        "+",
    ] {
        let result = f.chat.search(Some(alice), query).await;
        assert!(result.is_ok(), "{query:?} gave {result:?}");
    }
    assert_eq!(f.found(alice, "AND").await, vec![c.clone()]);
    assert_eq!(f.found(alice, "NEAR(").await, vec![c.clone()]);
    assert_eq!(f.found(alice, "\"salt and pepper\"").await, vec![c.clone()]);
    assert_eq!(
        f.found(alice, "\"pepper and salt\"").await,
        Vec::<String>::new()
    );
    assert_eq!(f.found(alice, "pep*").await, vec![c.clone()]);
    assert_eq!(f.found(alice, "\"best\"").await, vec![c.clone()]);
    assert_eq!(f.found(alice, "salt missing").await, Vec::<String>::new());
}

#[tokio::test]
async fn search_follows_renames_deletes_and_new_messages() {
    let f = fixture().await;
    let (alice, c, _) = f.say(None, None, "First question", "First answer").await;
    assert!(f.found(alice, "zeppelin").await.is_empty());

    f.chat
        .rename(Some(alice), &c, "Zeppelin plans")
        .await
        .unwrap();
    let results = f.chat.search(Some(alice), "zeppelin").await.unwrap();
    assert_eq!(results.hits.len(), 1);
    assert_eq!(results.hits[0].message_id, None, "a title match");
    f.chat
        .rename(Some(alice), &c, "Airship plans")
        .await
        .unwrap();
    assert!(f.found(alice, "zeppelin").await.is_empty());
    assert_eq!(f.found(alice, "airship").await, vec![c.clone()]);

    f.say(Some(alice), Some(&c), "What about hydrogen?", "Dangerous")
        .await;
    assert_eq!(f.found(alice, "hydrogen").await, vec![c.clone()]);
    assert_eq!(f.found(alice, "dangerous").await, vec![c.clone()]);

    f.chat.delete(Some(alice), &c).await.unwrap();
    assert!(f.found(alice, "hydrogen").await.is_empty());
    assert!(f.found(alice, "airship").await.is_empty());
}

#[tokio::test]
async fn pins_come_first_and_the_sidebar_comes_in_pages() {
    let f = fixture().await;
    let (alice, first, _) = f.say(None, None, "Oldest", "a").await;
    let mut ids = vec![first.clone()];
    for i in 0..54 {
        // A new millisecond for each: within one, the sidebar's order is by
        // id (its index's order), not by which came first.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let (_, c, _) = f
            .say(Some(alice), None, &format!("Question {i}"), "a")
            .await;
        ids.push(c);
    }
    let page = f.chat.sidebar(alice, 50).await.unwrap();
    assert_eq!((page.shown, page.more), (50, true));
    let listed: Vec<&str> = page
        .groups
        .iter()
        .flat_map(|g| g.conversations.iter().map(|c| c.id.as_str()))
        .collect();
    assert_eq!(listed.len(), 50);
    assert_eq!(listed[0], ids[54], "newest first");
    assert!(!listed.contains(&first.as_str()));

    f.chat.pin(Some(alice), &first, true).await.unwrap();
    let page = f.chat.sidebar(alice, 50).await.unwrap();
    assert_eq!(page.groups[0].period, Period::Pinned);
    assert_eq!(page.groups[0].conversations[0].id, first);
    assert_eq!(page.groups[1].period, Period::Today);
    assert!(f.chat.conversation(alice, &first).await.unwrap().pinned);

    let all = f.chat.sidebar(alice, 100).await.unwrap();
    assert_eq!((all.shown, all.more), (100, false));
    assert_eq!(
        all.groups
            .iter()
            .map(|g| g.conversations.len())
            .sum::<usize>(),
        55
    );

    f.chat.pin(Some(alice), &first, false).await.unwrap();
    let page = f.chat.sidebar(alice, 50).await.unwrap();
    assert_eq!(page.groups[0].period, Period::Today);

    // Someone else's conversation cannot be pinned.
    let (bob, _, _) = f.say(None, None, "Bob", "b").await;
    assert!(matches!(
        f.chat.pin(Some(bob), &first, true).await,
        Err(ChatError::NotFound)
    ));
}

#[tokio::test]
async fn deleting_removes_a_conversation_whole_and_only_the_owners() {
    let f = fixture().await;
    let (alice, c, _) = f.say(None, None, "Keep me?", "No").await;
    let (_, c2, _) = f.say(Some(alice), None, "And me?", "Also no").await;
    let (bob, bobs, _) = f.say(None, None, "Bob's", "Stays").await;
    let link = f.chat.share(Some(alice), &c, "never").await.unwrap();

    assert!(matches!(
        f.chat.delete(Some(bob), &c).await,
        Err(ChatError::NotFound)
    ));
    assert!(matches!(
        f.chat.delete(None, &c).await,
        Err(ChatError::NotFound)
    ));
    f.chat.delete(Some(alice), &c).await.unwrap();
    assert!(matches!(
        f.chat.conversation(alice, &c).await,
        Err(ChatError::NotFound)
    ));
    assert!(
        matches!(f.chat.shared(&link.id).await, Err(ChatError::NotFound)),
        "its links go too"
    );
    assert!(matches!(
        f.chat.delete(Some(alice), &c).await,
        Err(ChatError::NotFound)
    ));

    assert_eq!(f.chat.delete_all(Some(alice)).await.unwrap(), 1);
    assert!(matches!(
        f.chat.conversation(alice, &c2).await,
        Err(ChatError::NotFound)
    ));
    assert!(f.chat.sidebar(alice, 50).await.unwrap().groups.is_empty());
    assert_eq!(
        f.chat
            .conversation(bob, &bobs)
            .await
            .unwrap()
            .messages
            .len(),
        2
    );
}

#[tokio::test]
async fn a_reply_being_written_is_stopped_when_its_conversation_is_deleted() {
    let f = fixture().await;
    let (alice, _, _) = f.say(None, None, "Hello", "Hi").await;
    f.backend
        .push(vec![Step::token("slow"), Step::pause_ms(60_000)]);
    let sent = f
        .chat
        .send(
            Some(alice),
            SendRequest {
                content: "Write forever".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .sent;
    f.chat
        .delete(Some(alice), &sent.conversation_id)
        .await
        .unwrap();
    f.finished(&sent.message_id).await;
    assert!(matches!(
        f.chat.conversation(alice, &sent.conversation_id).await,
        Err(ChatError::NotFound)
    ));
}

#[tokio::test]
async fn share_links_open_for_anyone_until_revoked_or_expired() {
    let f = fixture().await;
    let (alice, c, first) = f.say(None, None, "Share this", "Gladly").await;
    f.backend.push(vec![Step::token("Second version")]);
    let again = f.chat.retry(Some(alice), &c, &first).await.unwrap();
    f.finished(&again.message_id).await;
    let link = f.chat.share(Some(alice), &c, "7d").await.unwrap();
    assert_eq!(link.id.len(), 32);
    assert!(link.expires_at.unwrap() > link.created_at);

    // The snapshot is the branch shown; later messages are not in it.
    f.say(Some(alice), Some(&c), "Private follow-up", "Not shared")
        .await;
    let seen = f.chat.shared(&link.id).await.unwrap();
    let texts: Vec<&str> = seen.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["Share this", "Second version"]);
    assert_eq!(seen.messages[1].model.as_deref(), Some("Fake model"));

    // Bob cannot share, list or revoke Alice's links.
    let (bob, _, _) = f.say(None, None, "Bob", "b").await;
    assert!(matches!(
        f.chat.share(Some(bob), &c, "never").await,
        Err(ChatError::NotFound)
    ));
    assert!(f.chat.shares(Some(bob)).await.unwrap().is_empty());
    assert!(matches!(
        f.chat.revoke_share(Some(bob), &link.id).await,
        Err(ChatError::NotFound)
    ));
    assert!(matches!(
        f.chat.share(Some(alice), &c, "2d").await,
        Err(ChatError::Invalid(_))
    ));

    // Bob continues it in his own chat: a copy of his, Alice's untouched.
    let (copy, token) = f.chat.copy_shared(Some(bob), &link.id).await.unwrap();
    assert!(token.is_none());
    let his = f.chat.conversation(bob, &copy).await.unwrap();
    let texts: Vec<&str> = his.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["Share this", "Second version"]);
    assert!(matches!(
        f.chat.conversation(alice, &copy).await,
        Err(ChatError::NotFound)
    ));
    f.say(Some(bob), Some(&copy), "Bob's own turn", "ok").await;
    assert_eq!(
        f.chat.conversation(alice, &c).await.unwrap().messages.len(),
        4
    );
    // A visitor without a session gets a session with the copy.
    let (_, token) = f.chat.copy_shared(None, &link.id).await.unwrap();
    assert!(token.is_some());

    assert_eq!(f.chat.shares(Some(alice)).await.unwrap().len(), 1);
    f.chat.revoke_share(Some(alice), &link.id).await.unwrap();
    assert!(matches!(
        f.chat.shared(&link.id).await,
        Err(ChatError::NotFound)
    ));
    assert!(matches!(
        f.chat.copy_shared(Some(bob), &link.id).await,
        Err(ChatError::NotFound)
    ));
    assert!(f.chat.shares(Some(alice)).await.unwrap().is_empty());

    // An expired link is gone as well.
    let day = f.chat.share(Some(alice), &c, "1d").await.unwrap();
    assert!(f.chat.shared(&day.id).await.is_ok());
    sqlx::query("UPDATE shares SET expires_at = ? WHERE id = ?")
        .bind(wick_core::db::now_ms() - 1)
        .bind(&day.id)
        .execute(f.chat.pool())
        .await
        .unwrap();
    assert!(matches!(
        f.chat.shared(&day.id).await,
        Err(ChatError::NotFound)
    ));
    assert!(f.chat.shares(Some(alice)).await.unwrap().is_empty());
}
