//! Conversations and their messages, and the rows of replies as they are written.
//!
//! A reply's row is created together with what it answers, in one transaction:
//! a send stores the user's message *and* the reply's placeholder (state
//! `generating`), so a failure can never leave a question without its reply
//! row. The partial unique index `messages_one_generating` allows one
//! generating reply per conversation, which settles two sends racing into the
//! same conversation: the second transaction fails and stores nothing.

use sqlx::{SqliteConnection, SqlitePool};
use std::collections::HashMap;

use wick_types::{
    ConversationSummary, ConversationView, FinishReason, GenerationSettings, MessageState,
    MessageView, Role, Siblings,
};

use super::{new_id, now_ms, StoreError, UserId};

/// The user's first `limit` conversations: pinned first, then the most
/// recently changed (the order of the index `conversations_user_sidebar`).
pub async fn list_conversations(
    pool: &SqlitePool,
    user: UserId,
    limit: usize,
) -> Result<Vec<ConversationSummary>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, title, updated_at, pinned FROM conversations WHERE user_id = ?
         ORDER BY pinned DESC, updated_at DESC, id DESC LIMIT ?",
    )
    .bind(user)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?)
}

/// Where a conversation's title came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
pub enum TitleSource {
    /// The first words of the first message, until the model writes one.
    Provisional,
    Model,
    /// Typed by the person: never overwritten.
    User,
}

#[derive(sqlx::FromRow)]
struct ConversationRow {
    id: String,
    title: String,
    model: String,
    leaf_message_id: Option<String>,
    system_prompt: Option<String>,
    settings: String,
    title_source: TitleSource,
    pinned: bool,
}

/// A conversation's stored generation settings (a JSON object); an
/// unreadable one counts as none, rather than making the chat unusable.
pub fn parse_settings(json: &str) -> GenerationSettings {
    serde_json::from_str(json).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "unreadable conversation settings; using the model's");
        GenerationSettings::default()
    })
}

/// One of the user's conversations with the messages of its current branch.
/// `models`, `defaults` and `can_continue` are left for the caller, who
/// knows the configured models.
pub async fn get_conversation(
    pool: &SqlitePool,
    user: UserId,
    id: &str,
) -> Result<ConversationView, StoreError> {
    let row: ConversationRow = sqlx::query_as(
        "SELECT id, title, model, leaf_message_id, system_prompt, settings, title_source, pinned
         FROM conversations WHERE id = ? AND user_id = ?",
    )
    .bind(id)
    .bind(user)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound)?;
    let mut messages = match &row.leaf_message_id {
        Some(leaf) => branch(pool, id, leaf).await?,
        None => Vec::new(),
    };
    add_siblings(pool, id, &mut messages).await?;
    Ok(ConversationView {
        id: row.id,
        title: row.title,
        model: row.model,
        models: Vec::new(),
        messages,
        system_prompt: row.system_prompt.unwrap_or_default(),
        settings: parse_settings(&row.settings),
        defaults: GenerationSettings::default(),
        can_continue: false,
        title_provisional: row.title_source == TitleSource::Provisional,
        pinned: row.pinned,
        can_share: false,
    })
}

/// Marks each message of a branch with its siblings (the other versions of
/// its turn), oldest first.
async fn add_siblings(
    pool: &SqlitePool,
    conversation: &str,
    messages: &mut [MessageView],
) -> Result<(), StoreError> {
    if messages.is_empty() {
        return Ok(());
    }
    // A conversation holds hundreds of messages at most: one read of them all
    // is simpler and cheaper than a query per turn.
    let all: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT id, parent_id FROM messages WHERE conversation_id = ? ORDER BY created_at, rowid",
    )
    .bind(conversation)
    .fetch_all(pool)
    .await?;
    let mut children: HashMap<Option<&str>, Vec<&str>> = HashMap::new();
    let mut parent_of: HashMap<&str, Option<&str>> = HashMap::new();
    for (id, parent) in &all {
        children.entry(parent.as_deref()).or_default().push(id);
        parent_of.insert(id, parent.as_deref());
    }
    for m in messages.iter_mut() {
        let Some(parent) = parent_of.get(m.id.as_str()) else {
            continue;
        };
        let versions = &children[parent];
        if versions.len() < 2 {
            continue;
        }
        let at = versions.iter().position(|v| *v == m.id).unwrap_or(0);
        m.siblings = Some(Siblings {
            position: at + 1,
            count: versions.len(),
            previous: at.checked_sub(1).map(|i| versions[i].to_owned()),
            next: versions.get(at + 1).map(|v| (*v).to_owned()),
        });
    }
    Ok(())
}

