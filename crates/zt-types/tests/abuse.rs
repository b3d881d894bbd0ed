//! Abuse: arbitrary unicode, control characters and huge strings in the
//! header parsers and the event builder. Nothing panics and nothing grows
//! past its bound.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use proptest::prelude::*;
use zt_types::{
    Actor, AuditEvent, ClientIpResolver, EventPolicy, ForwardingHeader, IpSource, RequestContext, RequestId, UserAgent,
    UserId, neutralize,
};

/// Header text shaped like the real thing often enough to reach deep into
/// the parsers, and garbage the rest of the time.
fn header_line() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,200}",
        prop::collection::vec(
            prop_oneof![
                "(for|For|by|proto)=(\"?\\[?[0-9a-fA-F:.]{0,40}\\]?(:[0-9_a-z]{0,6})?\"?|_[a-z]{0,8}|unknown)",
                "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(:[0-9]{1,5})?",
                "\\[?[0-9a-f:]{2,39}\\]?",
                "\"[^\"]{0,20}\"?",
                "[;, \t\r\n\\\\\"=]",
            ],
            0..40,
        )
        .prop_map(|parts| parts.concat()),
    ]
}

fn peer() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        Just("10.0.0.2".parse().unwrap()),
        Just("198.51.100.9".parse().unwrap()),
        any::<u32>().prop_map(|bits| IpAddr::from(bits.to_be_bytes())),
        any::<u128>().prop_map(|bits| IpAddr::from(bits.to_be_bytes())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn resolvers_never_panic_and_stay_sane(
        lines in prop::collection::vec(header_line(), 0..6),
        peer in peer(),
        forwarded in any::<bool>(),
    ) {
        let header = if forwarded { ForwardingHeader::Forwarded } else { ForwardingHeader::XForwardedFor };
        let resolver = ClientIpResolver::from_cidrs(["10.0.0.0/8", "2001:db8::/32"]).unwrap().header(header);
        let resolved = resolver.resolve(peer, lines.iter().map(String::as_str));
        match resolved.source {
            // Falling back always yields the peer.
            IpSource::Peer => prop_assert_eq!(resolved.ip, peer.to_canonical()),
            // Believing a header needs a trusted peer, and never yields a trusted proxy as the client
            // unless every hop was one.
            IpSource::Header => prop_assert!(resolver.is_trusted(peer)),
            _ => prop_assert!(false, "unknown source"),
        }
        if !resolver.is_trusted(peer) {
            prop_assert_eq!(resolved.ip, peer.to_canonical(), "an untrusted peer is never overridden");
        }
    }

    #[test]
    fn huge_headers_are_bounded(repeat in 1usize..5_000, peer in peer()) {
        // Every peer trusted: a whole family is refused by name, so halves.
        let resolver = ClientIpResolver::from_cidrs(["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"]).unwrap();
        let line = "1.2.3.4, ".repeat(repeat);
        let resolved = resolver.resolve(peer, [line.as_str()]);
        if line.len() > ClientIpResolver::DEFAULT_MAX_HEADER_BYTES || repeat > ClientIpResolver::DEFAULT_MAX_HOPS {
            prop_assert_eq!(resolved.source, IpSource::Peer);
        }
    }

    #[test]
    fn event_builder_bounds_any_input(
        action in any::<String>(),
        resource in any::<String>(),
        resource_id in any::<String>(),
        user in any::<String>(),
        user_agent in prop_oneof![any::<String>(), "\\PC{0,10}".prop_map(|s| s.repeat(500))],
        request_id in any::<String>(),
        key in any::<String>(),
        value in prop_oneof![any::<String>(), any::<String>().prop_map(|s| s.repeat(2_000))],
    ) {
        let (request_id, _) = RequestId::from_header_or_generate(Some(&request_id));
        let context = RequestContext::new().with_user_agent(&user_agent).with_request_id(request_id);
        let actor = match UserId::parse(user) {
            Ok(id) => Actor::user(id, None),
            Err(_) => Actor::Anonymous,
        };
        let built = AuditEvent::builder(actor, &action, &resource)
            .resource_id(&resource_id)
            .metadata(&serde_json::json!({ key: value, "nested": [{"password": "p"}] }))
            .context(&context)
            .build();
        if let Ok(event) = built {
            prop_assert!(event.action().as_str().len() <= 64);
            prop_assert!(event.resource().as_str().len() <= 100);
            prop_assert!(event.resource_id().is_none_or(|id| id.as_str().len() <= 255));
            prop_assert!(event.metadata().as_str().len() <= EventPolicy::DEFAULT_MAX_METADATA_BYTES);
            prop_assert!(!event.metadata().as_str().contains('\0'));
            prop_assert!(!event.metadata().as_str().contains("\"p\""), "secrets are redacted");
            prop_assert!(event.context().user_agent().is_none_or(|ua| ua.as_str().len() <= UserAgent::MAX_LEN));
            prop_assert!(event.context().request_id().is_some_and(|id| id.as_str().len() <= 128));
        }
    }

    #[test]
    fn neutralized_text_has_no_line_breaks(text in any::<String>()) {
        let safe = neutralize(&text);
        let breaks = safe.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'));
        prop_assert!(!breaks, "{:?}", safe);
    }
}
