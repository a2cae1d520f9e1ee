pub mod composer;
pub mod message_list;
pub mod sidebar;
pub mod settings_panel;
