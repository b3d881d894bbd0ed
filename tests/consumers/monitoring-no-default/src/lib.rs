//! Consumer check: zt-monitoring without its default `webhook` feature.

/// Scrubs personal data from a message before it leaves the process.
pub fn scrub(text: &str) -> String {
    zt_monitoring::scrub_pii(text).into_owned()
}

/// Names the monitor, so that its type is compiled with this combination.
pub fn takes(_monitor: &zt_monitoring::Monitor) {}
