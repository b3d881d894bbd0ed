//! Identifiers. Each is checked when it is built and cannot hold an invalid value.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{FieldError, FieldErrorKind};
use crate::text::{check_chars, check_length};

/// Declares a validated string newtype with the usual conversions and serde
/// support that re-validates on deserialization.
macro_rules! text_type {
    (
        $(#[$meta:meta])*
        $name:ident, field = $field:literal, max = $max:expr, allowed = $allowed:expr
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The longest value accepted, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Parses and checks `value`.
            pub fn parse(value: impl Into<String>) -> Result<Self, FieldError> {
                let value = value.into();
                $crate::text::check_length($field, &value, Self::MAX_LEN)?;
                $crate::text::check_chars($field, &value, $allowed)?;
                Ok(Self(value))
            }

            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = FieldError;
            fn from_str(value: &str) -> Result<Self, FieldError> {
                Self::parse(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;
            fn try_from(value: String) -> Result<Self, FieldError> {
                Self::parse(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = FieldError;
            fn try_from(value: &str) -> Result<Self, FieldError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

pub(crate) use text_type;

fn id_char(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '_' | '-' | '.' | ':' | '@' | '|')
}

text_type!(
    /// A user's identifier, as the application's user store knows it.
    ///
    /// Integers, UUIDs and identity-provider ids such as Clerk's `user_2abc…`
    /// all fit: 1 to 128 ASCII letters, digits and `_ - . : @ |`.
    ///
    /// ```
    /// use zt_types::UserId;
    /// assert_eq!(UserId::parse("42")?.as_str(), "42");
    /// assert_eq!(UserId::try_from("user_2abc")?.as_str(), "user_2abc");
    /// assert!(UserId::parse("42; DROP TABLE users").is_err());
    /// # Ok::<(), zt_types::FieldError>(())
    /// ```
    ///
    /// Integer and UUID primary keys convert without a check that could fail:
    /// integers in decimal (negative ones keep their `-`), UUIDs in their
    /// lowercase hyphenated form.
    ///
    /// ```
    /// use uuid::Uuid;
    /// use zt_types::UserId;
    ///
    /// assert_eq!(UserId::from(42).as_str(), "42");
    /// assert_eq!(UserId::from(-5_i64).as_str(), "-5");
    /// assert_eq!(UserId::from(7_u32).as_str(), "7");
    /// assert_eq!(UserId::from(u64::MAX).as_str(), "18446744073709551615");
    ///
    /// let uuid = Uuid::parse_str("0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B")?;
    /// assert_eq!(UserId::from(uuid).as_str(), "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    UserId, field = "user_id", max = 128, allowed = id_char
);

/// `From` for integer types: decimal text is 1 to 20 digits and `-`, all of
/// which `id_char` allows.
macro_rules! user_id_from_integers {
    ($($integer:ty),*) => {
        $(
            impl From<$integer> for UserId {
                /// The decimal form, such as `42` or `-5`.
                fn from(value: $integer) -> Self {
                    Self(value.to_string())
                }
            }
        )*
    };
}

user_id_from_integers!(i32, i64, u32, u64);

impl From<Uuid> for UserId {
    /// The lowercase hyphenated form, such as `0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b`.
    fn from(value: Uuid) -> Self {
        Self(value.hyphenated().to_string())
    }
}

text_type!(
    /// A request or correlation id, such as the value of an `X-Request-Id` header.
    ///
    /// 1 to 128 printable ASCII characters other than space. A client-sent
    /// value that fails this check should be replaced with
    /// [`RequestId::generate`], not stored.
    RequestId, field = "request_id", max = 128, allowed = |c: char| c.is_ascii_graphic()
);

impl RequestId {
    /// A new, time-ordered request id (a UUIDv7).
    pub fn generate() -> Self {
        Self(Uuid::now_v7().to_string())
    }

    /// Parses a client-sent value, or generates a fresh id when it is absent
    /// or invalid. Returns whether the client's value was rejected.
    pub fn from_header_or_generate(header: Option<&str>) -> (Self, bool) {
        match header.map(Self::parse) {
            Some(Ok(id)) => (id, false),
            Some(Err(_)) => (Self::generate(), true),
            None => (Self::generate(), false),
        }
    }
}

/// Declares a UUID newtype.
macro_rules! uuid_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id: a UUIDv7, so ids sort by creation time.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// The UUID, by value.
            pub const fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = FieldError;
            fn from_str(value: &str) -> Result<Self, FieldError> {
                Uuid::parse_str(value).map(Self).map_err(|_| {
                    FieldError::new(stringify!($name), FieldErrorKind::InvalidFormat("a UUID"))
                })
            }
        }
    };
}

uuid_type!(
    /// The unique id of one audit event. Replays are idempotent by this id.
    EventId
);

uuid_type!(
    /// The id that a client sees for an error and quotes to support, who find
    /// the full logged error by it.
    ReferenceId
);

/// A session's id, as issued by the identity provider. It is a secret: a
/// stolen session id is a stolen session.
///
/// Its `Debug` output is redacted, it is not `Display` nor `Serialize`, and it
/// is stored only as its [`SessionHash`].
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl SessionId {
    /// The longest value accepted, in bytes.
    pub const MAX_LEN: usize = 512;

    /// Parses and checks `value`: 1 to 512 printable ASCII characters.
    pub fn parse(value: impl Into<String>) -> Result<Self, FieldError> {
        let value = value.into();
        check_length("session_id", &value, Self::MAX_LEN)?;
        check_chars("session_id", &value, |c: char| c.is_ascii_graphic())?;
        Ok(Self(value))
    }

    /// The SHA-256 hash under which the session is stored and looked up.
    pub fn hash(&self) -> SessionHash {
        SessionHash(Sha256::digest(self.0.as_bytes()).into())
    }

    /// The raw secret value, for handing back to the identity provider.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId([REDACTED])")
    }
}

/// The SHA-256 hash of a [`SessionId`]: what the database stores.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionHash([u8; 32]);

impl SessionHash {
    /// Wraps hash bytes read from storage.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The hash bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SessionHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionHash({self})")
    }
}

impl fmt::Display for SessionHash {
    /// Lowercase hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_accepts_common_id_shapes() {
        for ok in [
            "42",
            "user_2abcDEF",
            "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "auth0|abc",
        ] {
            assert!(UserId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "x\n", "ü", &"9".repeat(129)] {
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn user_id_from_integers_and_uuids_is_always_valid() {
        let from_integers = [
            UserId::from(0),
            UserId::from(-5),
            UserId::from(i32::MIN),
            UserId::from(i32::MAX),
            UserId::from(i64::MIN),
            UserId::from(i64::MAX),
            UserId::from(u32::MAX),
            UserId::from(u64::MAX),
        ];
        let expected = [
            "0",
            "-5",
            "-2147483648",
            "2147483647",
            "-9223372036854775808",
            "9223372036854775807",
            "4294967295",
            "18446744073709551615",
        ];
        for (id, text) in from_integers.iter().zip(expected) {
            assert_eq!(id.as_str(), text);
            // The conversion skips the check; it must agree with it.
            assert_eq!(&UserId::parse(text).unwrap(), id);
        }

        for uuid in [Uuid::nil(), Uuid::max(), Uuid::new_v4(), Uuid::now_v7()] {
            let id = UserId::from(uuid);
            assert_eq!(id.as_str().len(), 36);
            assert_eq!(id.as_str(), uuid.hyphenated().to_string());
            assert!(!id.as_str().chars().any(|c| c.is_ascii_uppercase()));
            assert_eq!(UserId::parse(id.as_str()).unwrap(), id);
        }
        assert_eq!(
            UserId::from(Uuid::max()).as_str(),
            "ffffffff-ffff-ffff-ffff-ffffffffffff"
        );
    }

    #[test]
    fn text_ids_try_from_str() {
        assert_eq!(UserId::try_from("auth0|abc").unwrap().as_str(), "auth0|abc");
        assert_eq!(UserId::try_from("a b").unwrap_err().field(), "user_id");
        let id: Result<RequestId, _> = "req-1".try_into();
        assert_eq!(id.unwrap().as_str(), "req-1");
    }

    #[test]
    fn user_id_serde_revalidates() {
        let parsed: Result<UserId, _> = serde_json::from_str("\"bad id\"");
        assert!(parsed.is_err());
        let good: UserId = serde_json::from_str("\"7\"").unwrap();
        assert_eq!(serde_json::to_string(&good).unwrap(), "\"7\"");
    }

    #[test]
    fn request_id_falls_back_to_generated() {
        let (id, rejected) = RequestId::from_header_or_generate(Some("evil\r\nheader"));
        assert!(rejected);
        assert_eq!(id.as_str().len(), 36);
        let (id, rejected) = RequestId::from_header_or_generate(Some("req-1"));
        assert!(!rejected);
        assert_eq!(id.as_str(), "req-1");
    }

    #[test]
    fn session_id_never_prints_its_secret() {
        let id = SessionId::parse("sess_secret_value").unwrap();
        assert!(!format!("{id:?}").contains("secret_value"));
        let hash = id.hash().to_string();
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains("secret"));
        assert_eq!(id.hash(), SessionId::parse("sess_secret_value").unwrap().hash());
    }
}
