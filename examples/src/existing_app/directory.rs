//! zt step 2: zt-session's [`UserDirectory`] over the app's own `users`
//! table.
//!
//! The table has no session version, so the user's `updated_at`, which every
//! role change and disable moves forward, is the "valid after" instant:
//! sessions issued before it are stale
//! ([`UserState::from_valid_after`]). Sign-out-everywhere and single-session
//! revocations live in zt's `zt_user_revocations` and
//! `zt_session_revocations` ([`zt_session::RevocationList`]), keyed by the
//! app's integer id as text. One query reads all three
//! ([`Db::session_row`]), so no revocation slips between two reads.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::r2d2::{ConnectionManager, Pool};
use zt_session::{
    Error, ErrorKind, Result, Role, SessionHash, SessionState, Timestamp, UserDirectory, UserId, UserState,
};

use super::app::Db;

/// The app's users, as zt-session reads them.
#[derive(Debug, Clone)]
pub struct AppDirectory<C: Db> {
    pool: Pool<ConnectionManager<C>>,
}

impl<C: Db> AppDirectory<C> {
    /// A directory on the app's own pool.
    pub fn new(pool: Pool<ConnectionManager<C>>) -> Self {
        Self { pool }
    }
}

/// A UTC time as zt's [`Timestamp`].
fn timestamp(at: DateTime<Utc>) -> Result<Timestamp> {
    Timestamp::from_unix_micros(at.timestamp_micros())
        .map_err(|e| Error::new(ErrorKind::Decode, "a stored time is out of range").with_source(e))
}

/// A naive time the app stores in UTC, as zt's [`Timestamp`].
fn naive_timestamp(at: NaiveDateTime) -> Result<Timestamp> {
    timestamp(at.and_utc())
}

impl<C: Db> UserDirectory for AppDirectory<C> {
    fn session_state(&self, user: &UserId, session: &SessionHash) -> Result<SessionState> {
        let nobody = SessionState {
            user: None,
            session_revoked: false,
        };
        // The app's ids are integers: any other id names no user.
        let Ok(id) = user.as_str().parse::<i64>() else {
            return Ok(nobody);
        };
        // Every error is a denial (SESSION_CHECK_FAILED), never an allowed request.
        let mut conn = self.pool.get().map_err(|e| {
            Error::new(ErrorKind::Unavailable, "no database connection for the session check").with_source(e)
        })?;
        let row = conn
            .session_row(id, session.as_bytes())
            .map_err(|e| Error::new(ErrorKind::Database, "the session check's query failed").with_source(e))?;
        let Some(row) = row else {
            return Ok(nobody);
        };
        let role = Role::parse(row.role)
            .map_err(|e| Error::new(ErrorKind::Decode, "a user's role is not a valid zt role").with_source(e))?;
        let revoked_before = row.revoked_before.map(timestamp).transpose()?;
        let state = UserState::from_valid_after(role, naive_timestamp(row.updated_at)?)
            .with_valid_after(revoked_before)
            .with_disabled(row.disabled);
        Ok(SessionState {
            user: Some(state),
            session_revoked: row.session_revoked,
        })
    }
}
