//! Key sets: parsed from a JWKS document, or fetched from a URL over HTTPS
//! and cached, following key rotation by `kid`.

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use zt_types::{Clock, Timestamp};

use crate::error::{Error, ErrorKind, Result};

/// The largest JWKS document read, in bytes.
pub(crate) const MAX_JWKS_BYTES: u64 = 256 * 1024;
/// The most keys of one set that are kept.
pub(crate) const MAX_KEYS: usize = 64;
/// The longest key id accepted, in bytes.
pub(crate) const MAX_KID_LEN: usize = 256;
/// The longest JWKS URL accepted, in bytes.
const MAX_URL_LEN: usize = 2048;

/// One verification key: its id and the one algorithm it verifies.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    pub(crate) kid: Option<String>,
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A provider's public signing keys, parsed from a JWKS document
/// (RFC 7517).
///
/// Each key verifies exactly one algorithm: its JWK `alg`, or, without one,
/// its type's usual algorithm (RSA: RS256; EC P-256: ES256; EC P-384: ES384;
/// OKP Ed25519: EdDSA). Symmetric (`oct`) keys, encryption keys (`use: enc`)
/// and keys of unknown types are skipped, so an HMAC token can never be
/// checked against a public key. At most 64 keys are kept.
///
/// ```
/// use zt_session::KeySet;
///
/// let jwks = r#"{"keys": [
///     {"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
///     {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"}
/// ]}"#;
/// let keys = KeySet::from_json(jwks)?;
/// assert_eq!(keys.key_ids(), ["k1"]);
/// # Ok::<(), zt_session::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl KeySet {
    /// Parses a JWKS document, `{"keys": [...]}`, of at most 256 KiB. Fails
    /// on a document that is not one; keys it cannot use are skipped and
    /// logged.
    pub fn from_json(jwks: &str) -> Result<Self> {
        if jwks.len() as u64 > MAX_JWKS_BYTES {
            return Err(Error::new(
                ErrorKind::KeysUnavailable,
                format!("key set is over {MAX_JWKS_BYTES} bytes"),
            ));
        }
        let document: Value = serde_json::from_str(jwks)
            .map_err(|e| Error::new(ErrorKind::KeysUnavailable, "key set is not JSON").with_source(e))?;
        let Some(entries) = document.get("keys").and_then(Value::as_array) else {
            return Err(Error::new(ErrorKind::KeysUnavailable, "key set has no `keys` array"));
        };
        let mut keys = Vec::new();
        for entry in entries {
            if keys.len() == MAX_KEYS {
                tracing::warn!(
                    max = MAX_KEYS,
                    "key set has more keys than zt keeps; the rest are ignored"
                );
                break;
            }
            match usable(entry) {
                Ok(Some(key)) => keys.push(key),
                Ok(None) => {}
                Err(reason) => tracing::warn!(reason, "a key of the key set is skipped"),
            }
        }
        Ok(Self { keys })
    }

    /// Reads and parses a JWKS file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let metadata = std::fs::metadata(path).map_err(|e| {
            Error::new(
                ErrorKind::KeysUnavailable,
                format!("cannot read key set {}", path.display()),
            )
            .with_source(e)
        })?;
        if metadata.len() > MAX_JWKS_BYTES {
            return Err(Error::new(
                ErrorKind::KeysUnavailable,
                format!("key set {} is over {MAX_JWKS_BYTES} bytes", path.display()),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::KeysUnavailable,
                format!("cannot read key set {}", path.display()),
            )
            .with_source(e)
        })?;
        Self::from_json(&text)
    }

    /// The ids of the usable keys, in document order; keys without an id are left out.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().filter_map(|key| key.kid.as_deref()).collect()
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key for a token with `kid` and header `alg`: of the keys with that
    /// id, the one for `alg`, else the first (whose algorithm then fails the
    /// check). A token without `kid` takes the only key of a one-key set.
    pub(crate) fn find(&self, kid: Option<&str>, alg: &str) -> Option<&VerifyingKey> {
        match kid {
            Some(kid) => {
                let mut matching = self.keys.iter().filter(|key| key.kid.as_deref() == Some(kid));
                let first = matching.clone().next();
                matching.find(|key| algorithm_name(key.algorithm) == alg).or(first)
            }
            None => match self.keys.as_slice() {
                [only] => Some(only),
                _ => None,
            },
        }
    }
}