/// Shows the branch through `message` (one of the conversation's messages):
/// from it down, the newest version of every later turn. The branch shown is
/// what the model reads on the next turn.
pub async fn switch_branch(
    pool: &SqlitePool,
    user: UserId,
    conversation: &str,
    message: &str,
) -> Result<(), StoreError> {
    let mut tx = super::begin_write(pool).await?;
    let busy: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.state = ?)
         FROM conversations c WHERE c.id = ? AND c.user_id = ?",
    )
    .bind(MessageState::Generating)
    .bind(conversation)
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    if busy {
        return Err(StoreError::ReplyRunning);
    }
    let exists: Option<String> =
        sqlx::query_scalar("SELECT id FROM messages WHERE id = ? AND conversation_id = ?")
            .bind(message)
            .bind(conversation)
            .fetch_optional(&mut *tx)
            .await?;
    let mut leaf = exists.ok_or(StoreError::NotFound)?;
    loop {
        let newest: Option<String> = sqlx::query_scalar(
            "SELECT id FROM messages WHERE parent_id = ? AND conversation_id = ?
             ORDER BY created_at DESC, rowid DESC LIMIT 1",
        )
        .bind(&leaf)
        .bind(conversation)
        .fetch_optional(&mut *tx)
        .await?;
        match newest {
            Some(child) => leaf = child,
            None => break,
        }
    }
    sqlx::query("UPDATE conversations SET leaf_message_id = ? WHERE id = ?")
        .bind(&leaf)
        .bind(conversation)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Changes the conversation's system prompt and generation settings, for
/// the replies to come (checked by the caller).
pub async fn set_settings(
    pool: &SqlitePool,
    user: UserId,
    id: &str,
    system_prompt: &str,
    settings: &GenerationSettings,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(settings)
        .map_err(|e| StoreError::Corrupt(format!("settings not serialisable: {e}")))?;
    let prompt = (!system_prompt.trim().is_empty()).then_some(system_prompt);
    let done = sqlx::query(
        "UPDATE conversations SET system_prompt = ?, settings = ? WHERE id = ? AND user_id = ?",
    )
    .bind(prompt)
    .bind(json)
    .bind(id)
    .bind(user)
    .execute(pool)
    .await?;
    found(done)
}

/// The title the person typed; the model never overwrites it.
pub async fn rename(
    pool: &SqlitePool,
    user: UserId,
    id: &str,
    title: &str,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE conversations SET title = ?, title_source = ? WHERE id = ? AND user_id = ?",
    )
    .bind(title)
    .bind(TitleSource::User)
    .bind(id)
    .bind(user)
    .execute(pool)
    .await?;
    found(done)
}

/// What a title is written from: the conversation's first question, while
/// its title is still provisional (`None` otherwise).
pub async fn title_material(
    pool: &SqlitePool,
    conversation: &str,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT m.content FROM conversations c JOIN messages m ON m.conversation_id = c.id
         WHERE c.id = ? AND c.title_source = ? AND m.role = ?
         ORDER BY m.created_at, m.rowid LIMIT 1",
    )
    .bind(conversation)
    .bind(TitleSource::Provisional)
    .bind(Role::User)
    .fetch_optional(pool)
    .await?)
}

/// Stores the model's title, unless the title is no longer provisional (the
/// person renamed the conversation meanwhile). Whether it was stored.
pub async fn set_model_title(
    pool: &SqlitePool,
    conversation: &str,
    title: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE conversations SET title = ?, title_source = ? WHERE id = ? AND title_source = ?",
    )
    .bind(title)
    .bind(TitleSource::Model)
    .bind(conversation)
    .bind(TitleSource::Provisional)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The title of one of the user's conversations and whether it is provisional.
pub async fn title(
    pool: &SqlitePool,
    user: UserId,
    id: &str,
) -> Result<(String, bool), StoreError> {
    let (title, source): (String, TitleSource) = sqlx::query_as(
        "SELECT title, title_source FROM conversations WHERE id = ? AND user_id = ?",
    )
    .bind(id)
    .bind(user)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok((title, source == TitleSource::Provisional))
}

/// The model of one of the user's conversations, and whether a reply is
/// being written in it. (A quick answer for callers that check before taking a
/// queue place; the unique index is what settles races.)
pub async fn conversation_model_and_busy(
    pool: &SqlitePool,
    user: UserId,
    id: &str,
) -> Result<(String, bool), StoreError> {
    sqlx::query_as(
        "SELECT c.model, EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.state = ?)
         FROM conversations c WHERE c.id = ? AND c.user_id = ?",
    )
    .bind(MessageState::Generating)
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
    found(done)
}

