//! The configurable order of roles, and what a role change does to a session.

use zt_types::Role;

use crate::error::{Error, ErrorKind};

/// Roles from lowest to highest: a role satisfies a requirement's minimum
/// role when it is at or above it. Default: `user` < `admin`.
///
/// A role the hierarchy does not name satisfies no minimum role, and a change
/// to or from it always counts as a demotion: unknown means no privilege.
///
/// ```
/// use zt_session::RoleHierarchy;
/// use zt_types::Role;
///
/// let roles = RoleHierarchy::new(["viewer", "editor", "admin"])?;
/// let editor = Role::parse("editor")?;
/// assert!(roles.satisfies(&editor, &Role::parse("viewer")?));
/// assert!(!roles.satisfies(&editor, &Role::admin()));
/// assert!(!roles.satisfies(&Role::parse("intern")?, &Role::parse("viewer")?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleHierarchy {
    /// Lowest first; a role's rank is its index.
    roles: Vec<Role>,
}

impl Default for RoleHierarchy {
    fn default() -> Self {
        Self {
            roles: vec![Role::user(), Role::admin()],
        }
    }
}

impl RoleHierarchy {
    /// A hierarchy from role names, lowest first. Rejects an empty list, an
    /// invalid name and a duplicate.
    pub fn new<I, S>(lowest_first: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut roles: Vec<Role> = Vec::new();
        for name in lowest_first {
            let role = Role::parse(name.as_ref())
                .map_err(|e| Error::new(ErrorKind::InvalidConfig, format!("role hierarchy: {e}")).with_source(e))?;
            if roles.contains(&role) {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    format!("role hierarchy names `{role}` twice"),
                ));
            }
            roles.push(role);
        }
        if roles.is_empty() {
            return Err(Error::new(ErrorKind::InvalidConfig, "role hierarchy is empty"));
        }
        Ok(Self { roles })
    }

    /// The rank of `role`, 0 for the lowest, or `None` when the hierarchy
    /// does not name it.
    pub fn rank(&self, role: &Role) -> Option<usize> {
        self.roles.iter().position(|known| known == role)
    }

    /// Whether `role` is at or above `minimum`.
    pub fn satisfies(&self, role: &Role, minimum: &Role) -> bool {
        match (self.rank(role), self.rank(minimum)) {
            (Some(have), Some(need)) => have >= need,
            _ => false,
        }
    }

    /// Whether `to` is strictly above `from`. Anything else, including a role
    /// the hierarchy does not name, is not a promotion.
    pub fn is_promotion(&self, from: &Role, to: &Role) -> bool {
        match (self.rank(from), self.rank(to)) {
            (Some(from), Some(to)) => to > from,
            _ => false,
        }
    }

    /// The roles, lowest first.
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }
}

/// What a check does when the role at issue differs from the current role.
///
/// A demotion is always denied at once ([`crate::DenialReason::RoleChanged`]):
/// the session must not keep privileges the user has lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RoleChangePolicy {
    /// Any change, promotions included, needs a new session (the default):
    /// the check denies with `SESSION_ROLE_CHANGED` and asks the user to sign
    /// in again. A new session is the only point where a role is granted,
    /// which keeps "who had which role when" easy to audit.
    #[default]
    RequireNewSession,
    /// A promotion is allowed in the existing session, which acts with the
    /// current, higher role. Demotions and changes between roles of unknown
    /// rank are still denied.
    ///
    /// The reference [`UserStore`](crate::UserStore) bumps `session_version`
    /// on every role change, as a security stamp must, so with it a promoted
    /// user's old sessions still end (`SESSION_REVOKED`). This policy is for
    /// directories that bump the version on demotions only.
    AllowPromotion,
}
