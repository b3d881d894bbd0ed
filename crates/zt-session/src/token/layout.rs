//! Where each provider puts what zt needs, and the mapping of a verified
//! token's claims onto [`SessionClaims`].

use std::time::Duration;

use serde_json::{Map, Value};
use zt_types::{AuthFactors, AuthLevel, Role, SessionClaims, SessionId, Timestamp, UserId};

use crate::denial::TokenProblem;
use crate::role::RoleHierarchy;

/// A claim's place in the payload: object keys from the top, such as
/// `["realm_access", "roles"]`. Keys are matched exactly, so a namespaced
/// claim (`https://example.com/roles`) is one key.
pub(crate) type ClaimPath = Vec<String>;

fn path(keys: &[&str]) -> ClaimPath {
    keys.iter().map(|&key| key.to_owned()).collect()
}

/// Where a provider's token carries the user's role, if it does.
///
/// Each place is tried in order; the first present wins. A string is the
/// role; an array of strings (Keycloak's `realm_access.roles`, an Auth0
/// roles claim) gives the highest role of the verifier's
/// [`RoleHierarchy`] among them. A value that is not a valid
/// [`Role`] once the optional prefix is cut (Clerk's `org:admin`) is skipped.
/// No role found means the claims assert none, and the validator relies on
/// the user's "valid after" instant to catch a role change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleClaim {
    paths: Vec<ClaimPath>,
    strip_prefix: Option<String>,
}

impl RoleClaim {
    /// No role claim.
    pub fn none() -> Self {
        Self::default()
    }

    /// The role at `path`, such as `["metadata", "role"]`.
    pub fn at<S: AsRef<str>>(path: impl IntoIterator<Item = S>) -> Self {
        Self::none().or_at(path)
    }

    /// Also tries `path`, after the places before it.
    #[must_use]
    pub fn or_at<S: AsRef<str>>(mut self, path: impl IntoIterator<Item = S>) -> Self {
        self.paths
            .push(path.into_iter().map(|key| key.as_ref().to_owned()).collect());
        self
    }

    /// Cuts `prefix` off each value first, such as Clerk's `org:`.
    #[must_use]
    pub fn strip_prefix(mut self, prefix: &str) -> Self {
        self.strip_prefix = Some(prefix.to_owned());
        self
    }

    /// The role the claims assert, if any.
    pub(crate) fn read(&self, payload: &Map<String, Value>, hierarchy: &RoleHierarchy) -> Option<Role> {
        let parse = |value: &str| {
            let value = match &self.strip_prefix {
                Some(prefix) => value.strip_prefix(prefix.as_str()).unwrap_or(value),
                None => value,
            };
            Role::parse(value).ok()
        };
        self.paths.iter().find_map(|path| match lookup(payload, path)? {
            Value::String(role) => parse(role),
            Value::Array(values) => values
                .iter()
                .filter_map(Value::as_str)
                .filter_map(parse)
                .filter_map(|role| hierarchy.rank(&role).map(|rank| (rank, role)))
                .max_by_key(|(rank, _)| *rank)
                .map(|(_, role)| role),
            _ => None,
        })
    }
}

/// How the last full login's time, factors and level are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Login {
    /// OIDC: `auth_time`, `amr`, `acr`; without `auth_time`, `iat`.
    Oidc,
    /// Clerk: `fva` = [minutes since the first factor, minutes since the
    /// second factor or -1], counted back from `iat`.
    ClerkFva,
}

/// Where an identity provider's token carries what zt needs, with presets
/// for the common providers.
///
/// | | [`oidc`](Self::oidc) | [`clerk`](Self::clerk) | [`auth0`](Self::auth0) | [`keycloak`](Self::keycloak) | [`ory`](Self::ory) |
/// |---|---|---|---|---|---|
/// | user id | `sub` | `sub` | `sub` | `sub` | `sub` |
/// | session id | `sid` | `sid` | `sid` | `sid`, else `session_state` | `sid` |
/// | login time | `auth_time`, else `iat` | `iat − fva[0]` minutes | `auth_time`, else `iat` | `auth_time`, else `iat` | `auth_time`, else `iat` |
/// | factors, level | `amr`, `acr` | `fva[1] != -1`: OTP, AAL2 | `amr`, `acr` | `amr`, `acr` | `amr`, `acr` |
/// | role | none | `metadata.role`, `o.rol`, `org_role` (`org:` cut) | `<namespace>/roles`, `<namespace>/role` | `realm_access.roles` | `ext.role`, `ext.roles`, `metadata_public.role` |
///
/// None of them carries zt's session version unless you add one
/// ([`ClaimLayout::version_claim`]): without it, a change is caught by the
/// user's "valid after" instant, compared with the login time, which token
/// refreshes do not move.
///
/// `acr` maps onto a level when it names one: `aal1`..`aal3` (Ory),
/// `0`..`3` (Keycloak's levels of authentication), `phr`/`phrh` (OpenID's
/// phishing-resistant values: AAL2/AAL3), or the PAPE multi-factor policy
/// (Auth0: AAL2). Otherwise the level is AAL2 for multi-factor `amr` values
/// and AAL1 for the rest; AAL3 is never derived from `amr` alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimLayout {
    session_id: Vec<ClaimPath>,
    role: RoleClaim,
    login: Login,
    version: Option<ClaimPath>,
}

