//! Wick's chat domain, with no web framework: the database ([`db`]), the
//! generation runtime ([`generation`]: tasks, their event logs, flushes and
//! queue places), the model registry ([`models`]), session crypto
//! ([`session`]) and the chat's operations ([`chat`]: send, retry, stop, read)
//! that the web layers call. The Leptos app and the `wick` server are thin
//! adapters over it; the inference APIs use its registry and queue too.

pub mod accounts;
pub mod chat;
pub mod db;
pub mod generation;
pub mod history;
pub mod models;
pub mod password;
pub mod session;
pub mod team;
pub mod telemetry;
mod titles;
pub mod transfer;

pub use chat::{Chat, ChatError, SendRequest, Sending, SettingsForm};
pub use db::{StoreError, UserId};
pub use generation::{
    random_seed, Busy, ChatSettings, Generations, Requester, Slot, Task, DEFAULT_REPLIES_PER_USER,
};
pub use models::{Model, ModelKind, Models};
