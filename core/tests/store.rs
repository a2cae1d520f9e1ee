//! The data layer against a real SQLite file.

use std::time::Duration;

use sqlx::Row;
use wick_core::db::{self as store, conversations, users, Finish, NewReply, StoreError};
use wick_types::{FinishReason, MessageState, Role};

async fn fresh_db() -> (tempfile::TempDir, String, sqlx::SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    // A nested directory that does not exist yet: `open` must create it.
    let url = format!("sqlite://{}/nested/wick.db", dir.path().display());
    let pool = store::open(&url).await.unwrap();
    (dir, url, pool)
}

async fn user(pool: &sqlx::SqlitePool, seed: u8) -> store::UserId {
    users::create_anonymous_user(pool, &[seed; 32], Duration::from_secs(3600))
        .await
        .unwrap()
}

#[tokio::test]
async fn open_creates_the_file_with_wal_and_foreign_keys() {
    let (dir, _url, pool) = fresh_db().await;
    assert!(dir.path().join("nested/wick.db").exists());
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(fk, 1);
    let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(timeout, 5000);
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap();
    for t in ["conversations", "messages", "sessions", "users"] {
        assert!(
            tables.iter().any(|n| n == t),
            "missing table {t} in {tables:?}"
        );
    }
    // A message that points at no conversation is refused by the foreign key.
    let orphan = sqlx::query(
        "INSERT INTO messages (id, conversation_id, role, content, created_at, updated_at)
         VALUES ('m', 'no-such-conversation', 'user', 'x', 0, 0)",
    )
    .execute(&pool)
    .await;
    assert!(orphan.is_err());
}

#[tokio::test]
async fn sessions_are_found_by_hash_until_they_expire() {
    let (_dir, _url, pool) = fresh_db().await;
    let alice = user(&pool, 1).await;
    assert_eq!(
        users::user_for_session(&pool, &[1; 32])
            .await
            .unwrap()
            .map(|s| s.user),
        Some(alice)
    );
    assert_eq!(
        users::user_for_session(&pool, &[2; 32]).await.unwrap(),
        None
    );

    users::create_anonymous_user(&pool, &[3; 32], Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        users::user_for_session(&pool, &[3; 32]).await.unwrap(),
        None,
        "expired"
    );

    // Only the hash is stored.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM sessions WHERE user_id = ?")
        .bind(alice)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, vec![1u8; 32]);
}

/// Ends a reply as the generation runtime would, with `text`.
async fn finish(pool: &sqlx::SqlitePool, reply: &NewReply, text: &str) {
    let done = Finish {
        state: MessageState::Done,
        finish_reason: Some(FinishReason::Eos),
        error: None,
        prompt_tokens: Some(3),
        completion_tokens: Some(1),
    };
    conversations::finish_reply(pool, &reply.message_id, text, &done)
        .await
        .unwrap();
}

/// A conversation of `user` whose first reply has finished.
async fn conversation(
    pool: &sqlx::SqlitePool,
    user: store::UserId,
    title: &str,
    first: &str,
) -> String {
    let reply = conversations::create_with_reply(
        pool,
        conversations::Owner::User(user),
        title,
        "m",
        None,
        first,
    )
    .await
    .unwrap()
    .1;
    finish(pool, &reply, "ok").await;
    reply.conversation_id
}

#[tokio::test]
async fn sessions_in_use_slide_their_expiry() {
    let (_dir, _url, pool) = fresh_db().await;
    let alice = user(&pool, 1).await;
    // As if the session was last seen two hours ago, created with a one-hour lifetime.
    let now = store::now_ms();
    let hour = 3_600_000;
    sqlx::query(
        "UPDATE sessions SET created_at = ?, last_seen_at = ?, expires_at = ? WHERE user_id = ?",
    )
    .bind(now - 2 * hour)
    .bind(now - 2 * hour)
    .bind(now + 60_000)
    .bind(alice)
    .execute(&pool)
    .await
    .unwrap();
    let session = users::user_for_session(&pool, &[1; 32]).await.unwrap();
    let renewed = users::Session {
        user: alice,
        renewed: true,
    };
    assert_eq!(session, Some(renewed), "the cookie is to be renewed too");
    // Within the hour it is not written again.
    let again = users::user_for_session(&pool, &[1; 32]).await.unwrap();
    assert_eq!(again.map(|s| s.renewed), Some(false));
    let (seen, expires): (i64, i64) =
        sqlx::query_as("SELECT last_seen_at, expires_at FROM sessions WHERE user_id = ?")
            .bind(alice)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(seen >= now, "last_seen_at is written");
    // The lifetime it was given (2 h + 1 min) now counts from this visit.
    assert!(
        expires >= now + 2 * hour,
        "the expiry slid: {expires} vs {now}"
    );
}