impl ClaimLayout {
    /// Any OpenID Connect provider's ID token: `sub`, `sid`, `auth_time`,
    /// `amr`, `acr`; no role.
    pub fn oidc() -> Self {
        Self {
            session_id: vec![path(&["sid"])],
            role: RoleClaim::none(),
            login: Login::Oidc,
            version: None,
        }
    }

    /// Clerk's session token (v1 and v2): `sid`, `fva`, and the role from
    /// the custom claim `metadata.role` (add `"metadata":
    /// "{{user.public_metadata}}"` to the session token), else the active
    /// organization's role (`o.rol`, v1's `org_role`).
    pub fn clerk() -> Self {
        Self {
            session_id: vec![path(&["sid"])],
            role: RoleClaim::at(["metadata", "role"])
                .or_at(["o", "rol"])
                .or_at(["org_role"])
                .strip_prefix("org:"),
            login: Login::ClerkFva,
            version: None,
        }
    }

    /// Auth0: OIDC claims, and the roles an Action adds under your
    /// namespace, such as `https://example.com/roles`.
    pub fn auth0(namespace: &str) -> Self {
        let namespace = namespace.trim_end_matches('/');
        Self::oidc().role(RoleClaim::at([format!("{namespace}/roles")]).or_at([format!("{namespace}/role")]))
    }

    /// Keycloak: OIDC claims (`sid`, or `session_state` before Keycloak 18),
    /// and the realm roles in `realm_access.roles`.
    pub fn keycloak() -> Self {
        Self {
            session_id: vec![path(&["sid"]), path(&["session_state"])],
            ..Self::oidc().role(RoleClaim::at(["realm_access", "roles"]))
        }
    }

    /// Ory (Hydra, and Kratos' tokenized sessions): OIDC claims, and the role
    /// in the `ext` claims of a Hydra token or the identity's public metadata.
    pub fn ory() -> Self {
        Self::oidc().role(
            RoleClaim::at(["ext", "role"])
                .or_at(["ext", "roles"])
                .or_at(["metadata_public", "role"]),
        )
    }

    /// Reads the role as `role` says.
    #[must_use]
    pub fn role(mut self, role: RoleClaim) -> Self {
        self.role = role;
        self
    }

    /// Reads zt's session version from the integer claim at `path`, such as
    /// a Clerk custom claim `"zt_ver": "{{user.public_metadata.zt_ver}}"`
    /// that your app keeps equal to the user's version. Claims with a version
    /// are compared by version too. A token without the claim is malformed.
    #[must_use]
    pub fn version_claim<S: AsRef<str>>(mut self, path: impl IntoIterator<Item = S>) -> Self {
        self.version = Some(path.into_iter().map(|key| key.as_ref().to_owned()).collect());
        self
    }

