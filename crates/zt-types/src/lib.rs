//! The shared vocabulary of zt, the zero-trust toolkit for synchronous Rust
//! backends.
//!
//! Every value here is checked when it is built, so a function that takes a
//! [`UserId`] or an [`AuditEvent`] never re-validates it:
//!
//! - ids: [`UserId`], [`EventId`], [`ReferenceId`], [`RequestId`], and the
//!   secret [`SessionId`] with its stored form [`SessionHash`];
//! - who: [`Role`], [`Actor`], [`Email`];
//! - where: [`RequestContext`], with the client IP resolved through trusted
//!   proxies by [`ClientIpResolver`];
//! - sessions: [`SessionClaims`], what an identity provider asserted;
//! - audit: [`AuditEvent`], [`AuditStatus`], with metadata redacted and bounded
//!   by an [`EventPolicy`];
//! - [`Severity`], [`Timestamp`] (which converts to and from
//!   `chrono::DateTime<Utc>`), and the injectable [`Clock`].
//!
//! Bad input gets a [`FieldError`] that names the field.
//!
//! ```
//! use zt_types::{Actor, AuditEvent, AuditStatus, ClientIpResolver, RequestContext, UserId};
//!
//! // Behind a load balancer at 10.0.0.2, a client claims to be 6.6.6.6.
//! let resolver = ClientIpResolver::from_cidrs(["10.0.0.0/8"])?;
//! let peer = "10.0.0.2".parse()?;
//! let context = RequestContext::new()
//!     .with_resolved_ip(peer, resolver.resolve(peer, ["6.6.6.6, 198.51.100.7"]))
//!     .with_user_agent("Mozilla/5.0");
//! assert_eq!(context.client_ip(), Some("198.51.100.7".parse()?));
//!
//! let event = AuditEvent::builder(Actor::user(UserId::parse("42")?, None), "DELETE_PROJECT", "projects")
//!     .resource_id(7)
//!     .metadata(&serde_json::json!({ "name": "Apollo", "api_key": "sk_live_123" }))
//!     .context(&context)
//!     .status(AuditStatus::Success)
//!     .build()?;
//! assert!(!event.metadata().as_str().contains("sk_live_123"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod actor;
mod audit;
pub mod canonical_json;
mod client_ip;
mod clock;
mod error;
mod ids;
mod redact;
mod request;
mod role;
mod session;
mod severity;
mod text;
mod timestamp;

pub use actor::{Actor, ActorKind, Email};
pub use audit::{
    Action, AuditEvent, AuditEventBuilder, AuditStatus, ErrorCodeName, EventPolicy, Metadata, REDACTED, ResourceId,
    ResourceName,
};
pub use client_ip::{ClientIp, ClientIpResolver, ForwardingHeader, IpAnomaly, IpSource};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{FieldError, FieldErrorKind};
pub use ids::{EventId, ReferenceId, RequestId, SessionHash, SessionId, UserId};
pub use request::{RequestContext, UserAgent};
pub use role::Role;
pub use session::{AuthFactors, AuthLevel, ClientBinding, SessionClaims};
pub use severity::Severity;
pub use text::{Neutralized, TRUNCATION_MARKER, neutralize};
pub use timestamp::Timestamp;
