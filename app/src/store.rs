//! The data layer: every read and write of Wick's SQLite file.
//!
//! Every query that touches a conversation filters by its owner, so one user can
//! never read or change another's data; a conversation that exists but belongs to
//! someone else is reported exactly like one that does not exist.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::data::{ConversationSummary, ConversationView, MessageView, Role};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
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
}

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

    let filename = options.get_filename();
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
    sqlx::migrate!("../migrations").run(&pool).await?;
    Ok(pool)
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

// ---- users and sessions -------------------------------------------------------

/// Creates an anonymous user with one session whose cookie hashes to `token_hash`.
pub async fn create_anonymous_user(
    pool: &SqlitePool,
    token_hash: &[u8; 32],
    lifetime: Duration,
) -> Result<UserId, StoreError> {
    let now = now_ms();
    let expires = now + lifetime.as_millis() as i64;
    let mut tx = pool.begin().await?;
    let user_id: UserId = sqlx::query_scalar(
        "INSERT INTO users (kind, created_at) VALUES ('anonymous', ?) RETURNING id",
    )
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO sessions (user_id, token_hash, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(user_id)
    .bind(&token_hash[..])
    .bind(now)
    .bind(now)
    .bind(expires)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(user_id)
}

/// The user of an unexpired session, if any.
pub async fn user_for_session(
    pool: &SqlitePool,
    token_hash: &[u8; 32],
) -> Result<Option<UserId>, StoreError> {
    let user =
        sqlx::query_scalar("SELECT user_id FROM sessions WHERE token_hash = ? AND expires_at > ?")
            .bind(&token_hash[..])
            .bind(now_ms())
            .fetch_optional(pool)
            .await?;
    Ok(user)
}

// ---- conversations ---------------------------------------------------------------

/// The user's conversations, most recently changed first.
pub async fn list_conversations(
    pool: &SqlitePool,
    user: UserId,
) -> Result<Vec<ConversationSummary>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, title, updated_at FROM conversations WHERE user_id = ? ORDER BY updated_at DESC, id DESC",
    )
    .bind(user)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(ConversationSummary {
                id: r.try_get("id")?,
                title: r.try_get("title")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .collect()
}

/// One of the user's conversations with the messages of its current branch.
pub async fn get_conversation(
    pool: &SqlitePool,
    user: UserId,
    id: &str,
) -> Result<ConversationView, StoreError> {
    let row = sqlx::query(
        "SELECT id, title, model, leaf_message_id FROM conversations WHERE id = ? AND user_id = ?",
    )
    .bind(id)
    .bind(user)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound)?;
    let leaf: Option<String> = row.try_get("leaf_message_id")?;
    let messages = match leaf {
        Some(leaf) => branch(pool, id, &leaf).await?,
        None => Vec::new(),
    };
    Ok(ConversationView {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        model: row.try_get("model")?,
        models: Vec::new(),
        messages,
    })
}

/// The id of the model of one of the user's conversations.
pub async fn conversation_model(
    pool: &SqlitePool,
    user: UserId,
    id: &str,
) -> Result<String, StoreError> {
    sqlx::query_scalar("SELECT model FROM conversations WHERE id = ? AND user_id = ?")
        .bind(id)
        .bind(user)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound)
}

/// Makes `model` the conversation's model for the replies to come.
pub async fn set_conversation_model(
    pool: &SqlitePool,
    user: UserId,
    id: &str,
    model: &str,
) -> Result<(), StoreError> {
    let done = sqlx::query("UPDATE conversations SET model = ? WHERE id = ? AND user_id = ?")
        .bind(model)
        .bind(id)
        .bind(user)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The messages from the conversation's root down to `leaf`, oldest first.
/// Callers have checked that the conversation belongs to the user.
async fn branch(
    pool: &SqlitePool,
    conversation: &str,
    leaf: &str,
) -> Result<Vec<MessageView>, StoreError> {
    // Walk from the leaf up through the parents: that is the branch on screen.
    let rows = sqlx::query(
        "WITH RECURSIVE branch(id, depth) AS (
             SELECT ?, 0
             UNION ALL
             SELECT m.parent_id, b.depth + 1 FROM messages m JOIN branch b ON m.id = b.id
             WHERE m.parent_id IS NOT NULL
         )
         SELECT m.id, m.role, m.content, m.state, m.finish_reason, m.error, m.model
         FROM branch b JOIN messages m ON m.id = b.id
         WHERE m.conversation_id = ?
         ORDER BY b.depth DESC",
    )
    .bind(leaf)
    .bind(conversation)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            let role: String = r.try_get("role")?;
            Ok(MessageView {
                id: r.try_get("id")?,
                role: Role::parse(&role)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown role {role:?}")))?,
                content: r.try_get("content")?,
                state: r.try_get("state")?,
                finish_reason: r.try_get("finish_reason")?,
                error: r.try_get("error")?,
                seq: 0,
                model: r.try_get("model")?,
            })
        })
        .collect()
}

