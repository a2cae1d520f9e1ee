//! Users and their browser sessions.

use std::time::Duration;

use sqlx::{SqliteConnection, SqlitePool};

use super::{now_ms, StoreError, UserId};

/// How often a session's `last_seen_at` (and its sliding expiry) is written:
/// not on every request, so that reading pages stays read-only most of the time.
const TOUCH_EVERY_MS: i64 = 60 * 60 * 1000;

/// Creates an anonymous user with one session whose cookie hashes to `token_hash`.
pub async fn create_anonymous_user(
    pool: &SqlitePool,
    token_hash: &[u8; 32],
    lifetime: Duration,
) -> Result<UserId, StoreError> {
    let mut tx = super::begin_write(pool).await?;
    let user = insert_anonymous_user(&mut tx, token_hash, lifetime).await?;
    tx.commit().await?;
    Ok(user)
}

/// Inserts an anonymous user and its one session, inside the caller's transaction.
pub(crate) async fn insert_anonymous_user(
    tx: &mut SqliteConnection,
    token_hash: &[u8; 32],
    lifetime: Duration,
) -> Result<UserId, StoreError> {
    let now = now_ms();
    let expires = now + lifetime.as_millis() as i64;
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
    Ok(user_id)
}

/// Deletes the sessions that have expired; returns how many.
pub async fn delete_expired_sessions(pool: &SqlitePool) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
        .bind(now_ms())
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    user_id: UserId,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
}

/// A live session, as found by its token's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub user: UserId,
    /// Its expiry has just slid: the browser's cookie should be given a full
    /// lifetime again too.
    pub renewed: bool,
}

/// The user of an unexpired session, if any. A session in use slides: at most
/// once an hour its `last_seen_at` is written and its expiry moved to a full
/// lifetime (the one it was created with) from now.
pub async fn user_for_session(
    pool: &SqlitePool,
    token_hash: &[u8; 32],
) -> Result<Option<Session>, StoreError> {
    let now = now_ms();
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT s.user_id, s.created_at, s.last_seen_at, s.expires_at
         FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = ? AND s.expires_at > ?
           AND u.disabled_at IS NULL AND u.role != 'pending'",
    )
    .bind(&token_hash[..])
    .bind(now)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let renewed = now - row.last_seen_at >= TOUCH_EVERY_MS;
    if renewed {
        let lifetime = row.expires_at - row.last_seen_at.max(row.created_at);
        sqlx::query("UPDATE sessions SET last_seen_at = ?, expires_at = max(expires_at, ?) WHERE token_hash = ?")
            .bind(now)
            .bind(now + lifetime)
            .bind(&token_hash[..])
            .execute(pool)
            .await?;
    }
    Ok(Some(Session {
        user: row.user_id,
        renewed,
    }))
}

/// The account of an unexpired session, if the session is an account's
/// (not an anonymous visitor's) that may use Wick (not disabled, not
/// pending). Only reads: the sliding of the session is left to the
/// request's own lookup ([`user_for_session`]), which hands the browser its
/// renewed cookie.
pub async fn account_for_session(
    pool: &SqlitePool,
    token_hash: &[u8; 32],
) -> Result<Option<UserId>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT s.user_id FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = ? AND s.expires_at > ? AND u.kind = 'registered'
           AND u.disabled_at IS NULL AND u.role != 'pending'",
    )
    .bind(&token_hash[..])
    .bind(now_ms())
    .fetch_optional(pool)
    .await?)
}

/// What a registered user may do: `Pending` waits for an admin's approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
    Pending,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            "pending" => Ok(Role::Pending),
            other => Err(format!("{other:?} is not a role: admin, user or pending")),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::User => "user",
            Role::Pending => "pending",
        })
    }
}

/// An email as stored: trimmed and lower-cased (the unique index is
/// case-blind too).
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Whether `email` looks like an address (one `@` with text on both sides,
/// no spaces, at most 254 characters): the provider or a mail server
/// decides the rest.
pub fn looks_like_email(email: &str) -> bool {
    let email = email.trim();
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
                && email.chars().count() <= 254
        }
        None => false,
    }
}

