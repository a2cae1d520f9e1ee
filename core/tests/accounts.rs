//! Accounts in the store (issue 15, first part), over a real SQLite file:
//! emails are one account whatever their case, a password sign-in finds
//! its hash, and a disabled user's sessions and tokens stop at once.

use std::time::Duration;

use wick_core::db::users::{self, AccountError, Role};
use wick_core::db::{tokens, users::Login};
use wick_core::password;

async fn pool() -> (sqlx::SqlitePool, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/wick.db", dir.path().display());
    (wick_core::db::open(&url).await.unwrap(), dir)
}

#[tokio::test]
async fn an_email_is_one_account_whatever_its_case_and_signs_in_with_its_password() {
    let (pool, _dir) = pool().await;
    let hash = password::hash("tea kettle on the hill");
    let ann = users::create_local_user(&pool, " Ann@Example.org ", Some("Ann"), &hash, Role::Admin)
        .await
        .unwrap();
    let again = users::create_local_user(&pool, "ann@EXAMPLE.org", None, &hash, Role::User).await;
    assert!(matches!(again, Err(AccountError::Taken)), "{again:?}");

    let login: Login = users::find_login(&pool, "ANN@example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (login.id, login.role, login.disabled_at),
        (ann, Role::Admin, None)
    );
    assert!(password::verify(
        "tea kettle on the hill",
        login.password_hash.as_deref()
    ));
    assert!(!password::verify(
        "tea kettle on the hilL",
        login.password_hash.as_deref()
    ));
    assert!(users::find_login(&pool, "bob@example.org")
        .await
        .unwrap()
        .is_none());

    let listed = users::list_users(&pool).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].email.as_deref(), Some("ann@example.org"));
    assert_eq!(listed[0].kind, "registered");
    assert_eq!(
        users::find_user(&pool, "ann@example.org").await.unwrap(),
        ann
    );
    assert_eq!(
        users::find_user(&pool, &ann.to_string()).await.unwrap(),
        ann
    );
    assert!(users::find_user(&pool, "nobody@example.org").await.is_err());

    users::set_role(&pool, ann, Role::Pending).await.unwrap();
    let login = users::find_login(&pool, "ann@example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(login.role, Role::Pending);
    assert!(users::set_role(&pool, ann + 100, Role::User).await.is_err());
}

#[tokio::test]
async fn the_schema_refuses_what_wick_never_writes() {
    let (pool, _dir) = pool().await;
    for bad in [
        // Not lower-cased, a role that does not exist, a password that is not argon2id.
        "INSERT INTO users (kind, email, created_at) VALUES ('registered', 'Ann@example.org', 0)",
        "INSERT INTO users (kind, role, created_at) VALUES ('registered', 'root', 0)",
        "INSERT INTO users (kind, password_hash, created_at) VALUES ('registered', 'plain', 0)",
        "INSERT INTO users (kind, oidc_issuer, created_at) VALUES ('registered', 'https://id', 0)",
    ] {
        assert!(sqlx::query(bad).execute(&pool).await.is_err(), "{bad}");
    }
}

#[tokio::test]
async fn a_disabled_users_sessions_and_tokens_stop_at_once_and_enabling_lets_tokens_in_again() {
    let (pool, _dir) = pool().await;
    let hash = password::hash("tea kettle on the hill");
    let ann = users::create_local_user(&pool, "ann@example.org", None, &hash, Role::User)
        .await
        .unwrap();
    let session_hash = [7u8; 32];
    let visitor = users::create_anonymous_user(&pool, &session_hash, Duration::from_secs(3600))
        .await
        .unwrap();
    // A session of Ann's, and a token of hers.
    sqlx::query(
        "INSERT INTO sessions (user_id, token_hash, created_at, last_seen_at, expires_at)
         VALUES (?, ?, 0, 0, 9999999999999)",
    )
    .bind(ann)
    .bind(&[9u8; 32][..])
    .execute(&pool)
    .await
    .unwrap();
    let token_hash = [5u8; 32];
    tokens::create_api_token(&pool, Some(ann), "laptop", &token_hash)
        .await
        .unwrap();
    assert_eq!(
        users::user_for_session(&pool, &[9u8; 32])
            .await
            .unwrap()
            .map(|s| s.user),
        Some(ann)
    );
    assert_eq!(
        tokens::user_for_api_token(&pool, &token_hash)
            .await
            .unwrap(),
        Some(ann)
    );

    users::set_disabled(&pool, ann, true).await.unwrap();
    assert_eq!(
        users::user_for_session(&pool, &[9u8; 32]).await.unwrap(),
        None
    );
    assert_eq!(
        tokens::user_for_api_token(&pool, &token_hash)
            .await
            .unwrap(),
        None
    );
    assert!(users::find_login(&pool, "ann@example.org")
        .await
        .unwrap()
        .unwrap()
        .disabled_at
        .is_some());
    // Someone else is not touched.
    assert_eq!(
        users::user_for_session(&pool, &session_hash)
            .await
            .unwrap()
            .map(|s| s.user),
        Some(visitor)
    );

    // Enabled again: the token works (the sessions were ended for good).
    users::set_disabled(&pool, ann, false).await.unwrap();
    assert_eq!(
        tokens::user_for_api_token(&pool, &token_hash)
            .await
            .unwrap(),
        Some(ann)
    );
    assert_eq!(
        users::user_for_session(&pool, &[9u8; 32]).await.unwrap(),
        None
    );
}

