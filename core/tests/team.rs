//! Issue 16's rules, in process over a real SQLite file and scripted models:
//! model access by group, quotas (tokens per day, replies per minute,
//! replies at once) refused before anything is stored, usage recorded as
//! replies end, the admin's safety rules, OpenID groups, retention.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use inference::scripted::{ScriptedBackend, Step};
use inference::{Failure, Params};
use wick_core::db::team::{self, AuditAction, AuditEvent, AuditFilter, Limits, TeamError};
use wick_core::db::users::{self, Role};
use wick_core::{
    Busy, Chat, ChatError, ChatSettings, Generations, Model, ModelKind, Models, SendRequest, UserId,
};

struct Fixture {
    chat: Chat,
    backend: ScriptedBackend,
    _dir: tempfile::TempDir,
}

/// A chat with two scripted models, "open" (the default) and "special".
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/wick.db", dir.path().display());
    let pool = wick_core::db::open(&url).await.unwrap();
    let backend = ScriptedBackend::new(vec![Step::token("one "), Step::token("two")]);
    let model = |id: &str, name: &str| {
        Model::new(
            id,
            name,
            ModelKind::Local,
            Arc::new(backend.clone()),
            Params::default(),
            8,
            Some(4096),
        )
    };
    let generations = Generations::new(
        Models::new(vec![
            model("open", "Open model"),
            model("special", "Special model"),
        ]),
        pool.clone(),
        ChatSettings {
            seed: Some(7),
            replies_per_user: 8,
        },
    );
    Fixture {
        chat: Chat::new(pool, generations),
        backend,
        _dir: dir,
    }
}

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

async fn person(f: &Fixture, email: &str, role: Role) -> UserId {
    users::create_local_user(f.chat.pool(), email, None, HASH, role)
        .await
        .unwrap()
}

fn send(model: Option<&str>, content: &str) -> SendRequest {
    SendRequest {
        conversation_id: None,
        content: content.into(),
        model: model.map(str::to_owned),
    }
}

/// Sends a first message and waits for its reply to end; the reply's id.
async fn ask(
    f: &Fixture,
    user: UserId,
    model: Option<&str>,
    content: &str,
) -> Result<String, ChatError> {
    let sent = f.chat.send(Some(user), send(model, content)).await?.sent;
    let task = f.chat.generations().get(&sent.message_id).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task.finished())
        .await
        .expect("the reply ends");
    Ok(sent.message_id)
}