/// The key in `entry`, `None` for one that is not for verifying signatures
/// with a public key, or why it cannot be used.
fn usable(entry: &Value) -> std::result::Result<Option<VerifyingKey>, &'static str> {
    let kty = entry.get("kty").and_then(Value::as_str).ok_or("no `kty`")?;
    if !matches!(kty, "RSA" | "EC" | "OKP") {
        // `oct` (a shared secret) and unknown types never verify a token here.
        return Ok(None);
    }
    let kid = match entry.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) if kid.len() <= MAX_KID_LEN => Some(kid.clone()),
        Some(_) => return Err("`kid` is not a string of at most 256 bytes"),
    };
    let jwk: Jwk = serde_json::from_value(entry.clone()).map_err(|_| "not a JWK jsonwebtoken can read")?;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return Ok(None);
    }
    let algorithm = match jwk.common.key_algorithm {
        Some(alg) => match signing_algorithm(alg) {
            Some(algorithm) => algorithm,
            // An encryption algorithm (RSA-OAEP and the like): not a signing key.
            None => return Ok(None),
        },
        None => match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return Err("an EC curve other than P-256 or P-384"),
            },
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => Algorithm::EdDSA,
            _ => return Err("a key type and curve without a signing algorithm"),
        },
    };
    let family_fits = match (&jwk.algorithm, algorithm) {
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => ec.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => ec.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => okp.curve == EllipticCurve::Ed25519,
        _ => false,
    };
    if !family_fits {
        return Err("`alg` does not fit the key's type");
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "the key's parameters are invalid")?;
    Ok(Some(VerifyingKey { kid, algorithm, key }))
}

/// The signing algorithm a JWK `alg` names; `None` for the rest (HMAC
/// included: a key set never holds a shared secret for us).
fn signing_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// The JOSE name of an asymmetric algorithm, as a token header spells it.
/// Key sets and verifiers hold no other, so the rest share a name no header
/// can match to a key.
pub(crate) fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "(symmetric)",
    }
}

/// Where a verifier's keys come from: a key set given at start, or a JWKS
/// URL fetched over HTTPS, cached and refetched.
///
/// A remote key set is fetched at the first verification, then again when
/// it is older than the cache TTL (default 10 minutes), or when a token names
/// a `kid` the set does not hold: the provider rotated its keys. That refetch
/// happens at most once per refetch interval (default 30 seconds); a token
/// whose `kid` is still unknown is denied. A fetch that fails while the set
/// is expired denies every token (`SESSION_CHECK_FAILED`) until one succeeds:
/// keys are never trusted past their TTL.
///
/// The URL must be `https://`; plain `http://` is accepted only for a
/// loopback IP address (a sidecar, or a test). Redirects are not followed;
/// responses are limited to 256 KiB and 10 seconds.
#[derive(Debug, Clone)]
pub struct JwksSource {
    inner: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Static(Arc<KeySet>),
    Url(RemoteConfig),
}

#[derive(Debug, Clone)]
pub(crate) struct RemoteConfig {
    url: String,
    loopback_http: bool,
    ttl: Duration,
    refetch_interval: Duration,
    timeout: Duration,
}

impl JwksSource {
    /// The default cache TTL of a remote key set: 10 minutes.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(600);
    /// The default minimum interval between two fetches: 30 seconds.
    pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
    /// The default time limit of one fetch: 10 seconds.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// A fixed key set.
    pub fn keys(keys: KeySet) -> Self {
        Self {
            inner: Source::Static(Arc::new(keys)),
        }
    }

