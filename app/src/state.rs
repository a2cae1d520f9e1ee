//! What the server shares with every request (provided as Leptos context).

use sqlx::SqlitePool;

#[derive(Clone, Debug)]
pub struct AppState {
    pub pool: SqlitePool,
    /// Mark the session cookie `Secure` (set when Wick is served over HTTPS).
    pub secure_cookies: bool,
    /// The replies being generated.
    pub generations: crate::generation::Generations,
}
