//! Signing up, in and out with a password (issue 15, first part), through
//! the whole router in process over a real SQLite file: the visitor's
//! conversations move to the account, every sign-in is a new session, a
//! wrong password and an unknown email get the same answer, repeated
//! failures get 429 with `Retry-After`, and another site cannot post.

mod scripted;

use app::api::{CurrentAccount, ListConversations, SendMessage};
use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use inference::scripted::Step;
use inference::Params;
use leptos::server_fn::ServerFn;
use scripted::{keyed, scripted_model, session_cookie, state_over, Scripted};
use tower::ServiceExt;

struct Wick {
    router: Router,
    pool: sqlx::SqlitePool,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers[header::LOCATION].to_str().unwrap()
    }
}

async fn wick() -> Wick {
    let (model, _backend) = scripted_model(vec![Step::token("Hello")], Params::default());
    let Scripted { state, pool, dir } = state_over(vec![model], keyed()).await;
    Wick {
        router: server::router(state),
        pool,
        _dir: dir,
    }
}

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let encode = |s: &str| {
                s.bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                            (b as char).to_string()
                        }
                        b => format!("%{b:02X}"),
                    })
                    .collect::<String>()
            };
            format!("{}={}", encode(k), encode(v))
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl Wick {
    async fn request(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn post(&self, path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Answer {
        let mut request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "same-origin");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.request(request.body(Body::from(form(fields))).unwrap())
            .await
    }

    async fn call<F: ServerFn>(&self, cookie: Option<&str>, fields: &[(&str, &str)]) -> Answer {
        self.post(F::url(), cookie, fields).await
    }

    async fn page(&self, path: &str) -> Answer {
        self.request(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    async fn account(&self, cookie: &str) -> Option<String> {
        let r = self.call::<CurrentAccount>(Some(cookie), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }

    async fn titles(&self, cookie: &str) -> Vec<String> {
        let r = self.call::<ListConversations>(Some(cookie), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let page: wick_types::SidebarPage = serde_json::from_str(&r.body).unwrap();
        page.groups
            .into_iter()
            .flat_map(|g| g.conversations)
            .map(|c| c.title)
            .collect()
    }

    async fn users(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

const PASSWORD: &str = "tea kettle on the hill";

#[tokio::test]
async fn a_visitor_signs_up_keeping_their_chats_then_out_and_in_again_with_new_sessions() {
    let w = wick().await;
    let r = w
        .call::<SendMessage>(None, &[("content", "Plans for the garden")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let visitor = session_cookie(&r.headers);
    let sent: wick_types::Sent = serde_json::from_str(&r.body).unwrap();
    let conversation = format!("/c/{}", sent.conversation_id);

    let r = w
        .post(
            "/auth/sign-up",
            Some(&visitor),
            &[
                ("email", "Ann@Example.org"),
                ("name", "Ann"),
                ("password", PASSWORD),
                ("next", &conversation),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), conversation);
    let set = r.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Max-Age=2592000"),
        "{set}"
    );
    let ann = session_cookie(&r.headers);
    assert_ne!(ann, visitor, "a new session at sign-up");
    // The conversation is the account's; the visitor's cookie is gone with its user.
    assert_eq!(w.titles(&ann).await, ["Plans for the garden"]);
    assert_eq!(w.account(&ann).await.as_deref(), Some("Ann"));
    assert_eq!(w.account(&visitor).await, None);
    assert!(w.titles(&visitor).await.is_empty());

    // Signing out ends the session and makes the browser forget the cookie.
    let r = w.post("/auth/sign-out", Some(&ann), &[]).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/"));
    assert!(r.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(w.account(&ann).await, None);

    // A wrong password and an unknown email: the same answer.
    let wrong = w
        .post(
            "/auth/sign-in",
            None,
            &[
                ("email", "ann@example.org"),
                ("password", "not the password"),
            ],
        )
        .await;
    let unknown = w
        .post(
            "/auth/sign-in",
            None,
            &[
                ("email", "nobody@example.org"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.location()),
        (StatusCode::SEE_OTHER, "/sign-in?error=credentials")
    );
    assert_eq!(
        (unknown.status, unknown.location()),
        (wrong.status, wrong.location())
    );
    assert!(!wrong.headers.contains_key(header::SET_COOKIE));
    let page = w.page("/sign-in?error=credentials").await;
    assert!(
        page.body
            .contains("That email and password do not match an account."),
        "{}",
        page.body
    );
    let page = w.page("/sign-in?error=%3Cscript%3E").await;
    assert!(!page.body.contains("<script>") && !page.body.contains("role=\"alert\""));

    // Signing in (any case of the email) is a new session again, with the history.
    let r = w
        .post(
            "/auth/sign-in",
            None,
            &[
                ("email", "ANN@example.org"),
                ("password", PASSWORD),
                ("next", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/"),
        "no open redirect"
    );
    let again = session_cookie(&r.headers);
    assert_ne!(again, ann);
    assert_eq!(w.titles(&again).await, ["Plans for the garden"]);

    // Another site's form cannot sign anyone in or out.
    let foreign = w
        .request(
            Request::post("/auth/sign-in")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("sec-fetch-site", "cross-site")
                .body(Body::from(form(&[
                    ("email", "ann@example.org"),
                    ("password", PASSWORD),
                ])))
                .unwrap(),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sign_up_says_what_is_wrong_and_stores_nothing() {
    let w = wick().await;
    let ok = w
        .post(
            "/auth/sign-up",
            None,
            &[("email", "ann@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let users = w.users().await;
    for (email, password, code, sentence) in [
        (
            "ann@example.org",
            "another long password",
            "taken",
            "already exists",
        ),
        ("not an email", PASSWORD, "email", "not an email address"),
        (
            "bob@example.org",
            "short",
            "short",
            "at least 10 characters",
        ),
        ("bob@example.org", "qwertyuiop", "common", "most common"),
        (
            "bob@example.org",
            "Bob@Example.org",
            "is_email",
            "cannot be your email",
        ),
    ] {
        let r = w
            .post(
                "/auth/sign-up",
                None,
                &[("email", email), ("password", password)],
            )
            .await;
        assert_eq!(
            r.location(),
            format!("/sign-up?error={code}"),
            "{email} {password}"
        );
        assert!(!r.headers.contains_key(header::SET_COOKIE));
        let page = w.page(r.location()).await;
        assert!(page.body.contains(sentence), "{code}: {}", page.body);
    }
    let missing = w
        .post("/auth/sign-up", None, &[("email", "bob@example.org")])
        .await;
    assert_eq!(missing.location(), "/sign-up?error=form");
    assert_eq!(w.users().await, users);
}

#[tokio::test]
async fn repeated_failures_wait_with_429_for_known_and_unknown_accounts_alike() {
    let w = wick().await;
    w.post(
        "/auth/sign-up",
        None,
        &[("email", "ann@example.org"), ("password", PASSWORD)],
    )
    .await;
    for email in ["ann@example.org", "nobody@example.org"] {
        for _ in 0..5 {
            let r = w
                .post(
                    "/auth/sign-in",
                    None,
                    &[("email", email), ("password", "wrong password!")],
                )
                .await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{email}");
        }
        // Even the right password waits now.
        let r = w
            .post(
                "/auth/sign-in",
                None,
                &[("email", email), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{email}");
        let retry: u64 = r.headers[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=900).contains(&retry), "{retry}");
        assert!(r.body.contains("Too many sign-ins failed"), "{}", r.body);
        assert!(!r.headers.contains_key(header::SET_COOKIE));
    }
    // Someone else is not held up.
    w.post(
        "/auth/sign-up",
        None,
        &[("email", "bob@example.org"), ("password", PASSWORD)],
    )
    .await;
    let r = w
        .post(
            "/auth/sign-in",
            None,
            &[("email", "bob@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.headers.contains_key(header::SET_COOKIE));
}
