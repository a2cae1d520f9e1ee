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

/// How long an account's session lives unused by default (it slides while
/// in use); `WICK_SESSION_DAYS` changes it.
pub const ACCOUNT_SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// The longest name shown for an account.
pub const MAX_NAME_CHARS: usize = 100;

/// Argon2 takes 19 MiB and tens of milliseconds per check: two at a time at
/// most, on blocking threads, so a burst of sign-ins cannot starve the
/// machine of memory or the runtime of threads.
static HASHING: Semaphore = Semaphore::const_new(2);

/// Who may use Wick without signing in (`WICK_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Anonymous visitors chat, each in their own session; accounts are
    /// optional (one person on their own machine).
    #[default]
    None,
    /// Only the sign-in pages, `/health` and the inference APIs (with a
    /// token) answer anyone who has not signed in.
    Required,
}

impl std::str::FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(AuthMode::None),
            "required" => Ok(AuthMode::Required),
            other => Err(format!("{other:?} is not an auth mode: none or required")),
        }
    }
}

/// Who may make a new account (`WICK_SIGNUP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Signup {
    /// Anyone who reaches the sign-up page.
    #[default]
    Open,
    /// Only an admin makes accounts (`wick user create`); a first OpenID
    /// sign-in is let in only for an email an admin made an account for.
    Invite,
    /// Nobody new: no sign-up, no first OpenID sign-in (the operator's
    /// `wick user create` still works).
    Closed,
}

impl std::str::FromStr for Signup {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(Signup::Open),
            "invite" => Ok(Signup::Invite),
            "closed" => Ok(Signup::Closed),
            other => Err(format!(
                "{other:?} is not a sign-up mode: open, invite or closed"
            )),
        }
    }
}

/// How a deployment lets people in: the `WICK_AUTH`, `WICK_SIGNUP`,
/// `WICK_DEFAULT_ROLE`, `WICK_SESSION_DAYS` and `WICK_PASSWORD_AUTH` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPolicy {
    pub mode: AuthMode,
    pub signup: Signup,
    /// The role of a new account: `User`, or `Pending` to wait for an admin.
    pub default_role: Role,
    /// How long an account's session lives unused (it slides while in use).
    pub session_lifetime: Duration,
    /// Whether email and password sign-in is offered at all.
    pub password_auth: bool,
    /// The name of the OpenID provider people may sign in with, if any.
    pub external: Option<String>,
}

impl Default for AccountPolicy {
    fn default() -> Self {
        Self {
            mode: AuthMode::None,
            signup: Signup::Open,
            default_role: Role::User,
            session_lifetime: ACCOUNT_SESSION_LIFETIME,
            password_auth: true,
            external: None,
        }
    }
}

impl AccountPolicy {
    /// Whether the sign-up form takes new accounts.
    pub fn open_sign_up(&self) -> bool {
        self.password_auth && self.signup == Signup::Open
    }
}

/// What became of a sign-up: signed in, or an account that waits for an
/// admin's approval (no session until then).
#[derive(Debug)]
pub enum Admission {
    In(SignedIn),
    Waiting,
}

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
    #[error("This Wick does not take new accounts here; ask an admin for one.")]
    SignUpClosed,
    #[error("Signing in with a password is turned off here.")]
    PasswordsOff,
    /// Changing a password: the current one was wrong.
    #[error("The current password is not right.")]
    WrongPassword,
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
    /// Creates an account (with the policy's default role) and signs it in,
    /// unless it must wait for an admin; `current` is the visitor as they
    /// came, whose data moves to the account if anonymous.
    pub async fn sign_up(
        &self,
        current: Option<UserId>,
        sessions: &[[u8; 32]],
        email: &str,
        name: &str,
        secret: String,
    ) -> Result<Admission, SignInError> {
        if !self.accounts().open_sign_up() {
            return Err(if self.accounts().password_auth {
                SignInError::SignUpClosed
            } else {
                SignInError::PasswordsOff
            });
        }
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
        let role = self.accounts().default_role;
        let user = users::create_local_user(self.pool(), &email, name, &hash, role)
            .await
            .map_err(|e| match e {
                AccountError::Taken => SignInError::Taken,
                AccountError::Store(e) => SignInError::Store(e),
            })?;
        if role == Role::Pending {
            return Ok(Admission::Waiting);
        }
        Ok(Admission::In(
            self.start_session(user, current, sessions).await?,
        ))
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
        if !self.accounts().password_auth {
            return Err(SignInError::PasswordsOff);
        }
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

    /// Ends every session of `user`, on every device ("sign out everywhere").
    pub async fn sign_out_everywhere(&self, user: UserId) -> Result<(), StoreError> {
        users::end_all_sessions(self.pool(), user, None).await
    }

    /// Changes an account's password after checking the current one; every
    /// other session of the account ends (whoever knew the old password is
    /// signed out), the one in `keep` stays.
    pub async fn change_password(
        &self,
        user: UserId,
        keep: Option<[u8; 32]>,
        current: String,
        new: String,
    ) -> Result<(), SignInError> {
        if !self.accounts().password_auth {
            return Err(SignInError::PasswordsOff);
        }
        let login = users::login_of(self.pool(), user)
            .await?
            .ok_or(SignInError::Credentials)?;
        let stored = login.password_hash.clone();
        let matches = blocking(move || password::verify(&current, stored.as_deref())).await;
        if !matches {
            return Err(SignInError::WrongPassword);
        }
        password::check_new(&new, login.email.as_deref())?;
        let hash = blocking(move || password::hash(&new)).await;
        users::set_password(self.pool(), user, &hash).await?;
        users::end_all_sessions(self.pool(), user, keep.as_ref()).await?;
        Ok(())
    }

    /// Signs in an account found by an external provider (OpenID Connect):
    /// a disabled account is refused as a wrong password would be, a
    /// pending one waits.
    pub async fn sign_in_external(
        &self,
        account: users::ExternalAccount,
        current: Option<UserId>,
        sessions: &[[u8; 32]],
    ) -> Result<SignedIn, SignInError> {
        if account.disabled {
            return Err(SignInError::Credentials);
        }
        if account.role == Role::Pending {
            return Err(SignInError::Pending);
        }
        self.start_session(account.id, current, sessions).await
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
            self.accounts().session_lifetime,
        )
        .await?;
        Ok(SignedIn {
            user: account,
            token,
        })
    }
}
