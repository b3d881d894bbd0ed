//! Client-IP resolution through trusted proxies.
//!
//! A forwarding header is a list of hops that each proxy appends to. Only the
//! entries appended by proxies you trust are facts; everything to their left
//! was written by the client and may be forged. So the resolver starts at the
//! socket peer and walks the list from the right, skipping trusted proxies, and
//! the first untrusted address is the client.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::error::{FieldError, FieldErrorKind};

/// Which forwarding header the trusted proxies set.
///
/// Trust only the header your proxy writes: a header it passes through
/// untouched is the client's to forge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ForwardingHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the default).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for="[2001:db8::1]:4711"`.
    Forwarded,
}

impl ForwardingHeader {
    /// The header's name, as sent on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "X-Forwarded-For",
            Self::Forwarded => "Forwarded",
        }
    }
}

/// Where a resolved client IP came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IpSource {
    /// The socket peer: no trusted proxy forwarded the request, or the header
    /// was unusable.
    Peer,
    /// The forwarding header, as written by a trusted proxy.
    Header,
}

/// Something suspicious or broken seen while resolving the client IP. The
/// resolver then falls back to the socket peer, except for
/// [`IpAnomaly::UntrustedPeerSentHeader`], where the peer is the answer anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IpAnomaly {
    /// A peer that is not a trusted proxy sent a forwarding header; it was ignored.
    UntrustedPeerSentHeader,
    /// A hop that had to be read could not be parsed.
    Malformed,
    /// The header was longer than the resolver's bound.
    HeaderTooLong,
    /// The header listed more hops than the resolver's bound.
    TooManyHops,
    /// The client hop is `unknown` or an obfuscated identifier such as `_hidden`.
    ObfuscatedClient,
}

impl IpAnomaly {
    /// A short snake_case name, for logs and audit metadata.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UntrustedPeerSentHeader => "untrusted_peer_sent_header",
            Self::Malformed => "malformed",
            Self::HeaderTooLong => "header_too_long",
            Self::TooManyHops => "too_many_hops",
            Self::ObfuscatedClient => "obfuscated_client",
        }
    }
}

impl fmt::Display for IpAnomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of client-IP resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientIp {
    /// The client's address. IPv4-mapped IPv6 addresses are given as IPv4.
    pub ip: IpAddr,
    /// Where it came from.
    pub source: IpSource,
    /// What was wrong, if anything.
    pub anomaly: Option<IpAnomaly>,
}

/// Resolves the client IP from the socket peer and a forwarding header,
/// believing the header only as far as trusted proxies wrote it.
///
/// ```
/// use std::net::IpAddr;
/// use zt_types::{ClientIpResolver, IpSource};
///
/// let resolver = ClientIpResolver::from_cidrs(["10.0.0.0/8"])?;
/// let proxy: IpAddr = "10.0.0.2".parse()?;
///
/// // The leftmost entry is the client's to write; the rightmost untrusted one is the truth.
/// let resolved = resolver.resolve(proxy, ["6.6.6.6, 203.0.113.7, 10.0.0.1"]);
/// assert_eq!(resolved.ip, "203.0.113.7".parse::<IpAddr>()?);
/// assert_eq!(resolved.source, IpSource::Header);
///
/// // A client that talks to us directly cannot claim another address.
/// let direct: IpAddr = "198.51.100.9".parse()?;
/// assert_eq!(resolver.resolve(direct, ["1.2.3.4"]).ip, direct);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientIpResolver {
    trusted: Vec<IpNetwork>,
    header: ForwardingHeader,
    max_header_bytes: usize,
    max_hops: usize,
}

impl Default for ClientIpResolver {
    /// Trusts no proxy: the client IP is always the socket peer.
    fn default() -> Self {
        Self::trusting(Vec::new())
    }
}

impl ClientIpResolver {
    /// The default bound on the joined header value, in bytes.
    pub const DEFAULT_MAX_HEADER_BYTES: usize = 8 * 1024;
    /// The default bound on the number of hops.
    pub const DEFAULT_MAX_HOPS: usize = 32;

