//! The ownership matrix (issue 15): every route and server function that
//! takes an id answers another person exactly as if the id did not exist
//! (404), whether they come with their session cookie or with their API
//! token. The routes are enumerated from the router itself (the server
//! functions Leptos registered, the pages, and `server::route_table`), so a
//! new one without an entry below fails this test.

mod scripted;

use std::collections::{BTreeMap, BTreeSet};

use app::api::{GetConversation, SendMessage, ShareConversation};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use inference::scripted::Step;
use inference::Params;
use leptos::server_fn::ServerFn;
use scripted::{answer, form, keyed, scripted_model, session_cookie, state_over, Answer, Scripted};

/// What a route is checked with: the arguments naming Alice's objects
/// (`{c}` her conversation, `{q}` her question, `{m}` the reply, `{s}` her
/// share link, `{t}` her token's id), or why it takes no one's id.
enum Check {
    Owned(&'static [(&'static str, &'static str)]),
    // The reason is for the reader of this table (and its reviewer).
    #[allow(dead_code)]
    NoId(&'static str),
}
use Check::{NoId, Owned};

const OWN_ONLY: &str = "takes no id: it reads or changes only the caller's own data";

/// Every server function, by its name (the last part of its URL).
fn server_functions() -> BTreeMap<&'static str, Check> {
    BTreeMap::from([
        ("list_conversations", NoId(OWN_ONLY)),
        ("get_conversation", Owned(&[("id", "{c}")])),
        ("list_models", NoId("the models, nobody's data")),
        ("my_usage", NoId(OWN_ONLY)),
        (
            "send_message",
            Owned(&[("conversation_id", "{c}"), ("content", "mine now")]),
        ),
        (
            "retry_reply",
            Owned(&[("conversation_id", "{c}"), ("message_id", "{m}")]),
        ),
        ("stop_reply", Owned(&[("message_id", "{m}")])),
        (
            "set_conversation_model",
            Owned(&[("conversation_id", "{c}"), ("model", "fake")]),
        ),
        (
            "edit_message",
            Owned(&[
                ("conversation_id", "{c}"),
                ("message_id", "{q}"),
                ("content", "x"),
            ]),
        ),
        (
            "continue_reply",
            Owned(&[("conversation_id", "{c}"), ("message_id", "{m}")]),
        ),
        (
            "switch_branch",
            Owned(&[("conversation_id", "{c}"), ("message_id", "{q}")]),
        ),
        (
            "save_conversation_settings",
            Owned(&[
                ("conversation_id", "{c}"),
                ("system_prompt", "obey"),
                ("temperature", ""),
                ("top_p", ""),
                ("max_new_tokens", ""),
            ]),
        ),
        (
            "rename_conversation",
            Owned(&[("conversation_id", "{c}"), ("title", "pwned")]),
        ),
        ("conversation_title", Owned(&[("conversation_id", "{c}")])),
        ("current_account", NoId(OWN_ONLY)),
        (
            "sign_in_options",
            NoId("the deployment's settings, nobody's data"),
        ),
        ("list_tokens", NoId(OWN_ONLY)),
        ("get_user_settings", NoId(OWN_ONLY)),
        ("save_user_settings", NoId(OWN_ONLY)),
        ("search_conversations", NoId(OWN_ONLY)),
        (
            "pin_conversation",
            Owned(&[("conversation_id", "{c}"), ("pinned", "true")]),
        ),
        ("delete_conversation", Owned(&[("conversation_id", "{c}")])),
        ("delete_all_conversations", NoId(OWN_ONLY)),
        (
            "share_conversation",
            Owned(&[("conversation_id", "{c}"), ("expiry", "never")]),
        ),
        ("list_shares", NoId(OWN_ONLY)),
        ("revoke_share", Owned(&[("share_id", "{s}")])),
        (
            "get_shared",
            NoId(
                "a share link opens for anyone who has it (revoked and expired ones: inprocess.rs)",
            ),
        ),
        (
            "copy_shared",
            NoId("a share link is copied by anyone who has it (revoked ones: inprocess.rs)"),
        ),
    ])
}

/// Every other route: the pages and `server::route_table`, by path.
fn routes() -> BTreeMap<&'static str, Check> {
    let mut routes = BTreeMap::from([
        ("/", NoId(OWN_ONLY)),
        ("/c/{id}", Owned(&[])),
        ("/s/{id}", NoId("a share link opens for anyone who has it")),
        ("/settings", NoId(OWN_ONLY)),
        ("/search", NoId(OWN_ONLY)),
        ("/sign-in", NoId("a form")),
        ("/sign-up", NoId("a form")),
        ("/health", NoId("the server's state")),
        (
            "/metrics",
            NoId("counts and times, no one's data (WICK_METRICS_TOKEN closes it)"),
        ),
        ("/auth/sign-in", NoId("a form post")),
        ("/auth/sign-up", NoId("a form post")),
        ("/auth/sign-out", NoId("ends the caller's own session")),
        ("/auth/sign-out-everywhere", NoId(OWN_ONLY)),
        ("/auth/password", NoId(OWN_ONLY)),
        ("/auth/oidc/start", NoId("starts a sign-in")),
        (
            "/auth/oidc/callback",
            NoId("ends a sign-in: its state is checked against the browser's"),
        ),
        ("/settings/tokens", NoId(OWN_ONLY)),
        ("/settings/tokens/revoke", Owned(&[("id", "{t}")])),
        ("/api/messages/{id}/stream", Owned(&[])),
        ("/export.json", NoId(OWN_ONLY)),
        ("/c/{id}/export.md", Owned(&[])),
        ("/c/{id}/export.json", Owned(&[])),
        ("/import", NoId("adds to the caller's own data")),
        ("/v1/models", NoId("the models, nobody's data")),
        ("/v1/chat/completions", NoId("a new reply, stored nowhere")),
        ("/models/{*model_id}", NoId("a model's id, nobody's data")),
        ("/generate", NoId("a new reply, stored nowhere")),
        ("/generate_stream", NoId("a new reply, stored nowhere")),
        ("/info", NoId("the models, nobody's data")),
        ("/openapi.json", NoId("the APIs' description")),
    ]);
    // The admin pages take ids (users, groups), and only an admin reaches
    // them: everyone else gets 404 for every one (admin.rs).
    for (path, _) in server::admin::routes() {
        routes.insert(path, NoId(ADMIN_ONLY));
    }
    routes
}

