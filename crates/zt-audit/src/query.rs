//! What investigators ask for: filters, pages, and the rows they get back.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnetwork::IpNetwork;
use serde::ser::{Serialize, SerializeStruct, Serializer};
use uuid::Uuid;
use zt_types::{ActorKind, AuditStatus, Timestamp};

use crate::error::{Error, ErrorKind};

/// One stored audit row, as read back.
///
/// Text fields are plain strings, not the checked types events are built
/// from: a row is shown as stored, even if someone tampered with it. A value
/// that cannot be read as zt writes it (text that is not UTF-8, a time out
/// of range, a status in another spelling) does not stop the query: it is
/// listed in [`AuditRecord::damaged`], and the field holds a stand-in (the
/// text with U+FFFD for invalid bytes, or a placeholder such as the nil UUID
/// or the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditRecord {
    /// The row id: unique, and increasing in the order rows were written
    /// (holes are rolled-back writes, not deletions; the chain position is
    /// `chain_seq`).
    pub id: i64,
    /// The unique event id.
    pub event_id: Uuid,
    /// When the event happened.
    pub created_at: Timestamp,
    /// Who acted: a user, the system, or anonymous.
    pub actor_kind: ActorKind,
    /// The user id, for user actors.
    pub user_id: Option<String>,
    /// The user's email, when known.
    pub user_email: Option<String>,
    /// What was done.
    pub action: String,
    /// The kind of thing acted on.
    pub resource: String,
    /// The id of the thing acted on.
    pub resource_id: Option<String>,
    /// The metadata, as canonical JSON text; see [`AuditRecord::metadata_value`].
    pub metadata: String,
    /// The client IP, resolved through trusted proxies.
    pub client_ip: Option<IpAddr>,
    /// The raw socket peer.
    pub peer_ip: Option<IpAddr>,
    /// The user agent.
    pub user_agent: Option<String>,
    /// How it ended.
    pub status: AuditStatus,
    /// The error code of a failure or denial.
    pub error_code: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// The version of the chain encoding.
    pub chain_version: i16,
    /// The hash chain the row is on.
    pub chain: i16,
    /// The row's position in its chain: 1, 2, 3, ... with no gaps.
    pub chain_seq: i64,
    /// The previous row's MAC.
    pub prev_mac: [u8; 32],
    /// This row's MAC.
    pub mac: [u8; 32],
    /// The stored values that could not be read as zt writes them; empty for
    /// an intact row. Verification reports such a row as modified.
    pub damaged: Vec<DamagedField>,
    /// The commitment kept when the row's personal fields were erased, if
    /// they were; filled in where rows are verified.
    pub(crate) erasure: Option<[u8; 32]>,
}

/// A stored value of an [`AuditRecord`] that is not what zt writes: not
/// valid UTF-8, NULL, unparseable, out of range, or in another text form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct DamagedField {
    /// The column, such as `user_agent`.
    pub field: &'static str,
    /// What is wrong with it, quoting the stored value escaped and cut short.
    pub problem: String,
}

impl fmt::Display for DamagedField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem)
    }
}

impl AuditRecord {
    /// The metadata as a JSON value.
    pub fn metadata_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.metadata).unwrap_or(serde_json::Value::Null)
    }

    /// Whether a stored value could not be read as zt writes it; see
    /// [`AuditRecord::damaged`].
    pub fn is_damaged(&self) -> bool {
        !self.damaged.is_empty()
    }

    /// Whether the row's personal fields (email, metadata, IPs, user agent)
    /// were erased (`AuditLog::erase_personal_data`), as far as the read that
    /// returned it looked: verification, `follow` and archives do.
    pub fn is_erased(&self) -> bool {
        self.erasure.is_some()
    }

    /// Whether the stored time is damaged: the row then sorts where its
    /// stored value does, which no page cursor can name.
    pub(crate) fn time_damaged(&self) -> bool {
        self.damaged.iter().any(|damaged| damaged.field == "created_at")
    }
}

