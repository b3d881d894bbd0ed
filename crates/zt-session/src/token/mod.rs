//! Identity providers' tokens: a JWT verified against the provider's key
//! set, its claims checked and mapped onto [`SessionClaims`].

mod jwks;
mod layout;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use zt_types::{Clock, SessionClaims, SessionHash, SystemClock, Timestamp, UserId};

use crate::denial::{Denial, DenialReason, TokenProblem};
use crate::error::{Error, ErrorKind, Result};
use crate::role::RoleHierarchy;

pub use jwks::{JwksSource, KeySet};
pub use layout::{ClaimLayout, RoleClaim};

use jwks::{KeyLookup, Keys, MAX_KID_LEN, algorithm_name};
use layout::{numeric_date, string};

/// Which audiences a token may be for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Audience {
    /// `aud` (a string or an array of strings) must name at least one of these.
    Any(Vec<String>),
    /// `aud` is not checked: for tokens that carry none, such as Clerk's
    /// session tokens, whose `azp` is checked instead
    /// ([`VerifierBuilder::authorized_parties`]).
    Unchecked,
}

/// Verifies an identity provider's JWTs (Clerk, Auth0, Ory, Keycloak, any
/// OIDC provider) and maps their claims onto [`SessionClaims`] for the
/// [`Validator`](crate::Validator). Cheap to clone and to share between
/// threads; clones share the key cache.
///
/// A token passes when, in this order (the first failure is the denial's
/// [`TokenProblem`]):
///
/// 1. it is a compact JWS no longer than the bound (default 8 KiB), with a
///    JSON header whose `alg` is not `none` and that has no `crit`;
/// 2. `alg` is one of the allowed asymmetric algorithms (never HMAC);
/// 3. the key set holds its `kid` (an unknown `kid` refetches a remote set
///    once, rate-limited), and that key's algorithm, from the key set, is the
///    token's `alg`: a token cannot choose how it is checked;
/// 4. the signature verifies (`jsonwebtoken`, RustCrypto);
/// 5. `iss` is the issuer; `aud` names an allowed audience; `azp`, if
///    configured, an authorized party;
/// 6. `exp` is after now, `nbf` and `iat` no later than now, each within the
///    leeway (default 60 seconds, at most 5 minutes);
/// 7. the [`ClaimLayout`] finds `sub`, the session id and the login time.
///
/// A denial is [`DenialReason::InvalidToken`]: `SESSION_EXPIRED` for an
/// expired token, `SESSION_INVALID` otherwise; a key set that cannot be
/// fetched denies with `SESSION_CHECK_FAILED`.
///
/// ```
/// use zt_session::{ClaimLayout, JwksSource, TokenVerifier};
///
/// let verifier = TokenVerifier::builder(
///     "https://clerk.example.com",
///     JwksSource::url("https://clerk.example.com/.well-known/jwks.json")?,
/// )
/// .layout(ClaimLayout::clerk())
/// .skip_audience_check()
/// .authorized_parties(["https://app.example.com"])
/// .build()?;
/// let denial = verifier.verify("not a token").unwrap_err();
/// assert_eq!(denial.code().reason(), "SESSION_INVALID");
/// # Ok::<(), zt_session::Error>(())
/// ```
#[derive(Clone)]
pub struct TokenVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audience: Audience,
    authorized_parties: Vec<String>,
    keys: Keys,
    layout: ClaimLayout,
    hierarchy: RoleHierarchy,
    leeway: Duration,
    max_token_len: usize,
    algorithms: Vec<Algorithm>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("keys", &self.inner.keys)
            .field("leeway", &self.inner.leeway)
            .finish_non_exhaustive()
    }
}

/// Configures a [`TokenVerifier`]; see [`TokenVerifier::builder`].
#[derive(Debug)]
pub struct VerifierBuilder {
    issuer: String,
    keys: JwksSource,
    audience: Option<Audience>,
    authorized_parties: Vec<String>,
    layout: ClaimLayout,
    hierarchy: RoleHierarchy,
    leeway: Duration,
    max_token_len: usize,
    algorithms: Option<Vec<String>>,
    clock: Arc<dyn Clock>,
}

