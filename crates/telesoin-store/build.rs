//! `sqlx::migrate!` embeds the migrations at build time: a migration added without a change to
//! the crate's own sources must still rebuild it.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