    /// Maps a verified payload onto claims. `iat` is already checked.
    pub(crate) fn claims(
        &self,
        payload: &Map<String, Value>,
        iat: Timestamp,
        hierarchy: &RoleHierarchy,
    ) -> Result<SessionClaims, (TokenProblem, String)> {
        let malformed = |detail: String| (TokenProblem::Malformed, detail);
        let user = string(payload, "sub").ok_or_else(|| malformed("no `sub` string".to_owned()))?;
        let user = UserId::parse(user).map_err(|e| malformed(format!("`sub` is not a user id: {e}")))?;
        let session = self
            .session_id
            .iter()
            .find_map(|path| lookup(payload, path)?.as_str())
            .ok_or_else(|| malformed("no session id (`sid`)".to_owned()))?;
        let session = SessionId::parse(session).map_err(|e| malformed(format!("the session id is invalid: {e}")))?;

        let (login, factors, level) = match self.login {
            Login::Oidc => {
                let login = match payload.get("auth_time") {
                    None | Some(Value::Null) => iat,
                    Some(value) => {
                        numeric_date(value).ok_or_else(|| malformed("`auth_time` is not a time".to_owned()))?
                    }
                };
                let amr: Vec<&str> = match payload.get("amr") {
                    Some(Value::Array(values)) => values.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                let factors = if amr.is_empty() {
                    AuthFactors::PASSWORD
                } else {
                    AuthFactors::from_amr(amr)
                };
                let derived = if factors.is_multi_factor() {
                    AuthLevel::Aal2
                } else {
                    AuthLevel::Aal1
                };
                let level = string(payload, "acr")
                    .and_then(acr_level)
                    .map_or(derived, |acr| acr.max(derived));
                (login, factors, level)
            }
            Login::ClerkFva => clerk_login(payload, iat).map_err(malformed)?,
        };
        if login > iat {
            return Err(malformed("the login time is after `iat`".to_owned()));
        }
        let mut claims = SessionClaims::from_provider(session, user, login).with_factors(factors, level);
        if let Some(role) = self.role.read(payload, hierarchy) {
            claims = claims.with_role(role);
        }
        if let Some(path) = &self.version {
            let version = lookup(payload, path)
                .and_then(Value::as_i64)
                .filter(|version| *version >= 0)
                .ok_or_else(|| malformed("no session version claim".to_owned()))?;
            claims = claims.with_session_version(version);
        }
        Ok(claims)
    }
}

/// Clerk's `fva`: the login is `iat` minus the first factor's age; a second
/// factor (age not -1) makes it password and OTP at AAL2. Without `fva`, a
/// password login at `iat`.
fn clerk_login(payload: &Map<String, Value>, iat: Timestamp) -> Result<(Timestamp, AuthFactors, AuthLevel), String> {
    let Some(fva) = payload.get("fva") else {
        return Ok((iat, AuthFactors::PASSWORD, AuthLevel::Aal1));
    };
    let ages = fva
        .as_array()
        .filter(|ages| ages.len() == 2)
        .and_then(|ages| Some((ages[0].as_i64()?, ages[1].as_i64()?)))
        .ok_or("`fva` is not two integers")?;
    let (first, second) = ages;
    let minutes = u64::try_from(first).map_err(|_| "`fva[0]` is negative")?;
    let login = iat.saturating_sub(Duration::from_secs(minutes.saturating_mul(60)));
    if second == -1 {
        Ok((login, AuthFactors::PASSWORD, AuthLevel::Aal1))
    } else if second >= 0 {
        Ok((login, AuthFactors::PASSWORD.union(AuthFactors::OTP), AuthLevel::Aal2))
    } else {
        Err("`fva[1]` is neither -1 nor an age".to_owned())
    }
}

/// The level an `acr` value names, if it names one.
fn acr_level(acr: &str) -> Option<AuthLevel> {
    let acr = acr.trim().to_ascii_lowercase();
    let last = acr.rsplit([':', '/', '#']).next().unwrap_or(&acr);
    match last {
        "aal3" | "3" | "phrh" => Some(AuthLevel::Aal3),
        "aal2" | "2" | "phr" | "multi-factor" | "mfa" => Some(AuthLevel::Aal2),
        "aal1" | "1" | "0" => Some(AuthLevel::Aal1),
        _ => None,
    }
}

/// The value at `path`, if every key along it is there.
pub(crate) fn lookup<'a>(payload: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter()
        .try_fold(payload.get(first)?, |value, key| value.as_object()?.get(key))
}

/// The string claim `name`, if it is one.
pub(crate) fn string<'a>(payload: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    payload.get(name)?.as_str()
}

