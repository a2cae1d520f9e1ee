//! Issue 16 through the router, in process: every admin route is a 404 for
//! everyone but an admin (enumerated from the router's own table); a model
//! closed to someone is refused on the chat (403) and on both API shapes
//! (403), and a used-up quota is a 429 with `Retry-After` there; the admin's
//! forms refuse bad input with a sentence and change nothing; the audit log
//! records what they did and none of the words people wrote.

mod scripted;

use app::api::SendMessage;
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use inference::scripted::Step;
use inference::Params;
use leptos::server_fn::ServerFn;
use scripted::{answer, form, keyed, scripted_model, session_cookie, state_over, Answer, Scripted};
use wick_core::db::team::{self, Limits};
use wick_core::db::users::{self, Role};

struct Wick {
    router: Router,
    pool: sqlx::SqlitePool,
    backend: inference::scripted::ScriptedBackend,
    _dir: tempfile::TempDir,
}

impl Wick {
    async fn new() -> Wick {
        let (model, backend) = scripted_model(vec![Step::token("an answer")], Params::default());
        let Scripted { state, pool, dir } = state_over(vec![model], keyed()).await;
        Wick {
            router: server::router(state),
            pool,
            backend,
            _dir: dir,
        }
    }

    async fn send(&self, method: Method, path: &str, auth: Auth<'_>, body: String) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("sec-fetch-site", "same-origin");
        request = match auth {
            Auth::Cookie(cookie) => request
                .header(header::COOKIE, cookie)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
            Auth::Token(token) => request
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json"),
        };
        answer(&self.router, request.body(Body::from(body)).unwrap()).await
    }

