//! The monitor. `handle.rs` is the running [`Monitor`] and the state its
//! clones share; `evaluator.rs` is the thread that ticks it (it uses
//! `handle.rs`); `builder.rs` is [`MonitorBuilder`], which starts both (it
//! uses the other two). No file imports one listed after it.
//!
//! [`Monitor`]: crate::Monitor
//! [`MonitorBuilder`]: crate::MonitorBuilder

pub(crate) mod builder;
mod evaluator;
pub(crate) mod handle;