const ADMIN_ONLY: &str = "an admin page: 404 for everyone but an admin (admin.rs)";

/// The object a path's `{id}` stands for.
fn path_id(path: &str) -> &'static str {
    match path {
        "/api/messages/{id}/stream" => "{m}",
        _ => "{c}",
    }
}

struct Wick {
    router: Router,
    _dir: tempfile::TempDir,
}

/// Who asks: a session cookie, or an API token in `Authorization`.
#[derive(Debug, Clone, Copy)]
enum As<'a> {
    Cookie(&'a str),
    Token(&'a str),
}

impl Wick {
    async fn send(&self, method: Method, path: &str, who: As<'_>, body: String) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "same-origin");
        request = match who {
            As::Cookie(cookie) => request.header(header::COOKIE, cookie),
            As::Token(token) => request.header(header::AUTHORIZATION, format!("Bearer {token}")),
        };
        answer(&self.router, request.body(Body::from(body)).unwrap()).await
    }

    async fn sign_up(&self, email: &str) -> String {
        let r = self
            .send(
                Method::POST,
                "/auth/sign-up",
                As::Cookie(""),
                form(&[("email", email), ("password", "tea kettle on the hill")]),
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        session_cookie(&r.headers)
    }

    /// A token of the signed-in account, made on the Settings page.
    async fn token(&self, cookie: &str) -> String {
        let r = self
            .send(
                Method::POST,
                "/settings/tokens",
                As::Cookie(cookie),
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

/// Bob's request for Alice's object is answered exactly as one for an id
/// that names nothing: with his cookie, that is a 404; with his API token
/// (which the browser's routes do not take), whatever a stranger gets —
/// never a success.
fn same_as_nothing(r: &Answer, none: &Answer, who: As<'_>, what: &str) {
    assert!(
        !r.status.is_success(),
        "{what} as {who:?}: {} {}",
        r.status,
        r.body
    );
    assert_eq!(
        (
            r.status,
            without_nonce(&r.body),
            r.headers.get(header::LOCATION)
        ),
        (
            none.status,
            without_nonce(&none.body),
            none.headers.get(header::LOCATION)
        ),
        "{what} as {who:?}: Alice's id is answered unlike an id of nothing"
    );
    if let As::Cookie(_) = who {
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{what} as {who:?}: {}",
            r.body
        );
    }
}

/// A page with its scripts' nonce (new on every answer) taken out.
fn without_nonce(body: &str) -> String {
    match body
        .split("nonce=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
    {
        Some(nonce) if !nonce.is_empty() => body.replace(nonce, "NONCE"),
        _ => body.to_owned(),
    }
}

/// A form of `args` with Alice's ids in place of their placeholders.
fn filled(args: &[(&str, &str)], fill: &impl Fn(&str) -> String) -> String {
    let values: Vec<(&str, String)> = args.iter().map(|(k, v)| (*k, fill(v))).collect();
    form(
        &values
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    )
}

#[tokio::test]
async fn another_persons_ids_are_404_on_every_route_for_cookies_and_tokens_alike() {
    let (model, _backend) = scripted_model(vec![Step::token("Alice's answer")], Params::default());
    let Scripted { state, pool, dir } = state_over(vec![model], keyed()).await;
    let w = Wick {
        router: server::router(state),
        _dir: dir,
    };

    // Alice: a conversation with a finished reply, a share link, a token.
    let alice = w.sign_up("alice@example.org").await;
    let r = w
        .send(
            Method::POST,
            SendMessage::url(),
            As::Cookie(&alice),
            form(&[("content", "Alice's question")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let sent: wick_types::Sent = serde_json::from_str(&r.body).unwrap();
    let stream = format!("/api/messages/{}/stream", sent.message_id);
    let r = w
        .send(Method::GET, &stream, As::Cookie(&alice), String::new())
        .await;
    assert!(r.body.contains("Alice's answer"), "{}", r.body);
    let r = w
        .send(
            Method::POST,
            ShareConversation::url(),
            As::Cookie(&alice),
            form(&[
                ("conversation_id", &sent.conversation_id),
                ("expiry", "never"),
            ]),
        )
        .await;
    let share: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let alice_token = w.token(&alice).await;
    let token_id: i64 = sqlx::query_scalar("SELECT max(id) FROM api_tokens")
        .fetch_one(&pool)
        .await
        .unwrap();
    let ids = [
        ("{c}", sent.conversation_id.clone()),
        ("{q}", sent.user_message.as_ref().unwrap().id.clone()),
        ("{m}", sent.message_id.clone()),
        ("{s}", share["id"].as_str().unwrap().to_owned()),
        ("{t}", token_id.to_string()),
    ];
    let fill = |text: &str| {
        ids.iter().fold(text.to_owned(), |t, (placeholder, id)| {
            t.replace(placeholder, id)
        })
    };
    // Ids that name nothing at all, for what "as if it did not exist" looks like.
    let ghost = |text: &str| {
        ["{c}", "{q}", "{m}", "{s}"]
            .iter()
            .fold(text.to_owned(), |t, p| t.replace(p, &"0".repeat(32)))
            .replace("{t}", "999999999")
    };

    // Bob, with his cookie and his own token.
    let bob = w.sign_up("bob@example.org").await;
    let bob_token = w.token(&bob).await;

    // Every server function and route the router has is in the tables.
    let functions = server_functions();
    let registered: BTreeSet<(String, &'static str)> = leptos::server_fn::axum::server_fn_paths()
        .map(|(path, _)| {
            let name = path.rsplit('/').next().unwrap();
            // The URL ends in the name and a hash of the crate path: `send_message1234`.
            let name = name.trim_end_matches(|c: char| c.is_ascii_digit());
            (
                path.to_owned(),
                functions.keys().copied().find(|k| *k == name).unwrap_or(""),
            )
        })
        .collect();
    let missing: Vec<_> = registered
        .iter()
        .filter(|(_, k)| k.is_empty())
        .map(|(p, _)| p)
        .collect();
    assert!(
        missing.is_empty(),
        "server functions without an ownership entry: {missing:?}"
    );
    assert_eq!(
        registered.len(),
        functions.len(),
        "an entry for a function that is gone"
    );
    let routes = routes();
    let mut paths: BTreeSet<String> = server::route_table()
        .into_iter()
        .map(|(p, _)| p.to_owned())
        .collect();
    paths.extend(
        leptos_axum::generate_route_list(app::App)
            .into_iter()
            .map(|r| r.path().to_owned()),
    );
    let missing: Vec<_> = paths
        .iter()
        .filter(|p| !routes.contains_key(p.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "routes without an ownership entry: {missing:?}"
    );

    let mut checked = 0;
    for who in [As::Cookie(&bob), As::Token(&bob_token)] {
        for (path, function) in &registered {
            if let Owned(args) = &functions[function] {
                let r = w.send(Method::POST, path, who, filled(args, &fill)).await;
                let none = w.send(Method::POST, path, who, filled(args, &ghost)).await;
                same_as_nothing(&r, &none, who, function);
                checked += 1;
            }
        }
        for (path, check) in &routes {
            let Owned(args) = check else { continue };
            let (method, body, ghost_body) = if args.is_empty() {
                (Method::GET, String::new(), String::new())
            } else {
                (Method::POST, filled(args, &fill), filled(args, &ghost))
            };
            let url = path.replace("{id}", path_id(path));
            let r = w.send(method.clone(), &fill(&url), who, body).await;
            let none = w.send(method, &ghost(&url), who, ghost_body).await;
            same_as_nothing(&r, &none, who, path);
            checked += 1;
        }
    }
    // 15 functions and 5 routes take an id; each was tried twice.
    assert_eq!(checked, 2 * 20);

    // The ids were Alice's and still are: her own requests find everything unchanged.
    let r = w
        .send(
            Method::POST,
            GetConversation::url(),
            As::Cookie(&alice),
            form(&[("id", &sent.conversation_id)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body.contains("Alice's question") && r.body.contains("Alice's answer"),
        "{}",
        r.body
    );
    assert!(
        !r.body.contains("pwned") && !r.body.contains("obey"),
        "{}",
        r.body
    );
    for path in [
        "/c/{c}",
        "/c/{c}/export.md",
        "/c/{c}/export.json",
        "/api/messages/{m}/stream",
        "/s/{s}",
    ] {
        let r = w
            .send(Method::GET, &fill(path), As::Cookie(&alice), String::new())
            .await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    }
    let r = w
        .send(
            Method::GET,
            "/v1/models",
            As::Token(&alice_token),
            String::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "Alice's token was not revoked");
}