    /// A resolver that trusts `proxies` and reads `X-Forwarded-For`.
    ///
    /// A whole address family (`0.0.0.0/0`, `::/0`) is refused, as in
    /// [`ClientIpResolver::from_cidrs`].
    pub fn new(proxies: impl IntoIterator<Item = IpNetwork>) -> Result<Self, FieldError> {
        let trusted = proxies
            .into_iter()
            .map(|net| {
                if net.prefix() == 0 {
                    Err(FieldError::new(
                        "trusted_proxies",
                        FieldErrorKind::InvalidFormat(
                            "a range narrower than a whole address family (0.0.0.0/0 and ::/0 \
                             would let any client choose its IP); name the proxies' own addresses",
                        ),
                    ))
                } else {
                    Ok(net)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::trusting(trusted))
    }

    fn trusting(trusted: Vec<IpNetwork>) -> Self {
        Self {
            trusted,
            header: ForwardingHeader::default(),
            max_header_bytes: Self::DEFAULT_MAX_HEADER_BYTES,
            max_hops: Self::DEFAULT_MAX_HOPS,
        }
    }

    /// A resolver that trusts the proxies in CIDR notation, such as `10.0.0.0/8`
    /// or `2001:db8::/32`. A bare address trusts that one host.
    ///
    /// A whole address family (`0.0.0.0/0`, `::/0`) is refused: trusting
    /// every address lets any client write its own IP into the header.
    pub fn from_cidrs<I, S>(cidrs: I) -> Result<Self, FieldError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nets = cidrs
            .into_iter()
            .map(|cidr| {
                cidr.as_ref().trim().parse::<IpNetwork>().map_err(|_| {
                    FieldError::new(
                        "trusted_proxies",
                        FieldErrorKind::InvalidFormat("an IP address or CIDR block"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(nets)
    }

    /// Which header to read. Default: [`ForwardingHeader::XForwardedFor`].
    pub fn header(mut self, header: ForwardingHeader) -> Self {
        self.header = header;
        self
    }

    /// The header this resolver reads.
    pub fn forwarding_header(&self) -> ForwardingHeader {
        self.header
    }

    /// Bounds the joined header value. Default: 8 KiB. Longer headers are
    /// ignored and marked [`IpAnomaly::HeaderTooLong`].
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// Bounds the number of hops. Default: 32. Longer lists are ignored and
    /// marked [`IpAnomaly::TooManyHops`].
    pub fn max_hops(mut self, hops: usize) -> Self {
        self.max_hops = hops;
        self
    }

    /// Whether `ip` belongs to a trusted proxy.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|net| net.contains(ip))
    }

    /// Resolves the client IP of a request that arrived from `peer`, with the
    /// given lines of the configured header, in the order received. Repeated
    /// header lines are joined as one list, as HTTP requires.
    pub fn resolve<'a, I>(&self, peer: IpAddr, header_lines: I) -> ClientIp
    where
        I: IntoIterator<Item = &'a str>,
    {
        let peer = peer.to_canonical();
        let from_peer = |anomaly| ClientIp {
            ip: peer,
            source: IpSource::Peer,
            anomaly,
        };

        let mut lines = header_lines
            .into_iter()
            .filter(|line| !line.trim().is_empty())
            .peekable();
        if lines.peek().is_none() {
            return from_peer(None);
        }
        if !self.is_trusted(peer) {
            return from_peer(Some(IpAnomaly::UntrustedPeerSentHeader));
        }

        let mut hops = Vec::new();
        let mut total_bytes = 0usize;
        for line in lines {
            total_bytes = total_bytes.saturating_add(line.len());
            if total_bytes > self.max_header_bytes {
                return from_peer(Some(IpAnomaly::HeaderTooLong));
            }
            let pushed = match self.header {
                ForwardingHeader::XForwardedFor => split_x_forwarded_for(line, &mut hops, self.max_hops),
                ForwardingHeader::Forwarded => split_forwarded(line, &mut hops, self.max_hops),
            };
            if let Err(anomaly) = pushed {
                return from_peer(Some(anomaly));
            }
        }

        // Walk from the right: trusted proxies are skipped, the first other hop is the client.
        let mut leftmost = None;
        for hop in hops.iter().rev() {
            match hop {
                Hop::Ip(ip) if self.is_trusted(*ip) => leftmost = Some(*ip),
                Hop::Ip(ip) => {
                    return ClientIp {
                        ip: *ip,
                        source: IpSource::Header,
                        anomaly: None,
                    };
                }
                Hop::Obfuscated => return from_peer(Some(IpAnomaly::ObfuscatedClient)),
                Hop::Malformed => return from_peer(Some(IpAnomaly::Malformed)),
            }
        }
        // Every hop is a trusted proxy: the request started inside, at the leftmost one.
        match leftmost {
            Some(ip) => ClientIp {
                ip,
                source: IpSource::Header,
                anomaly: None,
            },
            None => from_peer(None),
        }
    }
}

/// One hop of a forwarding header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hop {
    Ip(IpAddr),
    Obfuscated,
    Malformed,
}

fn push_hop(hops: &mut Vec<Hop>, hop: Hop, max_hops: usize) -> Result<(), IpAnomaly> {
    if hops.len() >= max_hops {
        return Err(IpAnomaly::TooManyHops);
    }
    hops.push(hop);
    Ok(())
}

fn split_x_forwarded_for(line: &str, hops: &mut Vec<Hop>, max_hops: usize) -> Result<(), IpAnomaly> {
    for entry in line.split(',') {
        let entry = entry.trim_matches([' ', '\t']);
        let hop = if entry.eq_ignore_ascii_case("unknown") {
            Hop::Obfuscated
        } else {
            parse_node_address(entry).map_or(Hop::Malformed, Hop::Ip)
        };
        push_hop(hops, hop, max_hops)?;
    }
    Ok(())
}

/// Parses an address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `::1`,
/// `[::1]` or `[::1]:80`.
fn parse_node_address(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().ok().map(|ip| IpAddr::V6(ip).to_canonical());
    }
    if let Ok(socket) = text.parse::<SocketAddrV4>() {
        return Some(IpAddr::V4(*socket.ip()));
    }
    text.parse::<SocketAddrV6>()
        .ok()
        .map(|socket| IpAddr::V6(*socket.ip()).to_canonical())
}

/// Splits an RFC 7239 `Forwarded` line into hops, reading each element's `for` parameter.
fn split_forwarded(line: &str, hops: &mut Vec<Hop>, max_hops: usize) -> Result<(), IpAnomaly> {
    let mut parser = ForwardedParser { rest: line };
    loop {
        let hop = parser.element().unwrap_or(Hop::Malformed);
        push_hop(hops, hop, max_hops)?;
        if hop == Hop::Malformed {
            // The rest of the line cannot be split reliably; later hops are unreadable.
            return Ok(());
        }
        parser.skip_ows();
        match parser.rest.chars().next() {
            None => return Ok(()),
            Some(',') => parser.rest = &parser.rest[1..],
            Some(_) => return push_hop(hops, Hop::Malformed, max_hops),
        }
    }
}

/// A small recursive-descent parser for the grammar of RFC 7239 section 4.
struct ForwardedParser<'a> {
    rest: &'a str,
}

impl<'a> ForwardedParser<'a> {
    fn skip_ows(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t']);
    }

    /// `forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )`; returns its `for` hop.
    fn element(&mut self) -> Option<Hop> {
        let mut for_value = None;
        loop {
            self.skip_ows();
            if self.rest.starts_with(';') {
                self.rest = &self.rest[1..];
                continue;
            }
            if self.rest.is_empty() || self.rest.starts_with(',') {
                break;
            }
            let name = self.token()?;
            if !self.rest.starts_with('=') {
                return None;
            }
            self.rest = &self.rest[1..];
            let value = if self.rest.starts_with('"') {
                self.quoted_string()?
            } else {
                self.token()?.to_owned()
            };
            if name.eq_ignore_ascii_case("for") {
                if for_value.is_some() {
                    return None;
                }
                for_value = Some(value);
            }
            self.skip_ows();
            if self.rest.starts_with(';') {
                self.rest = &self.rest[1..];
            } else {
                break;
            }
        }
        for_value.map(|value| parse_forwarded_node(&value))
    }

    fn token(&mut self) -> Option<&'a str> {
        let end = self.rest.find(|c: char| !is_tchar(c)).unwrap_or(self.rest.len());
        if end == 0 {
            return None;
        }
        let (token, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(token)
    }

    fn quoted_string(&mut self) -> Option<String> {
        let mut chars = self.rest.char_indices().skip(1);
        let mut value = String::new();
        while let Some((index, character)) = chars.next() {
            match character {
                '"' => {
                    self.rest = &self.rest[index + 1..];
                    return Some(value);
                }
                '\\' => value.push(chars.next()?.1),
                c if c.is_control() && c != '\t' => return None,
                c => value.push(c),
            }
        }
        None
    }
}

fn is_tchar(character: char) -> bool {
    character.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(character)
}

/// `node = nodename [ ":" node-port ]` where nodename is an IPv4 address, a
/// bracketed IPv6 address, `unknown`, or an obfuscated `_identifier`.
fn parse_forwarded_node(value: &str) -> Hop {
    if value.eq_ignore_ascii_case("unknown") || value.starts_with('_') {
        return Hop::Obfuscated;
    }
    let (host, port, bracketed) = match value.strip_prefix('[') {
        Some(rest) => {
            let Some((inner, after)) = rest.split_once(']') else {
                return Hop::Malformed;
            };
            match (after.is_empty(), after.strip_prefix(':')) {
                (true, _) => (inner, None, true),
                (false, Some(port)) => (inner, Some(port), true),
                (false, None) => return Hop::Malformed,
            }
        }
        None => match value.split_once(':') {
            Some((host, port)) => (host, Some(port), false),
            None => (value, None, false),
        },
    };
    let port_ok = port.is_none_or(|port| {
        (!port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()))
            || (port.len() > 1 && port.starts_with('_'))
    });
    if !port_ok {
        return Hop::Malformed;
    }
    if bracketed {
        return host
            .parse::<Ipv6Addr>()
            .map_or(Hop::Malformed, |ip| Hop::Ip(IpAddr::V6(ip).to_canonical()));
    }
    if host.starts_with('_') || host.eq_ignore_ascii_case("unknown") {
        return Hop::Obfuscated;
    }
    host.parse::<Ipv4Addr>()
        .map_or(Hop::Malformed, |ip| Hop::Ip(IpAddr::V4(ip)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    struct Case {
        name: &'static str,
        trusted: &'static [&'static str],
        header: ForwardingHeader,
        peer: &'static str,
        lines: &'static [&'static str],
        want_ip: &'static str,
        want_source: IpSource,
        want_anomaly: Option<IpAnomaly>,
    }

    const XFF: ForwardingHeader = ForwardingHeader::XForwardedFor;
    const FWD: ForwardingHeader = ForwardingHeader::Forwarded;
    const PROXIES: &[&str] = &["10.0.0.0/8", "2001:db8:ffff::/48"];

    #[rustfmt::skip]
    const CASES: &[Case] = &[
        Case { name: "no header: the peer", trusted: PROXIES, header: XFF, peer: "203.0.113.5", lines: &[],
               want_ip: "203.0.113.5", want_source: IpSource::Peer, want_anomaly: None },
        Case { name: "header sent directly by an untrusted client is ignored", trusted: PROXIES, header: XFF,
               peer: "203.0.113.5", lines: &["1.1.1.1"],
               want_ip: "203.0.113.5", want_source: IpSource::Peer, want_anomaly: Some(IpAnomaly::UntrustedPeerSentHeader) },
        Case { name: "one proxy hop", trusted: PROXIES, header: XFF, peer: "10.0.0.2", lines: &["198.51.100.7"],
               want_ip: "198.51.100.7", want_source: IpSource::Header, want_anomaly: None },
        Case { name: "forged leftmost entry is not believed", trusted: PROXIES, header: XFF, peer: "10.0.0.2",
               lines: &["6.6.6.6, 198.51.100.7"],
               want_ip: "198.51.100.7", want_source: IpSource::Header, want_anomaly: None },
        Case { name: "forged trusted-looking leftmost entry is not believed", trusted: PROXIES, header: XFF,
               peer: "10.0.0.2", lines: &["10.9.9.9, 198.51.100.7, 10.0.0.3"],
               want_ip: "198.51.100.7", want_source: IpSource::Header, want_anomaly: None },
        Case { name: "several proxy hops", trusted: PROXIES, header: XFF, peer: "10.0.0.2",
               lines: &["198.51.100.7, 10.1.1.1, 10.2.2.2"],
               want_ip: "198.51.100.7", want_source: IpSource::Header, want_anomaly: None },
        Case { name: "private-range client is not trusted by being private", trusted: PROXIES, header: XFF,
               peer: "10.0.0.2", lines: &["192.168.1.50"],
               want_ip: "192.168.1.50", want_source: IpSource::Header, want_anomaly: None },
        Case { name: "repeated header lines are joined in order", trusted: PROXIES, header: XFF, peer: "10.0.0.2",
               lines: &["6.6.6.6, 198.51.100.7", "10.3.3.3"],
               want_ip: "198.51.100.7", want_source: IpSource::Header, want_anomaly: None },
        Case { name: "ports and brackets are accepted", trusted: PROXIES, header: XFF, peer: "10.0.0.2",
               lines: &["[2001:db8::7]:443, 10.0.0.9:8080"],
               want_ip: "2001:db8::7", want_source: IpSource::Header, want_anomaly: None },
        Case { name: "ipv4-mapped peer counts as ipv4", trusted: PROXIES, header: XFF, peer: "::ffff:10.0.0.2",
               lines: &["198.51.100.7"],
               want_ip: "198.51.100.7", want_source: IpSource::Header, want_anomaly: None },
        Case { name: "malformed hop falls back to the peer", trusted: PROXIES, header: XFF, peer: "10.0.0.2",
               lines: &["198.51.100.7, not-an-ip"],
               want_ip: "10.0.0.2", want_source: IpSource::Peer, want_anomaly: Some(IpAnomaly::Malformed) },
        Case { name: "empty hop is malformed", trusted: PROXIES, header: XFF, peer: "10.0.0.2",
               lines: &["198.51.100.7,,"],
               want_ip: "10.0.0.2", want_source: IpSource::Peer, want_anomaly: Some(IpAnomaly::Malformed) },
        Case { name: "garbage left of the client is ignored", trusted: PROXIES, header: XFF, peer: "10.0.0.2",
               lines: &["<script>, 198.51.100.7"],
               want_ip: "198.51.100.7", want_source: IpSource::Header, want_anomaly: None },
        Case { name: "unknown client is obfuscated", trusted: PROXIES, header: XFF, peer: "10.0.0.2",
               lines: &["unknown, 10.0.0.5"],
               want_ip: "10.0.0.2", want_source: IpSource::Peer, want_anomaly: Some(IpAnomaly::ObfuscatedClient) },
        Case { name: "all hops trusted: the leftmost", trusted: PROXIES, header: XFF, peer: "10.0.0.2",
               lines: &["10.0.0.7, 10.0.0.8"],
               want_ip: "10.0.0.7", want_source: IpSource::Header, want_anomaly: None },
        Case { name: "no trusted proxies at all", trusted: &[], header: XFF, peer: "10.0.0.2",
               lines: &["198.51.100.7"],
               want_ip: "10.0.0.2", want_source: IpSource::Peer, want_anomaly: Some(IpAnomaly::UntrustedPeerSentHeader) },
        Case { name: "forwarded: simple", trusted: PROXIES, header: FWD, peer: "10.0.0.2",
               lines: &["for=198.51.100.7;proto=https;by=10.0.0.2"],
               want_ip: "198.51.100.7", want_source: IpSource::Header, want_anomaly: None },
        Case { name: "forwarded: quoted bracketed ipv6 with port", trusted: PROXIES, header: FWD, peer: "10.0.0.2",
               lines: &["for=\"[2001:db8:cafe::17]:4711\""],
               want_ip: "2001:db8:cafe::17", want_source: IpSource::Header, want_anomaly: None },
        Case { name: "forwarded: forged leftmost, several hops, case-insensitive names", trusted: PROXIES,
               header: FWD, peer: "10.0.0.2",
               lines: &["for=6.6.6.6, For=198.51.100.7;proto=http, for=\"[2001:db8:ffff::1]\""],
               want_ip: "198.51.100.7", want_source: IpSource::Header, want_anomaly: None },
        Case { name: "forwarded: comma inside a quoted value does not split", trusted: PROXIES, header: FWD,
               peer: "10.0.0.2", lines: &["for=198.51.100.7;ext=\"a, for=10.0.0.1\""],
               want_ip: "198.51.100.7", want_source: IpSource::Header, want_anomaly: None },
        Case { name: "forwarded: obfuscated client", trusted: PROXIES, header: FWD, peer: "10.0.0.2",
               lines: &["for=_hidden, for=10.0.0.3"],
               want_ip: "10.0.0.2", want_source: IpSource::Peer, want_anomaly: Some(IpAnomaly::ObfuscatedClient) },
        Case { name: "forwarded: unknown client", trusted: PROXIES, header: FWD, peer: "10.0.0.2",
               lines: &["for=unknown"],
               want_ip: "10.0.0.2", want_source: IpSource::Peer, want_anomaly: Some(IpAnomaly::ObfuscatedClient) },
        Case { name: "forwarded: obfuscated port is fine", trusted: PROXIES, header: FWD, peer: "10.0.0.2",
               lines: &["for=\"198.51.100.7:_abc\""],
               want_ip: "198.51.100.7", want_source: IpSource::Header, want_anomaly: None },
        Case { name: "forwarded: unbracketed ipv6 is malformed", trusted: PROXIES, header: FWD, peer: "10.0.0.2",
               lines: &["for=\"2001:db8::1\""],
               want_ip: "10.0.0.2", want_source: IpSource::Peer, want_anomaly: Some(IpAnomaly::Malformed) },
        Case { name: "forwarded: unterminated quote is malformed", trusted: PROXIES, header: FWD, peer: "10.0.0.2",
               lines: &["for=\"198.51.100.7"],
               want_ip: "10.0.0.2", want_source: IpSource::Peer, want_anomaly: Some(IpAnomaly::Malformed) },
        Case { name: "forwarded: element without for is malformed", trusted: PROXIES, header: FWD,
               peer: "10.0.0.2", lines: &["for=198.51.100.7, proto=https"],
               want_ip: "10.0.0.2", want_source: IpSource::Peer, want_anomaly: Some(IpAnomaly::Malformed) },
        Case { name: "forwarded: bad port is malformed", trusted: PROXIES, header: FWD, peer: "10.0.0.2",
               lines: &["for=\"198.51.100.7:99999x\""],
               want_ip: "10.0.0.2", want_source: IpSource::Peer, want_anomaly: Some(IpAnomaly::Malformed) },
        Case { name: "xff ignored when resolver reads forwarded", trusted: PROXIES, header: FWD, peer: "10.0.0.2",
               lines: &[],
               want_ip: "10.0.0.2", want_source: IpSource::Peer, want_anomaly: None },
    ];

    #[test]
    fn table_of_resolution_cases() {
        for case in CASES {
            let resolver = ClientIpResolver::from_cidrs(case.trusted.iter().copied())
                .unwrap()
                .header(case.header);
            let got = resolver.resolve(ip(case.peer), case.lines.iter().copied());
            assert_eq!(got.ip, ip(case.want_ip), "{}", case.name);
            assert_eq!(got.source, case.want_source, "{}", case.name);
            assert_eq!(got.anomaly, case.want_anomaly, "{}", case.name);
        }
    }

    #[test]
    fn a_whole_address_family_is_not_a_proxy() {
        for everyone in ["0.0.0.0/0", "::/0", " 0.0.0.0/0 "] {
            let error = ClientIpResolver::from_cidrs(["10.0.0.0/8", everyone]).unwrap_err();
            assert!(error.to_string().contains("whole address family"), "{error}");
        }
        assert!(ClientIpResolver::from_cidrs(["0.0.0.0/1", "::/1"]).is_ok());
        // The typed constructor refuses them too.
        for everyone in ["0.0.0.0/0", "::/0"] {
            let net: IpNetwork = everyone.parse().unwrap();
            let error = ClientIpResolver::new([net]).unwrap_err();
            assert!(error.to_string().contains("whole address family"), "{error}");
        }
        let proxy: IpNetwork = "10.0.0.0/8".parse().unwrap();
        assert!(ClientIpResolver::new([proxy]).is_ok());
    }

    #[test]
    fn bounds_fall_back_to_the_peer() {
        let resolver = ClientIpResolver::from_cidrs(["10.0.0.0/8"]).unwrap().max_hops(4);
        let long = ["10.0.0.1"; 5].join(",");
        let got = resolver.resolve(ip("10.0.0.2"), [long.as_str()]);
        assert_eq!(got.anomaly, Some(IpAnomaly::TooManyHops));
        assert_eq!(got.ip, ip("10.0.0.2"));

        let resolver = ClientIpResolver::from_cidrs(["10.0.0.0/8"]).unwrap();
        let huge = "1".repeat(ClientIpResolver::DEFAULT_MAX_HEADER_BYTES + 1);
        let got = resolver.resolve(ip("10.0.0.2"), [huge.as_str()]);
        assert_eq!(got.anomaly, Some(IpAnomaly::HeaderTooLong));
    }

    #[test]
    fn invalid_cidr_is_a_typed_error() {
        let error = ClientIpResolver::from_cidrs(["10.0.0.0/33"]).unwrap_err();
        assert_eq!(error.field(), "trusted_proxies");
    }
}
