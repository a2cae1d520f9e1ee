//! `GET /health`: is the server up, which version, can the database be read
//! and written.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use crate::ServerState;

#[derive(Debug, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    /// `ok`, `unavailable` (it does not answer) or `cannot write` (the last
    /// write of a reply failed: a full disk, a broken file).
    pub database: &'static str,
    pub model: String,
}

pub async fn health(State(state): State<ServerState>) -> (StatusCode, Json<Health>) {
    let database = if !wick_core::db::ping(state.chat().pool()).await {
        "unavailable"
    } else if state.chat().write_failing() {
        "cannot write"
    } else {
        "ok"
    };
    let ok = database == "ok";
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(Health {
            status: if ok { "ok" } else { "degraded" },
            version: env!("CARGO_PKG_VERSION"),
            database,
            model: state.chat().models().default_model().id.clone(),
        }),
    )
}