/// A user as an admin lists them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserInfo {
    pub id: UserId,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub role: Role,
    /// `anonymous` or `registered`.
    pub kind: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

/// Creates a registered user with an email and a password hash (see
/// [`crate::password::hash`]). `Taken` when the email already has an account.
pub async fn create_local_user(
    pool: &SqlitePool,
    email: &str,
    name: Option<&str>,
    password_hash: &str,
    role: Role,
) -> Result<UserId, AccountError> {
    let email = normalise_email(email);
    let mut tx = super::begin_write(pool).await?;
    let taken: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE email = ?)")
        .bind(&email)
        .fetch_one(&mut *tx)
        .await?;
    if taken {
        return Err(AccountError::Taken);
    }
    let id = sqlx::query_scalar(
        "INSERT INTO users (kind, email, display_name, password_hash, role, created_at)
         VALUES ('registered', ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&email)
    .bind(name)
    .bind(password_hash)
    .bind(role)
    .bind(now_ms())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Why an account could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("an account with this email already exists")]
    Taken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AccountError {
    fn from(e: sqlx::Error) -> Self {
        AccountError::Store(e.into())
    }
}

/// What a password sign-in needs: the user, their hash and whether they may
/// sign in. Found by email, whatever the case it was typed in.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Login {
    pub id: UserId,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub role: Role,
    pub disabled_at: Option<i64>,
}

pub async fn find_login(pool: &SqlitePool, email: &str) -> Result<Option<Login>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, email, password_hash, role, disabled_at FROM users WHERE email = ?",
    )
    .bind(normalise_email(email))
    .fetch_optional(pool)
    .await?)
}

/// The same for a user by id (changing a password).
pub async fn login_of(pool: &SqlitePool, user: UserId) -> Result<Option<Login>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, email, password_hash, role, disabled_at FROM users
         WHERE id = ? AND kind = 'registered'",
    )
    .bind(user)
    .fetch_optional(pool)
    .await?)
}

/// Stores a new password hash for `user`.
pub async fn set_password(pool: &SqlitePool, user: UserId, hash: &str) -> Result<(), StoreError> {
    let done = sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
        .bind(hash)
        .bind(user)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Ends every session of `user` but the one hashing to `keep`.
pub async fn end_all_sessions(
    pool: &SqlitePool,
    user: UserId,
    keep: Option<&[u8; 32]>,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM sessions WHERE user_id = ? AND token_hash IS NOT ?")
        .bind(user)
        .bind(keep.map(|k| &k[..]))
        .execute(pool)
        .await?;
    Ok(())
}

/// Every user, oldest first.
pub async fn list_users(pool: &SqlitePool) -> Result<Vec<UserInfo>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, email, display_name, role, kind, created_at, disabled_at FROM users ORDER BY id",
    )
    .fetch_all(pool)
    .await?)
}

/// The id of the user with this email, or with this id when `who` is a number.
pub async fn find_user(pool: &SqlitePool, who: &str) -> Result<UserId, StoreError> {
    let by_id = who.trim().parse::<UserId>().ok();
    sqlx::query_scalar("SELECT id FROM users WHERE id = ? OR email = ?")
        .bind(by_id)
        .bind(normalise_email(who))
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound)
}

/// Gives `user` a role; made `Pending`, their sessions end (they wait for
/// an admin again).
pub async fn set_role(pool: &SqlitePool, user: UserId, role: Role) -> Result<(), StoreError> {
    let mut tx = super::begin_write(pool).await?;
    set_role_in(&mut tx, user, role).await?;
    tx.commit().await?;
    Ok(())
}

