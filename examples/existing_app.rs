//! An existing diesel app adopts zt one crate at a time: zt-audit in its own
//! transactions, zt-session over its own `users` table, zt-errors for its
//! failures. The code is in `src/existing_app/`; docs/adopting.md walks
//! through it.
//!
//! `cargo run --example existing_app [-- --database-url sqlite://FILE | postgres://... [--data-dir DIR]]`
//!
//! Without arguments it runs on a fresh SQLite file in a new temporary
//! directory. The chain key comes from `ZT_AUDIT_KEY`, or from `audit.key` in
//! the data directory (the SQLite file's directory by default), created once.

fn main() -> std::process::ExitCode {
    zt_examples::existing_app::main()
}
