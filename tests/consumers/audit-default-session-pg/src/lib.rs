//! Consumer check: zt-audit with its default `sqlite` beside zt-session with
//! only `postgres`. Cargo unifies zt-db's features to both backends, so each
//! crate must handle every backend the pool may hold, not only the ones it
//! enabled itself.

/// Names the audit log, so that zt-audit is compiled with this combination.
pub fn takes(_log: &zt_audit::AuditLog) {}

/// Parses a chain key.
pub fn key(text: &str) -> Option<zt_audit::ChainKey> {
    zt_audit::ChainKey::parse(text).ok()
}

/// Names the session validator.
pub fn validates(_validator: &zt_session::Validator) {}
