//! A team's rules and records: groups and their members, which groups may use
//! which model, limits per group and per person, tokens used per day, the
//! audit log, and the retention sweep.

use sqlx::{SqliteConnection, SqlitePool};

use super::{now_ms, StoreError, UserId};

pub type GroupId = i64;

/// How much a person may use; `None`: no limit. Stored per group and per
/// person (the person's own values win over their groups').
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Limits {
    /// Replies (chat) and API requests started per minute.
    pub requests_per_minute: Option<i64>,
    /// Prompt and completion tokens per UTC day.
    pub tokens_per_day: Option<i64>,
    /// Replies running or waiting at once.
    pub replies_at_once: Option<i64>,
}

impl Limits {
    /// Each limit as `self` has it, else as `fallback` has it.
    pub fn or(self, fallback: Limits) -> Limits {
        Limits {
            requests_per_minute: self.requests_per_minute.or(fallback.requests_per_minute),
            tokens_per_day: self.tokens_per_day.or(fallback.tokens_per_day),
            replies_at_once: self.replies_at_once.or(fallback.replies_at_once),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// A group as the admin pages list it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Group {
    pub id: GroupId,
    pub name: String,
    #[sqlx(flatten)]
    pub limits: Limits,
    pub members: i64,
}

/// Why an admin's change was refused.
#[derive(Debug, thiserror::Error)]
pub enum TeamError {
    #[error("There is already a group named {0:?}.")]
    NameTaken(String),
    /// The change would leave the server without an active admin.
    #[error("This is the only admin: make someone else an admin first.")]
    LastAdmin,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TeamError {
    fn from(e: sqlx::Error) -> Self {
        TeamError::Store(e.into())
    }
}

fn name_taken(e: sqlx::Error, name: &str) -> TeamError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            TeamError::NameTaken(name.to_owned())
        }
        _ => e.into(),
    }
}

pub async fn create_group(pool: &SqlitePool, name: &str) -> Result<GroupId, TeamError> {
    sqlx::query_scalar("INSERT INTO groups (name, created_at) VALUES (?, ?) RETURNING id")
        .bind(name)
        .bind(now_ms())
        .fetch_one(pool)
        .await
        .map_err(|e| name_taken(e, name))
}

pub async fn rename_group(pool: &SqlitePool, group: GroupId, name: &str) -> Result<(), TeamError> {
    let done = sqlx::query("UPDATE groups SET name = ? WHERE id = ?")
        .bind(name)
        .bind(group)
        .execute(pool)
        .await
        .map_err(|e| name_taken(e, name))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound.into());
    }
    Ok(())
}

/// Whether `user` is the one active (not disabled) admin.
async fn is_last_admin(conn: &mut SqliteConnection, user: UserId) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1 AND role = 'admin' AND disabled_at IS NULL)
            AND (SELECT count(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL) = 1",
    )
    .bind(user)
    .fetch_one(&mut *conn)
    .await?)
}

/// Gives `user` a role, as [`super::users::set_role`] does, but never takes
/// the role of the last active admin.
pub async fn change_role(
    pool: &SqlitePool,
    user: UserId,
    role: super::users::Role,
) -> Result<(), TeamError> {
    use super::users::Role;
    let mut tx = super::begin_write(pool).await?;
    if role != Role::Admin && is_last_admin(&mut tx, user).await? {
        return Err(TeamError::LastAdmin);
    }
    super::users::set_role_in(&mut tx, user, role).await?;
    tx.commit().await?;
    Ok(())
}

/// Disables `user` (ending their sessions; their tokens stop working) or
/// enables them; the last active admin is never disabled.
pub async fn change_disabled(
    pool: &SqlitePool,
    user: UserId,
    disabled: bool,
) -> Result<(), TeamError> {
    let mut tx = super::begin_write(pool).await?;
    if disabled && is_last_admin(&mut tx, user).await? {
        return Err(TeamError::LastAdmin);
    }
    tx.commit().await?;
    super::users::set_disabled(pool, user, disabled).await?;
    Ok(())
}