async fn conversations_of(f: &Fixture, user: UserId) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM conversations WHERE user_id = ?")
        .bind(user)
        .fetch_one(f.chat.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_model_opened_to_one_group_is_hidden_and_refused_for_the_others() {
    let f = fixture().await;
    let pool = f.chat.pool();
    let ann = person(&f, "ann@example.org", Role::User).await;
    let ben = person(&f, "ben@example.org", Role::User).await;
    let boss = person(&f, "boss@example.org", Role::Admin).await;
    let a = team::create_group(pool, "A").await.unwrap();
    let b = team::create_group(pool, "B").await.unwrap();
    team::add_member(pool, a, ann).await.unwrap();
    team::add_member(pool, b, ben).await.unwrap();
    team::set_model_access(pool, "special", &[a]).await.unwrap();

    let ids = |options: Vec<wick_types::conversation::ModelOption>| {
        options.into_iter().map(|m| m.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(f.chat.model_options(Some(ann)).await.unwrap()),
        ["open", "special"]
    );
    assert_eq!(
        ids(f.chat.model_options(Some(ben)).await.unwrap()),
        ["open"]
    );
    assert_eq!(ids(f.chat.model_options(None).await.unwrap()), ["open"]);
    assert_eq!(
        ids(f.chat.model_options(Some(boss)).await.unwrap()),
        ["open", "special"]
    );

    match f.chat.send(Some(ben), send(Some("special"), "hello")).await {
        Err(e @ ChatError::ModelClosed(_)) => assert_eq!(
            e.to_string(),
            "You may not use the model Special model; ask an admin of this server for access."
        ),
        other => panic!("refused, not {other:?}"),
    }
    assert_eq!(conversations_of(&f, ben).await, 0, "nothing stored");
    ask(&f, ann, Some("special"), "hello").await.unwrap();
    ask(&f, boss, Some("special"), "hello").await.unwrap();
    // Nobody ticked: open to everyone again.
    team::set_model_access(pool, "special", &[]).await.unwrap();
    ask(&f, ben, Some("special"), "hello").await.unwrap();
}

#[tokio::test]
async fn a_default_model_closed_to_someone_gives_way_to_one_they_may_use() {
    let f = fixture().await;
    let pool = f.chat.pool();
    let ben = person(&f, "ben@example.org", Role::User).await;
    let a = team::create_group(pool, "A").await.unwrap();
    team::set_model_access(pool, "open", &[a]).await.unwrap();
    let reply = ask(&f, ben, None, "hello").await.unwrap();
    let model: String = sqlx::query_scalar("SELECT model FROM messages WHERE id = ?")
        .bind(&reply)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(model, "special");
}

#[tokio::test]
async fn tokens_per_day_stop_the_reply_after_the_quota_and_usage_matches_the_stored_counts() {
    let f = fixture().await;
    let pool = f.chat.pool();
    let ann = person(&f, "ann@example.org", Role::User).await;
    let g = team::create_group(pool, "trial").await.unwrap();
    team::add_member(pool, g, ann).await.unwrap();

    let first = ask(&f, ann, None, "first question").await.unwrap();
    let (prompt, completion): (i64, i64) =
        sqlx::query_as("SELECT prompt_tokens, completion_tokens FROM messages WHERE id = ?")
            .bind(&first)
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(prompt > 0 && completion == 2, "{prompt} {completion}");
    assert_eq!(
        team::tokens_today(pool, ann).await.unwrap(),
        prompt + completion
    );
    let usage = f.chat.usage(Some(ann)).await.unwrap();
    assert_eq!(usage.tokens_today, prompt + completion);
    assert_eq!(usage.tokens_per_day, None);

    // A quota of what two replies use: the third is refused.
    let quota = 2 * (prompt + completion);
    let limits = Limits {
        tokens_per_day: Some(quota),
        ..Limits::default()
    };
    team::set_limits(pool, team::LimitsOf::Group(g), &limits)
        .await
        .unwrap();
    ask(&f, ann, None, "first question").await.unwrap();
    let before = conversations_of(&f, ann).await;
    match f.chat.send(Some(ann), send(None, "third")).await {
        Err(ChatError::Quota(q)) => {
            assert_eq!(
                q.message,
                format!(
                    "You have used your {} tokens for today; it resets at 00:00 UTC.",
                    wick_core::team::with_commas(quota)
                )
            );
            assert!(q.retry_after <= Duration::from_secs(86_400));
        }
        other => panic!("refused, not {other:?}"),
    }
    assert_eq!(conversations_of(&f, ann).await, before, "nothing stored");
    assert_eq!(
        f.chat.usage(Some(ann)).await.unwrap().tokens_per_day,
        Some(quota)
    );

    // The usage table has the stored counts of the replies, per day and model.
    let rows = team::usage(
        pool,
        &team::UsageFilter {
            days: 30,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let stored: (i64, i64) = sqlx::query_as(
        "SELECT sum(prompt_tokens), sum(completion_tokens) FROM messages WHERE role = 'assistant'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].prompt_tokens, rows[0].completion_tokens), stored);
    assert_eq!(rows[0].requests, 2);
    assert_eq!(rows[0].user, "ann@example.org");
    // Filtered by another group: none of Ann's.
    let other = team::create_group(pool, "other").await.unwrap();
    let none = team::usage(
        pool,
        &team::UsageFilter {
            group: Some(other),
            days: 30,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn a_failed_or_stopped_reply_counts_what_it_produced() {
    let f = fixture().await;
    let pool = f.chat.pool();
    let ann = person(&f, "ann@example.org", Role::User).await;
    f.backend.push(vec![
        Step::token("a"),
        Step::token("b"),
        Step::token("c"),
        Step::Fail(Failure::internal("the backend broke")),
    ]);
    ask(&f, ann, None, "hello").await.unwrap();
    let rows = team::usage(
        pool,
        &team::UsageFilter {
            days: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(rows[0].completion_tokens, 3);

    f.backend
        .push(vec![Step::token("x"), Step::pause_ms(60_000)]);
    let sent = f
        .chat
        .send(Some(ann), send(None, "again"))
        .await
        .unwrap()
        .sent;
    let task = f.chat.generations().get(&sent.message_id).unwrap();
    let mut events = Box::pin(task.events_after(0));
    events.next().await;
    f.chat.stop(Some(ann), &sent.message_id).await.unwrap();
    let rows = team::usage(
        pool,
        &team::UsageFilter {
            days: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!((rows[0].requests, rows[0].completion_tokens), (2, 4));
}

#[tokio::test]
async fn replies_per_minute_and_at_once_are_refused_with_their_own_sentences() {
    let f = fixture().await;
    let pool = f.chat.pool();
    let ann = person(&f, "ann@example.org", Role::User).await;
    let limits = Limits {
        requests_per_minute: Some(2),
        ..Limits::default()
    };
    team::set_limits(pool, team::LimitsOf::User(ann), &limits)
        .await
        .unwrap();
    ask(&f, ann, None, "1").await.unwrap();
    ask(&f, ann, None, "2").await.unwrap();
    match f.chat.send(Some(ann), send(None, "3")).await {
        Err(ChatError::Quota(q)) => {
            assert!(
                q.message
                    .starts_with("You may start 2 replies per minute; try again in "),
                "{}",
                q.message
            );
            assert!(q.retry_after <= Duration::from_secs(60));
        }
        other => panic!("refused, not {other:?}"),
    }

    let ben = person(&f, "ben@example.org", Role::User).await;
    let limits = Limits {
        replies_at_once: Some(1),
        ..Limits::default()
    };
    team::set_limits(pool, team::LimitsOf::User(ben), &limits)
        .await
        .unwrap();
    f.backend
        .push(vec![Step::token("x"), Step::pause_ms(60_000)]);
    let running = f
        .chat
        .send(Some(ben), send(None, "long"))
        .await
        .unwrap()
        .sent;
    match f.chat.send(Some(ben), send(None, "second")).await {
        Err(ChatError::Busy(Busy::User(1))) => {}
        other => panic!("refused, not {other:?}"),
    }
    assert_eq!(f.chat.usage(Some(ben)).await.unwrap().replies_at_once, 1);
    f.chat.stop(Some(ben), &running.message_id).await.unwrap();
}

#[tokio::test]
async fn the_most_generous_group_holds_and_a_persons_own_limit_wins() {
    let f = fixture().await;
    let pool = f.chat.pool();
    let ann = person(&f, "ann@example.org", Role::User).await;
    let small = team::create_group(pool, "small").await.unwrap();
    let big = team::create_group(pool, "big").await.unwrap();
    let unlimited = team::create_group(pool, "unlimited").await.unwrap();
    let set = |tokens: Option<i64>, rpm: Option<i64>| Limits {
        tokens_per_day: tokens,
        requests_per_minute: rpm,
        replies_at_once: None,
    };
    team::set_limits(pool, team::LimitsOf::Group(small), &set(Some(100), Some(1)))
        .await
        .unwrap();
    team::set_limits(pool, team::LimitsOf::Group(big), &set(Some(1000), Some(5)))
        .await
        .unwrap();
    team::add_member(pool, small, ann).await.unwrap();
    team::add_member(pool, big, ann).await.unwrap();
    let got = team::effective_limits(pool, ann).await.unwrap();
    assert_eq!(
        (got.tokens_per_day, got.requests_per_minute),
        (Some(1000), Some(5))
    );
    // A group without a limit does not limit.
    team::add_member(pool, unlimited, ann).await.unwrap();
    let got = team::effective_limits(pool, ann).await.unwrap();
    assert_eq!((got.tokens_per_day, got.requests_per_minute), (None, None));
    team::set_limits(pool, team::LimitsOf::User(ann), &set(Some(7), None))
        .await
        .unwrap();
    let got = team::effective_limits(pool, ann).await.unwrap();
    assert_eq!(
        (got.tokens_per_day, got.requests_per_minute),
        (Some(7), None)
    );
}

#[tokio::test]
async fn the_last_admin_stays_and_a_deleted_user_takes_their_data() {
    let f = fixture().await;
    let pool = f.chat.pool();
    let boss = person(&f, "boss@example.org", Role::Admin).await;
    let ann = person(&f, "ann@example.org", Role::User).await;
    for refused in [
        team::change_role(pool, boss, Role::User).await,
        team::change_disabled(pool, boss, true).await,
        team::delete_user(pool, boss).await,
    ] {
        match refused {
            Err(e @ TeamError::LastAdmin) => assert_eq!(
                e.to_string(),
                "This is the only admin: make someone else an admin first."
            ),
            other => panic!("refused, not {other:?}"),
        }
    }
    assert!(team::is_admin(pool, boss).await.unwrap());
    // With a second admin, the first may step down.
    team::change_role(pool, ann, Role::Admin).await.unwrap();
    team::change_role(pool, boss, Role::User).await.unwrap();
    assert!(!team::is_admin(pool, boss).await.unwrap());

    let g = team::create_group(pool, "staff").await.unwrap();
    match team::create_group(pool, "STAFF").await {
        Err(e @ TeamError::NameTaken(_)) => {
            assert_eq!(e.to_string(), "There is already a group named \"STAFF\".")
        }
        other => panic!("refused, not {other:?}"),
    }
    team::add_member(pool, g, boss).await.unwrap();
    ask(&f, boss, None, "my secret").await.unwrap();
    assert_eq!(conversations_of(&f, boss).await, 1);
    team::delete_user(pool, boss).await.unwrap();
    assert_eq!(conversations_of(&f, boss).await, 0);
    let messages: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(messages, 0);
    assert_eq!(team::members(pool, g).await.unwrap(), []);
    // The usage stays, as a deleted user's.
    let rows = team::usage(
        pool,
        &team::UsageFilter {
            days: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!((rows.len(), rows[0].user.as_str()), (1, "deleted user"));
}

#[tokio::test]
async fn a_providers_groups_set_memberships_at_each_sign_in_and_leave_an_admins_alone() {
    let f = fixture().await;
    let pool = f.chat.pool();
    let staff = team::create_group(pool, "staff").await.unwrap();
    let admins_pick = team::create_group(pool, "pilots").await.unwrap();
    let who = |groups: &[&str]| users::ExternalIdentity {
        issuer: "https://login.example.org".into(),
        subject: "s-1".into(),
        email: Some("carol@example.org".into()),
        email_verified: true,
        name: None,
        admin: None,
        groups: Some(groups.iter().map(|g| g.to_string()).collect()),
    };
    let carol = users::external_sign_in(pool, &who(&["Staff", "no-such-group"]), true, Role::User)
        .await
        .unwrap()
        .id;
    let names = |list: Vec<(i64, String)>| list.into_iter().map(|(_, n)| n).collect::<Vec<_>>();
    assert_eq!(
        names(team::groups_of(pool, carol).await.unwrap()),
        ["staff"]
    );
    team::add_member(pool, admins_pick, carol).await.unwrap();
    users::external_sign_in(pool, &who(&[]), true, Role::User)
        .await
        .unwrap();
    assert_eq!(
        names(team::groups_of(pool, carol).await.unwrap()),
        ["pilots"]
    );
    let _ = staff;
}

#[tokio::test]
async fn retention_deletes_old_conversations_and_old_audit_events_and_keeps_new_ones() {
    let f = fixture().await;
    let pool = f.chat.pool();
    let ann = person(&f, "ann@example.org", Role::User).await;
    let old = ask(&f, ann, None, "old").await.unwrap();
    ask(&f, ann, None, "new").await.unwrap();
    let forty_days = 40 * 24 * 60 * 60 * 1000i64;
    sqlx::query(
        "UPDATE conversations SET updated_at = updated_at - ? WHERE id = (SELECT conversation_id FROM messages WHERE id = ?)",
    )
    .bind(forty_days)
    .bind(&old)
    .execute(pool)
    .await
    .unwrap();
    for at_offset in [forty_days, 0] {
        team::audit(
            pool,
            AuditEvent {
                actor: Some(ann),
                action: AuditAction::SignIn,
                target: None,
                detail: None,
                address: None,
            },
        )
        .await
        .unwrap();
        sqlx::query("UPDATE audit_log SET at = at - ? WHERE id = (SELECT max(id) FROM audit_log)")
            .bind(at_offset)
            .execute(pool)
            .await
            .unwrap();
    }
    let retention = wick_core::team::Retention {
        conversation_days: 30,
        audit_log_days: 30,
    };
    assert_eq!(retention.sweep(pool).await.unwrap(), (1, 1));
    assert_eq!(conversations_of(&f, ann).await, 1);
    let titles: Vec<String> = sqlx::query_scalar("SELECT title FROM conversations")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(titles, ["new"]);
    let left = team::audit_entries(
        pool,
        &AuditFilter {
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].actor.as_deref(), Some("ann@example.org"));
    // Zero keeps everything.
    let keep = wick_core::team::Retention::default();
    assert_eq!(keep.sweep(pool).await.unwrap(), (0, 0));
}