/// Starts a conversation with the user's first message, in one transaction.
/// Returns the ids of the conversation and of the message.
pub async fn create_conversation(
    pool: &SqlitePool,
    user: UserId,
    title: &str,
    model: &str,
    first_message: &str,
) -> Result<(String, String), StoreError> {
    let now = now_ms();
    let conversation = new_id();
    let message = new_id();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO conversations (id, user_id, title, model, leaf_message_id, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&conversation)
    .bind(user)
    .bind(title)
    .bind(model)
    .bind(&message)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    insert_message(
        &mut tx,
        &message,
        &conversation,
        None,
        Role::User,
        first_message,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok((conversation, message))
}

/// Adds a user message at the end of the conversation's current branch.
/// Returns the new message's id.
pub async fn append_user_message(
    pool: &SqlitePool,
    user: UserId,
    conversation: &str,
    content: &str,
) -> Result<String, StoreError> {
    let now = now_ms();
    let message = new_id();
    let mut tx = pool.begin().await?;
    let leaf: Option<String> = sqlx::query_scalar(
        "SELECT leaf_message_id FROM conversations WHERE id = ? AND user_id = ?",
    )
    .bind(conversation)
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    insert_message(
        &mut tx,
        &message,
        conversation,
        leaf.as_deref(),
        Role::User,
        content,
        now,
    )
    .await?;
    sqlx::query(
        "UPDATE conversations SET leaf_message_id = ?, updated_at = ? WHERE id = ? AND user_id = ?",
    )
    .bind(&message)
    .bind(now)
    .bind(conversation)
    .bind(user)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(message)
}

async fn insert_message(
    tx: &mut sqlx::SqliteConnection,
    id: &str,
    conversation: &str,
    parent: Option<&str>,
    role: Role,
    content: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO messages (id, conversation_id, parent_id, role, content, state, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, 'done', ?, ?)",
    )
    .bind(id)
    .bind(conversation)
    .bind(parent)
    .bind(role.as_str())
    .bind(content)
    .bind(now)
    .bind(now)
    .execute(tx)
    .await?;
    Ok(())
}

// ---- replies ---------------------------------------------------------------------

/// A reply about to be generated: its empty message row, and what the model
/// is to continue (the system prompt and the turns up to the user's message).
#[derive(Debug, Clone)]
pub struct NewReply {
    pub conversation_id: String,
    pub message_id: String,
    pub system_prompt: Option<String>,
    pub turns: Vec<MessageView>,
}

/// Adds an empty assistant message in state `generating` under `parent` (a
/// user message of the user's conversation) and makes it the branch's leaf.
pub async fn begin_reply(
    pool: &SqlitePool,
    user: UserId,
    conversation: &str,
    parent: &str,
    model: &str,
) -> Result<NewReply, StoreError> {
    let now = now_ms();
    let message = new_id();
    let mut tx = pool.begin().await?;
    let system_prompt: Option<String> = sqlx::query_scalar(
        "SELECT c.system_prompt FROM conversations c JOIN messages m ON m.conversation_id = c.id
         WHERE c.id = ? AND c.user_id = ? AND m.id = ? AND m.role = 'user'",
    )
    .bind(conversation)
    .bind(user)
    .bind(parent)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    sqlx::query(
        "INSERT INTO messages (id, conversation_id, parent_id, role, content, state, model, created_at, updated_at)
         VALUES (?, ?, ?, 'assistant', '', 'generating', ?, ?, ?)",
    )
    .bind(&message)
    .bind(conversation)
    .bind(parent)
    .bind(model)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE conversations SET leaf_message_id = ?, updated_at = ? WHERE id = ?")
        .bind(&message)
        .bind(now)
        .bind(conversation)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(NewReply {
        conversation_id: conversation.to_owned(),
        message_id: message,
        system_prompt,
        turns: branch(pool, conversation, parent).await?,
    })
}