/// Deletes `user` with all their data: conversations and messages, share
/// links, sessions, tokens, settings, memberships. Their usage totals stay
/// (as a deleted user's), and so do audit events about them.
pub async fn delete_user(pool: &SqlitePool, user: UserId) -> Result<(), TeamError> {
    let mut tx = super::begin_write(pool).await?;
    if is_last_admin(&mut tx, user).await? {
        return Err(TeamError::LastAdmin);
    }
    let done = sqlx::query("DELETE FROM users WHERE id = ?")
        .bind(user)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound.into());
    }
    tx.commit().await?;
    Ok(())
}

/// Deletes a group; its members stay, and models only it could use are
/// open to everyone again.
pub async fn delete_group(pool: &SqlitePool, group: GroupId) -> Result<(), StoreError> {
    let done = sqlx::query("DELETE FROM groups WHERE id = ?")
        .bind(group)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Every group with its number of members, by name.
pub async fn list_groups(pool: &SqlitePool) -> Result<Vec<Group>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT g.id, g.name, g.requests_per_minute, g.tokens_per_day, g.replies_at_once,
                (SELECT count(*) FROM group_members m WHERE m.group_id = g.id) AS members
         FROM groups g ORDER BY g.name",
    )
    .fetch_all(pool)
    .await?)
}

/// Whose limits: a group's, or a person's own (over their groups').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitsOf {
    Group(GroupId),
    User(UserId),
}

pub async fn set_limits(
    pool: &SqlitePool,
    of: LimitsOf,
    limits: &Limits,
) -> Result<(), StoreError> {
    let (sql, id) = match of {
        LimitsOf::Group(id) => (
            "UPDATE groups SET requests_per_minute = ?, tokens_per_day = ?, replies_at_once = ? WHERE id = ?",
            id,
        ),
        LimitsOf::User(id) => (
            "UPDATE users SET requests_per_minute = ?, tokens_per_day = ?, replies_at_once = ? WHERE id = ?",
            id,
        ),
    };
    let done = sqlx::query(sql)
        .bind(limits.requests_per_minute)
        .bind(limits.tokens_per_day)
        .bind(limits.replies_at_once)
        .bind(id)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn user_limits(pool: &SqlitePool, user: UserId) -> Result<Limits, StoreError> {
    sqlx::query_as(
        "SELECT requests_per_minute, tokens_per_day, replies_at_once FROM users WHERE id = ?",
    )
    .bind(user)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound)
}

/// The limits that hold for `user`: their own, else the most generous of
/// their groups' (a group without a value for a limit does not limit it).
/// Someone in no group has only their own limits.
pub async fn effective_limits(pool: &SqlitePool, user: UserId) -> Result<Limits, StoreError> {
    let own = user_limits(pool, user).await?;
    // max() ignores NULLs, so "any group without the limit" is counted apart.
    let groups: Limits = sqlx::query_as(
        "SELECT CASE WHEN count(*) = 0 OR count(*) > count(g.requests_per_minute) THEN NULL
                     ELSE max(g.requests_per_minute) END AS requests_per_minute,
                CASE WHEN count(*) = 0 OR count(*) > count(g.tokens_per_day) THEN NULL
                     ELSE max(g.tokens_per_day) END AS tokens_per_day,
                CASE WHEN count(*) = 0 OR count(*) > count(g.replies_at_once) THEN NULL
                     ELSE max(g.replies_at_once) END AS replies_at_once
         FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.user_id = ?",
    )
    .bind(user)
    .fetch_one(pool)
    .await?;
    Ok(own.or(groups))
}

/// Puts `user` in `group` (an admin's choice; a sign-in never undoes it).
pub async fn add_member(pool: &SqlitePool, group: GroupId, user: UserId) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO group_members (group_id, user_id, source) VALUES (?, ?, 'admin')
         ON CONFLICT (group_id, user_id) DO UPDATE SET source = 'admin'",
    )
    .bind(group)
    .bind(user)
    .execute(pool)
    .await
    .map_err(|e| match &e {
        // A foreign key: no such group or user.
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound,
        _ => e.into(),
    })?;
    Ok(())
}

pub async fn remove_member(
    pool: &SqlitePool,
    group: GroupId,
    user: UserId,
) -> Result<(), StoreError> {
    let done = sqlx::query("DELETE FROM group_members WHERE group_id = ? AND user_id = ?")
        .bind(group)
        .bind(user)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The groups `user` is in, by name: (id, name).
pub async fn groups_of(
    pool: &SqlitePool,
    user: UserId,
) -> Result<Vec<(GroupId, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT g.id, g.name FROM group_members m JOIN groups g ON g.id = m.group_id
         WHERE m.user_id = ? ORDER BY g.name",
    )
    .bind(user)
    .fetch_all(pool)
    .await?)
}