fn identity(
    subject: &str,
    email: Option<&str>,
    verified: bool,
    admin: Option<bool>,
) -> users::ExternalIdentity {
    users::ExternalIdentity {
        issuer: "https://login.example.org".into(),
        subject: subject.into(),
        email: email.map(str::to_owned),
        email_verified: verified,
        name: Some(format!("Person {subject}")),
        admin,
        groups: None,
    }
}

#[tokio::test]
async fn an_external_identity_finds_its_account_by_issuer_and_subject_and_groups_set_the_admin_role(
) {
    let (pool, _dir) = pool().await;
    // First sign-in: a new account (open sign-up), admin because of its groups.
    let alice = identity("a-1", Some("alice@example.org"), true, Some(true));
    let first = users::external_sign_in(&pool, &alice, true, Role::Pending)
        .await
        .unwrap();
    assert_eq!((first.role, first.disabled), (Role::Admin, false));
    // Later: the same identity, out of the admin group: the same account, a user now.
    let later = users::external_sign_in(
        &pool,
        &identity("a-1", Some("alice@example.org"), true, Some(false)),
        false,
        Role::Pending,
    )
    .await
    .unwrap();
    assert_eq!((later.id, later.role), (first.id, Role::User));
    // Groups that do not decide leave the role as an admin set it.
    users::set_role(&pool, first.id, Role::Admin).await.unwrap();
    let kept = users::external_sign_in(
        &pool,
        &identity("a-1", None, false, None),
        false,
        Role::User,
    )
    .await
    .unwrap();
    assert_eq!(kept.role, Role::Admin);

    // A new person waits (the default role), unless no new accounts are made.
    let bob = identity("b-1", Some("bob@example.org"), true, None);
    let refused = users::external_sign_in(&pool, &bob, false, Role::Pending).await;
    assert!(
        matches!(refused, Err(users::ExternalError::NotInvited)),
        "{refused:?}"
    );
    let bob = users::external_sign_in(&pool, &bob, true, Role::Pending)
        .await
        .unwrap();
    assert_eq!(bob.role, Role::Pending);

    // An account an admin made for an email is taken over by a verified
    // identity with that email (invite), and only by a verified one.
    let hash = password::hash("tea kettle on the hill");
    let carol = users::create_local_user(&pool, "carol@example.org", None, &hash, Role::User)
        .await
        .unwrap();
    let unverified = identity("c-1", Some("carol@example.org"), false, None);
    let taken = users::external_sign_in(&pool, &unverified, true, Role::User).await;
    assert!(
        matches!(taken, Err(users::ExternalError::EmailTaken)),
        "{taken:?}"
    );
    let verified = identity(
        "c-2",
        Some("Carol@example.org".to_lowercase().as_str()),
        true,
        None,
    );
    let linked = users::external_sign_in(&pool, &verified, false, Role::Pending)
        .await
        .unwrap();
    assert_eq!((linked.id, linked.role), (carol, Role::User));
    // A disabled account says so.
    users::set_disabled(&pool, carol, true).await.unwrap();
    let disabled = users::external_sign_in(&pool, &verified, false, Role::User)
        .await
        .unwrap();
    assert!(disabled.disabled);
    assert_eq!(
        users::list_users(&pool).await.unwrap().len(),
        3,
        "nothing was made twice"
    );
}