/// A message as stored, as the branch query reads it.
#[derive(sqlx::FromRow)]
struct MessageRow {
    id: String,
    role: Role,
    content: String,
    state: MessageState,
    finish_reason: Option<FinishReason>,
    error: Option<String>,
    model: Option<String>,
}

impl From<MessageRow> for MessageView {
    fn from(r: MessageRow) -> Self {
        MessageView {
            id: r.id,
            role: r.role,
            content: r.content,
            state: r.state,
            finish_reason: r.finish_reason,
            error: r.error,
            seq: 0,
            model: r.model,
            siblings: None,
        }
    }
}

/// The messages from the conversation's root down to `leaf`, oldest first.
/// Callers have checked that the conversation belongs to the user.
pub(crate) async fn branch(
    conn: impl sqlx::SqliteExecutor<'_>,
    conversation: &str,
    leaf: &str,
) -> Result<Vec<MessageView>, StoreError> {
    // Walk from the leaf up through the parents: that is the branch on screen.
    let rows: Vec<MessageRow> = sqlx::query_as(
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
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(MessageView::from).collect())
}

/// A reply about to be generated: its message row (state `generating`), the
/// user message it answers when that was stored with it, and what the model is
/// to continue (the system prompt and the turns up to the user's message).
#[derive(Debug, Clone)]
pub struct NewReply {
    pub conversation_id: String,
    /// The user's message stored in the same transaction (`None` for a retry).
    pub user_message: Option<MessageView>,
    pub message_id: String,
    pub system_prompt: Option<String>,
    pub settings: GenerationSettings,
    pub turns: Vec<MessageView>,
    /// For "Continue": the reply's text so far, which ends `turns` and which
    /// the new text extends.
    pub continues: Option<Continued>,
}

/// A reply being continued in place.
#[derive(Debug, Clone)]
pub struct Continued {
    pub text: String,
    /// Tokens the reply had already, added to the new ones when it ends.
    pub completion_tokens: i64,
}

/// Whose new conversation it is: a user's, or a first-time visitor's, whose
/// anonymous user and session are made in the same transaction.
#[derive(Debug, Clone, Copy)]
pub enum Owner {
    User(UserId),
    NewVisitor {
        token_hash: [u8; 32],
        lifetime: std::time::Duration,
    },
}

impl Owner {
    /// The owner's user id, making the visitor's user and session first,
    /// inside the caller's transaction.
    pub(crate) async fn user_in(self, tx: &mut SqliteConnection) -> Result<UserId, StoreError> {
        match self {
            Owner::User(user) => Ok(user),
            Owner::NewVisitor {
                token_hash,
                lifetime,
            } => super::users::insert_anonymous_user(tx, &token_hash, lifetime).await,
        }
    }
}