impl Serialize for AuditRecord {
    /// Serializes with the metadata as a JSON object and MACs as hex; a
    /// damaged row also has `damaged`, the list of its damaged fields.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut record = serializer.serialize_struct("AuditRecord", 23)?;
        record.serialize_field("id", &self.id)?;
        record.serialize_field("event_id", &self.event_id)?;
        record.serialize_field("created_at", &self.created_at)?;
        record.serialize_field("actor_kind", &self.actor_kind)?;
        record.serialize_field("user_id", &self.user_id)?;
        record.serialize_field("user_email", &self.user_email)?;
        record.serialize_field("action", &self.action)?;
        record.serialize_field("resource", &self.resource)?;
        record.serialize_field("resource_id", &self.resource_id)?;
        record.serialize_field("metadata", &self.metadata_value())?;
        record.serialize_field("client_ip", &self.client_ip)?;
        record.serialize_field("peer_ip", &self.peer_ip)?;
        record.serialize_field("user_agent", &self.user_agent)?;
        record.serialize_field("status", &self.status)?;
        record.serialize_field("error_code", &self.error_code)?;
        record.serialize_field("request_id", &self.request_id)?;
        record.serialize_field("chain_version", &self.chain_version)?;
        record.serialize_field("chain", &self.chain)?;
        record.serialize_field("chain_seq", &self.chain_seq)?;
        record.serialize_field("prev_mac", &hex::encode(self.prev_mac))?;
        record.serialize_field("mac", &hex::encode(self.mac))?;
        if self.is_damaged() {
            record.serialize_field("damaged", &self.damaged)?;
        } else {
            record.skip_field("damaged")?;
        }
        if self.is_erased() {
            record.serialize_field("erased", &true)?;
        } else {
            record.skip_field("erased")?;
        }
        record.end()
    }
}

/// Which rows a query returns. Every filter is optional and they combine
/// with AND; the actions combine with OR among themselves.
///
/// The IP filter matches the client IP against an address or CIDR block. On
/// PostgreSQL it is `client_ip <<= block`; on SQLite it is a range over the
/// 16-byte form of the address (IPv4 mapped into IPv6), which gives the same
/// answers except that an IPv6 block such as `::/0` also covers IPv4
/// clients there.
///
/// ```
/// use zt_audit::AuditFilter;
/// let filter = AuditFilter::new().user("42").action("UPDATE_ROLE").action("DELETE_USER").ip("10.0.0.0/8")?;
/// # Ok::<(), zt_audit::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub(crate) user_id: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) actions: Vec<String>,
    pub(crate) resource: Option<String>,
    pub(crate) resource_id: Option<String>,
    pub(crate) status: Option<AuditStatus>,
    pub(crate) since: Option<Timestamp>,
    pub(crate) until: Option<Timestamp>,
    pub(crate) ip: Option<IpNetwork>,
    pub(crate) request_id: Option<String>,
    pub(crate) chain: Option<i16>,
}

/// The most actions one filter may list.
const MAX_ACTIONS: usize = 64;

impl AuditFilter {
    /// A filter that matches every row.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rows of this hash chain, such as a tenant's (see `AuditLog::on_chain`).
    #[must_use]
    pub fn chain(mut self, chain: i16) -> Self {
        self.chain = Some(chain);
        self
    }

    /// Rows of this user.
    #[must_use]
    pub fn user(mut self, user_id: &str) -> Self {
        self.user_id = Some(user_id.to_owned());
        self
    }

    /// Rows with this email.
    #[must_use]
    pub fn email(mut self, email: &str) -> Self {
        self.email = Some(email.to_owned());
        self
    }

    /// Rows with this action; call again for more actions.
    #[must_use]
    pub fn action(mut self, action: &str) -> Self {
        self.actions.push(action.to_owned());
        self
    }

