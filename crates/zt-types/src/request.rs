//! Where a request came from.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::client_ip::{ClientIp, IpAnomaly};
use crate::ids::RequestId;
use crate::text::truncate_with_marker;

/// A client's `User-Agent`, cut to [`UserAgent::MAX_LEN`] bytes.
///
/// A user agent is client input that should never fail a request, so an
/// oversized value is truncated with [`crate::TRUNCATION_MARKER`] instead of
/// rejected. NUL, which PostgreSQL text cannot hold, becomes U+FFFD. Other
/// control characters are kept as given; logs neutralize them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub struct UserAgent(String);

impl UserAgent {
    /// The longest stored value, in bytes, marker included.
    pub const MAX_LEN: usize = 512;

    /// Takes a raw header value, truncating it to the bound.
    pub fn new(value: &str) -> Self {
        Self(truncate_with_marker(value, Self::MAX_LEN))
    }

    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SHA-256 of the value, for binding a session to a user agent without
    /// storing it.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl From<String> for UserAgent {
    fn from(value: String) -> Self {
        Self::new(&value)
    }
}

impl From<UserAgent> for String {
    fn from(value: UserAgent) -> Self {
        value.0
    }
}

impl fmt::Display for UserAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a request came from: the resolved client IP, the raw socket peer, the
/// user agent and the request id. Every field is optional, because background
/// jobs have none of them.
///
/// ```
/// use zt_types::{ClientIpResolver, RequestContext, RequestId};
///
/// let resolver = ClientIpResolver::from_cidrs(["10.0.0.0/8"])?;
/// let peer = "10.0.0.2".parse()?;
/// let context = RequestContext::new()
///     .with_resolved_ip(peer, resolver.resolve(peer, ["198.51.100.7"]))
///     .with_user_agent("curl/8.5")
///     .with_request_id(RequestId::parse("req-1")?);
/// assert_eq!(context.client_ip(), Some("198.51.100.7".parse()?));
/// assert_eq!(context.peer_ip(), Some(peer));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestContext {
    client_ip: Option<IpAddr>,
    peer_ip: Option<IpAddr>,
    user_agent: Option<UserAgent>,
    request_id: Option<RequestId>,
    ip_anomaly: Option<IpAnomaly>,
}

impl RequestContext {
    /// An empty context, as for a background job.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the socket peer and the client IP resolved from it.
    pub fn with_resolved_ip(mut self, peer: IpAddr, resolved: ClientIp) -> Self {
        self.peer_ip = Some(peer.to_canonical());
        self.client_ip = Some(resolved.ip);
        self.ip_anomaly = resolved.anomaly;
        self
    }

    /// Sets the client IP directly, when no proxy is involved: it is also the peer.
    pub fn with_ip(mut self, ip: IpAddr) -> Self {
        let ip = ip.to_canonical();
        self.peer_ip = Some(ip);
        self.client_ip = Some(ip);
        self
    }

    /// Sets the user agent from a raw header value; see [`UserAgent`].
    pub fn with_user_agent(mut self, user_agent: &str) -> Self {
        self.user_agent = Some(UserAgent::new(user_agent));
        self
    }

    /// Sets the request id.
    pub fn with_request_id(mut self, request_id: RequestId) -> Self {
        self.request_id = Some(request_id);
        self
    }

    /// The client IP, resolved through trusted proxies.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }

    /// The raw socket peer.
    pub fn peer_ip(&self) -> Option<IpAddr> {
        self.peer_ip
    }

    /// The user agent.
    pub fn user_agent(&self) -> Option<&UserAgent> {
        self.user_agent.as_ref()
    }

    /// The request id.
    pub fn request_id(&self) -> Option<&RequestId> {
        self.request_id.as_ref()
    }

    /// What was wrong with the forwarding header, if anything.
    pub fn ip_anomaly(&self) -> Option<IpAnomaly> {
        self.ip_anomaly
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_is_truncated_not_rejected() {
        let ua = UserAgent::new(&"x".repeat(10_000));
        assert!(ua.as_str().len() <= UserAgent::MAX_LEN);
        assert!(ua.as_str().ends_with(crate::TRUNCATION_MARKER));
        assert_eq!(UserAgent::new("a\0b").as_str(), "a\u{fffd}b");
        assert_eq!(UserAgent::new("ok\r\n").as_str(), "ok\r\n");
    }

    #[test]
    fn deserialized_user_agent_is_bounded_too() {
        let json = format!("\"{}\"", "y".repeat(4096));
        let ua: UserAgent = serde_json::from_str(&json).unwrap();
        assert!(ua.as_str().len() <= UserAgent::MAX_LEN);
    }
}
