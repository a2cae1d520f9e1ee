pub mod account;
pub mod conversation;
pub mod new_chat;
pub mod not_found;
pub mod search;
pub mod settings;
pub mod shared;
