//! Export and import of a person's conversations (the formats and the
//! database work are `wick_core::transfer`'s):
//!
//! - `GET /c/{id}/export.md`: the branch shown, as Markdown;
//! - `GET /c/{id}/export.json`: that conversation in Wick's format, every branch;
//! - `GET /export.json`: everything of the person, streamed one conversation
//!   at a time (memory does not grow with the history);
//! - `POST /import`: a Wick export or ChatGPT's `conversations.json`, as a
//!   file field of a plain HTML form (`multipart/form-data`, no JavaScript
//!   needed) or as the raw body, at most 100 MB.
//!
//! The person is found from the session cookie; someone else's conversation,
//! or one that does not exist, is a 404. A visitor without a session may
//! import: their anonymous user and session are made in the import's own
//! transaction, as sending a first message does. A browser's form post is
//! answered with a redirect to the Settings page, which says what was
//! imported, or with a small page saying what is wrong with the file;
//! scripts get JSON.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, SET_COOKIE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{StreamExt, TryStreamExt};
use wick_core::db::conversations::Owner;
use wick_core::session;
use wick_core::transfer::{self, ImportSummary, TransferError, MAX_IMPORT_BYTES};
use wick_core::{StoreError, UserId};
use wick_types::Role;

use crate::ServerState;

/// The body limit of `POST /import`: the largest file plus room for the
/// form's own parts (boundaries, headers). The file itself is held to
/// [`MAX_IMPORT_BYTES`] while it is read.
pub const IMPORT_BODY_LIMIT: usize = MAX_IMPORT_BYTES + 1024 * 1024;

/// The field of the import form that carries the file.
pub const FILE_FIELD: &str = "file";

const NOT_FOUND: &str = "This conversation does not exist, or it is not yours.";
const SERVER_TROUBLE: &str = "Something went wrong on the server.";

/// `GET /c/{id}/export.md`: the branch shown, as Markdown.
pub async fn export_markdown(
    State(state): State<ServerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let user = match user(&state, &headers).await {
        Ok(Some(user)) => user,
        Ok(None) => return not_found(),
        Err(response) => return response,
    };
    match wick_core::db::transfer::shown_branch(state.chat().pool(), user, &id).await {
        Ok(view) => {
            let mut text = format!("# {}\n\n", view.title);
            if !view.system_prompt.trim().is_empty() {
                text.push_str(&format!("## System prompt\n\n{}\n\n", view.system_prompt));
            }
            for m in &view.messages {
                let role = match m.role {
                    Role::System => "System",
                    Role::User => "User",
                    Role::Assistant => "Assistant",
                };
                text.push_str(&format!("## {role}\n\n{}\n\n", m.content.trim_end()));
            }
            download(
                "text/markdown; charset=utf-8",
                &format!("{}.md", file_stem(&view.title)),
                Body::from(text),
            )
        }
        Err(e) => store_failure(e),
    }
}

/// `GET /c/{id}/export.json`: that conversation in Wick's format, every branch.
pub async fn export_conversation(
    State(state): State<ServerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let user = match user(&state, &headers).await {
        Ok(Some(user)) => user,
        Ok(None) => return not_found(),
        Err(response) => return response,
    };
    match wick_core::db::transfer::export_conversation(state.chat().pool(), user, &id).await {
        Ok(export) => {
            let stem = export
                .conversations
                .first()
                .map(|c| file_stem(&c.title))
                .unwrap_or_else(|| "conversation".to_owned());
            match serde_json::to_vec(&export) {
                Ok(bytes) => download(
                    "application/json",
                    &format!("{stem}.json"),
                    Body::from(bytes),
                ),
                Err(e) => {
                    tracing::error!(error = %e, "export not serialisable");
                    error(StatusCode::INTERNAL_SERVER_ERROR, SERVER_TROUBLE)
                }
            }
        }
        Err(e) => store_failure(e),
    }
}

/// `GET /export.json`: everything of the person, streamed as it is read. A
/// visitor without a session gets an export with no conversations.
pub async fn export_all(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    let user = match user(&state, &headers).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let pieces = wick_core::db::transfer::export_all(state.chat().pool().clone(), user)
        .map_ok(Bytes::from)
        .inspect_err(|e| tracing::error!(error = %e, "export stopped part-way"));
    let date = time::OffsetDateTime::now_utc().date();
    download(
        "application/json",
        &format!("wick-export-{date}.json"),
        Body::from_stream(pieces),
    )
}