/// Brings the groups a provider says `user` is in up to date: membership of
/// every Wick group named in `names` (case-blind; names without a Wick group
/// are ignored), and none of the groups a previous sign-in put them in that
/// the provider no longer names. Memberships an admin set stay.
pub(crate) async fn sync_provider_groups(
    conn: &mut SqliteConnection,
    user: UserId,
    names: &[String],
) -> Result<(), StoreError> {
    let names = serde_json::to_string(names).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "DELETE FROM group_members WHERE user_id = ? AND source = 'oidc' AND group_id NOT IN
           (SELECT g.id FROM groups g JOIN json_each(?) j ON g.name = j.value)",
    )
    .bind(user)
    .bind(&names)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO group_members (group_id, user_id, source)
         SELECT g.id, ?, 'oidc' FROM groups g JOIN json_each(?) j ON g.name = j.value
         WHERE true ON CONFLICT (group_id, user_id) DO NOTHING",
    )
    .bind(user)
    .bind(&names)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Which groups may use each restricted model: (model id, group id) pairs.
/// A model that appears in none is open to everyone.
pub async fn model_access(pool: &SqlitePool) -> Result<Vec<(String, GroupId)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT model_id, group_id FROM model_access ORDER BY model_id, group_id")
            .fetch_all(pool)
            .await?,
    )
}

/// Lets only `groups` use `model` (none: everyone).
pub async fn set_model_access(
    pool: &SqlitePool,
    model: &str,
    groups: &[GroupId],
) -> Result<(), StoreError> {
    let mut tx = super::begin_write(pool).await?;
    sqlx::query("DELETE FROM model_access WHERE model_id = ?")
        .bind(model)
        .execute(&mut *tx)
        .await?;
    for group in groups {
        sqlx::query("INSERT INTO model_access (model_id, group_id) VALUES (?, ?)")
            .bind(model)
            .bind(group)
            .execute(&mut *tx)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound,
                _ => StoreError::from(e),
            })?;
    }
    tx.commit().await?;
    Ok(())
}

/// Whether `user` may use `model`: it is open to everyone, they are in one
/// of the groups it is open to, or they are an admin (who decides it).
pub async fn may_use(pool: &SqlitePool, user: UserId, model: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT NOT EXISTS (SELECT 1 FROM model_access WHERE model_id = ?1)
             OR EXISTS (SELECT 1 FROM users WHERE id = ?2 AND role = 'admin')
             OR EXISTS (SELECT 1 FROM model_access a JOIN group_members m ON m.group_id = a.group_id
                        WHERE a.model_id = ?1 AND m.user_id = ?2)",
    )
    .bind(model)
    .bind(user)
    .fetch_one(pool)
    .await?)
}

/// The ids of the models that `user` may not use (see [`may_use`]).
pub async fn closed_models(pool: &SqlitePool, user: UserId) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT model_id FROM model_access WHERE model_id NOT IN
           (SELECT a.model_id FROM model_access a JOIN group_members m ON m.group_id = a.group_id
            WHERE m.user_id = ?1)
         AND NOT EXISTS (SELECT 1 FROM users WHERE id = ?1 AND role = 'admin')",
    )
    .bind(user)
    .fetch_all(pool)
    .await?)
}

/// Adds the tokens of one reply or API request to today's (UTC) usage of
/// `user` and `model`.
pub async fn record_usage(
    pool: &SqlitePool,
    user: UserId,
    model: &str,
    prompt_tokens: i64,
    completion_tokens: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO usage_daily (day, user_id, model_id, requests, prompt_tokens, completion_tokens)
         VALUES (strftime('%Y-%m-%d', ? / 1000, 'unixepoch'), ?, ?, 1, ?, ?)
         ON CONFLICT (day, user_id, model_id) DO UPDATE SET
           requests = requests + 1,
           prompt_tokens = prompt_tokens + excluded.prompt_tokens,
           completion_tokens = completion_tokens + excluded.completion_tokens",
    )
    .bind(now_ms())
    .bind(user)
    .bind(model)
    .bind(prompt_tokens.max(0))
    .bind(completion_tokens.max(0))
    .execute(pool)
    .await?;
    Ok(())
}

