//! Fuzzes the audit pipeline's spool reader: no input may panic, no record
//! is accepted that the chain key did not authenticate, and damage to a
//! genuine segment costs only the records whose bytes it touched.
//!
//! Run with `cargo fuzz run spool_segment` from the repository root
//! (cargo-fuzz needs a nightly toolchain, or `RUSTC_BOOTSTRAP=1`).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use zt_audit::{AuditEvent, ChainKey, SpoolSegment, encode_spool_segment, read_spool_segment};
use zt_types::{Actor, EventPolicy};

const MARKER: [u8; 4] = [0xff, b'Z', b'T', b'R'];

/// The key genuine segments are written with, and one nothing is written with.
fn keys() -> &'static (ChainKey, ChainKey) {
    static KEYS: OnceLock<(ChainKey, ChainKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        (
            ChainKey::from_bytes(&(0x5a..0x5a + 32).collect::<Vec<u8>>()).expect("a 32-byte key"),
            ChainKey::from_bytes(&(0xa5..0xa5 + 32).collect::<Vec<u8>>()).expect("a 32-byte key"),
        )
    })
}

/// A genuine segment of a few events, and where each record starts.
fn genuine() -> &'static (Vec<AuditEvent>, Vec<u8>, Vec<usize>) {
    static GENUINE: OnceLock<(Vec<AuditEvent>, Vec<u8>, Vec<usize>)> = OnceLock::new();
    GENUINE.get_or_init(|| {
        let events: Vec<AuditEvent> = (0..4)
            .map(|i| {
                AuditEvent::builder(Actor::System, "FUZZ", "spool")
                    .resource_id(i)
                    .metadata(&serde_json::json!({ "i": i, "note": "ünïcode ✓" }))
                    .build_with(EventPolicy::default_ref())
                    .expect("a valid event")
            })
            .collect();
        let bytes = encode_spool_segment(&keys().0, &events).expect("an encodable segment");
        let starts = (8..bytes.len() - 3).filter(|&i| bytes[i..i + 4] == MARKER).collect();
        (events, bytes, starts)
    })
}

/// Damage stretches lie inside the input, in order, without overlapping.
fn check_damage(segment: &SpoolSegment, len: usize) {
    let mut end = 0;
    for damage in &segment.damage {
        assert!(damage.offset >= end, "{:?}", segment.damage);
        end = damage.offset + damage.length;
        assert!(end <= len as u64, "{:?}", segment.damage);
    }
}

fuzz_target!(|data: &[u8]| {
    let (key, stranger) = keys();

    // Arbitrary bytes read under a key that wrote nothing: nothing is
    // accepted, whatever the input forges.
    let read = read_spool_segment(stranger, data).expect("reading a slice cannot fail");
    assert!(read.events.is_empty(), "an unauthenticated record was accepted");
    check_damage(&read, data.len());
    let _ = read_spool_segment(key, data).expect("reading a slice cannot fail");

    // A genuine segment damaged by the input, read as (position, xor)
    // pairs after a first byte that may cut the segment short.
    let (events, bytes, starts) = genuine();
    let Some((&cut, edits)) = data.split_first() else {
        return;
    };
    let mut damaged = bytes.clone();
    let mut touched = vec![false; damaged.len()];
    for edit in edits.chunks_exact(3) {
        let position = usize::from(u16::from_le_bytes([edit[0], edit[1]])) % damaged.len();
        if edit[2] != 0 {
            damaged[position] ^= edit[2];
            touched[position] = true;
        }
    }
    let length = if cut < 0x80 {
        damaged.len()
    } else {
        damaged.len() * usize::from(cut - 0x80) / 0x80
    };
    damaged.truncate(length);
    let read = read_spool_segment(key, &damaged[..]).expect("reading a slice cannot fail");
    check_damage(&read, damaged.len());

    // What is accepted was written, in order; every record whose bytes are
    // all there and untouched is accepted.
    let mut written = events.iter();
    for event in &read.events {
        assert!(
            written.any(|genuine| genuine == event),
            "an event that was never written was accepted"
        );
    }
    for (index, &start) in starts.iter().enumerate() {
        let end = starts.get(index + 1).copied().unwrap_or(bytes.len());
        if end <= damaged.len() && !touched[start..end].iter().any(|&t| t) {
            assert!(read.events.contains(&events[index]), "intact record {index} was lost");
        }
    }
});
