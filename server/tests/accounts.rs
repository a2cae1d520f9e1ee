//! Signing up, in and out with a password (issue 15, first part), through
//! the whole router in process over a real SQLite file: the visitor's
//! conversations move to the account, every sign-in is a new session, a
//! wrong password and an unknown email get the same answer, repeated
//! failures get 429 with `Retry-After`, and another site cannot post.

mod scripted;

use app::api::{CurrentAccount, ListConversations, SendMessage};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use inference::scripted::Step;
use inference::Params;
use leptos::server_fn::ServerFn;
use scripted::{answer, form, keyed, scripted_model, session_cookie, state_over, Answer, Scripted};
use wick_core::accounts::{AccountPolicy, AuthMode, Signup};
use wick_core::db::users::Role;

struct Wick {
    router: Router,
    pool: sqlx::SqlitePool,
    _dir: tempfile::TempDir,
}

async fn wick() -> Wick {
    wick_with(AccountPolicy::default(), None).await
}

/// A server letting people in as `policy` says, reached at `public_url`.
async fn wick_with(policy: AccountPolicy, public_url: Option<&str>) -> Wick {
    let (model, _backend) = scripted_model(vec![Step::token("Hello")], Params::default());
    let Scripted {
        mut state,
        pool,
        dir,
    } = state_over(vec![model], keyed()).await;
    state.app.chat = state.app.chat.clone().with_accounts(policy);
    if let Some(url) = public_url {
        state.app.secure_cookies = url.starts_with("https://");
    }
    let state = state.with_public_url(public_url.map(str::to_owned));
    Wick {
        router: server::router(state),
        pool,
        _dir: dir,
    }
}

fn required() -> AccountPolicy {
    AccountPolicy {
        mode: AuthMode::Required,
        ..AccountPolicy::default()
    }
}

