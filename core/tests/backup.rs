//! Issue 19's backups, over real SQLite files: a copy made while another
//! connection writes, the checks a restore makes (integrity, a Wick schema,
//! not newer than this Wick), the lock that keeps a restore away from a
//! serving Wick, the old database kept after a restore, and the snapshots
//! taken before an upgrade (the newest three).

use std::path::Path;

use wick_core::db::backup::{self, BackupError};

async fn database(dir: &Path, name: &str) -> (sqlx::SqlitePool, std::path::PathBuf) {
    let file = dir.join(name);
    let pool = wick_core::db::open(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    (pool, file)
}

async fn users(pool: &sqlx::SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn add_user(pool: &sqlx::SqlitePool) {
    sqlx::query("INSERT INTO users (kind, created_at) VALUES ('anonymous', 0)")
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_backup_made_while_writing_is_whole_and_restores_in_place_keeping_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, file) = database(dir.path(), "wick.db").await;
    for _ in 0..50 {
        add_user(&pool).await;
    }
    // Another connection keeps writing while the copy is made.
    let writer = {
        let pool = pool.clone();
        tokio::spawn(async move {
            for _ in 0..200 {
                add_user(&pool).await;
            }
        })
    };
    let copy = dir.path().join("copy.db");
    backup::backup(&pool, &copy).await.unwrap();
    writer.await.unwrap();
    assert_eq!(backup::check(&copy).await.unwrap(), backup::known_version());
    let (copied, _) = database(dir.path(), "copy.db").await;
    let in_copy = users(&copied).await;
    assert!((50..=250).contains(&in_copy), "{in_copy}");
    copied.close().await;
    match backup::backup(&pool, &copy).await {
        Err(e @ BackupError::Exists(_)) => assert!(e.to_string().contains("never overwrites")),
        other => panic!("refused, not {other:?}"),
    }

    // Restoring is refused while a server holds the database.
    let lock = backup::lock(&file).unwrap();
    match backup::restore(&file, &copy).await {
        Err(e @ BackupError::InUse(_)) => {
            assert!(e.to_string().contains("stop it before restoring"))
        }
        other => panic!("refused, not {other:?}"),
    }
    drop(lock);
    pool.close().await;
    let kept = backup::restore(&file, &copy)
        .await
        .unwrap()
        .expect("the old file is kept");
    let (restored, _) = database(dir.path(), "wick.db").await;
    assert_eq!(users(&restored).await, in_copy);
    let old = wick_core::db::open(&format!("sqlite://{}", kept.display()))
        .await
        .unwrap();
    assert_eq!(users(&old).await, 250);
}

#[tokio::test]
async fn a_restore_checks_the_copy_first_and_changes_nothing_when_it_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, file) = database(dir.path(), "wick.db").await;
    add_user(&pool).await;
    // Whole copies made by SQLite: a file copied after `close` may still
    // lack what the write-ahead log held (the close finishes on sqlx's
    // worker thread, after the future returns).
    let newer = dir.path().join("newer.db");
    let whole_copy = dir.path().join("whole.db");
    for copy in [&newer, &whole_copy] {
        sqlx::query("VACUUM INTO ?")
            .bind(copy.display().to_string())
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a database at all, just some words").unwrap();
    let empty = dir.path().join("empty.db");
    let other = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", empty.display()))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (x)")
        .execute(&other)
        .await
        .unwrap();
    other.close().await;
    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{}", newer.display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99999, 'from the future', 1, x'00', 0)",
    )
    .execute(&raw)
    .await
    .unwrap();
    raw.close().await;
    let truncated = dir.path().join("truncated.db");
    let whole = std::fs::read(&whole_copy).unwrap();
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();

    for (bad, expected) in [
        (&text, "is not a usable Wick database"),
        (&empty, "it has no Wick schema"),
        (&newer, "was made by a newer Wick (schema version 99999"),
        (&truncated, "is not a usable Wick database"),
        (&dir.path().join("absent.db"), "does not exist"),
    ] {
        match backup::restore(&file, bad).await {
            Err(e) => assert!(e.to_string().contains(expected), "{bad:?}: {e}"),
            Ok(_) => panic!("{bad:?} was restored"),
        }
    }
    let (after, _) = database(dir.path(), "wick.db").await;
    assert_eq!(users(&after).await, 1, "the database is untouched");
}

#[tokio::test]
async fn an_upgrade_keeps_a_snapshot_of_the_database_as_it_was_the_newest_three() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, file) = database(dir.path(), "wick.db").await;
    // Up to date: nothing to keep.
    assert_eq!(
        backup::snapshot_before_migrating(&pool, &file)
            .await
            .unwrap(),
        None
    );
    add_user(&pool).await;
    // As if the newest migration were still to come.
    let newest = backup::known_version();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = ?")
        .bind(newest)
        .execute(&pool)
        .await
        .unwrap();
    let mut made = Vec::new();
    for _ in 0..4 {
        let snapshot = backup::snapshot_before_migrating(&pool, &file)
            .await
            .unwrap()
            .expect("a snapshot before the upgrade");
        made.push(snapshot);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let left: Vec<_> = made.iter().filter(|p| p.exists()).collect();
    assert_eq!(
        left,
        made[1..].iter().collect::<Vec<_>>(),
        "the oldest is gone"
    );
    let name = made[3].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("wick.db.pre-v{}-", newest - 1)),
        "{name}"
    );
    // Read as it is (opening it with Wick would migrate it).
    let snapshot = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", made[3].display()))
        .await
        .unwrap();
    assert_eq!(users(&snapshot).await, 1);
}
