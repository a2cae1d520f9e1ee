//! Server functions called with arguments that cannot be read answer 400 (413
//! for a body over the limit) with a plain message in the app's error
//! encoding, and log nothing at ERROR: the mistake is the caller's. In process
//! (`Router::oneshot`) over a scripted model.

mod scripted;

use app::api::{GetConversation, SendMessage, StopReply};
use app::error::AppError;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use inference::scripted::Step;
use inference::Params;
use leptos::server_fn::ServerFn;
use scripted::{logged, scripted_model, state_over, Scripted};
use server::api::auth::ApiAccess;
use tower::ServiceExt;

struct Wick {
    router: Router,
    _dir: tempfile::TempDir,
}

async fn wick() -> Wick {
    let (model, _) = scripted_model(vec![Step::token("Hi")], Params::default());
    let Scripted { state, dir, .. } = state_over(vec![model], ApiAccess::new(&[], false)).await;
    Wick {
        router: server::router(state),
        _dir: dir,
    }
}

impl Wick {
    /// Posts `body` as `content_type` to `url`; the status and the body.
    async fn post(&self, url: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, String) {
        let response = self
            .router
            .clone()
            .oneshot(
                Request::post(url)
                    .header(header::CONTENT_TYPE, content_type)
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

/// What the app's own calls decode an error answer as.
fn app_error(body: &str) -> AppError {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn undecodable_arguments_are_a_400_with_a_plain_message_and_no_error_log() {
    let w = wick().await;
    let cases: [(&str, &str, &[u8], &str); 6] = [
        // No `content` at all.
        (
            SendMessage::PATH,
            FORM,
            b"contentx=1",
            "missing field `content`",
        ),
        // JSON, which these functions do not take.
        (
            SendMessage::PATH,
            "application/json",
            br#"{"content":"hi"}"#,
            "missing field `content`",
        ),
        // serde_qs' nested syntax where a string is expected.
        (
            SendMessage::PATH,
            FORM,
            b"content[]=1&content[]=2",
            "expected a string",
        ),
        // Bytes that are not UTF-8.
        (GetConversation::PATH, FORM, b"id=\xff\xfe", "utf-8"),
        // An empty body.
        (StopReply::PATH, FORM, b"", "missing field `message_id`"),
        // Broken percent-encoding leaves no field named `id`.
        (
            GetConversation::PATH,
            FORM,
            b"%zz=%zz",
            "missing field `id`",
        ),
    ];
    for (url, content_type, body, detail) in cases {
        let (status, answer) = w.post(url, content_type, body.to_vec()).await;
        let case = format!("{url} {content_type} {:?}", String::from_utf8_lossy(body));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {answer}");
        let AppError::Invalid(message) = app_error(&answer) else {
            panic!("{case}: a plain message: {answer}");
        };
        assert!(
            message.starts_with("The request's arguments could not be read: "),
            "{case}: {message}"
        );
        assert!(message.contains(detail), "{case}: {message}");
    }
    let logs = logged();
    assert!(
        !logs.contains("ERROR"),
        "a caller's mistake is not logged as an error: {logs}"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    let w = wick().await;
    let mut body = b"content=".to_vec();
    body.resize(3 * 1024 * 1024, b'a');
    let (status, answer) = w.post(SendMessage::PATH, FORM, body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(
        app_error(&answer),
        AppError::Invalid("The request is too large.".into())
    );
}

#[tokio::test]
async fn good_arguments_still_reach_the_function() {
    let w = wick().await;
    // A conversation that does not exist: the function itself answers 404.
    let (status, answer) = w
        .post(GetConversation::PATH, FORM, b"id=nope".to_vec())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(app_error(&answer), AppError::NotFound);
    // And a message is sent.
    let (status, answer) = w
        .post(SendMessage::PATH, FORM, b"content=Hello".to_vec())
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}
