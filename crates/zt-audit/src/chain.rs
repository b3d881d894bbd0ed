//! The keyed hash chain: the canonical encoding of a row and its MAC.
//!
//! See the crate docs, "The hash chain", for the specification.

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::key::ChainKey;

/// The version of the encoding below that new rows get, stored in each row's
/// `chain_version`. Version 1 rows (written before chains) encode no chain id
/// and belong to chain 1; version 2 rows encode their chain id; version 3
/// rows encode, in place of the personal fields (email, metadata, client and
/// peer IP, user agent), a keyed commitment to them, so that those fields can
/// be erased and the row still verifies against the commitment kept at
/// erasure.
pub const CHAIN_VERSION: i16 = 3;

/// The first version whose personal fields can be erased.
pub(crate) const ERASABLE_VERSION: i16 = 3;

const PERSONAL_LABEL: &[u8] = b"zt-audit-personal\0";

/// The MAC before the first row.
pub const GENESIS_MAC: [u8; 32] = [0; 32];

const DOMAIN: &[u8] = b"zt-audit-chain\0";

/// The fields of one row that the MAC covers, borrowed from an event being
/// written or a row being verified.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChainFields<'a> {
    /// The encoding version.
    pub(crate) version: i16,
    /// The chain.
    pub(crate) chain: i16,
    /// The position in the chain.
    pub(crate) seq: i64,
    pub(crate) event_id: [u8; 16],
    pub(crate) created_at_micros: i64,
    pub(crate) actor_kind: &'a str,
    pub(crate) user_id: Option<&'a str>,
    pub(crate) user_email: Option<&'a str>,
    pub(crate) action: &'a str,
    pub(crate) resource: &'a str,
    pub(crate) resource_id: Option<&'a str>,
    pub(crate) metadata: &'a str,
    pub(crate) client_ip: Option<IpAddr>,
    pub(crate) peer_ip: Option<IpAddr>,
    pub(crate) user_agent: Option<&'a str>,
    pub(crate) status: &'a str,
    pub(crate) error_code: Option<&'a str>,
    pub(crate) request_id: Option<&'a str>,
    /// The commitment to the personal fields kept when they were erased
    /// (version 3); `None` computes it from the fields.
    pub(crate) erased: Option<[u8; 32]>,
}

impl<'a> ChainFields<'a> {
    /// The fields of `event` at position `seq` of `chain`.
    pub(crate) fn of_event(event: &'a zt_types::AuditEvent, chain: i16, seq: i64) -> Self {
        let context = event.context();
        Self {
            version: CHAIN_VERSION,
            chain,
            seq,
            event_id: *event.event_id().as_uuid().as_bytes(),
            created_at_micros: event.created_at().unix_micros(),
            actor_kind: event.actor().kind().as_str(),
            user_id: event.actor().user_id().map(zt_types::UserId::as_str),
            user_email: event.actor().email().map(zt_types::Email::as_str),
            action: event.action().as_str(),
            resource: event.resource().as_str(),
            resource_id: event.resource_id().map(zt_types::ResourceId::as_str),
            metadata: event.metadata().as_str(),
            client_ip: context.client_ip(),
            peer_ip: context.peer_ip(),
            user_agent: context.user_agent().map(zt_types::UserAgent::as_str),
            status: event.status().as_str(),
            error_code: event.error_code().map(zt_types::ErrorCodeName::as_str),
            request_id: context.request_id().map(zt_types::RequestId::as_str),
            erased: None,
        }
    }
}

/// Computes MACs with one keyed HMAC state, cloned per row instead of
/// re-keyed.
#[derive(Clone)]
pub(crate) struct Chain {
    keyed: Hmac<Sha256>,
    /// Keyed for the commitments to personal fields.
    personal: Hmac<Sha256>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Chain")
    }
}

impl Chain {
    pub(crate) fn new(key: &ChainKey) -> Self {
        // HMAC takes keys of any length, so this cannot fail.
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(key.bytes()).unwrap_or_else(|_| unreachable!());
        let personal_key = derive(&keyed, PERSONAL_LABEL);
        let personal = <Hmac<Sha256> as Mac>::new_from_slice(&personal_key).unwrap_or_else(|_| unreachable!());
        Self { keyed, personal }
    }

    /// The keyed commitment to a row's personal fields, bound to its event
    /// id: what a version 3 MAC covers in their place.
    pub(crate) fn personal_commitment(&self, fields: &ChainFields<'_>) -> [u8; 32] {
        let mut commitment = self.personal.clone();
        let sink = &mut |bytes: &[u8]| commitment.update(bytes);
        sink(&fields.event_id);
        optional_text(sink, fields.user_email);
        text(sink, fields.metadata);
        address(sink, fields.client_ip);
        address(sink, fields.peer_ip);
        optional_text(sink, fields.user_agent);
        commitment.finalize().into_bytes().into()
    }