    /// Rows about this kind of resource.
    #[must_use]
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_owned());
        self
    }

    /// Rows about this resource id; needs [`AuditFilter::resource`].
    #[must_use]
    pub fn resource_id(mut self, resource_id: &str) -> Self {
        self.resource_id = Some(resource_id.to_owned());
        self
    }

    /// Rows with this status.
    #[must_use]
    pub fn status(mut self, status: AuditStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Rows at or after this time.
    #[must_use]
    pub fn since(mut self, since: Timestamp) -> Self {
        self.since = Some(since);
        self
    }

    /// Rows before this time.
    #[must_use]
    pub fn until(mut self, until: Timestamp) -> Self {
        self.until = Some(until);
        self
    }

    /// Rows whose client IP is this address or inside this CIDR block.
    pub fn ip(mut self, ip_or_cidr: &str) -> Result<Self, Error> {
        let network = IpNetwork::from_str(ip_or_cidr.trim()).map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("{ip_or_cidr:?} is not an IP address or CIDR block"),
            )
        })?;
        self.ip = Some(network);
        Ok(self)
    }

    /// Rows whose client IP is inside `network`.
    #[must_use]
    pub fn ip_network(mut self, network: IpNetwork) -> Self {
        self.ip = Some(network);
        self
    }

    /// Rows of this request.
    #[must_use]
    pub fn request_id(mut self, request_id: &str) -> Self {
        self.request_id = Some(request_id.to_owned());
        self
    }

    /// Checks the bounds: each value fits its column.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let too_long = |field: &str, value: &Option<String>, max: usize| {
            value
                .as_ref()
                .is_some_and(|value| value.len() > max || value.is_empty())
                .then(|| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!("filter {field} must be 1 to {max} bytes"),
                    )
                })
        };
        let checks = [
            too_long("user", &self.user_id, 128),
            too_long("email", &self.email, 255),
            too_long("resource", &self.resource, 100),
            too_long("resource id", &self.resource_id, 255),
            too_long("request id", &self.request_id, 128),
        ];
        if let Some(error) = checks.into_iter().flatten().next() {
            return Err(error);
        }
        if self.actions.len() > MAX_ACTIONS || self.actions.iter().any(|a| a.is_empty() || a.len() > 64) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("a filter takes at most {MAX_ACTIONS} actions of 1 to 64 bytes"),
            ));
        }
        if self.resource_id.is_some() && self.resource.is_none() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a resource id filter needs a resource filter",
            ));
        }
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since > until
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "the filter's since is after its until",
            ));
        }
        Ok(())
    }
}

/// The order of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Order {
    /// Oldest first (the default).
    #[default]
    OldestFirst,
    /// Newest first.
    NewestFirst,
}

/// Where a page ends: the time and id of its last row. Pass it back to get
/// the next page. Its text form is `<unix micros>.<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub(crate) created_at: Timestamp,
    pub(crate) id: i64,
}

impl Cursor {
    pub(crate) fn after(record: &AuditRecord) -> Self {
        Self {
            created_at: record.created_at,
            id: record.id,
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.created_at.unix_micros(), self.id)
    }
}

impl FromStr for Cursor {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = || Error::new(ErrorKind::InvalidInput, format!("{text:?} is not a page cursor"));
        let (micros, id) = text.split_once('.').ok_or_else(invalid)?;
        let created_at = Timestamp::from_unix_micros(micros.parse().map_err(|_| invalid())?).map_err(|_| invalid())?;
        Ok(Self {
            created_at,
            id: id.parse().map_err(|_| invalid())?,
        })
    }
}

/// Which page to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub(crate) after: Option<Cursor>,
    pub(crate) limit: u32,
    pub(crate) order: Order,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            after: None,
            limit: 100,
            order: Order::OldestFirst,
        }
    }
}

impl PageRequest {
    /// The most rows a page may hold.
    pub const MAX_LIMIT: u32 = 10_000;

    /// The first page of up to `limit` rows, oldest first. The limit is
    /// clamped to 1..=10 000.
    pub fn first(limit: u32) -> Self {
        Self {
            after: None,
            limit: limit.clamp(1, Self::MAX_LIMIT),
            order: Order::OldestFirst,
        }
    }

    /// Continues after `cursor`.
    #[must_use]
    pub fn after(mut self, cursor: Cursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// Sets the order.
    #[must_use]
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }
}

/// One page of rows in time order, and the cursor of the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The rows, ordered by time, then id.
    pub records: Vec<AuditRecord>,
    /// Where the next page starts, or `None` if this is the last page.
    pub next: Option<Cursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let cursor = Cursor {
            created_at: Timestamp::from_unix_micros(1_700_000_000_123_456).unwrap(),
            id: 42,
        };
        assert_eq!(cursor.to_string().parse::<Cursor>().unwrap(), cursor);
        assert!("nope".parse::<Cursor>().is_err());
    }

    #[test]
    fn filter_bounds() {
        assert!(AuditFilter::new().user(&"x".repeat(129)).check().is_err());
        assert!(AuditFilter::new().resource_id("1").check().is_err());
        assert!(AuditFilter::new().resource("p").resource_id("1").check().is_ok());
        assert!(AuditFilter::new().ip("10.0.0.0/33").is_err());
        let early = Timestamp::from_unix_micros(1).unwrap();
        let late = Timestamp::from_unix_micros(2).unwrap();
        assert!(AuditFilter::new().since(late).until(early).check().is_err());
    }
}
