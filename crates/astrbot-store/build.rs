//! `sqlx::migrate!` embeds the migration files at compile time; tell cargo
//! to rebuild when they change, or a stale schema would ship silently.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