    /// A key for another purpose, derived from the chain key: the HMAC of
    /// `label` under it. Each label must be a distinct, NUL-terminated
    /// domain that no row encoding starts with (rows start with
    /// `zt-audit-chain\0`), so a derived key is never a MAC that is stored.
    pub(crate) fn derive_key(&self, label: &[u8]) -> [u8; 32] {
        derive(&self.keyed, label)
    }

    /// The MAC of `fields` chained to `prev_mac`.
    pub(crate) fn mac(&self, fields: &ChainFields<'_>, prev_mac: &[u8; 32]) -> [u8; 32] {
        let commitment = (fields.version >= ERASABLE_VERSION)
            .then(|| fields.erased.unwrap_or_else(|| self.personal_commitment(fields)));
        let mut mac = self.keyed.clone();
        encode(fields, commitment.as_ref(), prev_mac, &mut |bytes| mac.update(bytes));
        mac.finalize().into_bytes().into()
    }
}

/// The HMAC of `label` under `keyed`: a key derived for another purpose.
fn derive(keyed: &Hmac<Sha256>, label: &[u8]) -> [u8; 32] {
    let mut mac = keyed.clone();
    mac.update(label);
    mac.finalize().into_bytes().into()
}

/// Feeds the canonical encoding to `sink`, piece by piece. From version 3
/// on, `personal` (the commitment to the personal fields) takes their place.
pub(crate) fn encode(
    fields: &ChainFields<'_>,
    personal: Option<&[u8; 32]>,
    prev_mac: &[u8; 32],
    sink: &mut dyn FnMut(&[u8]),
) {
    sink(DOMAIN);
    sink(&fields.version.to_be_bytes());
    if fields.version >= 2 {
        sink(&fields.chain.to_be_bytes());
    }
    sink(&fields.seq.to_be_bytes());
    sink(&fields.event_id);
    sink(&fields.created_at_micros.to_be_bytes());
    text(sink, fields.actor_kind);
    optional_text(sink, fields.user_id);
    match personal {
        Some(commitment) => {
            sink(commitment);
            text(sink, fields.action);
            text(sink, fields.resource);
            optional_text(sink, fields.resource_id);
        }
        None => {
            optional_text(sink, fields.user_email);
            text(sink, fields.action);
            text(sink, fields.resource);
            optional_text(sink, fields.resource_id);
            text(sink, fields.metadata);
            address(sink, fields.client_ip);
            address(sink, fields.peer_ip);
            optional_text(sink, fields.user_agent);
        }
    }
    text(sink, fields.status);
    optional_text(sink, fields.error_code);
    optional_text(sink, fields.request_id);
    sink(prev_mac);
}

fn text(sink: &mut dyn FnMut(&[u8]), value: &str) {
    // Bounded fields are far below 4 GiB; saturate rather than wrap if not.
    let length = u32::try_from(value.len()).unwrap_or(u32::MAX);
    sink(&length.to_be_bytes());
    sink(value.as_bytes());
}

fn optional_text(sink: &mut dyn FnMut(&[u8]), value: Option<&str>) {
    match value {
        None => sink(&[0]),
        Some(value) => {
            sink(&[1]);
            text(sink, value);
        }
    }
}

