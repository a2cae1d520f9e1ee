//! Signing up, in and out with an email and a password (issue 15).
//!
//! A sign-in always starts a new session (the cookie the browser came with
//! is ended, so a planted cookie is worth nothing afterwards), and an
//! anonymous visitor who signs up or in keeps their conversations: they move
//! to the account in the same transaction.

use std::time::Duration;

use tokio::sync::Semaphore;

use crate::db::users::{self, AccountError, Role};
use crate::password::{self, PasswordProblem};
use crate::{session, Chat, StoreError, UserId};

/// How long an account's session lives unused (it slides while in use).
pub const ACCOUNT_SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// The longest name shown for an account.
pub const MAX_NAME_CHARS: usize = 100;

/// Argon2 takes 19 MiB and tens of milliseconds per check: two at a time at
/// most, on blocking threads, so a burst of sign-ins cannot starve the
/// machine of memory or the runtime of threads.
static HASHING: Semaphore = Semaphore::const_new(2);

/// Why signing up or in did not happen, as the person is told.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// A wrong password, an unknown email and a disabled account look the
    /// same: the answer never tells who has an account.
    #[error("That email and password do not match an account.")]
    Credentials,
    #[error("Your account is waiting for an admin's approval.")]
    Pending,
    #[error("{0}")]
    Password(#[from] PasswordProblem),
    #[error("That is not an email address.")]
    BadEmail,
    #[error("An account with this email already exists: sign in instead.")]
    Taken,
    #[error("The name is longer than {MAX_NAME_CHARS} characters.")]
    LongName,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new session: its user, and the token for the browser's cookie.
#[derive(Debug)]
pub struct SignedIn {
    pub user: UserId,
    pub token: String,
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let _permit = HASHING
        .acquire()
        .await
        .expect("the semaphore is never closed");
    tokio::task::spawn_blocking(work)
        .await
        .expect("password hashing does not panic")
}

impl Chat {
    /// Creates an account (role `user`) and signs it in; `current` is the
    /// visitor as they came, whose data moves to the account if anonymous.
    pub async fn sign_up(
        &self,
        current: Option<UserId>,
        sessions: &[[u8; 32]],
        email: &str,
        name: &str,
        secret: String,
    ) -> Result<SignedIn, SignInError> {
        if !users::looks_like_email(email) {
            return Err(SignInError::BadEmail);
        }
        let email = users::normalise_email(email);
        let name = name.trim();
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(SignInError::LongName);
        }
        password::check_new(&secret, Some(&email))?;
        let hash = blocking(move || password::hash(&secret)).await;
        let name = (!name.is_empty()).then_some(name);
        let user = users::create_local_user(self.pool(), &email, name, &hash, Role::User)
            .await
            .map_err(|e| match e {
                AccountError::Taken => SignInError::Taken,
                AccountError::Store(e) => SignInError::Store(e),
            })?;
        self.start_session(user, current, sessions).await
    }

    /// Signs in with a password. Every attempt costs one argon2 check, for
    /// an unknown email too, so the time taken does not tell either.
    pub async fn sign_in(
        &self,
        current: Option<UserId>,
        sessions: &[[u8; 32]],
        email: &str,
        secret: String,
    ) -> Result<SignedIn, SignInError> {
        let login = users::find_login(self.pool(), email).await?;
        let stored = login.as_ref().and_then(|l| l.password_hash.clone());
        let matches = blocking(move || password::verify(&secret, stored.as_deref())).await;
        let login = match login {
            Some(login) if matches && login.disabled_at.is_none() => login,
            _ => return Err(SignInError::Credentials),
        };
        if login.role == Role::Pending {
            return Err(SignInError::Pending);
        }
        self.start_session(login.id, current, sessions).await
    }

    /// Ends the sessions the browser holds.
    pub async fn sign_out(&self, sessions: &[[u8; 32]]) -> Result<(), StoreError> {
        users::end_sessions(self.pool(), sessions).await
    }

    async fn start_session(
        &self,
        account: UserId,
        current: Option<UserId>,
        sessions: &[[u8; 32]],
    ) -> Result<SignedIn, SignInError> {
        // Replies an anonymous visitor is still being written are stopped
        // (and saved) first: their streams belong to the visitor's id.
        if let Some(visitor) = current.filter(|c| *c != account) {
            self.stop_replies(visitor, None)
                .await
                .map_err(|e| match e {
                    crate::ChatError::Store(e) => SignInError::Store(e),
                    other => SignInError::Store(StoreError::Corrupt(other.to_string())),
                })?;
        }
        let (token, hash) = session::new_token_and_hash();
        users::start_session(
            self.pool(),
            account,
            current,
            sessions,
            &hash,
            ACCOUNT_SESSION_LIFETIME,
        )
        .await?;
        Ok(SignedIn {
            user: account,
            token,
        })
    }
}