#[tokio::test]
async fn a_send_stores_the_message_and_its_reply_together_on_one_branch() {
    let (_dir, _url, pool) = fresh_db().await;
    let alice = user(&pool, 1).await;
    let first = conversations::create_with_reply(
        &pool,
        conversations::Owner::User(alice),
        "Hello",
        "SmolLM2",
        None,
        "Hello there",
    )
    .await
    .unwrap()
    .1;
    assert_eq!(first.turns.len(), 1, "the model sees the user's message");
    let id = first.conversation_id.clone();
    finish(&pool, &first, "Hi!").await;
    let second = conversations::append_with_reply(
        &pool,
        alice,
        &id,
        conversations::Placement::AfterLeaf,
        "And again",
        "other",
    )
    .await
    .unwrap();
    let turns: Vec<&str> = second.turns.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(turns, ["Hello there", "Hi!", "And again"]);

    let c = conversations::get_conversation(&pool, alice, &id)
        .await
        .unwrap();
    assert_eq!(c.title, "Hello");
    assert_eq!(
        c.model, "other",
        "a send with another model switches the conversation"
    );
    let shape: Vec<(Role, &str, MessageState)> = c
        .messages
        .iter()
        .map(|m| (m.role, m.content.as_str(), m.state))
        .collect();
    assert_eq!(
        shape,
        [
            (Role::User, "Hello there", MessageState::Done),
            (Role::Assistant, "Hi!", MessageState::Done),
            (Role::User, "And again", MessageState::Done),
            (Role::Assistant, "", MessageState::Generating),
        ]
    );
    assert_eq!(c.messages[1].finish_reason, Some(FinishReason::Eos));
    assert_eq!(second.user_message.as_ref(), Some(&c.messages[2]));
    assert_eq!(c.messages[3].id, second.message_id);

    // Each message's parent is the one before it: the branch structure edits will use.
    let parent: Option<String> = sqlx::query("SELECT parent_id FROM messages WHERE id = ?")
        .bind(&c.messages[2].id)
        .fetch_one(&pool)
        .await
        .unwrap()
        .get("parent_id");
    assert_eq!(parent.as_deref(), Some(c.messages[1].id.as_str()));
}

#[tokio::test]
async fn a_second_reply_while_one_is_generating_stores_nothing() {
    let (_dir, _url, pool) = fresh_db().await;
    let alice = user(&pool, 1).await;
    let first = conversations::create_with_reply(
        &pool,
        conversations::Owner::User(alice),
        "t",
        "m",
        None,
        "one",
    )
    .await
    .unwrap()
    .1;
    let id = &first.conversation_id;
    let count = |pool: sqlx::SqlitePool| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM messages")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(count(pool.clone()).await, 2);
    assert!(matches!(
        conversations::append_with_reply(
            &pool,
            alice,
            id,
            conversations::Placement::AfterLeaf,
            "two",
            "m"
        )
        .await,
        Err(StoreError::ReplyRunning)
    ));
    assert!(matches!(
        conversations::retry_with_reply(&pool, alice, id, &first.message_id, "m").await,
        Err(StoreError::ReplyRunning)
    ));
    assert_eq!(
        count(pool.clone()).await,
        2,
        "neither the message nor a reply was stored"
    );

    // Once the reply ends, both work again.
    finish(&pool, &first, "done").await;
    let retried = conversations::retry_with_reply(&pool, alice, id, &first.message_id, "m")
        .await
        .unwrap();
    assert_eq!(retried.user_message, None);
    assert_eq!(
        retried.turns.len(),
        1,
        "a retry answers the same user message"
    );
    let c = conversations::get_conversation(&pool, alice, id)
        .await
        .unwrap();
    assert_eq!(
        c.messages.last().unwrap().id,
        retried.message_id,
        "the retry is shown"
    );
}