/// The user message an assistant message of the user's conversation answers,
/// for generating that reply again. Refused while it is still generating.
pub async fn parent_for_retry(
    pool: &SqlitePool,
    user: UserId,
    conversation: &str,
    message: &str,
) -> Result<String, StoreError> {
    let row = sqlx::query(
        "SELECT m.parent_id FROM messages m JOIN conversations c ON c.id = m.conversation_id
         WHERE m.id = ? AND c.id = ? AND c.user_id = ? AND m.role = 'assistant'",
    )
    .bind(message)
    .bind(conversation)
    .bind(user)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound)?;
    let parent: Option<String> = row.try_get("parent_id")?;
    parent.ok_or_else(|| StoreError::Corrupt(format!("assistant message {message} has no parent")))
}

/// Saves the text of a reply that is still being generated.
pub async fn save_partial(
    pool: &SqlitePool,
    message: &str,
    content: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE messages SET content = ?, updated_at = ? WHERE id = ? AND state = 'generating'",
    )
    .bind(content)
    .bind(now_ms())
    .bind(message)
    .execute(pool)
    .await?;
    Ok(())
}

/// How a reply ended, as stored on its message.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// 'done', 'interrupted' or 'error'.
    pub state: &'static str,
    /// 'eos', 'stop', 'length', 'stopped', 'error'; `None` when interrupted.
    pub finish_reason: Option<&'static str>,
    pub error: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
}

/// Stores a reply's final text and how it ended.
pub async fn finish_reply(
    pool: &SqlitePool,
    message: &str,
    content: &str,
    finish: &Finish,
) -> Result<(), StoreError> {
    let now = now_ms();
    let mut tx = pool.begin().await?;
    let conversation: Option<String> = sqlx::query_scalar(
        "UPDATE messages SET content = ?, state = ?, finish_reason = ?, error = ?, prompt_tokens = ?,
             completion_tokens = ?, updated_at = ?
         WHERE id = ? RETURNING conversation_id",
    )
    .bind(content)
    .bind(finish.state)
    .bind(finish.finish_reason)
    .bind(&finish.error)
    .bind(finish.prompt_tokens)
    .bind(finish.completion_tokens)
    .bind(now)
    .bind(message)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(conversation) = conversation {
        sqlx::query("UPDATE conversations SET updated_at = ? WHERE id = ?")
            .bind(now)
            .bind(conversation)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Marks replies left `generating` by a server that died as `interrupted`,
/// keeping the text they had. Run once at start-up, before serving.
pub async fn interrupt_unfinished(pool: &SqlitePool) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE messages SET state = 'interrupted', updated_at = ? WHERE state = 'generating'",
    )
    .bind(now_ms())
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

// ---- API tokens ---------------------------------------------------------------------

/// An access token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenInfo {
    pub id: i64,
    pub user_id: UserId,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Stores a new token's hash for `user`, or for a new user named after the
/// token when `user` is `None`. Returns the token's id and its user.
pub async fn create_api_token(
    pool: &SqlitePool,
    user: Option<UserId>,
    name: &str,
    token_hash: &[u8; 32],
) -> Result<(i64, UserId), StoreError> {
    let now = now_ms();
    let mut tx = pool.begin().await?;
    let user = match user {
        Some(user) => sqlx::query_scalar("SELECT id FROM users WHERE id = ?")
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?,
        None => {
            sqlx::query_scalar(
                "INSERT INTO users (kind, display_name, created_at) VALUES ('registered', ?, ?) RETURNING id",
            )
            .bind(name)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?
        }
    };
    let id = sqlx::query_scalar(
        "INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id",
    )
    .bind(user)
    .bind(name)
    .bind(&token_hash[..])
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((id, user))
}

pub async fn list_api_tokens(pool: &SqlitePool) -> Result<Vec<ApiTokenInfo>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, user_id, name, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(ApiTokenInfo {
                id: r.try_get("id")?,
                user_id: r.try_get("user_id")?,
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
                last_used_at: r.try_get("last_used_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .collect()
}

/// Revokes token `id`; `NotFound` when there is no such token.
pub async fn revoke_api_token(pool: &SqlitePool, id: i64) -> Result<(), StoreError> {
    let done =
        sqlx::query("UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?")
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The user of a live (unrevoked) token with this hash, noting its use.
pub async fn user_for_api_token(
    pool: &SqlitePool,
    token_hash: &[u8; 32],
) -> Result<Option<UserId>, StoreError> {
    let user = sqlx::query_scalar(
        "UPDATE api_tokens SET last_used_at = ? WHERE token_hash = ? AND revoked_at IS NULL RETURNING user_id",
    )
    .bind(now_ms())
    .bind(&token_hash[..])
    .fetch_optional(pool)
    .await?;
    Ok(user)
}