fn address(sink: &mut dyn FnMut(&[u8]), value: Option<IpAddr>) {
    match value {
        None => sink(&[0]),
        Some(IpAddr::V4(ip)) => {
            sink(&[4]);
            sink(&ip.octets());
        }
        Some(IpAddr::V6(ip)) => {
            sink(&[6]);
            sink(&ip.octets());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(metadata: &str) -> ChainFields<'_> {
        ChainFields {
            version: 1,
            chain: 1,
            seq: 1,
            event_id: [7; 16],
            created_at_micros: 1_700_000_000_000_000,
            actor_kind: "user",
            user_id: Some("42"),
            user_email: None,
            action: "A",
            resource: "r",
            resource_id: None,
            metadata,
            client_ip: Some("10.0.0.1".parse().unwrap()),
            peer_ip: None,
            user_agent: None,
            status: "success",
            error_code: None,
            request_id: None,
            erased: None,
        }
    }

    #[test]
    fn mac_depends_on_every_input() {
        let chain = Chain::new(&ChainKey::from_bytes(&(1..1 + 32).collect::<Vec<u8>>()).unwrap());
        let base = chain.mac(&fields("{}"), &GENESIS_MAC);
        assert_ne!(base, chain.mac(&fields("{\"a\": 1}"), &GENESIS_MAC));
        assert_ne!(base, chain.mac(&fields("{}"), &[1; 32]));
        let other_key = Chain::new(&ChainKey::from_bytes(&(2..2 + 32).collect::<Vec<u8>>()).unwrap());
        assert_ne!(base, other_key.mac(&fields("{}"), &GENESIS_MAC));
        // None and Some("") differ: the presence byte is covered.
        let mut empty_email = fields("{}");
        empty_email.user_email = Some("");
        assert_ne!(base, chain.mac(&empty_email, &GENESIS_MAC));
    }

    #[test]
    fn encoding_follows_the_documented_layout() {
        let mut bytes = Vec::new();
        encode(&fields("{}"), None, &GENESIS_MAC, &mut |piece| {
            bytes.extend_from_slice(piece);
        });

        // Built by hand from the specification in the crate docs.
        let mut expected = b"zt-audit-chain\0".to_vec();
        expected.extend_from_slice(&[0, 1]); // chain version 1
        expected.extend_from_slice(&1i64.to_be_bytes()); // id
        expected.extend_from_slice(&[7; 16]); // event id
        expected.extend_from_slice(&1_700_000_000_000_000i64.to_be_bytes());
        let text = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&u32::try_from(s.len()).unwrap().to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        text(&mut expected, "user"); // actor kind
        expected.push(1); // user id present
        text(&mut expected, "42");
        expected.push(0); // no email
        text(&mut expected, "A");
        text(&mut expected, "r");
        expected.push(0); // no resource id
        text(&mut expected, "{}");
        expected.extend_from_slice(&[4, 10, 0, 0, 1]); // client ip
        expected.push(0); // no peer ip
        expected.push(0); // no user agent
        text(&mut expected, "success");
        expected.push(0); // no error code
        expected.push(0); // no request id
        expected.extend_from_slice(&GENESIS_MAC);
        assert_eq!(bytes, expected);

        // Version 2 adds the chain id after the version; the rest is the same.
        let mut v2 = fields("{}");
        (v2.version, v2.chain) = (2, 7);
        let mut bytes = Vec::new();
        encode(&v2, None, &GENESIS_MAC, &mut |piece| bytes.extend_from_slice(piece));
        let mut expected_v2 = b"zt-audit-chain\0".to_vec();
        expected_v2.extend_from_slice(&[0, 2, 0, 7]); // version 2, chain 7
        expected_v2.extend_from_slice(&expected[b"zt-audit-chain\0".len() + 2..]);
        assert_eq!(bytes, expected_v2);
    }

    #[test]
    fn chain_and_version_are_covered() {
        let chain = Chain::new(&ChainKey::from_bytes(&(1..1 + 32).collect::<Vec<u8>>()).unwrap());
        let mut v2 = fields("{}");
        v2.version = 2;
        let base = chain.mac(&v2, &GENESIS_MAC);
        let mut other_chain = v2;
        other_chain.chain = 2;
        assert_ne!(base, chain.mac(&other_chain, &GENESIS_MAC));
        assert_ne!(base, chain.mac(&fields("{}"), &GENESIS_MAC), "v1 and v2 differ");
    }

    #[test]
    fn version_3_covers_personal_fields_through_their_commitment() {
        let chain = Chain::new(&ChainKey::from_bytes(&(1..1 + 32).collect::<Vec<u8>>()).unwrap());
        let mut v3 = fields("{\"ip\": \"10.0.0.1\"}");
        (v3.version, v3.user_email, v3.user_agent) = (3, Some("a@example.com"), Some("Mozilla"));
        let base = chain.mac(&v3, &GENESIS_MAC);
        // Each personal field is covered, through the commitment.
        for change in 0..5 {
            let mut changed = v3;
            match change {
                0 => changed.user_email = Some("b@example.com"),
                1 => changed.metadata = "{}",
                2 => changed.client_ip = None,
                3 => changed.peer_ip = Some("10.0.0.2".parse().unwrap()),
                _ => changed.user_agent = None,
            }
            assert_ne!(base, chain.mac(&changed, &GENESIS_MAC), "change {change}");
        }
        // Erased: the fields are gone, the kept commitment stands in for them.
        let commitment = chain.personal_commitment(&v3);
        let mut erased = v3;
        (erased.user_email, erased.metadata, erased.client_ip, erased.user_agent) = (None, "{}", None, None);
        erased.erased = Some(commitment);
        assert_eq!(base, chain.mac(&erased, &GENESIS_MAC));
        // The commitment is bound to the row's event: another row's does not fit.
        let mut other_event = v3;
        other_event.event_id = [8; 16];
        assert_ne!(commitment, chain.personal_commitment(&other_event));
        // And the encoding carries the commitment where the fields were.
        let mut bytes = Vec::new();
        encode(&v3, Some(&commitment), &GENESIS_MAC, &mut |piece| {
            bytes.extend_from_slice(piece);
        });
        assert!(bytes.windows(32).any(|window| window == commitment));
        assert!(!bytes.windows(7).any(|window| window == b"Mozilla"));
    }
}
