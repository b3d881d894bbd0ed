//! The 16-byte address keys that the SQLite backend stores beside each
//! address, so that a CIDR filter is a range scan.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

/// The 16-byte form of an address that SQLite sorts and filters on: IPv4
/// mapped into IPv6.
pub(crate) fn ip_key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The first and last 16-byte keys inside `network`.
pub(crate) fn ip_key_range(network: IpNetwork) -> ([u8; 16], [u8; 16]) {
    match network {
        IpNetwork::V4(net) => (ip_key(IpAddr::V4(net.network())), ip_key(IpAddr::V4(net.broadcast()))),
        IpNetwork::V6(net) => {
            let host_mask = u128::MAX.checked_shr(u32::from(net.prefix())).unwrap_or(0);
            let base = u128::from(net.network());
            ((base & !host_mask).to_be_bytes(), (base | host_mask).to_be_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_ranges_cover_their_blocks() {
        let (lo, hi) = ip_key_range("10.0.0.0/8".parse().unwrap());
        assert!(lo <= ip_key("10.1.2.3".parse().unwrap()) && ip_key("10.1.2.3".parse().unwrap()) <= hi);
        assert!(ip_key("11.0.0.0".parse().unwrap()) > hi);
        let (lo, hi) = ip_key_range("2001:db8::/32".parse().unwrap());
        let inside = ip_key("2001:db8:ffff::1".parse().unwrap());
        assert!(lo <= inside && inside <= hi);
        assert!(ip_key("2001:db9::".parse().unwrap()) > hi);
        let host: IpAddr = "2001:db8::7".parse().unwrap();
        let (lo, hi) = ip_key_range("2001:db8::7/128".parse().unwrap());
        assert_eq!((lo, hi), (ip_key(host), ip_key(host)));
    }
}