#[tokio::test]
async fn concurrent_sends_into_one_conversation_start_exactly_one_reply() {
    let (_dir, _url, pool) = fresh_db().await;
    let alice = user(&pool, 1).await;
    let id = conversation(&pool, alice, "race", "start").await;
    let sends = (0..8).map(|i| {
        let pool = pool.clone();
        let id = id.clone();
        tokio::spawn(async move {
            conversations::append_with_reply(
                &pool,
                alice,
                &id,
                conversations::Placement::AfterLeaf,
                &format!("message {i}"),
                "m",
            )
            .await
        })
    });
    let results = futures::future::join_all(sends).await;
    let won = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(StoreError::ReplyRunning))))
        .count();
    assert_eq!((won, refused), (1, 7), "{results:?}");
    let generating: i64 =
        sqlx::query_scalar("SELECT count(*) FROM messages WHERE state = 'generating'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let users_messages: i64 =
        sqlx::query_scalar("SELECT count(*) FROM messages WHERE role = 'user'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((generating, users_messages), (1, 2));
}

#[tokio::test]
async fn the_list_is_newest_first_and_only_the_owners() {
    let (_dir, _url, pool) = fresh_db().await;
    let alice = user(&pool, 1).await;
    let bob = user(&pool, 2).await;
    let first = conversation(&pool, alice, "first", "1").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = conversation(&pool, alice, "second", "2").await;
    let bobs = conversation(&pool, bob, "bob's", "secret").await;

    let ids: Vec<String> = conversations::list_conversations(&pool, alice, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, [second.clone(), first.clone()]);

    // A new message moves a conversation to the top.
    tokio::time::sleep(Duration::from_millis(5)).await;
    conversations::append_with_reply(
        &pool,
        alice,
        &first,
        conversations::Placement::AfterLeaf,
        "bump",
        "m",
    )
    .await
    .unwrap();
    let top = conversations::list_conversations(&pool, alice, 100)
        .await
        .unwrap()[0]
        .id
        .clone();
    assert_eq!(top, first);

    let bob_list = conversations::list_conversations(&pool, bob, 100)
        .await
        .unwrap();
    assert_eq!(bob_list.len(), 1);
    assert_eq!(bob_list[0].id, bobs);
}

#[tokio::test]
async fn someone_elses_conversation_is_not_found_and_untouched() {
    let (_dir, _url, pool) = fresh_db().await;
    let alice = user(&pool, 1).await;
    let mallory = user(&pool, 9).await;
    let first = conversations::create_with_reply(
        &pool,
        conversations::Owner::User(alice),
        "private",
        "m",
        None,
        "my secret",
    )
    .await
    .unwrap()
    .1;
    finish(&pool, &first, "ok").await;
    let id = &first.conversation_id;

    assert!(matches!(
        conversations::get_conversation(&pool, mallory, id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        conversations::append_with_reply(
            &pool,
            mallory,
            id,
            conversations::Placement::AfterLeaf,
            "injected",
            "m"
        )
        .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        conversations::retry_with_reply(&pool, mallory, id, &first.message_id, "m").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        conversations::set_conversation_model(&pool, mallory, id, "x").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        conversations::get_conversation(&pool, alice, "0123456789abcdef0123456789abcdef").await,
        Err(StoreError::NotFound)
    ));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 2, "nothing of mallory's was stored");
    let model: String = sqlx::query_scalar("SELECT model FROM conversations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(model, "m");
}

#[tokio::test]
async fn replies_left_generating_are_interrupted_with_their_text() {
    let (_dir, _url, pool) = fresh_db().await;
    let alice = user(&pool, 1).await;
    let reply = conversations::create_with_reply(
        &pool,
        conversations::Owner::User(alice),
        "t",
        "m",
        None,
        "q",
    )
    .await
    .unwrap()
    .1;
    conversations::save_partial(&pool, &reply.message_id, "half a rep")
        .await
        .unwrap();
    assert_eq!(store::interrupt_unfinished(&pool).await.unwrap(), 1);
    let c = conversations::get_conversation(&pool, alice, &reply.conversation_id)
        .await
        .unwrap();
    let last = c.messages.last().unwrap();
    assert_eq!(
        (last.state, last.content.as_str()),
        (MessageState::Interrupted, "half a rep")
    );
    assert_eq!(last.finish_reason, None);
}

#[tokio::test]
async fn every_migration_file_is_applied() {
    // `sqlx::migrate!` embeds the files at compile time; core's build.rs makes
    // cargo rebuild when one is added. Were it missing, an incremental build
    // would embed the old set and this count would differ.
    let (_dir, _url, pool) = fresh_db().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let files = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(applied as usize, files);
    let index: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'messages_one_generating'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(index, 1);
}

#[tokio::test]
async fn data_survives_reopening_the_file() {
    let (_dir, url, pool) = fresh_db().await;
    let alice = user(&pool, 1).await;
    let id = conversation(&pool, alice, "kept", "still here").await;
    pool.close().await;

    // Opening again runs the migrations again: they must be a no-op.
    let pool = store::open(&url).await.unwrap();
    let c = conversations::get_conversation(&pool, alice, &id)
        .await
        .unwrap();
    assert_eq!(c.messages[0].content, "still here");
}

#[tokio::test]
async fn expired_sessions_are_deleted_and_live_ones_kept() {
    let (_dir, _url, pool) = fresh_db().await;
    let live = users::create_anonymous_user(&pool, &[1; 32], Duration::from_secs(3600))
        .await
        .unwrap();
    users::create_anonymous_user(&pool, &[2; 32], Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(users::delete_expired_sessions(&pool).await.unwrap(), 1);
    assert_eq!(users::delete_expired_sessions(&pool).await.unwrap(), 0);
    let found = users::user_for_session(&pool, &[1; 32]).await.unwrap();
    assert_eq!(found.map(|s| s.user), Some(live));
}

#[tokio::test]
async fn write_transactions_that_read_first_queue_instead_of_failing() {
    // Making a token for an existing user reads (is there such a user?) before
    // it writes: a deferred transaction could not wait for the write lock
    // and would fail with "database is locked" under concurrent writers.
    let (_dir, _url, pool) = fresh_db().await;
    let alice = user(&pool, 1).await;
    let makes = (0..40u8).map(|i| {
        let pool = pool.clone();
        tokio::spawn(async move {
            store::tokens::create_api_token(&pool, Some(alice), &format!("t{i}"), &[i; 32]).await
        })
    });
    for made in futures::future::join_all(makes).await {
        made.unwrap().expect("every token is stored");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM api_tokens")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 40);
}