/// `POST /import`: stores the conversations of a Wick or ChatGPT file.
pub async fn import(State(state): State<ServerState>, request: Request) -> Response {
    let headers = request.headers().clone();
    let browser = wants_html(&headers);
    let current = match session::current(state.chat().pool(), &headers).await {
        Ok(current) => current,
        Err(e) => {
            tracing::error!(error = %e, "session lookup failed");
            return refused(browser, TransferError::Store(e));
        }
    };
    let bytes = match read_file(&state, request).await {
        Ok(bytes) => bytes,
        Err(problem) => return refused(browser, problem),
    };
    let parsed = match tokio::task::spawn_blocking(move || transfer::parse(&bytes)).await {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(problem)) => return refused(browser, problem),
        Err(e) => {
            tracing::error!(error = %e, "the import's parse failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, SERVER_TROUBLE);
        }
    };
    // A first-time visitor's user and session are stored with the import.
    let (owner, cookie) = match current {
        Some((user, renewed)) => (Owner::User(user), renewed),
        None => {
            let (token, token_hash) = session::new_token_and_hash();
            let owner = Owner::NewVisitor {
                token_hash,
                lifetime: session::SESSION_LIFETIME,
            };
            (owner, Some(token))
        }
    };
    let default_model = state.chat().models().default_model().id.clone();
    let summary = match transfer::store(state.chat().pool(), owner, &default_model, parsed).await {
        Ok((_, summary)) => summary,
        Err(problem) => return refused(browser, problem),
    };
    tracing::info!(
        imported = summary.imported,
        copies = summary.copies,
        skipped_parts = summary.skipped_parts,
        settings_restored = summary.settings_restored,
        "conversations imported"
    );
    let mut response = if browser {
        see_settings(&summary)
    } else {
        Json(summary).into_response()
    };
    if let Some(token) = cookie {
        response.headers_mut().append(
            SET_COOKIE,
            session::set_cookie_value(&token, state.app.secure_cookies),
        );
    }
    response
}

/// The file of the request: the form's file field, or the whole body. A
/// body declared or found larger than the limit is refused without reading
/// (or keeping) the rest.
async fn read_file(state: &ServerState, request: Request) -> Result<Vec<u8>, TransferError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > IMPORT_BODY_LIMIT) {
        return Err(TransferError::TooLarge);
    }
    let is_form = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !is_form {
        let mut body = request.into_body().into_data_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|_| TransferError::Interrupted)?;
            if bytes.len() + chunk.len() > MAX_IMPORT_BYTES {
                return Err(TransferError::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        return Ok(bytes);
    }
    let mut form = Multipart::from_request(request, state)
        .await
        .map_err(|_| TransferError::NoFile)?;
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            // No file field: nothing was chosen.
            Ok(None) => return Err(TransferError::NoFile),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(TransferError::TooLarge)
            }
            Err(_) => return Err(TransferError::Interrupted),
        };
        if field.name() != Some(FILE_FIELD) {
            continue;
        }
        let mut field = field;
        let mut bytes = Vec::new();
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_IMPORT_BYTES {
                        return Err(TransferError::TooLarge);
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(bytes),
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    return Err(TransferError::TooLarge)
                }
                Err(_) => return Err(TransferError::Interrupted),
            }
        }
    }
}

/// Whether the request is a browser's page load (a form post), which is
/// answered with pages, not JSON.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// After a form's import: the Settings page, which says what was done
/// (only numbers travel in the address, so a link cannot make it say
/// anything else).
fn see_settings(summary: &ImportSummary) -> Response {
    let location = format!(
        "/settings?imported={}&copies={}&skipped={}&restored={}",
        summary.imported, summary.copies, summary.skipped_parts, summary.settings_restored
    );
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// A refused import: its status, and the message as a small page (with a
/// way back) or as JSON.
fn refused(browser: bool, problem: TransferError) -> Response {
    let status = match &problem {
        TransferError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        TransferError::Store(e) => {
            tracing::error!(error = %e, "an import could not be stored");
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::BAD_REQUEST,
    };
    let message = problem.to_string();
    if !browser {
        return error(status, &message);
    }
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Import failed · Wick</title></head>\
         <body><main><h1>Import failed</h1><p role=\"alert\">{}</p>\
         <p><a href=\"/settings\">Back to Settings</a></p></main></body></html>\n",
        escape_html(&message)
    );
    (status, [(CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The user of the request's session, or the answer to give when the
/// lookup itself failed.
async fn user(state: &ServerState, headers: &HeaderMap) -> Result<Option<UserId>, Response> {
    session::user_from_headers(state.chat().pool(), headers)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "session lookup failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, SERVER_TROUBLE)
        })
}

fn store_failure(e: StoreError) -> Response {
    match e {
        StoreError::NotFound => not_found(),
        e => {
            tracing::error!(error = %e, "export failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, SERVER_TROUBLE)
        }
    }
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, NOT_FOUND)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// A download: saved under `filename`, never cached (it is personal).
fn download(content_type: &'static str, filename: &str, body: Body) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CONTENT_DISPOSITION, disposition),
            (CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
        ],
        body,
    )
        .into_response()
}

/// A file name from a title: its letters and digits (ASCII), words joined
/// by `-`, at most 60 characters; "conversation" when nothing is left.
fn file_stem(title: &str) -> String {
    let mut stem = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            stem.push(c.to_ascii_lowercase());
        } else if !stem.is_empty() && !stem.ends_with('-') {
            stem.push('-');
        }
        if stem.len() >= 60 {
            break;
        }
    }
    let stem = stem.trim_end_matches('-');
    if stem.is_empty() {
        "conversation".to_owned()
    } else {
        stem.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_plain_words_from_the_title() {
        assert_eq!(file_stem("Capitals of Europe!"), "capitals-of-europe");
        assert_eq!(file_stem("\"; rm -rf /"), "rm-rf");
        assert_eq!(file_stem("日本語"), "conversation");
    }
}
