//! The data layer against a real SQLite file.

use std::time::Duration;

use app::data::Role;
use app::store::{self, StoreError};
use sqlx::Row;

async fn fresh_db() -> (tempfile::TempDir, String, sqlx::SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    // A nested directory that does not exist yet: `open` must create it.
    let url = format!("sqlite://{}/nested/wick.db", dir.path().display());
    let pool = store::open(&url).await.unwrap();
    (dir, url, pool)
}

async fn user(pool: &sqlx::SqlitePool, seed: u8) -> store::UserId {
    store::create_anonymous_user(pool, &[seed; 32], Duration::from_secs(3600))
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
        store::user_for_session(&pool, &[1; 32]).await.unwrap(),
        Some(alice)
    );
    assert_eq!(
        store::user_for_session(&pool, &[2; 32]).await.unwrap(),
        None
    );

    store::create_anonymous_user(&pool, &[3; 32], Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        store::user_for_session(&pool, &[3; 32]).await.unwrap(),
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

#[tokio::test]
async fn a_conversation_keeps_its_messages_in_order_on_one_branch() {
    let (_dir, _url, pool) = fresh_db().await;
    let alice = user(&pool, 1).await;
    let id = store::create_conversation(&pool, alice, "Hello", "SmolLM2", "Hello there")
        .await
        .unwrap()
        .0;
    let second = store::append_user_message(&pool, alice, &id, "And again")
        .await
        .unwrap();
    store::append_user_message(&pool, alice, &id, "Third")
        .await
        .unwrap();

    let c = store::get_conversation(&pool, alice, &id).await.unwrap();
    assert_eq!(c.title, "Hello");
    assert_eq!(c.model, "SmolLM2");
    let texts: Vec<&str> = c.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["Hello there", "And again", "Third"]);
    assert!(c
        .messages
        .iter()
        .all(|m| m.role == Role::User && m.state == "done"));

    // Each message's parent is the one before it: the branch structure edits will use.
    let parent: Option<String> = sqlx::query("SELECT parent_id FROM messages WHERE id = ?")
        .bind(&second)
        .fetch_one(&pool)
        .await
        .unwrap()
        .get("parent_id");
    assert_eq!(parent.as_deref(), Some(c.messages[0].id.as_str()));
}

#[tokio::test]
async fn the_list_is_newest_first_and_only_the_owners() {
    let (_dir, _url, pool) = fresh_db().await;
    let alice = user(&pool, 1).await;
    let bob = user(&pool, 2).await;
    let first = store::create_conversation(&pool, alice, "first", "m", "1")
        .await
        .unwrap()
        .0;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = store::create_conversation(&pool, alice, "second", "m", "2")
        .await
        .unwrap()
        .0;
    let bobs = store::create_conversation(&pool, bob, "bob's", "m", "secret")
        .await
        .unwrap()
        .0;

    let ids: Vec<String> = store::list_conversations(&pool, alice)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, [second.clone(), first.clone()]);

    // A new message moves a conversation to the top.
    tokio::time::sleep(Duration::from_millis(5)).await;
    store::append_user_message(&pool, alice, &first, "bump")
        .await
        .unwrap();
    let top = store::list_conversations(&pool, alice).await.unwrap()[0]
        .id
        .clone();
    assert_eq!(top, first);

    let bob_list = store::list_conversations(&pool, bob).await.unwrap();
    assert_eq!(bob_list.len(), 1);
    assert_eq!(bob_list[0].id, bobs);
}

#[tokio::test]
async fn someone_elses_conversation_is_not_found_and_untouched() {
    let (_dir, _url, pool) = fresh_db().await;
    let alice = user(&pool, 1).await;
    let mallory = user(&pool, 9).await;
    let id = store::create_conversation(&pool, alice, "private", "m", "my secret")
        .await
        .unwrap()
        .0;

    assert!(matches!(
        store::get_conversation(&pool, mallory, &id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store::append_user_message(&pool, mallory, &id, "injected").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store::get_conversation(&pool, alice, "0123456789abcdef0123456789abcdef").await,
        Err(StoreError::NotFound)
    ));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "the refused message was not stored");
}

#[tokio::test]
async fn data_survives_reopening_the_file() {
    let (_dir, url, pool) = fresh_db().await;
    let alice = user(&pool, 1).await;
    let id = store::create_conversation(&pool, alice, "kept", "m", "still here")
        .await
        .unwrap()
        .0;
    pool.close().await;

    // Opening again runs the migrations again: they must be a no-op.
    let pool = store::open(&url).await.unwrap();
    let c = store::get_conversation(&pool, alice, &id).await.unwrap();
    assert_eq!(c.messages[0].content, "still here");
}
