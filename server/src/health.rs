//! `GET /health`: is the server up, which version, does the database answer.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use crate::ServerState;

#[derive(Debug, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    pub database: &'static str,
    pub model: String,
}

pub async fn health(State(state): State<ServerState>) -> (StatusCode, Json<Health>) {
    let db_ok = wick_core::db::ping(state.chat().pool()).await;
    let code = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(Health {
            status: if db_ok { "ok" } else { "degraded" },
            version: env!("CARGO_PKG_VERSION"),
            database: if db_ok { "ok" } else { "unavailable" },
            model: state.chat().models().default_model().id.clone(),
        }),
    )
}