/// Prompt and completion tokens `user` used today (UTC), all models.
pub async fn tokens_today(pool: &SqlitePool, user: UserId) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT coalesce(sum(prompt_tokens + completion_tokens), 0) FROM usage_daily
         WHERE user_id = ? AND day = strftime('%Y-%m-%d', ? / 1000, 'unixepoch')",
    )
    .bind(user)
    .bind(now_ms())
    .fetch_one(pool)
    .await?)
}

/// One row of the usage table: a day, a person, a model.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UsageRow {
    pub day: String,
    pub user_id: Option<UserId>,
    /// The person's email (or "deleted user").
    pub user: String,
    pub model_id: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

/// What the usage page shows: each filter, when set, narrows the rows.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub user: Option<UserId>,
    pub group: Option<GroupId>,
    pub model: Option<String>,
    /// Days back from today (UTC), today included.
    pub days: u32,
}

pub async fn usage(pool: &SqlitePool, filter: &UsageFilter) -> Result<Vec<UsageRow>, StoreError> {
    let days = i64::from(filter.days.max(1)) - 1;
    Ok(sqlx::query_as(
        "SELECT u.day, u.user_id,
                coalesce(p.email, p.display_name, CASE WHEN u.user_id IS NULL THEN 'deleted user'
                         ELSE 'user ' || u.user_id END) AS user,
                u.model_id, u.requests, u.prompt_tokens, u.completion_tokens
         FROM usage_daily u LEFT JOIN users p ON p.id = u.user_id
         WHERE u.day >= strftime('%Y-%m-%d', ?1 / 1000, 'unixepoch', '-' || ?2 || ' days')
           AND (?3 IS NULL OR u.user_id = ?3)
           AND (?4 IS NULL OR u.user_id IN (SELECT user_id FROM group_members WHERE group_id = ?4))
           AND (?5 IS NULL OR u.model_id = ?5)
         ORDER BY u.day, user, u.model_id",
    )
    .bind(now_ms())
    .bind(days)
    .bind(filter.user)
    .bind(filter.group)
    .bind(&filter.model)
    .fetch_all(pool)
    .await?)
}

/// One event of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub actor_id: Option<UserId>,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub address: Option<String>,
}

/// What an audit event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    SignIn,
    SignInFailed,
    SignUp,
    SignOut,
    SignOutEverywhere,
    PasswordChanged,
    RoleChanged,
    UserDisabled,
    UserEnabled,
    UserDeleted,
    GroupCreated,
    GroupRenamed,
    GroupDeleted,
    MemberAdded,
    MemberRemoved,
    LimitsChanged,
    ModelAccessChanged,
    TokenCreated,
    TokenRevoked,
    ShareCreated,
}

impl AuditAction {
    pub const ALL: [AuditAction; 20] = [
        AuditAction::SignIn,
        AuditAction::SignInFailed,
        AuditAction::SignUp,
        AuditAction::SignOut,
        AuditAction::SignOutEverywhere,
        AuditAction::PasswordChanged,
        AuditAction::RoleChanged,
        AuditAction::UserDisabled,
        AuditAction::UserEnabled,
        AuditAction::UserDeleted,
        AuditAction::GroupCreated,
        AuditAction::GroupRenamed,
        AuditAction::GroupDeleted,
        AuditAction::MemberAdded,
        AuditAction::MemberRemoved,
        AuditAction::LimitsChanged,
        AuditAction::ModelAccessChanged,
        AuditAction::TokenCreated,
        AuditAction::TokenRevoked,
        AuditAction::ShareCreated,
    ];