    /// A fixed key set, parsed from a JWKS document.
    pub fn json(jwks: &str) -> Result<Self> {
        KeySet::from_json(jwks).map(Self::keys)
    }

    /// A fixed key set, read from a JWKS file.
    pub fn file(path: impl AsRef<Path>) -> Result<Self> {
        KeySet::from_file(path).map(Self::keys)
    }

    /// A key set fetched from `url`, such as
    /// `https://<your-app>.clerk.accounts.dev/.well-known/jwks.json`.
    /// Fails for a URL that is not `https://` (or `http://` to a loopback IP).
    pub fn url(url: &str) -> Result<Self> {
        let invalid = |why: &str| Error::new(ErrorKind::InvalidConfig, format!("jwks url {why}"));
        if url.len() > MAX_URL_LEN || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("is over 2048 bytes or holds whitespace"));
        }
        let loopback_http = if url.starts_with("https://") {
            false
        } else if let Some(rest) = url.strip_prefix("http://") {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if authority.contains('@') {
                // `http://127.0.0.1:80@elsewhere/` goes elsewhere.
                return Err(invalid("must not hold credentials"));
            }
            let host = match authority.strip_prefix('[') {
                Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
                None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
            };
            if !host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
                return Err(invalid("must be https:// (http:// only to a loopback IP address)"));
            }
            true
        } else {
            return Err(invalid("must be https://"));
        };
        Ok(Self {
            inner: Source::Url(RemoteConfig {
                url: url.to_owned(),
                loopback_http,
                ttl: Self::DEFAULT_TTL,
                refetch_interval: Self::DEFAULT_REFETCH_INTERVAL,
                timeout: Self::DEFAULT_TIMEOUT,
            }),
        })
    }

    /// Keeps a fetched key set for `ttl`, then fetches it again. No effect
    /// on a fixed set.
    #[must_use]
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        if let Source::Url(config) = &mut self.inner {
            config.ttl = ttl;
        }
        self
    }

    /// Fetches at most once per `interval`, whatever the tokens' `kid`s. No
    /// effect on a fixed set.
    #[must_use]
    pub fn refetch_interval(mut self, interval: Duration) -> Self {
        if let Source::Url(config) = &mut self.inner {
            config.refetch_interval = interval;
        }
        self
    }

    /// Gives up on a fetch after `timeout`. No effect on a fixed set.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        if let Source::Url(config) = &mut self.inner {
            config.timeout = timeout;
        }
        self
    }

    pub(crate) fn into_keys(self) -> Keys {
        match self.inner {
            Source::Static(keys) => Keys::Static(keys),
            Source::Url(config) => Keys::Remote(Box::new(Remote::new(config))),
        }
    }
}

/// What a verification found for a token's key.
#[derive(Debug)]
pub(crate) enum KeyLookup {
    Found(Arc<KeySet>),
    Unknown,
    Unavailable(Error),
}

/// A verifier's keys.
#[derive(Debug)]
pub(crate) enum Keys {
    Static(Arc<KeySet>),
    Remote(Box<Remote>),
}

impl Keys {
    /// A key set that holds a key for `kid`, fetching as the source allows.
    pub(crate) fn lookup(&self, kid: Option<&str>, alg: &str, clock: &dyn Clock) -> KeyLookup {
        match self {
            Self::Static(keys) if keys.find(kid, alg).is_some() => KeyLookup::Found(Arc::clone(keys)),
            Self::Static(_) => KeyLookup::Unknown,
            Self::Remote(remote) => remote.lookup(kid, alg, clock),
        }
    }
}

#[derive(Debug, Default)]
struct Cached {
    keys: Option<Arc<KeySet>>,
    fetched_at: Option<Timestamp>,
    last_attempt: Option<Timestamp>,
    last_error: Option<String>,
}