impl Wick {
    async fn request(&self, request: Request<Body>) -> Answer {
        answer(&self.router, request).await
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

    async fn page_as(&self, path: &str, cookie: &str) -> Answer {
        self.request(
            Request::get(path)
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    async fn api(&self, path: &str, token: &str) -> StatusCode {
        self.request(
            Request::get(path)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .status
    }

    /// Signs up `email` and returns the session cookie.
    async fn sign_up(&self, email: &str) -> String {
        let r = self
            .post(
                "/auth/sign-up",
                None,
                &[("email", email), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        session_cookie(&r.headers)
    }

    async fn sign_in(&self, email: &str, password: &str) -> Answer {
        self.post(
            "/auth/sign-in",
            None,
            &[("email", email), ("password", password)],
        )
        .await
    }

    /// The name the Settings page shows for the signed-in account.
    async fn account(&self, cookie: &str) -> Option<String> {
        let r = self.call::<CurrentAccount>(Some(cookie), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let account: Option<(String, bool)> = serde_json::from_str(&r.body).unwrap();
        account.map(|(name, _admin)| name)
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

#[tokio::test]
async fn with_sign_in_required_only_the_sign_in_pages_health_and_token_apis_answer_strangers() {
    let w = wick_with(required(), None).await;
    // Pages go to the sign-in page, and come back after.
    let r = w.page("/").await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/sign-in")
    );
    let r = w.page("/c/abc?x=1").await;
    assert_eq!(r.location(), "/sign-in?next=/c/abc%3Fx%3D1");
    for path in [
        "/settings",
        "/search?q=a",
        "/export.json",
        "/s/abcdef",
        "/api/messages/1/stream",
    ] {
        let r = w.page(path).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert!(r.location().starts_with("/sign-in"), "{path}");
    }
    // Server functions and form posts: 401, and nothing is stored.
    let users = w.users().await;
    let r = w.call::<SendMessage>(None, &[("content", "hello")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert!(r.body.contains("Sign in"), "{}", r.body);
    assert!(!r.headers.contains_key(header::SET_COOKIE));
    let r = w.post("/import", None, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(w.users().await, users);
    // What stays open.
    for path in ["/sign-in", "/sign-up", "/health"] {
        assert_eq!(w.page(path).await.status, StatusCode::OK, "{path}");
    }
    assert_eq!(w.api("/v1/models", scripted::KEY).await, StatusCode::OK);
    assert_eq!(w.api("/v1/models", "wrong").await, StatusCode::UNAUTHORIZED);
    let r = w.call::<app::api::SignInOptions>(None, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let options: wick_types::account::SignInOptions = serde_json::from_str(&r.body).unwrap();
    assert!(options.required && options.password && options.sign_up);

    // Signed in, everything answers; an anonymous session from before does not.
    let ann = w.sign_up("ann@example.org").await;
    assert_eq!(w.page_as("/", &ann).await.status, StatusCode::OK);
    let r = w
        .call::<SendMessage>(Some(&ann), &[("content", "hello")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = w.post("/auth/sign-out", Some(&ann), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(w.page_as("/", &ann).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn pending_accounts_wait_for_an_admin_and_closed_sign_up_takes_nobody() {
    let w = wick_with(
        AccountPolicy {
            default_role: Role::Pending,
            ..required()
        },
        None,
    )
    .await;
    let r = w
        .post(
            "/auth/sign-up",
            None,
            &[("email", "pat@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.location(), "/sign-in?error=waiting");
    assert!(
        !r.headers.contains_key(header::SET_COOKIE),
        "no session while pending"
    );
    let page = w.page(r.location()).await;
    assert!(
        page.body.contains("An admin must approve it"),
        "{}",
        page.body
    );
    let r = w.sign_in("pat@example.org", PASSWORD).await;
    assert_eq!(r.location(), "/sign-in?error=pending");
    assert!(!r.headers.contains_key(header::SET_COOKIE));
    // The admin approves (`wick user set-role pat@example.org user`).
    let pat = wick_core::db::users::find_user(&w.pool, "pat@example.org")
        .await
        .unwrap();
    wick_core::db::users::set_role(&w.pool, pat, Role::User)
        .await
        .unwrap();
    let r = w.sign_in("pat@example.org", PASSWORD).await;
    assert_eq!(r.location(), "/");
    let cookie = session_cookie(&r.headers);
    assert_eq!(w.page_as("/", &cookie).await.status, StatusCode::OK);
    // Made pending again, the session ends at once.
    wick_core::db::users::set_role(&w.pool, pat, Role::Pending)
        .await
        .unwrap();
    assert_eq!(w.page_as("/", &cookie).await.status, StatusCode::SEE_OTHER);

    for signup in [Signup::Invite, Signup::Closed] {
        let w = wick_with(
            AccountPolicy {
                signup,
                ..AccountPolicy::default()
            },
            None,
        )
        .await;
        let users = w.users().await;
        let r = w
            .post(
                "/auth/sign-up",
                None,
                &[("email", "new@example.org"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(r.location(), "/sign-up?error=closed", "{signup:?}");
        assert_eq!(w.users().await, users);
        let page = w.page("/sign-up").await;
        assert!(
            page.body.contains("does not take new accounts"),
            "{}",
            page.body
        );
        assert!(!page.body.contains("action=\"/auth/sign-up\""));
    }

    let w = wick_with(
        AccountPolicy {
            password_auth: false,
            ..AccountPolicy::default()
        },
        None,
    )
    .await;
    let r = w.sign_in("ann@example.org", PASSWORD).await;
    assert_eq!(r.location(), "/sign-in?error=passwords_off");
    let page = w.page("/sign-in").await;
    assert!(
        !page.body.contains("action=\"/auth/sign-in\""),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn a_new_password_ends_the_other_sessions_and_sign_out_everywhere_ends_all() {
    let w = wick().await;
    let here = w.sign_up("ann@example.org").await;
    let there = session_cookie(&w.sign_in("ann@example.org", PASSWORD).await.headers);
    let change = |cookie: String, current: &'static str, new: &'static str| {
        let w = &w;
        async move {
            w.post(
                "/auth/password",
                Some(&cookie),
                &[("current", current), ("new", new)],
            )
            .await
        }
    };
    let r = change(here.clone(), "not the password", "a brand new passphrase").await;
    assert_eq!(r.location(), "/settings?password=wrong#account");
    let r = change(here.clone(), PASSWORD, "password1234").await;
    assert_eq!(r.location(), "/settings?password=common#account");
    let page = w.page_as("/settings?password=common", &here).await;
    assert!(page.body.contains("most common ones"), "{}", page.body);
    let r = change(here.clone(), PASSWORD, "a brand new passphrase").await;
    assert_eq!(r.location(), "/settings?password=changed#account");
    assert_eq!(w.account(&here).await.as_deref(), Some("ann@example.org"));
    assert_eq!(w.account(&there).await, None, "the other session ended");
    let old = w.sign_in("ann@example.org", PASSWORD).await;
    assert_eq!(old.location(), "/sign-in?error=credentials");
    let new = w.sign_in("ann@example.org", "a brand new passphrase").await;
    assert_eq!(new.location(), "/");
    let there = session_cookie(&new.headers);

    // Not signed in: to the sign-in page, nothing changed.
    let r = w
        .post(
            "/auth/password",
            None,
            &[("current", "x"), ("new", "another new passphrase")],
        )
        .await;
    assert!(r.location().starts_with("/sign-in"));

    let r = w.post("/auth/sign-out-everywhere", Some(&here), &[]).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/"));
    assert!(r.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(w.account(&here).await, None);
    assert_eq!(w.account(&there).await, None);
}

#[tokio::test]
async fn tokens_made_on_the_settings_page_act_as_their_owner_until_revoked_or_expired() {
    let w = wick().await;
    let ann = w.sign_up("ann@example.org").await;
    let bob = w.sign_up("bob@example.org").await;
    let r = w
        .post(
            "/settings/tokens",
            Some(&ann),
            &[("name", "laptop <script>"), ("expires_days", "30")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    assert!(r.body.contains("laptop &lt;script&gt;") && !r.body.contains("<script>"));
    let token = r
        .body
        .split("value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert!(token.starts_with("wick_"), "{token}");
    assert_eq!(w.api("/v1/models", &token).await, StatusCode::OK);

    // Listed for Ann (never the token), not for Bob.
    let list = |cookie: String| {
        let w = &w;
        async move {
            let r = w.call::<app::api::ListTokens>(Some(&cookie), &[]).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            serde_json::from_str::<Vec<wick_types::account::TokenView>>(&r.body).unwrap()
        }
    };
    let mine = list(ann.clone()).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].name, "laptop <script>");
    assert!(mine[0].last_used_at.is_some() && mine[0].expires_at.is_some());
    assert!(list(bob.clone()).await.is_empty());
    let page = w.page_as("/settings", &ann).await;
    assert!(
        page.body.contains("Access tokens") && page.body.contains("last used"),
        "{}",
        page.body
    );
    assert!(!page.body.contains(&token));

    // Bob cannot revoke it: as if it did not exist.
    let id = mine[0].id.to_string();
    let r = w
        .post("/settings/tokens/revoke", Some(&bob), &[("id", &id)])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = w
        .post("/settings/tokens/revoke", Some(&bob), &[("id", "999999")])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(w.api("/v1/models", &token).await, StatusCode::OK);
    let r = w
        .post("/settings/tokens/revoke", Some(&ann), &[("id", &id)])
        .await;
    assert_eq!(r.location(), "/settings?tokens=revoked#tokens");
    assert_eq!(w.api("/v1/models", &token).await, StatusCode::UNAUTHORIZED);
    assert!(list(ann.clone()).await.is_empty());

    // Bad forms say what is wrong; an expired token stops working.
    for (name, days, code) in [
        ("", "7", "name"),
        ("ok", "0", "expiry"),
        ("ok", "many", "expiry"),
    ] {
        let r = w
            .post(
                "/settings/tokens",
                Some(&ann),
                &[("name", name), ("expires_days", days)],
            )
            .await;
        assert_eq!(r.location(), format!("/settings?tokens={code}#tokens"));
    }
    let r = w
        .post(
            "/settings/tokens",
            Some(&ann),
            &[("name", "old"), ("expires_days", "never")],
        )
        .await;
    let token = r
        .body
        .split("value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(w.api("/v1/models", &token).await, StatusCode::OK);
    sqlx::query("UPDATE api_tokens SET expires_at = 1 WHERE name = 'old'")
        .execute(&w.pool)
        .await
        .unwrap();
    assert_eq!(w.api("/v1/models", &token).await, StatusCode::UNAUTHORIZED);
    // Only an account makes tokens.
    let r = w.post("/settings/tokens", None, &[("name", "x")]).await;
    assert!(r.location().starts_with("/sign-in"));
}

#[tokio::test]
async fn behind_an_https_address_the_cookie_is_secure_and_that_origin_may_post() {
    let w = wick_with(AccountPolicy::default(), Some("https://chat.example.org")).await;
    let post_from = |origin: &'static str| {
        Request::post("/auth/sign-up")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::HOST, "127.0.0.1:3000")
            .header(header::ORIGIN, origin)
            .body(Body::from(form(&[
                ("email", "ann@example.org"),
                ("password", PASSWORD),
            ])))
            .unwrap()
    };
    let r = w.request(post_from("https://evil.example")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w.request(post_from("https://chat.example.org")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let cookie = r.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    // And on plain http (the default), no `Secure`, or the browser would drop it.
    let w = wick_with(AccountPolicy::default(), Some("http://127.0.0.1:3000")).await;
    let r = w
        .post(
            "/auth/sign-up",
            None,
            &[("email", "ann@example.org"), ("password", PASSWORD)],
        )
        .await;
    let cookie = r.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        !cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
}

/// Wick's settings for the provider at `issuer` (client `wick`, no groups
/// or domains deciding).
fn provider_settings(issuer: &str, secret: Option<&str>) -> server::oidc::OidcSettings {
    server::oidc::OidcSettings {
        issuer: issuer.to_owned(),
        client_id: "wick".into(),
        client_secret: secret.map(str::to_owned),
        scopes: vec!["openid".into(), "email".into()],
        name: "Example SSO".into(),
        redirect_url: "http://127.0.0.1:3000/auth/oidc/callback".into(),
        allowed_email_domains: Vec::new(),
        groups_claim: "groups".into(),
        admin_groups: Vec::new(),
        allowed_groups: Vec::new(),
    }
}

#[tokio::test]
async fn a_provider_that_is_down_or_a_callback_not_started_here_gets_a_clear_page_and_no_session() {
    // Nothing listens on port 9 of loopback (discard): the provider is down.
    let settings = provider_settings("http://127.0.0.1:9", None);
    let (model, _backend) = scripted_model(vec![Step::token("Hello")], Params::default());
    let Scripted { state, pool, dir } = state_over(vec![model], keyed()).await;
    let mut state = state.with_oidc(Some(server::oidc::Oidc::new(settings).unwrap()));
    state.app.chat = state.app.chat.clone().with_accounts(AccountPolicy {
        external: Some("Example SSO".into()),
        ..required()
    });
    let w = Wick {
        router: server::router(state),
        pool,
        _dir: dir,
    };
    let page = w.page("/sign-in?next=/c/abc").await;
    assert!(
        page.body.contains(r#"href="/auth/oidc/start?next=/c/abc""#)
            && page.body.contains("Sign in with Example SSO"),
        "{}",
        page.body
    );
    let r = w.page("/auth/oidc/start").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert!(r.body.contains("cannot be reached right now"), "{}", r.body);
    assert!(!r.headers.contains_key(header::SET_COOKIE));
    assert!(
        scripted::logged().contains("discovery"),
        "the detail is logged"
    );

    // A callback with a state this browser never got.
    let r = w
        .request(
            Request::get("/auth/oidc/callback?code=abc&state=forged")
                .header(header::COOKIE, "wick_oidc_state=other")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("not started in this browser"), "{}", r.body);
    assert!(!r.body.contains("forged"));
    let set = r.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set.starts_with("wick_oidc_state=;") && set.contains("Max-Age=0"),
        "{set}"
    );
    // What the provider says went wrong is shown only as a plain code.
    let r = w
        .page("/auth/oidc/callback?error=access_denied%3Cscript%3E&state=x")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains("(access_deniedscript)") && !r.body.contains("<script>"),
        "{}",
        r.body
    );
    assert_eq!(w.users().await, 0, "no account was made");
}

/// What the stand-in provider puts in its next ID token.
#[derive(Clone)]
struct Minted {
    issuer: Option<String>,
    audience: String,
    nonce: String,
    expires_in: i64,
    secret: String,
}

/// A stand-in OpenID provider on loopback, for the ID tokens a real one
/// never sends (another issuer or audience, a wrong nonce, expired, badly
/// signed): discovery, an empty key set (its tokens are HS256, signed with
/// the client secret, as the specification allows) and a token endpoint
/// that answers with whatever `minted` says. Returns its issuer URL.
async fn stand_in_provider(minted: std::sync::Arc<std::sync::Mutex<Minted>>) -> String {
    use axum::routing::{get, post};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let discovery = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["HS256"],
    });
    let own_issuer = issuer.clone();
    let token = move || {
        let m = minted.lock().unwrap().clone();
        let now = wick_core::db::now_ms() / 1000;
        let claims = serde_json::json!({
            "iss": m.issuer.clone().unwrap_or_else(|| own_issuer.clone()),
            "sub": "dave-1",
            "aud": m.audience,
            "nonce": m.nonce,
            "iat": now,
            "exp": now + m.expires_in,
            "email": "dave@example.org",
            "email_verified": true,
        });
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(m.secret.as_bytes()).unwrap();
        mac.update(format!("{header}.{body}").as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        axum::Json(serde_json::json!({
            "access_token": "stand-in-access-token",
            "token_type": "Bearer",
            "expires_in": 60,
            "id_token": format!("{header}.{body}.{signature}"),
        }))
    };
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { axum::Json(discovery) }),
        )
        .route(
            "/jwks",
            get(|| async { axum::Json(serde_json::json!({ "keys": [] })) }),
        )
        .route("/token", post(move || async move { token() }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    issuer
}

#[tokio::test]
async fn id_tokens_from_another_issuer_or_for_another_client_with_a_wrong_nonce_expired_or_badly_signed_sign_nobody_in(
) {
    const SECRET: &str = "the-client-secret";
    let minted = std::sync::Arc::new(std::sync::Mutex::new(Minted {
        issuer: None,
        audience: "wick".into(),
        nonce: String::new(),
        expires_in: 300,
        secret: SECRET.into(),
    }));
    let issuer = stand_in_provider(minted.clone()).await;
    let settings = provider_settings(&issuer, Some(SECRET));
    let (model, _backend) = scripted_model(vec![Step::token("Hello")], Params::default());
    let Scripted { state, pool, dir } = state_over(vec![model], keyed()).await;
    let mut state = state.with_oidc(Some(server::oidc::Oidc::new(settings).unwrap()));
    state.app.chat = state.app.chat.clone().with_accounts(required());
    let w = Wick {
        router: server::router(state),
        pool,
        _dir: dir,
    };

    // One sign-in, with the provider minting what `tamper` makes of a good token.
    let sign_in = |tamper: fn(&mut Minted)| {
        let w = &w;
        let minted = minted.clone();
        async move {
            let start = w.page("/auth/oidc/start").await;
            assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
            let to_provider = start.location().to_owned();
            let param = |name: &str| {
                to_provider
                    .split(['?', '&'])
                    .find_map(|p| p.strip_prefix(&format!("{name}=")))
                    .unwrap()
                    .to_owned()
            };
            let (state, nonce) = (param("state"), param("nonce"));
            assert!(
                to_provider.contains("code_challenge_method=S256"),
                "{to_provider}"
            );
            {
                let mut m = minted.lock().unwrap();
                m.nonce = nonce;
                tamper(&mut m);
            }
            w.request(
                Request::get(format!("/auth/oidc/callback?code=abc&state={state}"))
                    .header(header::COOKIE, format!("wick_oidc_state={state}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
        }
    };
    let mut refused = Vec::new();
    for (what, tamper) in [
        (
            "another issuer",
            (|m: &mut Minted| m.issuer = Some("https://evil.example".into())) as fn(&mut Minted),
        ),
        ("another client", |m: &mut Minted| {
            m.audience = "someone-else".into()
        }),
        ("a wrong nonce", |m: &mut Minted| {
            m.nonce = "not-the-nonce".into()
        }),
        ("expired", |m: &mut Minted| m.expires_in = -600),
        ("signed with another key", |m: &mut Minted| {
            m.secret = "a-guess".into()
        }),
    ] {
        let r = sign_in(tamper).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.body);
        assert!(
            r.body.contains("could not be verified"),
            "{what}: {}",
            r.body
        );
        assert!(
            !r.headers
                .get_all(header::SET_COOKIE)
                .iter()
                .any(|c| c.to_str().unwrap().starts_with("wick_session=")),
            "{what}: no session"
        );
        refused.push(what);
        *minted.lock().unwrap() = Minted {
            issuer: None,
            audience: "wick".into(),
            nonce: String::new(),
            expires_in: 300,
            secret: SECRET.into(),
        };
    }
    assert_eq!(refused.len(), 5);
    assert_eq!(w.users().await, 0, "no account was made");
    let log = scripted::logged();
    for detail in [
        "Invalid issuer",
        "Invalid audiences",
        "Invalid nonce",
        "Expired",
        "Signature verification failed",
    ] {
        assert!(log.contains(detail), "{detail} is logged");
    }

    // The same provider's good token signs Dave in (a new account, open sign-up).
    let r = sign_in(|_| {}).await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/"),
        "{}",
        r.body
    );
    let dave = session_cookie(&r.headers);
    assert_eq!(w.account(&dave).await.as_deref(), Some("dave@example.org"));
}
