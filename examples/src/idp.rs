//! A stand-in identity provider, for the examples only: it issues session
//! tokens and remembers their claims, as Clerk or an OIDC provider would.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use zt_session::UserStore;
use zt_types::{AuthFactors, AuthLevel, SessionClaims, SessionId, Timestamp, UserId};

/// Issues sessions and looks their claims up by token.
#[derive(Debug)]
pub struct IdentityProvider {
    users: UserStore,
    sessions: Mutex<HashMap<String, SessionClaims>>,
}

/// How a user signs in.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignIn {
    /// Whether a second factor was used.
    pub mfa: bool,
    /// How long ago the login happened, to stage a stale session.
    pub minutes_ago: u64,
}

impl IdentityProvider {
    /// A provider that reads users from `users`.
    pub fn new(users: UserStore) -> Self {
        Self {
            users,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Signs `user` in: the session carries the user's role and session
    /// version of this moment. Returns the bearer token and the claims.
    pub fn sign_in(
        &self,
        user: &UserId,
        how: SignIn,
    ) -> Result<(String, SessionClaims), Box<dyn std::error::Error + Send + Sync>> {
        let state = self.users.user_state(user)?.ok_or("no such user")?;
        let token = format!("sess_{}", uuid::Uuid::new_v4().simple());
        let at = Timestamp::now().saturating_sub(Duration::from_secs(how.minutes_ago * 60));
        let (factors, level) = if how.mfa {
            (AuthFactors::PASSWORD.union(AuthFactors::OTP), AuthLevel::Aal2)
        } else {
            (AuthFactors::PASSWORD, AuthLevel::Aal1)
        };
        let claims = SessionClaims::new(
            SessionId::parse(token.clone())?,
            user.clone(),
            state.role().clone(),
            state.session_version().unwrap_or(0),
            at,
        )
        .with_factors(factors, level);
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.clone(), claims.clone());
        Ok((token, claims))
    }

    /// The claims of a token, if the provider issued it.
    pub fn claims(&self, token: &str) -> Option<SessionClaims> {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
    }
}