/// Starts a conversation with the user's first message and the placeholder of
/// its reply (and, for a new visitor, their user and session), in one
/// transaction: either all of it is stored or none. Returns the owner's id.
pub async fn create_with_reply(
    pool: &SqlitePool,
    owner: Owner,
    title: &str,
    model: &str,
    system_prompt: Option<&str>,
    first_message: &str,
) -> Result<(UserId, NewReply), StoreError> {
    let now = now_ms();
    let conversation = new_id();
    let mut tx = super::begin_write(pool).await?;
    let user = owner.user_in(&mut tx).await?;
    sqlx::query(
        "INSERT INTO conversations (id, user_id, title, model, system_prompt, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&conversation)
    .bind(user)
    .bind(title)
    .bind(model)
    .bind(system_prompt)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let reply = add_turn(
        &mut tx,
        &conversation,
        None,
        first_message,
        model,
        system_prompt.map(str::to_owned),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok((user, reply))
}

/// Where a new user message goes.
#[derive(Debug, Clone, Copy)]
pub enum Placement<'a> {
    /// At the end of the branch shown.
    AfterLeaf,
    /// Beside user message `.0`, as an edited version of it (a new branch).
    EditOf(&'a str),
}

/// Adds the user's message (at the end of the branch shown, or as an edit of
/// an earlier one) and the placeholder of its reply from `model` (which
/// becomes the conversation's model), in one transaction. `ReplyRunning`
/// when a reply is still being written there; then nothing is stored.
pub async fn append_with_reply(
    pool: &SqlitePool,
    user: UserId,
    conversation: &str,
    placement: Placement<'_>,
    content: &str,
    model: &str,
) -> Result<NewReply, StoreError> {
    let now = now_ms();
    let mut tx = super::begin_write(pool).await?;
    let (leaf, system_prompt, settings) =
        touch_for_reply(&mut tx, user, conversation, Some(model), now).await?;
    let parent = match placement {
        Placement::AfterLeaf => leaf,
        Placement::EditOf(original) => {
            // Only a question of this conversation can be edited; anything
            // else reads as absent. (Rolled back on the early return.)
            let parent: Option<Option<String>> = sqlx::query_scalar(
                "SELECT parent_id FROM messages WHERE id = ? AND conversation_id = ? AND role = ?",
            )
            .bind(original)
            .bind(conversation)
            .bind(Role::User)
            .fetch_optional(&mut *tx)
            .await?;
            parent.ok_or(StoreError::NotFound)?
        }
    };
    let mut reply = add_turn(
        &mut tx,
        conversation,
        parent.as_deref(),
        content,
        model,
        system_prompt,
        now,
    )
    .await?;
    reply.settings = parse_settings(&settings);
    tx.commit().await?;
    Ok(reply)
}

/// Makes reply `message` (the last of the branch shown, cut short by the
/// length limit, a stop or a restart) generating again, to be extended in
/// place. `Ok(None)` when that reply cannot be continued.
pub async fn continue_reply(
    pool: &SqlitePool,
    user: UserId,
    conversation: &str,
    message: &str,
) -> Result<Option<NewReply>, StoreError> {
    let now = now_ms();
    let mut tx = super::begin_write(pool).await?;
    let (leaf, system_prompt, settings) =
        touch_for_reply(&mut tx, user, conversation, None, now).await?;
    let row: Option<(MessageState, Option<FinishReason>, String, Option<i64>)> = sqlx::query_as(
        "SELECT state, finish_reason, content, completion_tokens FROM messages
         WHERE id = ? AND conversation_id = ? AND role = ?",
    )
    .bind(message)
    .bind(conversation)
    .bind(Role::Assistant)
    .fetch_optional(&mut *tx)
    .await?;
    let (state, finish, text, completion_tokens) = row.ok_or(StoreError::NotFound)?;
    if state == MessageState::Generating {
        return Err(StoreError::ReplyRunning);
    }
    if leaf.as_deref() != Some(message) {
        return Err(StoreError::NotLatestReply);
    }
    let cut_short = matches!(
        (state, finish),
        (MessageState::Interrupted, _)
            | (
                MessageState::Done,
                Some(FinishReason::Length | FinishReason::Stopped)
            )
    );
    if !cut_short || text.is_empty() {
        return Ok(None);
    }
    sqlx::query(
        "UPDATE messages SET state = ?, finish_reason = NULL, error = NULL, updated_at = ? WHERE id = ?",
    )
    .bind(MessageState::Generating)
    .bind(now)
    .bind(message)
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::ReplyRunning,
        _ => StoreError::Sqlx(e),
    })?;
    let turns = branch(&mut *tx, conversation, message).await?;
    tx.commit().await?;
    Ok(Some(NewReply {
        conversation_id: conversation.to_owned(),
        user_message: None,
        message_id: message.to_owned(),
        system_prompt,
        settings: parse_settings(&settings),
        turns,
        continues: Some(Continued {
            text,
            completion_tokens: completion_tokens.unwrap_or(0),
        }),
    }))
}

/// The placeholder of a new reply to the user message that the assistant
/// message `message` answers (a retry: the old reply stays, as a branch), in
/// one transaction. `ReplyRunning` while a reply is being written there.
pub async fn retry_with_reply(
    pool: &SqlitePool,
    user: UserId,
    conversation: &str,
    message: &str,
    model: &str,
) -> Result<NewReply, StoreError> {
    let now = now_ms();
    let mut tx = super::begin_write(pool).await?;
    let (leaf, system_prompt, settings) =
        touch_for_reply(&mut tx, user, conversation, None, now).await?;
    // Only the reply at the end of the branch shown: retrying an earlier one
    // would silently hide every turn after it. (The transaction is rolled
    // back on every early return.)
    if leaf.as_deref() != Some(message) {
        return Err(StoreError::NotLatestReply);
    }
    let parent: Option<String> = sqlx::query_scalar(
        "SELECT parent_id FROM messages WHERE id = ? AND conversation_id = ? AND role = ?",
    )
    .bind(message)
    .bind(conversation)
    .bind(Role::Assistant)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    let parent = parent
        .ok_or_else(|| StoreError::Corrupt(format!("assistant message {message} has no parent")))?;
    let message_id = insert_placeholder(&mut tx, conversation, &parent, model, now).await?;
    let turns = branch(&mut *tx, conversation, &parent).await?;
    tx.commit().await?;
    Ok(NewReply {
        conversation_id: conversation.to_owned(),
        user_message: None,
        message_id,
        system_prompt,
        settings: parse_settings(&settings),
        turns,
        continues: None,
    })
}