/// [`set_role`] inside the caller's transaction.
pub(crate) async fn set_role_in(
    conn: &mut SqliteConnection,
    user: UserId,
    role: Role,
) -> Result<(), StoreError> {
    let done = sqlx::query("UPDATE users SET role = ? WHERE id = ?")
        .bind(role)
        .bind(user)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    if role == Role::Pending {
        sqlx::query("DELETE FROM sessions WHERE user_id = ?")
            .bind(user)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Disables a user (their sessions are deleted, and their tokens stop
/// working: every lookup checks `disabled_at`), or enables them again.
pub async fn set_disabled(
    pool: &SqlitePool,
    user: UserId,
    disabled: bool,
) -> Result<(), StoreError> {
    let mut tx = super::begin_write(pool).await?;
    let done = sqlx::query(
        "UPDATE users SET disabled_at = CASE WHEN ? THEN coalesce(disabled_at, ?) END WHERE id = ?",
    )
    .bind(disabled)
    .bind(now_ms())
    .bind(user)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    if disabled {
        sqlx::query("DELETE FROM sessions WHERE user_id = ?")
            .bind(user)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Whether `user` is an anonymous visitor (whose data moves to an account
/// they sign up for or into).
async fn is_anonymous(conn: &mut SqliteConnection, user: UserId) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT kind = 'anonymous' FROM users WHERE id = ?")
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?
            .unwrap_or(false),
    )
}

/// Signs `account` in, in one transaction: the sessions the browser came
/// with are deleted (a new id at every sign-in, so no fixation), an
/// anonymous visitor's conversations, share links, tokens and defaults move
/// to the account (the account's own defaults win), and a new session is
/// stored for `token_hash`.
pub async fn start_session(
    pool: &SqlitePool,
    account: UserId,
    previous: Option<UserId>,
    previous_sessions: &[[u8; 32]],
    token_hash: &[u8; 32],
    lifetime: Duration,
) -> Result<(), StoreError> {
    let mut tx = super::begin_write(pool).await?;
    for hash in previous_sessions {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(&hash[..])
            .execute(&mut *tx)
            .await?;
    }
    if let Some(anon) = previous.filter(|p| *p != account) {
        if is_anonymous(&mut tx, anon).await? {
            merge_anonymous_into(&mut tx, anon, account).await?;
        }
    }
    let now = now_ms();
    sqlx::query(
        "INSERT INTO sessions (user_id, token_hash, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(account)
    .bind(&token_hash[..])
    .bind(now)
    .bind(now)
    .bind(now + lifetime.as_millis() as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn merge_anonymous_into(
    conn: &mut SqliteConnection,
    anon: UserId,
    account: UserId,
) -> Result<(), StoreError> {
    for table in ["conversations", "shares", "api_tokens"] {
        sqlx::query(&format!(
            "UPDATE {table} SET user_id = ?1 WHERE user_id = ?2"
        ))
        .bind(account)
        .bind(anon)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "INSERT OR IGNORE INTO user_settings (user_id, default_model, updated_at)
         SELECT ?1, default_model, updated_at FROM user_settings WHERE user_id = ?2",
    )
    .bind(account)
    .bind(anon)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT OR IGNORE INTO user_model_prompts (user_id, model, system_prompt, updated_at)
         SELECT ?1, model, system_prompt, updated_at FROM user_model_prompts WHERE user_id = ?2",
    )
    .bind(account)
    .bind(anon)
    .execute(&mut *conn)
    .await?;
    // Its sessions and what was not moved go with it (ON DELETE CASCADE).
    sqlx::query("DELETE FROM users WHERE id = ? AND kind = 'anonymous'")
        .bind(anon)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Ends the sessions with these hashes (signing out).
pub async fn end_sessions(pool: &SqlitePool, hashes: &[[u8; 32]]) -> Result<(), StoreError> {
    for hash in hashes {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(&hash[..])
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Who is signed in, as the page shows it: `None` for an anonymous visitor.
pub async fn account_of(
    pool: &SqlitePool,
    user: UserId,
) -> Result<Option<(String, Role)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT coalesce(display_name, email), role FROM users
         WHERE id = ? AND kind = 'registered' AND email IS NOT NULL",
    )
    .bind(user)
    .fetch_optional(pool)
    .await?)
}

/// Who an OpenID provider says signed in: its issuer and subject (the
/// identity Wick matches on), and what it says of their email and name.
#[derive(Debug, Clone)]
pub struct ExternalIdentity {
    pub issuer: String,
    pub subject: String,
    /// Lower-cased; `None` when the provider gave none.
    pub email: Option<String>,
    /// The provider checked the email (`email_verified`): only then may a
    /// first sign-in take over an account an admin made for that email.
    pub email_verified: bool,
    pub name: Option<String>,
    /// `Some(true)`: in an admin group, `Some(false)`: not (an admin made
    /// by groups is made a user again), `None`: groups do not decide.
    pub admin: Option<bool>,
    /// The provider's groups (`None`: no groups claim is configured). The
    /// person is put in the Wick groups of these names at each sign-in.
    pub groups: Option<Vec<String>>,
}

/// The account an external sign-in lands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternalAccount {
    pub id: UserId,
    pub role: Role,
    pub disabled: bool,
}

/// Why an external sign-in has no account.
#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    /// No account has this identity, and none may be made for it here.
    #[error("no account may be made for this identity")]
    NotInvited,
    /// An account with this email exists, and the provider did not verify
    /// that the email is theirs.
    #[error("an account with this email exists")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ExternalError {
    fn from(e: sqlx::Error) -> Self {
        ExternalError::Store(e.into())
    }
}

/// Finds the account of an external identity, in one transaction: by issuer
/// and subject; else (first sign-in) the account an admin made for its
/// verified email, which the identity is then linked to; else, when
/// `may_create`, a new account with `default_role` (admin when the groups
/// say so). The email, the name and (when groups decide) the admin role are
/// brought up to date at every sign-in.
pub async fn external_sign_in(
    pool: &SqlitePool,
    who: &ExternalIdentity,
    may_create: bool,
    default_role: Role,
) -> Result<ExternalAccount, ExternalError> {
    let mut tx = super::begin_write(pool).await?;
    let found: Option<(UserId, Role, Option<i64>)> = sqlx::query_as(
        "SELECT id, role, disabled_at FROM users WHERE oidc_issuer = ? AND oidc_subject = ?",
    )
    .bind(&who.issuer)
    .bind(&who.subject)
    .fetch_optional(&mut *tx)
    .await?;
    let holder: Option<(UserId, Role, Option<i64>, Option<String>)> = match &who.email {
        Some(email) => {
            sqlx::query_as("SELECT id, role, disabled_at, oidc_subject FROM users WHERE email = ?")
                .bind(email)
                .fetch_optional(&mut *tx)
                .await?
        }
        None => None,
    };
    let (id, mut role, disabled_at) = match found {
        Some(found) => found,
        None => match holder.clone() {
            // An account made by an admin (or with a password) for this email.
            Some((id, role, disabled_at, None)) if who.email_verified => {
                sqlx::query("UPDATE users SET oidc_issuer = ?, oidc_subject = ? WHERE id = ?")
                    .bind(&who.issuer)
                    .bind(&who.subject)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                (id, role, disabled_at)
            }
            Some(_) => return Err(ExternalError::EmailTaken),
            None if !may_create => return Err(ExternalError::NotInvited),
            None => {
                let role = if who.admin == Some(true) {
                    Role::Admin
                } else {
                    default_role
                };
                let id = sqlx::query_scalar(
                    "INSERT INTO users (kind, email, display_name, role, oidc_issuer, oidc_subject, created_at)
                     VALUES ('registered', ?, ?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(&who.email)
                .bind(&who.name)
                .bind(role)
                .bind(&who.issuer)
                .bind(&who.subject)
                .bind(now_ms())
                .fetch_one(&mut *tx)
                .await?;
                (id, role, None)
            }
        },
    };
    match who.admin {
        Some(true) => role = Role::Admin,
        Some(false) if role == Role::Admin => role = Role::User,
        _ => {}
    }
    // The email follows the provider's, unless another account has it.
    let email_free = match (&who.email, &holder) {
        (Some(_), Some((holder_id, ..))) => *holder_id == id,
        (Some(_), None) => true,
        (None, _) => false,
    };
    sqlx::query(
        "UPDATE users SET role = ?, display_name = coalesce(?, display_name),
         email = CASE WHEN ? THEN ? ELSE email END WHERE id = ?",
    )
    .bind(role)
    .bind(&who.name)
    .bind(email_free)
    .bind(&who.email)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if let Some(groups) = &who.groups {
        super::team::sync_provider_groups(&mut tx, id, groups).await?;
    }
    tx.commit().await?;
    Ok(ExternalAccount {
        id,
        role,
        disabled: disabled_at.is_some(),
    })
}