/// The asymmetric algorithms a verifier accepts by default.
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl TokenVerifier {
    /// The default leeway for `exp`, `nbf` and `iat`: 60 seconds.
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
    /// The largest leeway accepted: 5 minutes.
    pub const MAX_LEEWAY: Duration = Duration::from_secs(300);
    /// The default bound on a token's length: 8 KiB.
    pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;
    /// The largest bound accepted: 64 KiB.
    pub const MAX_TOKEN_LEN: usize = 64 * 1024;

    /// A verifier of tokens from `issuer` (compared with `iss` exactly),
    /// signed by the keys of `keys`. Choose the audience
    /// ([`VerifierBuilder::audience`] or [`VerifierBuilder::skip_audience_check`])
    /// before [`VerifierBuilder::build`]. Defaults: [`ClaimLayout::oidc`], the
    /// default [`RoleHierarchy`], 60 seconds of leeway, 8 KiB tokens, every
    /// asymmetric algorithm, the system clock.
    pub fn builder(issuer: &str, keys: JwksSource) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.to_owned(),
            keys,
            audience: None,
            authorized_parties: Vec::new(),
            layout: ClaimLayout::oidc(),
            hierarchy: RoleHierarchy::default(),
            leeway: Self::DEFAULT_LEEWAY,
            max_token_len: Self::DEFAULT_MAX_TOKEN_LEN,
            algorithms: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Verifies `token` (without its `Bearer ` prefix) and maps its claims.
    ///
    /// The denial is not logged here; [`Validator::validate_token`](crate::Validator::validate_token)
    /// and [`Validator::report`](crate::Validator::report) log and audit it.
    pub fn verify(&self, token: &str) -> std::result::Result<VerifiedToken, Denial> {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let reject = |problem: TokenProblem, detail: String| {
            Denial::new(DenialReason::InvalidToken(problem), now)
                .with_source(Error::new(ErrorKind::InvalidToken, detail))
        };
        let malformed = |detail: &str| reject(TokenProblem::Malformed, detail.to_owned());

        // 1. Shape and header.
        if token.len() > inner.max_token_len {
            return Err(malformed(&format!("token is over {} bytes", inner.max_token_len)));
        }
        if !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(malformed("token is not base64url text"));
        }
        let parts: Vec<&str> = token.split('.').collect();
        let [header, payload, _signature] = parts.as_slice() else {
            return Err(malformed("token does not have three parts"));
        };
        if header.is_empty() || payload.is_empty() {
            return Err(malformed("token has an empty part"));
        }
        let header = decode_object(header).map_err(|why| malformed(&format!("header {why}")))?;
        let alg = string(&header, "alg").ok_or_else(|| malformed("header has no `alg` string"))?;
        if alg.eq_ignore_ascii_case("none") {
            return Err(reject(TokenProblem::DisallowedAlgorithm, "`alg` is `none`".to_owned()));
        }
        if header.contains_key("crit") {
            return Err(malformed(
                "header has critical parameters (`crit`), which are not supported",
            ));
        }
        let kid = match header.get("kid") {
            None | Some(Value::Null) => None,
            Some(Value::String(kid)) if kid.len() <= MAX_KID_LEN => Some(kid.as_str()),
            Some(_) => return Err(malformed("header's `kid` is not a string of at most 256 bytes")),
        };
        // 2. Only asymmetric algorithms, as configured.
        if !inner.algorithms.iter().any(|allowed| algorithm_name(*allowed) == alg) {
            return Err(reject(
                TokenProblem::DisallowedAlgorithm,
                format!("`alg` {} is not allowed", bounded(alg)),
            ));
        }

        // 3. The key, and its algorithm.
        let keys = match inner.keys.lookup(kid, alg, inner.clock.as_ref()) {
            KeyLookup::Found(keys) => keys,
            KeyLookup::Unknown => {
                let detail = match kid {
                    Some(kid) => format!("no key `{}` in the key set", bounded(kid)),
                    None => "no `kid`, and the key set does not hold exactly one key".to_owned(),
                };
                return Err(reject(TokenProblem::UnknownKey, detail));
            }
            KeyLookup::Unavailable(error) => {
                return Err(Denial::new(DenialReason::CheckFailed, now).with_source(error));
            }
        };
        let Some(key) = keys.find(kid, alg) else {
            return Err(reject(TokenProblem::UnknownKey, "the key set changed".to_owned()));
        };
        if algorithm_name(key.algorithm) != alg {
            return Err(reject(
                TokenProblem::DisallowedAlgorithm,
                format!(
                    "`alg` {} is not its key's algorithm {}",
                    bounded(alg),
                    algorithm_name(key.algorithm)
                ),
            ));
        }

        // 4. The signature, and only the signature: the claims are ours to check.
        let mut validation = Validation::new(key.algorithm);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        validation.leeway = 0;
        let payload = match jsonwebtoken::decode::<Value>(token, &key.key, &validation) {
            Ok(data) => data.claims,
            Err(error) => {
                use jsonwebtoken::errors::ErrorKind as Jwt;
                let problem = match error.kind() {
                    Jwt::InvalidSignature
                    | Jwt::InvalidEcdsaKey
                    | Jwt::InvalidEddsaKey
                    | Jwt::InvalidRsaKey(_)
                    | Jwt::InvalidKeyFormat => TokenProblem::BadSignature,
                    Jwt::InvalidAlgorithm | Jwt::MissingAlgorithm | Jwt::InvalidAlgorithmName => {
                        TokenProblem::DisallowedAlgorithm
                    }
                    _ => TokenProblem::Malformed,
                };
                return Err(Denial::new(DenialReason::InvalidToken(problem), now).with_source(
                    Error::new(ErrorKind::InvalidToken, "the signature check failed").with_source(error),
                ));
            }
        };
        let Value::Object(payload) = payload else {
            return Err(malformed("payload is not a JSON object"));
        };

        // 5. Issuer and audience.
        match string(&payload, "iss") {
            Some(iss) if iss == inner.issuer => {}
            Some(iss) => {
                return Err(reject(
                    TokenProblem::WrongIssuer,
                    format!("`iss` {} is not the issuer", bounded(iss)),
                ));
            }
            None => return Err(reject(TokenProblem::WrongIssuer, "no `iss` string".to_owned())),
        }
        let identified = |denial: Denial| match identify(&payload) {
            Some((user, session)) => denial.for_session(&user, session),
            None => denial,
        };
        if let Audience::Any(allowed) = &inner.audience {
            let named = match payload.get("aud") {
                Some(Value::String(aud)) => allowed.contains(aud),
                Some(Value::Array(auds)) => auds
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|aud| allowed.iter().any(|a| a == aud)),
                _ => false,
            };
            if !named {
                return Err(identified(reject(
                    TokenProblem::WrongAudience,
                    "`aud` names no allowed audience".to_owned(),
                )));
            }
        }
        if !inner.authorized_parties.is_empty()
            && !string(&payload, "azp").is_some_and(|azp| inner.authorized_parties.iter().any(|p| p == azp))
        {
            return Err(identified(reject(
                TokenProblem::WrongAudience,
                "`azp` names no authorized party".to_owned(),
            )));
        }

        // 6. Time, within the leeway.
        let time = |name: &str, required: bool| match payload.get(name) {
            None | Some(Value::Null) if !required => Ok(None),
            Some(value) => numeric_date(value)
                .map(Some)
                .ok_or_else(|| malformed(&format!("`{name}` is not a time"))),
            None => Err(malformed(&format!("no `{name}`"))),
        };
        let exp = time("exp", true).map_err(identified)?.unwrap_or(now);
        let nbf = time("nbf", false).map_err(identified)?;
        let iat = time("iat", true).map_err(identified)?.unwrap_or(now);
        if now >= exp.saturating_add(inner.leeway) {
            return Err(identified(reject(
                TokenProblem::Expired,
                format!("`exp` {exp} has passed"),
            )));
        }
        let latest = now.saturating_add(inner.leeway);
        if let Some(nbf) = nbf
            && nbf > latest
        {
            return Err(identified(reject(
                TokenProblem::NotYetValid,
                format!("`nbf` {nbf} is in the future"),
            )));
        }
        if iat > latest {
            return Err(identified(reject(
                TokenProblem::NotYetValid,
                format!("`iat` {iat} is in the future"),
            )));
        }

        // 7. The claims zt needs.
        let claims = inner
            .layout
            .claims(&payload, iat, &inner.hierarchy)
            .map_err(|(problem, detail)| identified(reject(problem, detail)))?;
        Ok(VerifiedToken {
            claims,
            expires_at: exp,
            issued_at: iat,
            key_id: kid.map(str::to_owned),
            payload,
        })
    }
}

