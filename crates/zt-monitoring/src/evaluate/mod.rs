//! Evaluation: counts in, alerts and snapshots out. `spike.rs` measures
//! spikes; `alerts.rs` is the alert engine (it uses `spike.rs`); `snapshot.rs`
//! is the dashboard's view (it uses both). None of them imports upward.

pub(crate) mod alerts;
pub(crate) mod snapshot;
pub(crate) mod spike;
