//! What the in-process tests share: Wick's whole server state over a real
//! SQLite file and scripted models (no socket, no model file), and a capture
//! of everything the server logs, for the tests that check where detail goes.
#![allow(dead_code)] // each test file uses its own part

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use inference::scripted::{ScriptedBackend, Step};
use inference::Params;
use server::api::auth::ApiAccess;
use server::ServerState;
use wick_core::{Chat, ChatSettings, Generations, Model, ModelKind, Models};

/// The static API key of the servers made here.
pub const KEY: &str = "test-key";

/// Everything the server logs from the first call on (one subscriber per
/// test binary).
pub fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .init();
        buffer
    })
    .clone()
}

/// The log so far, as text.
pub fn logged() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A local model "fake" (queue of 4, 2,048-token window) that plays its
/// backend's scripts with `params`.
pub fn scripted_model(script: Vec<Step>, params: Params) -> (Model, ScriptedBackend) {
    let backend = ScriptedBackend::new(script);
    let model = Model::new(
        "fake",
        "Fake",
        ModelKind::Local,
        Arc::new(backend.clone()),
        params,
        4,
        Some(2048),
    );
    (model, backend)
}

/// A server's state over `models` and a fresh database in its own folder
/// (kept as long as the value lives); the log capture is on.
pub struct Scripted {
    pub state: ServerState,
    pub pool: sqlx::SqlitePool,
    pub dir: tempfile::TempDir,
}

pub async fn state_over(models: Vec<Model>, access: ApiAccess) -> Scripted {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/wick.db", dir.path().display());
    let pool = wick_core::db::open(&url).await.unwrap();
    let generations = Generations::new(
        Models::new(models),
        pool.clone(),
        ChatSettings {
            seed: Some(1),
            ..ChatSettings::default()
        },
    );
    let leptos = leptos::prelude::LeptosOptions::builder()
        .output_name("wick")
        .site_root(dir.path().display().to_string())
        .build();
    let state = ServerState::new(leptos, Chat::new(pool.clone(), generations), false, access);
    Scripted { state, pool, dir }
}

/// The `name=value` of the session cookie an answer sets.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(axum::http::header::SET_COOKIE)
        .expect("a new visitor gets a session")
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The API behind [`KEY`].
pub fn keyed() -> ApiAccess {
    ApiAccess::new(&[KEY.to_owned()], false)
}

/// An answer of the router, read whole.
pub struct Answer {
    pub status: axum::http::StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Answer {
    /// Where a redirect goes.
    pub fn location(&self) -> &str {
        self.headers[axum::http::header::LOCATION].to_str().unwrap()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Sends `request` through `router` (in process) and reads the answer.
pub async fn answer(
    router: &axum::Router,
    request: axum::http::Request<axum::body::Body>,
) -> Answer {
    use tower::ServiceExt;
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// `fields` as an `application/x-www-form-urlencoded` body.
pub fn form(fields: &[(&str, &str)]) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                b => format!("%{b:02X}"),
            })
            .collect()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}