/// The first statement of a transaction that starts a reply in one of the
/// user's conversations: marks it changed (and switches it to `model`, if
/// given), and reads its leaf, system prompt and settings. A write first, so
/// the transaction holds SQLite's write lock from its first statement:
/// concurrent sends queue up here instead of failing on a stale read.
async fn touch_for_reply(
    tx: &mut SqliteConnection,
    user: UserId,
    conversation: &str,
    model: Option<&str>,
    now: i64,
) -> Result<(Option<String>, Option<String>, String), StoreError> {
    sqlx::query_as(
        "UPDATE conversations SET model = COALESCE(?, model), updated_at = ?
         WHERE id = ? AND user_id = ?
         RETURNING leaf_message_id, system_prompt, settings",
    )
    .bind(model)
    .bind(now)
    .bind(conversation)
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)
}

/// Stores a user message under `parent` and the placeholder of its reply,
/// and makes the placeholder the conversation's leaf; inside the caller's
/// transaction.
async fn add_turn(
    tx: &mut SqliteConnection,
    conversation: &str,
    parent: Option<&str>,
    content: &str,
    model: &str,
    system_prompt: Option<String>,
    now: i64,
) -> Result<NewReply, StoreError> {
    let user_message = new_id();
    sqlx::query(
        "INSERT INTO messages (id, conversation_id, parent_id, role, content, state, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&user_message)
    .bind(conversation)
    .bind(parent)
    .bind(Role::User)
    .bind(content)
    .bind(MessageState::Done)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let message_id = insert_placeholder(&mut *tx, conversation, &user_message, model, now).await?;
    let turns = branch(&mut *tx, conversation, &user_message).await?;
    Ok(NewReply {
        conversation_id: conversation.to_owned(),
        // The branch ends with the message just stored, as the database has it.
        user_message: turns.last().cloned(),
        message_id,
        system_prompt,
        settings: GenerationSettings::default(),
        turns,
        continues: None,
    })
}

/// An empty assistant message in state `generating` under `parent`, made the
/// conversation's leaf. `ReplyRunning` when the conversation has one already.
async fn insert_placeholder(
    tx: &mut SqliteConnection,
    conversation: &str,
    parent: &str,
    model: &str,
    now: i64,
) -> Result<String, StoreError> {
    let message = new_id();
    sqlx::query(
        "INSERT INTO messages (id, conversation_id, parent_id, role, content, state, model, created_at, updated_at)
         VALUES (?, ?, ?, ?, '', ?, ?, ?, ?)",
    )
    .bind(&message)
    .bind(conversation)
    .bind(parent)
    .bind(Role::Assistant)
    .bind(MessageState::Generating)
    .bind(model)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::ReplyRunning,
        _ => StoreError::Sqlx(e),
    })?;
    sqlx::query("UPDATE conversations SET leaf_message_id = ?, updated_at = ? WHERE id = ?")
        .bind(&message)
        .bind(now)
        .bind(conversation)
        .execute(&mut *tx)
        .await?;
    Ok(message)
}

/// Saves the text of a reply that is still being generated.
pub async fn save_partial(
    pool: &SqlitePool,
    message: &str,
    content: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE messages SET content = ?, updated_at = ? WHERE id = ? AND state = ?")
        .bind(content)
        .bind(now_ms())
        .bind(message)
        .bind(MessageState::Generating)
        .execute(pool)
        .await?;
    Ok(())
}

/// How a reply ended, as stored on its message.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// `Done`, `Interrupted` or `Error`.
    pub state: MessageState,
    /// `None` when interrupted.
    pub finish_reason: Option<FinishReason>,
    /// For the reader, when the reply failed.
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
    let mut tx = super::begin_write(pool).await?;
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

/// An update of one of the user's rows: `NotFound` when it touched none (no
/// such row, or someone else's).
pub(crate) fn found(done: sqlx::sqlite::SqliteQueryResult) -> Result<(), StoreError> {
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
