//! The optional short-lived cache of user state, for checks that are not
//! sensitive.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use zt_types::{SessionHash, Timestamp, UserId};

use crate::directory::SessionState;

#[derive(Debug)]
struct Entry {
    user_id: UserId,
    state: SessionState,
    fetched_at: Timestamp,
}

/// User state by session hash, each entry good for `ttl`.
#[derive(Debug)]
pub(crate) struct StateCache {
    ttl: Duration,
    max_entries: usize,
    entries: Mutex<HashMap<SessionHash, Entry>>,
}

impl StateCache {
    pub(crate) fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            ttl,
            max_entries: max_entries.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn fresh(&self, entry: &Entry, now: Timestamp) -> bool {
        // A clock that went backwards makes the entry stale, not eternal.
        now.duration_since(entry.fetched_at).is_some_and(|age| age <= self.ttl)
    }

    /// The cached state of `session`, if it belongs to `user` and is fresh.
    pub(crate) fn get(&self, user: &UserId, session: &SessionHash, now: Timestamp) -> Option<SessionState> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(session)?;
        (entry.user_id == *user && self.fresh(entry, now)).then(|| entry.state.clone())
    }

    pub(crate) fn put(&self, user: &UserId, session: SessionHash, state: &SessionState, now: Timestamp) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.max_entries && !entries.contains_key(&session) {
            entries.retain(|_, entry| now.duration_since(entry.fetched_at).is_some_and(|age| age <= self.ttl));
            if entries.len() >= self.max_entries {
                // Still full of fresh entries: start over rather than grow.
                // The cost is a few extra reads, never a stale answer.
                entries.clear();
            }
        }
        entries.insert(
            session,
            Entry {
                user_id: user.clone(),
                state: state.clone(),
                fetched_at: now,
            },
        );
    }

    /// Forgets every entry of `user`.
    pub(crate) fn invalidate_user(&self, user: &UserId) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, entry| entry.user_id != *user);
    }

    /// Forgets everything.
    pub(crate) fn clear(&self) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::UserState;
    use zt_types::{Role, SessionId};

    fn state() -> SessionState {
        SessionState {
            user: Some(UserState::new(Role::user(), 0)),
            session_revoked: false,
        }
    }

    #[test]
    fn entries_expire_and_are_bounded() {
        let cache = StateCache::new(Duration::from_secs(5), 2);
        let user = UserId::parse("1").unwrap();
        let t0 = Timestamp::from_unix_micros(1_000_000_000_000).unwrap();
        let hash = |s: &str| SessionId::parse(s).unwrap().hash();
        cache.put(&user, hash("a"), &state(), t0);
        assert!(
            cache
                .get(&user, &hash("a"), t0.saturating_add(Duration::from_secs(5)))
                .is_some()
        );
        assert!(
            cache
                .get(&user, &hash("a"), t0.saturating_add(Duration::from_secs(6)))
                .is_none()
        );
        assert!(
            cache
                .get(&user, &hash("a"), t0.saturating_sub(Duration::from_secs(1)))
                .is_none()
        );
        assert!(cache.get(&UserId::parse("2").unwrap(), &hash("a"), t0).is_none());
        cache.put(&user, hash("b"), &state(), t0);
        cache.put(&user, hash("c"), &state(), t0);
        assert!(cache.len() <= 2);
        cache.invalidate_user(&user);
        assert_eq!(cache.len(), 0);
    }
}
