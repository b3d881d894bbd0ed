//! Audit rows as RFC 5424 syslog messages, and the plain TCP transport
//! (RFC 6587 octet counting) that carries them.
//!
//! A message is
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME zt PROCID audit [zt@32473 id="42" event_id="…" …] SUMMARY
//! ```
//!
//! - PRI: facility 13 (log audit); severity 5 (notice) for `success`, 4
//!   (warning) for `failed` and `denied`.
//! - TIMESTAMP: the row's `created_at`, RFC 3339 with microseconds, UTC.
//! - STRUCTURED-DATA: one element, `zt@32473` (32473 is the private
//!   enterprise number RFC 5612 sets aside for documentation; zt has none of
//!   its own), whose parameters are the row's fields under the names `zt audit
//!   export` uses; an absent field has no parameter. Values have control
//!   characters neutralized (`\n`, `\u{1b}`, …), then `"`, `\` and `]`
//!   escaped with a backslash, as RFC 5424 section 6.3.3 requires.
//! - MSG: a one-line summary, such as `UPDATE_ROLE users/7 by user 42: success`.

use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use zt_audit::AuditRecord;
use zt_types::{AuditStatus, neutralize};

/// The STRUCTURED-DATA element's id.
pub(crate) const SD_ID: &str = "zt@32473";

/// RFC 5424's "log audit" facility.
const FACILITY_LOG_AUDIT: u8 = 13;

/// What stays the same in every message of this process.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    hostname: String,
    procid: String,
}

impl Header {
    /// This machine's host name (or `-`) and this process's id.
    pub(crate) fn here() -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|name| printable(name.trim(), 255))
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "-".to_owned());
        Self {
            hostname,
            procid: std::process::id().to_string(),
        }
    }
}

/// `text` cut to RFC 5424's PRINTUSASCII (33 to 126) and `max` bytes.
fn printable(text: &str, max: usize) -> String {
    text.chars().filter(|c| ('!'..='~').contains(c)).take(max).collect()
}

/// One row as an RFC 5424 message, without framing.
pub(crate) fn message(record: &AuditRecord, header: &Header) -> String {
    let severity = match record.status {
        AuditStatus::Success => 5,
        _ => 4,
    };
    let pri = u16::from(FACILITY_LOG_AUDIT) * 8 + severity;
    let mut out = format!(
        "<{pri}>1 {} {} zt {} audit [{SD_ID}",
        record.created_at, header.hostname, header.procid
    );
    for (name, value) in fields(record) {
        if let Some(value) = value {
            out.push(' ');
            out.push_str(name);
            out.push_str("=\"");
            push_param_value(&mut out, &value);
            out.push('"');
        }
    }
    out.push_str("] ");
    out.push_str(&neutralize(&summary(record)));
    out
}

/// The row's fields, named as `zt audit export` names them, in its order.
fn fields(record: &AuditRecord) -> [(&'static str, Option<String>); 21] {
    let text = |value: &Option<String>| value.clone();
    [
        ("id", Some(record.id.to_string())),
        ("event_id", Some(record.event_id.to_string())),
        ("created_at", Some(record.created_at.to_string())),
        ("actor_kind", Some(record.actor_kind.to_string())),
        ("user_id", text(&record.user_id)),
        ("user_email", text(&record.user_email)),
        ("action", Some(record.action.clone())),
        ("resource", Some(record.resource.clone())),
        ("resource_id", text(&record.resource_id)),
        ("metadata", Some(record.metadata.clone())),
        ("client_ip", record.client_ip.map(|ip| ip.to_string())),
        ("peer_ip", record.peer_ip.map(|ip| ip.to_string())),
        ("user_agent", text(&record.user_agent)),
        ("status", Some(record.status.to_string())),
        ("error_code", text(&record.error_code)),
        ("request_id", text(&record.request_id)),
        ("chain_version", Some(record.chain_version.to_string())),
        ("chain", Some(record.chain.to_string())),
        ("chain_seq", Some(record.chain_seq.to_string())),
        ("prev_mac", Some(hex::encode(record.prev_mac))),
        ("mac", Some(hex::encode(record.mac))),
    ]
}

/// A PARAM-VALUE: control characters neutralized, then `"`, `\` and `]`
/// escaped.
fn push_param_value(out: &mut String, value: &str) {
    for c in neutralize(value).chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

fn summary(record: &AuditRecord) -> String {
    let target = match &record.resource_id {
        Some(id) => format!("{}/{id}", record.resource),
        None => record.resource.clone(),
    };
    let actor = match &record.user_id {
        Some(user) => format!("{} {user}", record.actor_kind),
        None => record.actor_kind.to_string(),
    };
    let code = record
        .error_code
        .as_ref()
        .map(|code| format!(" ({code})"))
        .unwrap_or_default();
    format!("{} {target} by {actor}: {}{code}", record.action, record.status)
}

/// How long a connection attempt or a write may take.
pub(crate) const NETWORK_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `address` (`HOST:PORT`), trying each address it resolves to.
pub(crate) fn connect(address: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the address resolves to nothing");
    for candidate in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&candidate, NETWORK_TIMEOUT) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                stream.set_write_timeout(Some(NETWORK_TIMEOUT))?;
                return Ok(stream);
            }
            Err(error) => last = error,
        }
    }
    Err(last)
}

/// Plain TCP syslog with octet-counted framing (RFC 6587 section 3.4.1).
///
/// It cannot promise delivery: a write succeeds once the local kernel has
/// the bytes, so rows written just before the collector goes down (in flight,
/// or in its receive buffer) are lost without an error. Before each batch it
/// checks whether the collector closed the connection, and it resends the row
/// whose write failed; RELP is the transport that loses nothing.
#[derive(Debug)]
pub(crate) struct TcpSyslog {
    address: String,
    stream: Option<TcpStream>,
}

impl TcpSyslog {
    /// Connects to `address` at once, so a wrong address fails at start.
    pub(crate) fn connect(address: &str) -> io::Result<Self> {
        Ok(Self {
            address: address.to_owned(),
            stream: Some(connect(address)?),
        })
    }

    /// Sends `messages` in order; on failure, returns how many were written.
    pub(crate) fn send(&mut self, messages: &[String]) -> Result<(), (usize, io::Error)> {
        if self.stream.as_ref().is_some_and(|stream| !still_open(stream)) {
            self.stream = None;
        }
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => self.stream.insert(connect(&self.address).map_err(|e| (0, e))?),
        };
        for (sent, message) in messages.iter().enumerate() {
            let framed = format!("{} {message}", message.len());
            if let Err(error) = stream.write_all(framed.as_bytes()) {
                self.stream = None;
                return Err((sent, error));
            }
        }
        Ok(())
    }
}

/// Whether the peer has not closed the connection: a collector that shut
/// down sent a FIN, which reads as end of file.
fn still_open(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let open = match stream.peek(&mut byte) {
        Ok(0) => false,
        Ok(_) => true,
        Err(error) => error.kind() == io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).is_ok() && open
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_values_are_escaped_and_neutralized() {
        let mut out = String::new();
        push_param_value(&mut out, "a\"b\\c]d\ne");
        assert_eq!(out, "a\\\"b\\\\c\\]d\\\\ne");
    }

    #[test]
    fn header_fields_are_printable() {
        assert_eq!(printable("host name\n", 255), "hostname");
        assert_eq!(printable("é", 255), "");
    }
}