impl VerifierBuilder {
    /// Accepts tokens whose `aud` names at least one of `audiences`, such as
    /// the API identifier (Auth0) or the client id (an OIDC ID token).
    #[must_use]
    pub fn audience<S: Into<String>>(mut self, audiences: impl IntoIterator<Item = S>) -> Self {
        self.audience = Some(Audience::Any(audiences.into_iter().map(Into::into).collect()));
        self
    }

    /// Does not check `aud`: for tokens without one (Clerk's session tokens).
    /// Check `azp` instead with [`VerifierBuilder::authorized_parties`].
    #[must_use]
    pub fn skip_audience_check(mut self) -> Self {
        self.audience = Some(Audience::Unchecked);
        self
    }

    /// Accepts only tokens whose `azp` is one of `parties`, such as the
    /// origins of your frontends (Clerk recommends it). Default: not checked.
    #[must_use]
    pub fn authorized_parties<S: Into<String>>(mut self, parties: impl IntoIterator<Item = S>) -> Self {
        self.authorized_parties = parties.into_iter().map(Into::into).collect();
        self
    }

    /// Reads the claims where `layout` says. Default: [`ClaimLayout::oidc`].
    #[must_use]
    pub fn layout(mut self, layout: ClaimLayout) -> Self {
        self.layout = layout;
        self
    }

