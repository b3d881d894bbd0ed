//! Fuzzes the X-Forwarded-For and RFC 7239 Forwarded parsers: no input may
//! panic, and an untrusted peer is never overridden.
//!
//! Run with `cargo fuzz run forwarding_headers` from the repository root
//! (cargo-fuzz needs a nightly toolchain, or `RUSTC_BOOTSTRAP=1`).
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use zt_types::{ClientIpResolver, ForwardingHeader, IpSource};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let lines: Vec<&str> = text.split('\n').collect();
    let header = if selector & 1 == 0 { ForwardingHeader::XForwardedFor } else { ForwardingHeader::Forwarded };
    let resolver = ClientIpResolver::from_cidrs(["10.0.0.0/8", "2001:db8::/32"]).unwrap().header(header);
    let peer: IpAddr = if selector & 2 == 0 { "10.0.0.2".parse().unwrap() } else { "198.51.100.9".parse().unwrap() };
    let resolved = resolver.resolve(peer, lines.iter().copied());
    if !resolver.is_trusted(peer) {
        assert_eq!(resolved.ip, peer);
        assert_eq!(resolved.source, IpSource::Peer);
    }
});
