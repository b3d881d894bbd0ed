//! A stand-in identity provider, for the examples only: it signs session
//! tokens (JWTs) with an Ed25519 key generated at start and serves its JWKS
//! over HTTP on 127.0.0.1, as Clerk, Auth0 or any OIDC provider would.
//!
//! It signs in anyone who asks, as any user, with MFA if they say so: it
//! stands in for a provider's real sign-in, for the examples and tests only.
//!
//! Its tokens are laid out as Auth0's are ([`ClaimLayout::auth0`]), with the
//! user's role under a namespace, and carry zt's session version in a custom
//! claim, as an app that controls its provider's token template can add
//! (a Clerk session-token claim, an Auth0 Action, a Keycloak mapper). A
//! provider that cannot add it still works: the checks then compare the login
//! time with the instant the user last changed.

use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use zt_session::{ClaimLayout, JwksSource, KeySet, TokenVerifier, UserStore};
use zt_types::{SessionClaims, Timestamp, UserId};

use crate::server::{Limits, Response, Server};

/// The audience of the provider's tokens: this app.
pub const AUDIENCE: &str = "zt-examples";

/// The namespace of the provider's custom claims.
pub const NAMESPACE: &str = "https://zt.example";

/// How long a token is good for.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The PKCS#8 prefix of an Ed25519 private key (RFC 8410); the seed follows.
const ED25519_PKCS8: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Signs sessions, and serves the public key that verifies them.
pub struct IdentityProvider {
    users: UserStore,
    key: EncodingKey,
    kid: String,
    jwks: String,
    issuer: String,
    /// Maps this provider's tokens onto claims, with the key set in hand.
    verifier: TokenVerifier,
    /// Serves the JWKS; dropping it stops serving.
    server: Server,
}

impl std::fmt::Debug for IdentityProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityProvider")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .field("jwks_server", &self.server)
            .finish_non_exhaustive()
    }
}

/// How a user signs in.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignIn {
    /// Whether a second factor was used.
    pub mfa: bool,
    /// How long ago the login happened, to stage a stale session; at most
    /// [`SignIn::MAX_MINUTES_AGO`].
    pub minutes_ago: u64,
}

impl SignIn {
    /// The oldest login that can be staged: 30 days, in minutes.
    pub const MAX_MINUTES_AGO: u64 = 30 * 24 * 60;
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl IdentityProvider {
    /// A provider that reads users from `users`, with a fresh Ed25519 key,
    /// serving its JWKS at `http://127.0.0.1:<port>/.well-known/jwks.json`.
    pub fn start(users: UserStore) -> Result<Self, BoxError> {
        let mut seed = [0_u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| format!("no randomness for the signing key: {e}"))?;
        let key = EncodingKey::from_ed_der(&[&ED25519_PKCS8[..], &seed].concat());
        let kid = format!("idp-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA)?;
        jwk.common.key_id = Some(kid.clone());
        let jwks = serde_json::json!({ "keys": [jwk] }).to_string();

        let document = jwks.clone();
        let server = Server::bind("127.0.0.1:0", Limits::new().max_connections(16), move |request| {
            if request.method() == "GET" && request.path() == "/.well-known/jwks.json" {
                Response::new(200).with_body("application/json", document.clone())
            } else {
                Response::new(404).with_body("application/json", "{}")
            }
        })?;
        let issuer = format!("http://{}", server.address());
        let verifier = Self::verifier_for(&issuer, JwksSource::keys(KeySet::from_json(&jwks)?))?;
        Ok(Self {
            users,
            key,
            kid,
            jwks,
            issuer,
            verifier,
            server,
        })
    }

    /// Where the tokens' layout puts each claim.
    pub fn layout() -> ClaimLayout {
        ClaimLayout::auth0(NAMESPACE).version_claim([format!("{NAMESPACE}/session_version")])
    }

    fn verifier_for(issuer: &str, keys: JwksSource) -> Result<TokenVerifier, zt_session::Error> {
        TokenVerifier::builder(issuer, keys)
            .audience([AUDIENCE])
            .layout(Self::layout())
            .build()
    }

    /// A verifier of this provider's tokens, as a relying party configures
    /// one: the key set fetched from [`IdentityProvider::jwks_url`].
    pub fn verifier(&self) -> Result<TokenVerifier, zt_session::Error> {
        Self::verifier_for(&self.issuer, JwksSource::url(&self.jwks_url())?)
    }

    /// The issuer, `http://127.0.0.1:<port>`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Where the JWKS is served.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.issuer)
    }

    /// The JWKS document.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// Signs `user` in: the token carries the user's role and session
    /// version of this moment. Returns the bearer token and its claims.
    pub fn sign_in(&self, user: &UserId, how: SignIn) -> Result<(String, SessionClaims), BoxError> {
        let state = self.users.user_state(user)?.ok_or("no such user")?;
        if how.minutes_ago > SignIn::MAX_MINUTES_AGO {
            return Err(format!("minutes_ago {} is beyond {}", how.minutes_ago, SignIn::MAX_MINUTES_AGO).into());
        }
        let now = Timestamp::now().unix_micros() / 1_000_000;
        // Bounded above, so none of these fail; checked all the same.
        let login = how
            .minutes_ago
            .checked_mul(60)
            .and_then(|seconds| i64::try_from(seconds).ok())
            .and_then(|seconds| now.checked_sub(seconds))
            .ok_or("minutes_ago out of range")?;
        let expires = i64::try_from(TOKEN_LIFETIME.as_secs())
            .ok()
            .and_then(|lifetime| now.checked_add(lifetime))
            .ok_or("token lifetime out of range")?;
        let amr = if how.mfa { vec!["pwd", "otp"] } else { vec!["pwd"] };
        let claims = serde_json::json!({
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": user.as_str(),
            "sid": format!("sess_{}", uuid::Uuid::new_v4().simple()),
            "iat": now,
            "nbf": now,
            "exp": expires,
            "auth_time": login,
            "amr": amr,
            format!("{NAMESPACE}/roles"): [state.role().as_str()],
            format!("{NAMESPACE}/session_version"): state.session_version().unwrap_or(0),
        });
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.key)?;
        let claims = self.verifier.verify(&token)?.into_claims();
        Ok((token, claims))
    }
}
