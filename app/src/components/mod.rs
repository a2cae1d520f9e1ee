pub mod composer;
pub mod message_list;
pub mod settings_panel;
pub mod sidebar;