    /// Picks the highest of several roles in a token by `hierarchy`; use
    /// the validator's. Default: `user` < `admin`.
    #[must_use]
    pub fn role_hierarchy(mut self, hierarchy: RoleHierarchy) -> Self {
        self.hierarchy = hierarchy;
        self
    }

    /// How far past `exp`, and before `nbf` and `iat`, a token still passes,
    /// for clocks that disagree. Default: 60 seconds; at most 5 minutes.
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The longest token accepted, in bytes. Default: 8 KiB; between 512
    /// bytes and 64 KiB.
    #[must_use]
    pub fn max_token_len(mut self, max: usize) -> Self {
        self.max_token_len = max;
        self
    }

    /// Accepts only these algorithms, such as `["RS256"]`. Default: RS256,
    /// RS384, RS512, PS256, PS384, PS512, ES256, ES384 and EdDSA. HMAC
    /// algorithms and `none` are refused at [`VerifierBuilder::build`].
    #[must_use]
    pub fn algorithms<S: AsRef<str>>(mut self, algorithms: impl IntoIterator<Item = S>) -> Self {
        self.algorithms = Some(algorithms.into_iter().map(|a| a.as_ref().to_owned()).collect());
        self
    }

    /// Reads the time from `clock`. Default: [`SystemClock`].
    #[must_use]
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The verifier. Fails ([`ErrorKind::InvalidConfig`]) without an issuer,
    /// without an audience decision, with a leeway over 5 minutes, a token
    /// bound outside 512 bytes to 64 KiB, or an algorithm that is not an
    /// allowed asymmetric one.
    pub fn build(self) -> Result<TokenVerifier> {
        let invalid = |why: String| Error::new(ErrorKind::InvalidConfig, why);
        if self.issuer.is_empty() || self.issuer.len() > 2048 {
            return Err(invalid("token issuer must be 1 to 2048 bytes".to_owned()));
        }
        let audience = self.audience.ok_or_else(|| {
            invalid("choose the token audience: `audience([...])`, or `skip_audience_check()`".to_owned())
        })?;
        if matches!(&audience, Audience::Any(list) if list.is_empty()) {
            return Err(invalid("token audience list is empty".to_owned()));
        }
        if self.leeway > TokenVerifier::MAX_LEEWAY {
            return Err(invalid(format!(
                "token leeway {}s is over the {}s allowed",
                self.leeway.as_secs(),
                TokenVerifier::MAX_LEEWAY.as_secs()
            )));
        }
        if !(512..=TokenVerifier::MAX_TOKEN_LEN).contains(&self.max_token_len) {
            return Err(invalid(format!(
                "token length bound {} is outside 512..={}",
                self.max_token_len,
                TokenVerifier::MAX_TOKEN_LEN
            )));
        }
        let algorithms = match self.algorithms {
            None => ASYMMETRIC.to_vec(),
            Some(names) => {
                let mut algorithms = Vec::new();
                for name in names {
                    let algorithm = ASYMMETRIC.iter().find(|a| algorithm_name(**a) == name).ok_or_else(|| {
                        invalid(format!(
                            "token algorithm `{}` is not an allowed asymmetric one",
                            bounded(&name)
                        ))
                    })?;
                    algorithms.push(*algorithm);
                }
                if algorithms.is_empty() {
                    return Err(invalid("token algorithm list is empty".to_owned()));
                }
                algorithms
            }
        };
        Ok(TokenVerifier {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                audience,
                authorized_parties: self.authorized_parties,
                keys: self.keys.into_keys(),
                layout: self.layout,
                hierarchy: self.hierarchy,
                leeway: self.leeway,
                max_token_len: self.max_token_len,
                algorithms,
                clock: self.clock,
            }),
        })
    }
}

