//! `sqlx::migrate!` embeds the migrations at compile time; without this, cargo
//! would not notice a new file in `migrations/` and an incremental build would
//! ship the old set.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
