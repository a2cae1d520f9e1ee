//! What the server shares with every request (provided as Leptos context).

/// The app's shared state: the chat, and how to set cookies.
#[derive(Clone, Debug)]
pub struct AppState {
    pub chat: wick_core::Chat,
    /// Mark the session cookie `Secure` (set when Wick is served over HTTPS).
    pub secure_cookies: bool,
    /// Whether people may make share links (`WICK_SHARING`).
    pub sharing: bool,
}