/// A remote key set and its cache.
#[derive(Debug)]
pub(crate) struct Remote {
    config: RemoteConfig,
    agent: ureq::Agent,
    cached: RwLock<Cached>,
    /// Held while fetching, so that one thread fetches and the others wait for it.
    fetching: Mutex<()>,
}

impl Remote {
    fn new(config: RemoteConfig) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .https_only(!config.loopback_http)
            .max_redirects(0)
            .user_agent(concat!("zt-session/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self {
            config,
            agent,
            cached: RwLock::new(Cached::default()),
            fetching: Mutex::new(()),
        }
    }

    fn fresh(&self, cached: &Cached, now: Timestamp) -> bool {
        cached
            .fetched_at
            .is_some_and(|at| now.duration_since(at).is_some_and(|age| age < self.config.ttl))
    }

    fn may_fetch(&self, cached: &Cached, now: Timestamp) -> bool {
        cached.last_attempt.is_none_or(|at| {
            // A clock that went backwards allows a fetch rather than none for ever.
            // The interval never outlasts the TTL, or an expired set could not be refetched.
            let interval = self.config.refetch_interval.min(self.config.ttl);
            now.duration_since(at).is_none_or(|since| since >= interval)
        })
    }

    fn lookup(&self, kid: Option<&str>, alg: &str, clock: &dyn Clock) -> KeyLookup {
        {
            let cached = self.cached.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(keys) = &cached.keys
                && self.fresh(&cached, clock.now())
                && keys.find(kid, alg).is_some()
            {
                return KeyLookup::Found(Arc::clone(keys));
            }
        }
        let _fetching = self.fetching.lock().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have fetched while this one waited.
        let now = clock.now();
        let (fresh, may_fetch) = {
            let cached = self.cached.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(keys) = &cached.keys
                && self.fresh(&cached, now)
                && keys.find(kid, alg).is_some()
            {
                return KeyLookup::Found(Arc::clone(keys));
            }
            (self.fresh(&cached, now), self.may_fetch(&cached, now))
        };
        if !may_fetch {
            let cached = self.cached.read().unwrap_or_else(PoisonError::into_inner);
            return if fresh {
                KeyLookup::Unknown
            } else {
                KeyLookup::Unavailable(Error::new(
                    ErrorKind::KeysUnavailable,
                    format!(
                        "key set from {} is expired and the last fetch failed: {}",
                        self.config.url,
                        cached.last_error.as_deref().unwrap_or("no fetch yet")
                    ),
                ))
            };
        }
        let fetched = self.fetch();
        let mut cached = self.cached.write().unwrap_or_else(PoisonError::into_inner);
        cached.last_attempt = Some(now);
        match fetched {
            Ok(keys) => {
                let keys = Arc::new(keys);
                cached.keys = Some(Arc::clone(&keys));
                cached.fetched_at = Some(now);
                cached.last_error = None;
                tracing::info!(url = %self.config.url, keys = keys.len(), "fetched the identity provider's key set");
                if keys.find(kid, alg).is_some() {
                    KeyLookup::Found(keys)
                } else {
                    KeyLookup::Unknown
                }
            }
            Err(error) => {
                cached.last_error = Some(error.to_string());
                tracing::warn!(url = %self.config.url, error = %error, "the identity provider's key set could not be fetched");
                KeyLookup::Unavailable(error)
            }
        }
    }

    fn fetch(&self) -> Result<KeySet> {
        let unavailable = |why: &str| {
            Error::new(
                ErrorKind::KeysUnavailable,
                format!("key set from {} {why}", self.config.url),
            )
        };
        let mut response = self
            .agent
            .get(&self.config.url)
            .header("Accept", "application/json")
            .call()
            .map_err(|e| unavailable("could not be fetched").with_source(e))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(unavailable(&format!("answered HTTP {status}")));
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_JWKS_BYTES)
            .read_to_string()
            .map_err(|e| unavailable("could not be read").with_source(e))?;
        KeySet::from_json(&body)
    }
}
