//! The server on a real loopback port with a real SQLite file and the real model
//! file, driven over HTTP the way a browser without JavaScript drives it.

mod common;

use app::api::SendMessage;
use common::{browser, count, page, replies_finished, send, start};
use leptos::server_fn::ServerFn;
use reqwest::header::{ACCEPT, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::StatusCode;

#[tokio::test]
async fn health_reports_version_and_database() {
    let s = start().await;
    let r = reqwest::get(format!("{}/health", s.base)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["model"], "SmolLM2-135M-Instruct.Q4_1");
}

#[tokio::test]
async fn the_start_page_renders_without_creating_a_session() {
    let s = start().await;
    let r = browser().get(format!("{}/", s.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers().get(SET_COOKIE).is_none(),
        "a page view creates no session"
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("<title>Wick</title>"), "{html}");
    assert!(html.contains(r#"aria-label="Conversations""#));
    assert!(html.contains("New chat"));
    assert!(html.contains(r#"name="content""#));
    assert_eq!(count(&s, "SELECT count(*) FROM users").await, 0);
}

#[tokio::test]
async fn sending_without_javascript_stores_and_redirects_to_the_conversation() {
    let s = start().await;
    let me = browser();
    let r = send(&me, &s, "/", None, "Hello <b>Wick</b> & friends").await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let cookie = r
        .headers()
        .get(SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("wick_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let location = r.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with("/c/"), "{location}");

    let response = me
        .get(format!("{}{location}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    // The message is shown as text, escaped, never as markup.
    assert!(
        html.contains("Hello &lt;b&gt;Wick&lt;/b&gt; &amp; friends"),
        "{html}"
    );
    assert!(!html.contains("<b>Wick</b>"), "{html}");
    assert!(
        html.contains("<title>Hello &lt;b&gt;Wick&lt;/b&gt; &amp; friends · Wick</title>"),
        "{html}"
    );
    assert!(
        html.contains(&format!(r#"href="{location}""#)),
        "listed in the sidebar"
    );

    // A second message in the same conversation, once the first reply is written.
    let id = location.trim_start_matches("/c/");
    replies_finished(&s).await;
    let r = send(&me, &s, &location, Some(id), "Second message").await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(r.headers()[LOCATION], location.as_str());
    assert!(
        r.headers().get(SET_COOKIE).is_none(),
        "the session is reused"
    );
    let html = page(&me, &s, &location).await;
    let first_at = html.find("Hello &lt;b&gt;").unwrap();
    let second_at = html.find("Second message").unwrap();
    assert!(first_at < second_at);
    // Two messages and two replies.
    assert_eq!(count(&s, "SELECT count(*) FROM messages").await, 4);
    assert_eq!(
        count(&s, "SELECT count(*) FROM messages WHERE role = 'assistant'").await,
        2
    );
    assert_eq!(count(&s, "SELECT count(*) FROM conversations").await, 1);
}

#[tokio::test]
async fn user_text_never_becomes_markup_not_even_in_the_title() {
    let s = start().await;
    let me = browser();
    let attack = "</title><script>alert(1)</script><img src=x onerror=alert(2)>";
    let r = send(&me, &s, "/", None, attack).await;
    let location = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let html = page(&me, &s, &location).await;
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(
        html.contains("<title>&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
}

#[tokio::test]
async fn another_visitor_gets_404_and_none_of_the_data() {
    let s = start().await;
    let alice = browser();
    let r = send(&alice, &s, "/", None, "alice's secret plan").await;
    let location = r.headers()[LOCATION].to_str().unwrap().to_owned();

    let bob = browser();
    send(&bob, &s, "/", None, "bob's own chat").await;
    let r = bob
        .get(format!("{}{location}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let html = r.text().await.unwrap();
    assert!(!html.contains("secret plan"), "{html}");
    assert!(
        html.contains("bob&#x27;s own chat") || html.contains("bob's own chat"),
        "bob sees his own sidebar"
    );

    // Writing into alice's conversation is refused and stores nothing.
    let id = location.trim_start_matches("/c/");
    let r = send(&bob, &s, &location, Some(id), "injected").await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert!(r.headers()[LOCATION].to_str().unwrap().contains("__err="));
    assert_eq!(
        count(
            &s,
            "SELECT count(*) FROM messages WHERE content = 'injected'"
        )
        .await,
        0
    );

    // A visitor with no cookie sees an empty sidebar and a 404.
    let r = browser()
        .get(format!("{}{location}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(!r.text().await.unwrap().contains("secret"));
}

/// Follows a failed form's redirect back to its page, as a browser does.
async fn follow_back(client: &reqwest::Client, location: &str) -> String {
    client
        .get(location)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn bad_messages_are_refused_with_a_reason_and_store_nothing() {
    let s = start().await;
    let me = browser();

    let too_long = "x".repeat(32_001);
    let r = send(&me, &s, "/", None, &too_long).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let back = r.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(back.contains("__err="), "{back}");
    assert!(
        r.headers().get(SET_COOKIE).is_none(),
        "a refused message creates no session"
    );
    // The page the browser is sent back to explains what was wrong (a
    // browser following Wick's own redirect says it is same-origin; the same
    // address from anywhere else shows no error: see `protect`).
    let html = follow_back(&me, &back).await;
    assert!(
        html.contains("This message is 32001 characters long; the limit is 32000 characters."),
        "{html}"
    );
    // The same address from a link elsewhere shows no error text.
    let foreign = me.get(&back).header("sec-fetch-site", "cross-site");
    let html = foreign.send().await.unwrap().text().await.unwrap();
    assert!(!html.contains("32001 characters"), "{html}");

    let r = send(&me, &s, "/", None, "  \n ").await;
    let back = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let html = follow_back(&me, &back).await;
    assert!(html.contains("Type a message before sending."), "{html}");

    assert_eq!(count(&s, "SELECT count(*) FROM messages").await, 0);
    assert_eq!(count(&s, "SELECT count(*) FROM users").await, 0);

    // Exactly at the limit is fine (and gets a reply row).
    let r = send(&me, &s, "/", None, &"y".repeat(32_000)).await;
    assert!(r.headers()[LOCATION].to_str().unwrap().starts_with("/c/"));
    assert_eq!(
        count(&s, "SELECT count(*) FROM messages WHERE role = 'user'").await,
        1
    );
}

#[tokio::test]
async fn a_malformed_cookie_is_treated_as_no_cookie() {
    let s = start().await;
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    for bad in [
        "wick_session=garbage",
        "wick_session=",
        "wick_session=%00%ff; other=1",
    ] {
        let r = client
            .get(format!("{}/", s.base))
            .header("Cookie", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{bad}");
    }
    let r = client
        .post(format!("{}{}", s.base, SendMessage::url()))
        .header(ACCEPT, "text/html")
        .header("Cookie", "wick_session=AAAA")
        .form(&[("content", "hi")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert!(
        r.headers().get(SET_COOKIE).is_some(),
        "a fresh session replaces the malformed one"
    );
}

#[tokio::test]
async fn unknown_pages_are_404() {
    let s = start().await;
    for path in [
        "/nope",
        "/c/0123456789abcdef0123456789abcdef",
        "/c/../../etc/passwd",
    ] {
        let r = browser()
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

/// The built wasm goes out brotli-compressed to a browser that takes it,
/// under a name with its content's hash that pages link to, kept by
/// browsers for good (`immutable`); asked again anyway, with its
/// modification time, it is a 304 Not Modified, no body.
#[tokio::test]
async fn site_files_are_hashed_compressed_cached_for_good_and_answered_304() {
    // The site and the hash list `make test` builds before the Rust tests.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let site = format!("{root}/target/site");
    let hashes = std::fs::read_to_string(format!("{root}/target/release/hash.txt"))
        .expect("a release build lists its files' hashes");
    let wasm_hash = hashes
        .lines()
        .find_map(|l| l.strip_prefix("wasm:"))
        .expect("the wasm's hash")
        .trim()
        .to_owned();
    let s = common::start_with_env(&[], &[("WICK_SITE_ROOT", site.as_str())]).await;
    let page = reqwest::get(format!("{}/", s.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let wasm = format!("/pkg/wick.{wasm_hash}.wasm");
    assert!(page.contains(&wasm), "the page loads {wasm}: {page}");
    let url = format!("{}{wasm}", s.base);
    let client = reqwest::Client::new();
    let r = client
        .get(&url)
        .header("accept-encoding", "br, gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-encoding"], "br");
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let modified = r.headers()["last-modified"].clone();
    assert!(!r.bytes().await.unwrap().is_empty());

    let again = client
        .get(&url)
        .header("if-modified-since", modified)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.bytes().await.unwrap().is_empty());
}
