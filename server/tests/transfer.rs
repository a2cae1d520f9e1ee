//! Export and import through Wick's whole router in process (`oneshot`, a
//! real SQLite file): the import form without JavaScript, a new visitor's
//! session, the 100 MB limit, JSON for scripts, and every export kept to its
//! owner.

mod scripted;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use inference::scripted::Step;
use inference::Params;
use scripted::{answer, keyed, scripted_model, session_cookie, state_over, Answer, Scripted};
use serde_json::{json, Value};
use tower::ServiceExt;

const CHATGPT: &str = include_str!("../../end2end/fixtures/chatgpt_conversations.json");
const BOUNDARY: &str = "----wickTestBoundary7MA4YWxkTrZu0gW";

struct Wick {
    router: Router,
    pool: sqlx::SqlitePool,
    _dir: tempfile::TempDir,
}

async fn wick() -> Wick {
    let (model, _) = scripted_model(vec![Step::token("Hi")], Params::default());
    let Scripted { state, pool, dir } = state_over(vec![model], keyed()).await;
    Wick {
        router: server::router(state),
        pool,
        _dir: dir,
    }
}

/// A `multipart/form-data` body with the file as the browser's form sends it.
fn form_body(file: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"conversations.json\"\r\n\
         Content-Type: application/json\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

impl Wick {
    async fn request(&self, request: Request<Body>) -> Answer {
        answer(&self.router, request).await
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        let mut request = Request::get(path);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.request(request.body(Body::empty()).unwrap()).await
    }

    /// The Settings page's form, posted by a browser (same origin, a page wanted).
    async fn post_form(&self, file: &[u8], cookie: Option<&str>, site: &str) -> Answer {
        let mut request = Request::post("/import")
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
            .header("sec-fetch-site", site);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.request(request.body(Body::from(form_body(file))).unwrap())
            .await
    }

    /// A script's import: the raw JSON body.
    async fn post_json(&self, file: Vec<u8>, cookie: Option<&str>) -> Answer {
        let mut request = Request::post("/import").header(header::CONTENT_TYPE, "application/json");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.request(request.body(Body::from(file)).unwrap()).await
    }

    async fn conversations(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM conversations")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// A new visitor who imports the ChatGPT fixture: their cookie.
    async fn visitor_with_history(&self) -> String {
        let r = self.post_json(CHATGPT.as_bytes().to_vec(), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        session_cookie(&r.headers)
    }

    async fn export_all(&self, cookie: Option<&str>) -> Value {
        let r = self.get("/export.json", cookie).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.json()
    }
}

#[tokio::test]
async fn the_settings_form_imports_for_a_new_visitor_and_sends_them_to_settings() {
    let w = wick().await;
    let r = w.post_form(CHATGPT.as_bytes(), None, "same-origin").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        r.headers[header::LOCATION],
        "/settings?imported=2&copies=0&skipped=2&restored=0"
    );
    // The visitor's session was made with the import: the history is theirs.
    let cookie = session_cookie(&r.headers);
    let all = w.export_all(Some(&cookie)).await;
    let titles: Vec<&str> = all["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Capitals of Europe", "A haiku about tea"]);

    // The Settings page says what happened, in a status region.
    let page = w
        .get(
            "/settings?imported=2&copies=0&skipped=2&restored=0",
            Some(&cookie),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Imported 2 conversations.")
            && page.body.contains("2 parts Wick cannot show"),
        "{}",
        page.body
    );

    // The same file again, with the session: copies, and the page says so.
    let again = w
        .post_form(CHATGPT.as_bytes(), Some(&cookie), "same-origin")
        .await;
    assert_eq!(
        again.headers[header::LOCATION],
        "/settings?imported=2&copies=2&skipped=2&restored=0"
    );
    assert!(!again.headers.contains_key(header::SET_COOKIE));
    let page = w
        .get(
            "/settings?imported=2&copies=2&skipped=2&restored=0",
            Some(&cookie),
        )
        .await;
    assert!(
        page.body.contains("2 of them were already here"),
        "{}",
        page.body
    );
    assert_eq!(w.conversations().await, 4);
    // Defaults an export brought along are counted too (only numbers are read).
    let page = w
        .get(
            "/settings?imported=1&copies=0&skipped=0&restored=2",
            Some(&cookie),
        )
        .await;
    assert!(
        page.body
            .contains("2 defaults from the file were set where you had none."),
        "{}",
        page.body
    );

    // Another site's form is refused before anything is read or stored.
    let foreign = w.post_form(CHATGPT.as_bytes(), None, "cross-site").await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    assert_eq!(w.conversations().await, 4);
}

#[tokio::test]
async fn a_file_over_100_mb_is_refused_with_a_clear_message_and_nothing_stored() {
    let w = wick().await;
    let mut big = vec![b' '; 101 * 1000 * 1000];
    big[0] = b'[';
    *big.last_mut().unwrap() = b']';

    let r = w.post_json(big.clone(), None).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let message = r.json()["error"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("The file is larger than 100 MB"),
        "{message}"
    );
    assert!(!r.headers.contains_key(header::SET_COOKIE));

    // Through the form too, as a page that says so.
    let r = w.post_form(&big, None, "same-origin").await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        r.body
            .contains("<p role=\"alert\">The file is larger than 100 MB"),
        "{}",
        r.body
    );
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert_eq!((users, w.conversations().await), (0, 0));

    // Just under the limit passes the size check (and is then judged as JSON).
    let mut fits = vec![b' '; 99 * 1000 * 1000];
    fits[0] = b'[';
    *fits.last_mut().unwrap() = b']';
    let r = w.post_form(&fits, None, "same-origin").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        r.headers[header::LOCATION],
        "/settings?imported=0&copies=0&skipped=0&restored=0"
    );
}

