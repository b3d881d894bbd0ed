//! Consumer check: zt-guard with only `postgres`, so zt-audit, zt-session and
//! zt-db are built without SQLite.

/// Names the guard, so that zt-guard is compiled with this combination.
pub fn takes(_guard: &zt_guard::Guard) {}
