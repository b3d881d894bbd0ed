//! Consumer check: zt-session with no features, so no database backend, and
//! the app's own [`UserDirectory`] in place of the reference user store.

use zt_session::{SessionState, UserDirectory, UserState, Validator};
use zt_types::{Role, SessionHash, UserId};

/// An app's own users: every user exists, with role `user` and version 1.
#[derive(Debug)]
pub struct AppUsers;

impl UserDirectory for AppUsers {
    fn session_state(&self, _user: &UserId, _session: &SessionHash) -> zt_session::Result<SessionState> {
        Ok(SessionState {
            user: Some(UserState::new(Role::user(), 1)),
            session_revoked: false,
        })
    }
}

/// A validator over the app's own users.
pub fn validator() -> Validator {
    Validator::new(AppUsers)
}