#[tokio::test]
async fn a_broken_file_is_refused_whole_with_what_is_wrong_and_where() {
    let w = wick().await;
    let cookie = w.visitor_with_history().await;
    let mut file: Value = serde_json::from_str(CHATGPT).unwrap();
    file[1]["create_time"] = json!("noon");
    let r = w
        .post_json(serde_json::to_vec(&file).unwrap(), Some(&cookie))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let message = r.json()["error"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("Conversation 1 ") && message.contains("`create_time`"),
        "{message}"
    );

    let cut = CHATGPT.as_bytes()[..CHATGPT.len() / 3].to_vec();
    let r = w.post_form(&cut, Some(&cookie), "same-origin").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body
            .contains("role=\"alert\">The file ends too early, at line"),
        "{}",
        r.body
    );
    assert!(r.body.contains("href=\"/settings\""));

    // A form without its file.
    let r = w
        .request(
            Request::post("/import")
                .header(
                    header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={BOUNDARY}"),
                )
                .header(header::COOKIE, &cookie)
                .body(Body::from(format!("--{BOUNDARY}--\r\n")))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("No file arrived"),
        "{}",
        r.body
    );
    assert_eq!(w.conversations().await, 2);
}

#[tokio::test]
async fn exports_are_their_owners_alone() {
    let w = wick().await;
    let alice = w.visitor_with_history().await;
    let wick_file = json!({
        "format": "wick", "version": 1, "exported_at": 0,
        "conversations": [{
            "id": "b0b", "title": "Bob's plans", "title_source": "user", "model": "fake",
            "system_prompt": null, "settings": {}, "pinned": true,
            "created_at": 1000, "updated_at": 2000, "leaf_message_id": "m2",
            "messages": [
                {"id": "m1", "parent_id": null, "role": "user", "content": "Bob's secret",
                 "state": "done", "finish_reason": null, "error": null, "model": null,
                 "prompt_tokens": null, "completion_tokens": null, "created_at": 1000, "updated_at": 1000},
                {"id": "m2", "parent_id": "m1", "role": "assistant", "content": "Kept.",
                 "state": "done", "finish_reason": "eos", "error": null, "model": "fake",
                 "prompt_tokens": 3, "completion_tokens": 1, "created_at": 2000, "updated_at": 2000}
            ]
        }]
    });
    let r = w
        .post_json(serde_json::to_vec(&wick_file).unwrap(), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"imported": 1, "copies": 0, "skipped_parts": 0, "settings_restored": 0})
    );
    let bob = session_cookie(&r.headers);

    // Everything: each gets theirs only, streamed as a download.
    let r = w.get("/export.json", Some(&alice)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"wick-export-"));
    assert!(!r.body.contains("Bob's secret"));
    let alices = r.json();
    assert_eq!(alices["format"], "wick");
    assert_eq!(alices["conversations"].as_array().unwrap().len(), 2);
    let bobs = w.export_all(Some(&bob)).await;
    assert_eq!(bobs["conversations"].as_array().unwrap().len(), 1);
    assert_eq!(bobs["conversations"][0]["pinned"], true);
    assert_eq!(bobs["conversations"][0]["messages"][1]["prompt_tokens"], 3);
    // Streamed: the head, a piece per conversation, the end.
    let response = w
        .router
        .clone()
        .oneshot(
            Request::get("/export.json")
                .header(header::COOKIE, &alice)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let pieces: Vec<_> = futures::StreamExt::collect(response.into_body().into_data_stream()).await;
    assert_eq!(pieces.len(), 4);
    // No session: an empty export, not an error.
    let nobody = w.export_all(None).await;
    assert_eq!(nobody["conversations"], json!([]));

    // One conversation: its owner gets it, nobody else.
    let id = alices["conversations"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let md = w.get(&format!("/c/{id}/export.md"), Some(&alice)).await;
    assert_eq!(md.status, StatusCode::OK);
    assert_eq!(
        md.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"capitals-of-europe.md\""
    );
    assert!(md.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/markdown"));
    // The branch shown, in order, each turn under its role.
    assert_eq!(
        md.body,
        "# Capitals of Europe\n\n## User\n\nWhat is the capital of France?\n\n\
         ## Assistant\n\nThe capital of France is **Paris**.\n\n\
         ## User\n\nAnd of Italy, as in this picture?\n\n\
         ## Assistant\n\nRome is the capital of Italy.\n\n"
    );
    let json = w.get(&format!("/c/{id}/export.json"), Some(&alice)).await;
    assert_eq!(json.status, StatusCode::OK);
    assert_eq!(
        json.json()["conversations"][0]["messages"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
    for path in [format!("/c/{id}/export.md"), format!("/c/{id}/export.json")] {
        assert_eq!(
            w.get(&path, Some(&bob)).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
        assert_eq!(
            w.get(&path, None).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(
        w.get(
            "/c/0123456789abcdef0123456789abcdef/export.md",
            Some(&alice)
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}
