pub mod composer;
pub mod conversation_tools;
pub mod history_settings;
pub mod message_list;
pub mod settings_panel;
pub mod sidebar;