/// A JWT NumericDate: seconds since the epoch, an integer or not (RFC 7519 §2).
pub(crate) fn numeric_date(value: &Value) -> Option<Timestamp> {
    let micros = match value {
        Value::Number(number) => match number.as_i64() {
            Some(seconds) => seconds.checked_mul(1_000_000)?,
            None => {
                let seconds = number.as_f64()?;
                if !seconds.is_finite() || seconds.abs() > 1e12 {
                    return None;
                }
                // Bounded above: the product fits an i64.
                #[allow(clippy::cast_possible_truncation)]
                let micros = (seconds * 1e6).floor() as i64;
                micros
            }
        },
        _ => return None,
    };
    Timestamp::from_unix_micros(micros).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("the tests pass objects"),
        }
    }

    fn iat() -> Timestamp {
        "2026-11-29T12:00:00Z".parse().unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn clerk_fva_counts_back_from_iat() {
        let claims = ClaimLayout::clerk()
            .claims(
                &payload(serde_json::json!({
                    "sub": "user_2abc", "sid": "sess_2xyz", "fva": [30, 5], "o": {"rol": "admin"}
                })),
                iat(),
                &RoleHierarchy::default(),
            )
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            claims.authenticated_at(),
            iat().saturating_sub(Duration::from_secs(30 * 60))
        );
        assert_eq!(claims.issued_at(), claims.authenticated_at());
        assert_eq!(claims.auth_level(), AuthLevel::Aal2);
        assert!(claims.factors().is_multi_factor());
        assert_eq!(claims.role(), Some(&Role::admin()));
        assert_eq!(claims.session_version(), None);

        let single = ClaimLayout::clerk()
            .claims(
                &payload(serde_json::json!({"sub": "u", "sid": "s", "fva": [2, -1], "org_role": "org:member"})),
                iat(),
                &RoleHierarchy::default(),
            )
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(single.auth_level(), AuthLevel::Aal1);
        assert_eq!(
            single.role(),
            Some(&Role::parse("member").unwrap_or_else(|_| unreachable!()))
        );
        for bad in [
            serde_json::json!([1]),
            serde_json::json!([-1, -1]),
            serde_json::json!("x"),
        ] {
            let error = ClaimLayout::clerk()
                .claims(
                    &payload(serde_json::json!({"sub": "u", "sid": "s", "fva": bad})),
                    iat(),
                    &RoleHierarchy::default(),
                )
                .unwrap_err();
            assert_eq!(error.0, TokenProblem::Malformed);
        }
    }

    #[test]
    fn role_arrays_give_the_highest_known_role() {
        let keycloak = payload(serde_json::json!({
            "sub": "f81d4fae-7dec-11d0-a765-00a0c91e6bf6", "sid": "s", "auth_time": 1_795_000_000,
            "realm_access": {"roles": ["offline_access", "admin", "user", "default-roles-acme"]},
            "amr": ["pwd", "otp"], "acr": "1"
        }));
        let claims = ClaimLayout::keycloak()
            .claims(&keycloak, iat(), &RoleHierarchy::default())
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(claims.role(), Some(&Role::admin()));
        assert_eq!(claims.auth_level(), AuthLevel::Aal2, "amr's two factors outrank acr 1");
        let auth0 = payload(serde_json::json!({
            "sub": "auth0|abc", "sid": "s", "https://example.com/roles": ["user"],
            "acr": "http://schemas.openid.net/pape/policies/2007/06/multi-factor"
        }));
        let claims = ClaimLayout::auth0("https://example.com/")
            .claims(&auth0, iat(), &RoleHierarchy::default())
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            (claims.role(), claims.auth_level()),
            (Some(&Role::user()), AuthLevel::Aal2)
        );
        assert_eq!(claims.authenticated_at(), iat(), "no auth_time: the login is iat");
        let ory = payload(serde_json::json!({"sub": "u", "sid": "s", "ext": {"role": "admin"}, "acr": "aal3"}));
        let claims = ClaimLayout::ory()
            .claims(&ory, iat(), &RoleHierarchy::default())
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            (claims.role(), claims.auth_level()),
            (Some(&Role::admin()), AuthLevel::Aal3)
        );
        let plain = ClaimLayout::oidc()
            .claims(&ory, iat(), &RoleHierarchy::default())
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(plain.role(), None);
    }

    #[test]
    fn missing_or_mistyped_claims_are_malformed() {
        let layout = ClaimLayout::oidc().version_claim(["zt_ver"]);
        for bad in [
            serde_json::json!({"sid": "s", "zt_ver": 1}),
            serde_json::json!({"sub": 42, "sid": "s", "zt_ver": 1}),
            serde_json::json!({"sub": "u", "zt_ver": 1}),
            serde_json::json!({"sub": "u", "sid": "s"}),
            serde_json::json!({"sub": "u", "sid": "s", "zt_ver": -1}),
            serde_json::json!({"sub": "u", "sid": "s", "zt_ver": 1, "auth_time": "yesterday"}),
            serde_json::json!({"sub": "u", "sid": "s", "zt_ver": 1, "auth_time": 1_900_000_000}),
            serde_json::json!({"sub": "bad user", "sid": "s", "zt_ver": 1}),
        ] {
            let error = layout.claims(&payload(bad.clone()), iat(), &RoleHierarchy::default());
            assert_eq!(error.map(|_| ()).unwrap_err().0, TokenProblem::Malformed, "{bad}");
        }
        let good = layout
            .claims(
                &payload(serde_json::json!({"sub": "u", "sid": "s", "zt_ver": 3})),
                iat(),
                &RoleHierarchy::default(),
            )
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(good.session_version(), Some(3));
    }

    #[test]
    fn numeric_dates() {
        assert_eq!(
            numeric_date(&serde_json::json!(0)),
            Some(Timestamp::from_unix_micros(0).unwrap_or_else(|_| unreachable!()))
        );
        assert_eq!(
            numeric_date(&serde_json::json!(1.5)),
            Some(Timestamp::from_unix_micros(1_500_000).unwrap_or_else(|_| unreachable!()))
        );
        for bad in [
            serde_json::json!("1"),
            serde_json::json!(1e300),
            serde_json::json!(i64::MAX),
            serde_json::json!(null),
        ] {
            assert_eq!(numeric_date(&bad), None, "{bad}");
        }
    }
}