    /// A new account's session cookie and id.
    async fn sign_up(&self, email: &str) -> (String, i64) {
        let r = self
            .send(
                Method::POST,
                "/auth/sign-up",
                Auth::Cookie(""),
                form(&[("email", email), ("password", "tea kettle on the hill")]),
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let id = users::find_user(&self.pool, email).await.unwrap();
        (session_cookie(&r.headers), id)
    }

    async fn token(&self, cookie: &str) -> String {
        let r = self
            .send(
                Method::POST,
                "/settings/tokens",
                Auth::Cookie(cookie),
                form(&[("name", "script")]),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
            .split("value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned()
    }
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    Cookie(&'a str),
    Token(&'a str),
}

#[tokio::test]
async fn every_admin_route_is_404_for_everyone_but_an_admin() {
    let w = Wick::new().await;
    let (boss, boss_id) = w.sign_up("boss@example.org").await;
    users::set_role(&w.pool, boss_id, Role::Admin)
        .await
        .unwrap();
    let (ann, _) = w.sign_up("ann@example.org").await;
    // Even the admin's own API token opens no admin page: they take cookies only.
    let boss_token = w.token(&boss).await;
    let routes = server::admin::routes();
    assert!(routes.len() >= 15, "{}", routes.len());
    for (path, _) in &routes {
        for method in [Method::GET, Method::POST] {
            for who in [ann.as_str(), ""] {
                let r = w
                    .send(method.clone(), path, Auth::Cookie(who), String::new())
                    .await;
                // A route without this method answers 405 to everyone alike.
                assert!(
                    r.status == StatusCode::NOT_FOUND || r.status == StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} for {who:?}: {}",
                    r.status
                );
                let admin = w
                    .send(method.clone(), path, Auth::Cookie(&boss), String::new())
                    .await;
                assert_eq!(
                    r.status == StatusCode::METHOD_NOT_ALLOWED,
                    admin.status == StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
                if admin.status != StatusCode::METHOD_NOT_ALLOWED {
                    assert_ne!(
                        admin.status,
                        StatusCode::NOT_FOUND,
                        "{method} {path} for the admin"
                    );
                    let token = w
                        .send(
                            method.clone(),
                            path,
                            Auth::Token(&boss_token),
                            String::new(),
                        )
                        .await;
                    assert_eq!(
                        token.status,
                        StatusCode::NOT_FOUND,
                        "{method} {path}, a token"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn a_closed_model_is_403_and_a_used_up_quota_429_on_the_chat_and_both_apis() {
    let w = Wick::new().await;
    let (ann, ann_id) = w.sign_up("ann@example.org").await;
    let token = w.token(&ann).await;
    let others = team::create_group(&w.pool, "others").await.unwrap();
    team::set_model_access(&w.pool, "fake", &[others])
        .await
        .unwrap();

    let chat = w
        .send(
            Method::POST,
            SendMessage::url(),
            Auth::Cookie(&ann),
            form(&[("content", "hello")]),
        )
        .await;
    assert_eq!(chat.status, StatusCode::FORBIDDEN, "{}", chat.body);
    assert!(
        chat.body.contains("You may not use the model Fake"),
        "{}",
        chat.body
    );
    let body = r#"{"model":"fake","messages":[{"role":"user","content":"hi"}]}"#;
    let openai = w
        .send(
            Method::POST,
            "/v1/chat/completions",
            Auth::Token(&token),
            body.into(),
        )
        .await;
    assert_eq!(openai.status, StatusCode::FORBIDDEN, "{}", openai.body);
    assert_eq!(openai.json()["error"]["code"], "model_not_allowed");
    let models = w
        .send(
            Method::GET,
            "/v1/models",
            Auth::Token(&token),
            String::new(),
        )
        .await;
    assert_eq!(models.json()["data"], serde_json::json!([]));
    let tgi = w
        .send(
            Method::POST,
            "/generate",
            Auth::Token(&token),
            r#"{"inputs":"hi"}"#.into(),
        )
        .await;
    assert_eq!(tgi.status, StatusCode::FORBIDDEN, "{}", tgi.body);

    // Open again, with no tokens left today.
    team::set_model_access(&w.pool, "fake", &[]).await.unwrap();
    let none_left = Limits {
        tokens_per_day: Some(0),
        ..Limits::default()
    };
    team::set_limits(&w.pool, team::LimitsOf::User(ann_id), &none_left)
        .await
        .unwrap();
    let sentence = "You have used your 0 tokens for today; it resets at 00:00 UTC.";
    let chat = w
        .send(
            Method::POST,
            SendMessage::url(),
            Auth::Cookie(&ann),
            form(&[("content", "hello")]),
        )
        .await;
    assert_eq!(chat.status, StatusCode::TOO_MANY_REQUESTS, "{}", chat.body);
    assert!(chat.body.contains(sentence), "{}", chat.body);
    assert!(chat.headers.contains_key(header::RETRY_AFTER));
    for (path, body) in [
        ("/v1/chat/completions", body),
        ("/generate", r#"{"inputs":"hi"}"#),
    ] {
        let r = w
            .send(Method::POST, path, Auth::Token(&token), body.into())
            .await;
        assert_eq!(
            r.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{path}: {}",
            r.body
        );
        assert!(r.body.contains(sentence), "{path}: {}", r.body);
        let wait: u64 = r.headers[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=86_400).contains(&wait), "{wait}");
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM conversations")
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0, "nothing refused was stored");

    // With quota again, an API request is counted in the day's usage.
    team::set_limits(&w.pool, team::LimitsOf::User(ann_id), &Limits::default())
        .await
        .unwrap();
    let r = w
        .send(
            Method::POST,
            "/v1/chat/completions",
            Auth::Token(&token),
            body.into(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let usage = &r.json()["usage"];
    let total =
        usage["prompt_tokens"].as_i64().unwrap() + usage["completion_tokens"].as_i64().unwrap();
    assert_eq!(team::tokens_today(&w.pool, ann_id).await.unwrap(), total);
}

#[tokio::test]
async fn the_admin_forms_refuse_bad_input_and_the_audit_log_keeps_no_words() {
    let w = Wick::new().await;
    let (boss, boss_id) = w.sign_up("boss@example.org").await;
    users::set_role(&w.pool, boss_id, Role::Admin)
        .await
        .unwrap();
    let (ann, ann_id) = w.sign_up("ann@example.org").await;
    let r = w
        .send(
            Method::POST,
            SendMessage::url(),
            Auth::Cookie(&ann),
            form(&[("content", "my secret plan")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let post = |path: &'static str, fields: Vec<(&'static str, String)>| {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = form(&fields);
        let boss = boss.clone();
        let w = &w;
        async move { w.send(Method::POST, path, Auth::Cookie(&boss), body).await }
    };
    let said = |r: &Answer| {
        let location = r.location().to_owned();
        let query = location
            .split_once('?')
            .map(|(_, q)| q.to_owned())
            .unwrap_or_default();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&query).unwrap();
        pairs.into_iter().next().unwrap()
    };

    let r = post("/admin/groups", vec![("name", "staff".into())]).await;
    assert_eq!(said(&r), ("said".into(), "Group staff is created.".into()));
    let r = post("/admin/groups", vec![("name", "Staff".into())]).await;
    assert_eq!(
        said(&r),
        (
            "error".into(),
            "There is already a group named \"Staff\".".into()
        )
    );
    let r = post("/admin/groups", vec![("name", "   ".into())]).await;
    assert_eq!(
        said(&r),
        ("error".into(), "Type a name for the group.".into())
    );
    let staff = team::list_groups(&w.pool).await.unwrap()[0].id;
    let r = post(
        "/admin/groups/limits",
        vec![
            ("group", staff.to_string()),
            ("requests_per_minute", "lots".into()),
        ],
    )
    .await;
    assert_eq!(
        said(&r).1,
        "Replies per minute must be a whole number from 0 to 100,000, or empty for no limit. Nothing was changed."
    );
    assert!(team::list_groups(&w.pool).await.unwrap()[0]
        .limits
        .is_empty());
    let r = post(
        "/admin/groups/limits",
        vec![
            ("group", staff.to_string()),
            ("tokens_per_day", "50000".into()),
        ],
    )
    .await;
    assert_eq!(said(&r).0, "said");
    let r = post(
        "/admin/groups/members",
        vec![
            ("group", staff.to_string()),
            ("user", "ann@example.org".into()),
            ("change", "add".into()),
        ],
    )
    .await;
    assert_eq!(said(&r).0, "said");
    assert_eq!(
        team::effective_limits(&w.pool, ann_id)
            .await
            .unwrap()
            .tokens_per_day,
        Some(50_000)
    );
    let r = post(
        "/admin/groups/members",
        vec![
            ("group", staff.to_string()),
            ("user", "nobody@example.org".into()),
            ("change", "add".into()),
        ],
    )
    .await;
    assert_eq!(
        said(&r).1,
        "There is no user with that email or id; nothing was changed."
    );
    // The last admin stays an admin.
    let r = post(
        "/admin/users/role",
        vec![("user", boss_id.to_string()), ("role", "user".into())],
    )
    .await;
    assert_eq!(
        said(&r).1,
        "This is the only admin: make someone else an admin first."
    );
    let r = post(
        "/admin/users/role",
        vec![("user", ann_id.to_string()), ("role", "pending".into())],
    )
    .await;
    assert_eq!(said(&r).0, "said");
    // Deleting needs the box ticked.
    let r = post("/admin/users/delete", vec![("user", ann_id.to_string())]).await;
    assert_eq!(said(&r).0, "error");
    assert!(users::find_user(&w.pool, "ann@example.org").await.is_ok());
    let r = post(
        "/admin/models",
        vec![("model", "fake".into()), ("groups", staff.to_string())],
    )
    .await;
    assert_eq!(
        said(&r),
        ("said".into(), "Only the chosen groups may use Fake.".into())
    );
    assert_eq!(
        team::model_access(&w.pool).await.unwrap(),
        [("fake".to_owned(), staff)]
    );
    let r = post(
        "/admin/users/delete",
        vec![("user", ann_id.to_string()), ("confirm", "yes".into())],
    )
    .await;
    assert_eq!(said(&r).0, "said");
    assert!(users::find_user(&w.pool, "ann@example.org").await.is_err());

    // Every page renders for the admin, and none shows anyone's words.
    for page in [
        "/admin/users",
        "/admin/groups",
        "/admin/models",
        "/admin/usage",
        "/admin/audit",
    ] {
        let r = w
            .send(Method::GET, page, Auth::Cookie(&boss), String::new())
            .await;
        assert_eq!(r.status, StatusCode::OK, "{page}");
        assert!(!r.body.contains("my secret plan"), "{page}");
        assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    }
    let log = w
        .send(
            Method::GET,
            "/admin/audit.jsonl",
            Auth::Cookie(&boss),
            String::new(),
        )
        .await;
    let actions: Vec<String> = log
        .body
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for expected in [
        "group_created",
        "limits_changed",
        "member_added",
        "role_changed",
        "model_access_changed",
        "user_deleted",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} in {actions:?}"
        );
    }
    assert!(!log.body.contains("my secret plan"));
    let filtered = w
        .send(
            Method::GET,
            "/admin/audit.jsonl?action=role_changed",
            Auth::Cookie(&boss),
            String::new(),
        )
        .await;
    assert_eq!(filtered.body.lines().count(), 1, "{}", filtered.body);
}

#[tokio::test]
async fn an_api_stream_the_client_leaves_counts_what_it_streamed() {
    use futures::StreamExt;
    use tower::ServiceExt;
    let w = Wick::new().await;
    let (ann, ann_id) = w.sign_up("ann@example.org").await;
    let token = w.token(&ann).await;
    w.backend.push(vec![
        Step::token("one"),
        Step::token("two"),
        Step::pause_ms(60_000),
    ]);
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/chat/completions")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{"model":"fake","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        ))
        .unwrap();
    let response = w.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    let mut seen = String::new();
    while !seen.contains("two") {
        let chunk = body.next().await.expect("more of the stream").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    // The client goes away in the middle of the reply.
    drop(body);
    let mut used = 0;
    for _ in 0..100 {
        used = team::tokens_today(&w.pool, ann_id).await.unwrap();
        if used > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(used, 2, "the two tokens streamed");
}
