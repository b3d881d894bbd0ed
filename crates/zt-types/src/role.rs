//! Roles. The hierarchy between roles is configured where it is enforced
//! (zt-session's `RoleHierarchy`), not here.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::ids::text_type;

text_type!(
    /// A role name, such as `user` or `admin`: 1 to 32 lowercase ASCII letters,
    /// digits, `_` and `-`.
    ///
    /// ```
    /// use zt_types::Role;
    /// assert_eq!(Role::parse("admin")?, Role::admin());
    /// assert!(Role::parse("Admin").is_err());
    /// # Ok::<(), zt_types::FieldError>(())
    /// ```
    Role, field = "role", max = 32,
    allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
);

impl Role {
    /// The role `user`.
    pub fn user() -> Self {
        Self("user".to_owned())
    }

    /// The role `admin`.
    pub fn admin() -> Self {
        Self("admin".to_owned())
    }
}
