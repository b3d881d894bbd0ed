//! Who performed an action.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{FieldError, FieldErrorKind};
use crate::ids::{UserId, text_type};

text_type!(
    /// An email address, as given by the identity provider: up to 255 bytes,
    /// one `@` with text on both sides, no spaces or control characters. It is
    /// not checked further; the identity provider owns that.
    Email, field = "user_email", max = 255,
    allowed = |c: char| !c.is_control() && !c.is_whitespace()
);

impl Email {
    /// Parses and checks `value`, including that it has the shape `local@domain`.
    pub fn parse_address(value: impl Into<String>) -> Result<Self, FieldError> {
        let email = Self::parse(value)?;
        match email.0.split_once('@') {
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@') => Ok(email),
            _ => Err(FieldError::new(
                "user_email",
                FieldErrorKind::InvalidFormat("an address of the form local@domain"),
            )),
        }
    }
}

/// Who performed an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Actor {
    /// A signed-in user.
    User {
        /// The user's id.
        id: UserId,
        /// The user's email, when known.
        email: Option<Email>,
    },
    /// The system itself: a scheduled job, a migration, a retention run.
    System,
    /// Nobody signed in, such as a newsletter signup or a failed login.
    Anonymous,
}

impl Actor {
    /// A user actor.
    pub fn user(id: UserId, email: Option<Email>) -> Self {
        Self::User { id, email }
    }

    /// The actor's kind as stored: `user`, `system` or `anonymous`.
    pub const fn kind(&self) -> ActorKind {
        match self {
            Self::User { .. } => ActorKind::User,
            Self::System => ActorKind::System,
            Self::Anonymous => ActorKind::Anonymous,
        }
    }

    /// The user id, for a user actor.
    pub const fn user_id(&self) -> Option<&UserId> {
        match self {
            Self::User { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The email, for a user actor whose email is known.
    pub const fn email(&self) -> Option<&Email> {
        match self {
            Self::User { email, .. } => email.as_ref(),
            _ => None,
        }
    }
}

/// The kind of an [`Actor`], without its details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ActorKind {
    /// A signed-in user.
    User,
    /// The system itself.
    System,
    /// Nobody signed in.
    Anonymous,
}

impl ActorKind {
    /// The stored name: `user`, `system` or `anonymous`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::System => "system",
            Self::Anonymous => "anonymous",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        match value {
            "user" => Ok(Self::User),
            "system" => Ok(Self::System),
            "anonymous" => Ok(Self::Anonymous),
            _ => Err(FieldError::new(
                "actor_kind",
                FieldErrorKind::InvalidFormat("one of user, system, anonymous"),
            )),
        }
    }
}

impl fmt::Display for ActorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_needs_local_and_domain() {
        assert!(Email::parse_address("a@example.com").is_ok());
        for bad in ["a", "@x", "x@", "a@b@c", "a b@c", "a@c\n"] {
            assert!(Email::parse_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn actor_exposes_user_fields() {
        let actor = Actor::user(UserId::parse("7").unwrap(), None);
        assert_eq!(actor.kind().as_str(), "user");
        assert_eq!(actor.user_id().unwrap().as_str(), "7");
        assert_eq!(Actor::System.user_id(), None);
        assert_eq!(ActorKind::parse("anonymous").unwrap(), ActorKind::Anonymous);
    }
}