    /// The name stored and shown (`sign_in`, `role_changed`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::SignIn => "sign_in",
            AuditAction::SignInFailed => "sign_in_failed",
            AuditAction::SignUp => "sign_up",
            AuditAction::SignOut => "sign_out",
            AuditAction::SignOutEverywhere => "sign_out_everywhere",
            AuditAction::PasswordChanged => "password_changed",
            AuditAction::RoleChanged => "role_changed",
            AuditAction::UserDisabled => "user_disabled",
            AuditAction::UserEnabled => "user_enabled",
            AuditAction::UserDeleted => "user_deleted",
            AuditAction::GroupCreated => "group_created",
            AuditAction::GroupRenamed => "group_renamed",
            AuditAction::GroupDeleted => "group_deleted",
            AuditAction::MemberAdded => "member_added",
            AuditAction::MemberRemoved => "member_removed",
            AuditAction::LimitsChanged => "limits_changed",
            AuditAction::ModelAccessChanged => "model_access_changed",
            AuditAction::TokenCreated => "token_created",
            AuditAction::TokenRevoked => "token_revoked",
            AuditAction::ShareCreated => "share_created",
        }
    }

    pub fn parse(name: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// An event to log: `actor` did `action` to `target`. `detail` must never
/// hold message text (callers write it from fixed words, ids and numbers).
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub actor: Option<UserId>,
    pub action: AuditAction,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub address: Option<String>,
}

pub async fn audit(pool: &SqlitePool, event: AuditEvent) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor_id, actor, action, target, detail, address)
         VALUES (?1, ?2, (SELECT coalesce(email, 'user ' || id) FROM users WHERE id = ?2), ?3, ?4, ?5, ?6)",
    )
    .bind(now_ms())
    .bind(event.actor)
    .bind(event.action.as_str())
    .bind(event.target)
    .bind(event.detail)
    .bind(event.address)
    .execute(pool)
    .await?;
    Ok(())
}

/// What the audit page shows, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<AuditAction>,
    /// Matches the actor's email or the target.
    pub who: Option<String>,
    pub limit: u32,
}

pub async fn audit_entries(
    pool: &SqlitePool,
    filter: &AuditFilter,
) -> Result<Vec<AuditEntry>, StoreError> {
    let who = filter
        .who
        .as_ref()
        .map(|w| format!("%{}%", w.replace(['%', '_'], "")));
    Ok(sqlx::query_as(
        "SELECT id, at, actor_id, actor, action, target, detail, address FROM audit_log
         WHERE (?1 IS NULL OR action = ?1) AND (?2 IS NULL OR actor LIKE ?2 OR target LIKE ?2)
         ORDER BY id DESC LIMIT ?3",
    )
    .bind(filter.action.map(AuditAction::as_str))
    .bind(who)
    .bind(i64::from(filter.limit.max(1)))
    .fetch_all(pool)
    .await?)
}

/// Deletes audit events older than `days` days; returns how many.
pub async fn prune_audit(pool: &SqlitePool, days: u32) -> Result<u64, StoreError> {
    let before = now_ms() - i64::from(days) * DAY_MS;
    let done = sqlx::query("DELETE FROM audit_log WHERE at < ?")
        .bind(before)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Deletes the conversations (of everyone) not updated for `days` days,
/// except those with a reply being written; returns how many.
pub async fn delete_stale_conversations(pool: &SqlitePool, days: u32) -> Result<u64, StoreError> {
    let before = now_ms() - i64::from(days) * DAY_MS;
    let done = sqlx::query(
        "DELETE FROM conversations WHERE updated_at < ? AND id NOT IN
           (SELECT conversation_id FROM messages WHERE state = 'generating')",
    )
    .bind(before)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Whether `user` is an active admin.
pub async fn is_admin(pool: &SqlitePool, user: UserId) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = ? AND role = 'admin' AND disabled_at IS NULL)",
    )
    .bind(user)
    .fetch_one(pool)
    .await?)
}

/// The members of `group`: (id, email or name).
pub async fn members(
    pool: &SqlitePool,
    group: GroupId,
) -> Result<Vec<(UserId, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT u.id, coalesce(u.email, u.display_name, 'user ' || u.id) FROM group_members m
         JOIN users u ON u.id = m.user_id WHERE m.group_id = ? ORDER BY 2",
    )
    .bind(group)
    .fetch_all(pool)
    .await?)
}

/// Every membership: (user id, group name), for the users page.
pub async fn all_memberships(pool: &SqlitePool) -> Result<Vec<(UserId, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT m.user_id, g.name FROM group_members m JOIN groups g ON g.id = m.group_id
         ORDER BY g.name",
    )
    .fetch_all(pool)
    .await?)
}