/// A token that verified, with its claims mapped.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    claims: SessionClaims,
    expires_at: Timestamp,
    issued_at: Timestamp,
    key_id: Option<String>,
    payload: Map<String, Value>,
}

impl VerifiedToken {
    /// The session claims, for [`Validator::validate`](crate::Validator::validate).
    pub fn claims(&self) -> &SessionClaims {
        &self.claims
    }

    /// The session claims, by value.
    pub fn into_claims(self) -> SessionClaims {
        self.claims
    }

    /// The token's `exp`.
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }

    /// The token's own `iat`, which a refresh moves; the claims' `issued_at`
    /// is the login time instead.
    pub fn token_issued_at(&self) -> Timestamp {
        self.issued_at
    }

    /// The `kid` of the key that signed it.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// Every claim of the payload, for the app's own.
    pub fn payload(&self) -> &Map<String, Value> {
        &self.payload
    }
}

/// A base64url JSON object (the token's length bounds it).
fn decode_object(part: &str) -> std::result::Result<Map<String, Value>, &'static str> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| "is not base64url")?;
    match serde_json::from_slice(&bytes).map_err(|_| "is not JSON")? {
        Value::Object(map) => Ok(map),
        _ => Err("is not a JSON object"),
    }
}

/// The user and session a verified payload names, for the denial's log line.
fn identify(payload: &Map<String, Value>) -> Option<(UserId, SessionHash)> {
    let user = UserId::parse(string(payload, "sub")?).ok()?;
    let session = zt_types::SessionId::parse(string(payload, "sid")?).ok()?;
    Some((user, session.hash()))
}

/// At most 64 characters of a token's text, for a denial's detail.
fn bounded(text: &str) -> String {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}
