//! The database: every read and write of Wick's SQLite file, one module per
//! aggregate.
//!
//! Every query that touches a conversation filters by its owner, so one user can
//! never read or change another's data; a conversation that exists but belongs to
//! someone else is reported exactly like one that does not exist.

pub mod backup;
pub mod conversations;
pub mod history;
pub mod settings;
pub mod shares;
pub mod team;
pub mod tokens;
pub mod transfer;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use wick_types::MessageState;

pub use conversations::{Continued, Finish, NewReply, Placement};
pub use tokens::ApiTokenInfo;

/// The one error type of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The conversation already has a reply in state `generating` (the
    /// partial unique index `messages_one_generating` refused a second one).
    #[error("a reply is already being generated in this conversation")]
    ReplyRunning,
    /// A retry named a reply that is not the last of its conversation.
    #[error("only the latest reply can be written again")]
    NotLatestReply,
    #[error("invalid database URL {url:?}: {source}")]
    BadUrl { url: String, source: sqlx::Error },
    #[error("could not create the database directory {dir}: {source}")]
    CreateDir { dir: String, source: std::io::Error },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// The snapshot before new migrations could not be written: nothing
    /// was migrated.
    #[error(
        "could not keep a copy of the database before upgrading it ({0}); nothing was changed"
    )]
    Snapshot(String),
}

/// Wick's schema, embedded at compile time (`build.rs` makes cargo rebuild
/// when a file is added).
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

pub type UserId = i64;

/// Opens (creating if needed) the database at `url` and applies pending migrations.
///
/// WAL lets readers proceed while a reply is being written; foreign keys keep
/// messages tied to their conversation; the busy timeout makes concurrent
/// writers wait instead of failing at once.
pub async fn open(url: &str) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|source| StoreError::BadUrl {
            url: url.to_owned(),
            source,
        })?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));

    let filename = options.get_filename().to_owned();
    if let Some(dir) = filename.parent().filter(|d| !d.as_os_str().is_empty()) {
        if filename != std::path::Path::new(":memory:") {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                dir: dir.display().to_string(),
                source,
            })?;
        }
    }

    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    // An upgrade can be undone: a copy of the database as it was comes first.
    if filename != std::path::Path::new(":memory:") && !filename.as_os_str().is_empty() {
        match backup::snapshot_before_migrating(&pool, &filename).await {
            Ok(Some(snapshot)) => {
                tracing::info!(snapshot = %snapshot.display(), "the database is upgraded; a copy of it as it was is kept")
            }
            Ok(None) => {}
            Err(e) => return Err(StoreError::Snapshot(e.to_string())),
        }
    }
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// A write transaction that takes SQLite's write lock at once (`BEGIN
/// IMMEDIATE`): a deferred one that reads first and writes later cannot wait
/// for the lock (SQLite answers "database is locked" at once, the busy timeout
/// notwithstanding), so concurrent sends would fail instead of queueing.
pub async fn begin_write(
    pool: &SqlitePool,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A random 128-bit id as 32 hex digits, for conversations and messages.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Marks replies left `generating` by a server that died as `interrupted`,
/// keeping the text they had. Run once at start-up, before serving.
pub async fn interrupt_unfinished(pool: &SqlitePool) -> Result<u64, StoreError> {
    let done = sqlx::query("UPDATE messages SET state = ?, updated_at = ? WHERE state = ?")
        .bind(MessageState::Interrupted)
        .bind(now_ms())
        .bind(MessageState::Generating)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Whether the database answers a trivial query.
pub async fn ping(pool: &SqlitePool) -> bool {
    sqlx::query_scalar::<_, i64>("SELECT 1")
        .fetch_one(pool)
        .await
        .is_ok()
}
