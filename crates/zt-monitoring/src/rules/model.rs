//! The rule model: what a rule watches ([`Selector`]), when it fires
//! ([`Condition`], [`SpikeConfig`]), how its alerts are grouped and timed
//! ([`GroupLabel`], [`Timing`]), inhibitions, slow-operation thresholds, and
//! the set of them all ([`AlertConfig`]). The file format is `config.rs`'s.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zt_error_codes::{Category, ErrorCode};
use zt_types::Severity;

use crate::error::Error;

/// Alert labels, such as `code` and `category`, sorted by name.
pub(crate) type Labels = BTreeMap<String, String>;

/// What a rule or an inhibition watches.
///
/// Error selectors match codes by their catalog severity and category.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Selector {
    /// Every error code.
    Any,
    /// One code.
    Code(ErrorCode),
    /// Every code of a category.
    Category(Category),
    /// Every code at least this severe.
    MinSeverity(Severity),
    /// Slow runs of an operation (see [`crate::Operation`]); `*` means every operation.
    SlowOperation(String),
}

impl Selector {
    pub(crate) fn matches_code(&self, code: ErrorCode) -> bool {
        match self {
            Self::Any => true,
            Self::Code(wanted) => *wanted == code,
            Self::Category(category) => code.category() == *category,
            Self::MinSeverity(severity) => code.severity() >= *severity,
            Self::SlowOperation(_) => false,
        }
    }

    pub(crate) fn matches_operation(&self, name: &str) -> bool {
        matches!(self, Self::SlowOperation(pattern) if pattern == "*" || pattern == name)
    }

    /// Whether an alert with these labels and severity is selected.
    pub(crate) fn matches_alert(&self, labels: &Labels, severity: Severity) -> bool {
        match self {
            Self::Any => true,
            Self::Code(code) => labels.get("code").is_some_and(|value| value == code.reason()),
            Self::Category(category) => labels.get("category").is_some_and(|value| value == category.as_str()),
            Self::MinSeverity(minimum) => severity >= *minimum,
            Self::SlowOperation(pattern) => labels
                .get("operation")
                .is_some_and(|value| pattern == "*" || value == pattern),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Any => "every code".into(),
            Self::Code(code) => code.reason().into(),
            Self::Category(category) => format!("category {category}"),
            Self::MinSeverity(severity) => format!("severity {severity} and above"),
            Self::SlowOperation(pattern) => format!("slow operation {pattern}"),
        }
    }
}

/// When a rule's alert fires.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Condition {
    /// At least `count` events within the last `window`. Like Sentry's issue
    /// alert "seen more than N times in an interval".
    Threshold {
        /// The number of events that fires the alert.
        count: u64,
        /// How far back to count.
        window: Duration,
    },
    /// The recent rate is a multiple of the baseline rate.
    Spike(SpikeConfig),
}

impl Condition {
    /// At least `count` events within `window`.
    pub fn threshold(count: u64, window: Duration) -> Self {
        Self::Threshold { count, window }
    }

    /// The span of history the condition reads.
    pub(crate) fn span(&self) -> Duration {
        match self {
            Self::Threshold { window, .. } => *window,
            Self::Spike(spike) => spike.recent().saturating_add(spike.baseline()),
        }
    }
}

/// A label that alerts can be grouped by, in the style of Alertmanager's `group_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GroupLabel {
    /// The error code.
    Code,
    /// The code's category.
    Category,
    /// The alert's severity.
    Severity,
    /// The operation of a slow-operation alert.
    Operation,
}

impl GroupLabel {
    /// The label's name, such as `code`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Code => "code",
            Self::Category => "category",
            Self::Severity => "severity",
            Self::Operation => "operation",
        }
    }
}

/// When notifications go out, in Alertmanager's terms.
///
/// - `group_wait` (default 30 s): how long a new group waits for more alerts
///   before its first notification.
/// - `group_interval` (default 5 min): the least time between two
///   notifications of a group whose alerts changed, resolutions included.
/// - `repeat_interval` (default 4 h): how often an unchanged, still-firing
///   group is notified again.
/// - `cooldown` (default 5 min): after an alert resolves, how long the same
///   alert may not fire again; this damps flapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    group_wait: Duration,
    group_interval: Duration,
    repeat_interval: Duration,
    cooldown: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
            cooldown: Duration::from_secs(300),
        }
    }
}

impl Timing {
    /// Alertmanager's defaults: 30 s, 5 min, 4 h, and a 5 min cooldown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `group_wait`.
    #[must_use]
    pub fn with_group_wait(mut self, value: Duration) -> Self {
        self.group_wait = value;
        self
    }

    /// Sets `group_interval`.
    #[must_use]
    pub fn with_group_interval(mut self, value: Duration) -> Self {
        self.group_interval = value;
        self
    }

    /// Sets `repeat_interval`.
    #[must_use]
    pub fn with_repeat_interval(mut self, value: Duration) -> Self {
        self.repeat_interval = value;
        self
    }

    /// Sets `cooldown`.
    #[must_use]
    pub fn with_cooldown(mut self, value: Duration) -> Self {
        self.cooldown = value;
        self
    }

    /// The group wait.
    pub fn group_wait(&self) -> Duration {
        self.group_wait
    }

    /// The group interval.
    pub fn group_interval(&self) -> Duration {
        self.group_interval
    }

    /// The repeat interval.
    pub fn repeat_interval(&self) -> Duration {
        self.repeat_interval
    }

    /// The cooldown.
    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }
}

/// One alert rule: which errors, what condition, how alerts are grouped and
/// when they are notified.
///
/// ```
/// use std::time::Duration;
/// use zt_error_codes::Category;
/// use zt_monitoring::{AlertRule, Condition, GroupLabel, Selector};
///
/// // Each database code seen 50 times in 5 minutes is an alert; all of them
/// // go out together, one notification per category.
/// let rule = AlertRule::new(
///     "database-errors",
///     Selector::Category(Category::Database),
///     Condition::threshold(50, Duration::from_secs(300)),
/// )
/// .with_split_by_code(true)
/// .with_group_by([GroupLabel::Category]);
/// assert_eq!(rule.name(), "database-errors");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    name: String,
    selector: Selector,
    condition: Condition,
    severity: Option<Severity>,
    split_by_code: bool,
    group_by: Vec<GroupLabel>,
    timing: Timing,
}

impl AlertRule {
    /// The name of the built-in rule for critical codes.
    pub const CRITICAL: &'static str = "critical";
    /// The name of the built-in rule for slow operations.
    pub const SLOW_OPERATIONS: &'static str = "slow-operations";

    /// A rule with the default [`Timing`], no splitting and no extra grouping.
    pub fn new(name: impl Into<String>, selector: Selector, condition: Condition) -> Self {
        Self {
            name: name.into(),
            selector,
            condition,
            severity: None,
            split_by_code: false,
            group_by: Vec::new(),
            timing: Timing::default(),
        }
    }

    /// The built-in rule: any critical code alerts at once. One alert and one
    /// group per code, no group wait and no cooldown; it resolves after five
    /// minutes without that code.
    pub fn critical() -> Self {
        Self::new(
            Self::CRITICAL,
            Selector::MinSeverity(Severity::Critical),
            Condition::threshold(1, Duration::from_secs(300)),
        )
        .with_split_by_code(true)
        .with_group_by([GroupLabel::Code])
        .with_timing(
            Timing::default()
                .with_group_wait(Duration::ZERO)
                .with_cooldown(Duration::ZERO),
        )
    }

    /// The built-in rule: any operation slower than its threshold alerts, one
    /// group per operation, at warning severity. It resolves after five
    /// minutes without a slow run.
    pub fn slow_operations() -> Self {
        Self::new(
            Self::SLOW_OPERATIONS,
            Selector::SlowOperation("*".into()),
            Condition::threshold(1, Duration::from_secs(300)),
        )
        .with_severity(Severity::Warning)
        .with_group_by([GroupLabel::Operation])
    }

    /// Sets the alerts' severity. Default: the code's severity for per-code
    /// alerts, the selector's level for `MinSeverity`, warning for slow
    /// operations, error otherwise.
    #[must_use]
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = Some(severity);
        self
    }

    /// Makes each matching code its own alert, instead of one alert for the
    /// sum. Default: off. Slow-operation rules always split by operation.
    #[must_use]
    pub fn with_split_by_code(mut self, split: bool) -> Self {
        self.split_by_code = split;
        self
    }

    /// Groups alerts by these labels, within the rule. Default: one group per rule.
    #[must_use]
    pub fn with_group_by(mut self, labels: impl IntoIterator<Item = GroupLabel>) -> Self {
        self.group_by = labels.into_iter().collect();
        self.group_by.sort_unstable();
        self.group_by.dedup();
        self
    }

    /// Sets all four timers.
    #[must_use]
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// The name, unique among a monitor's rules.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the rule watches.
    pub fn selector(&self) -> &Selector {
        &self.selector
    }

    /// When it fires.
    pub fn condition(&self) -> &Condition {
        &self.condition
    }

    /// The severity set on the rule, if any.
    pub fn severity(&self) -> Option<Severity> {
        self.severity
    }

    /// Whether each code is its own alert.
    pub fn split_by_code(&self) -> bool {
        self.split_by_code
    }

    /// The grouping labels.
    pub fn group_by(&self) -> &[GroupLabel] {
        &self.group_by
    }

    /// The timers.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Whether each matching code gets its own alert.
    pub(crate) fn per_code(&self) -> bool {
        self.split_by_code || matches!(self.selector, Selector::Code(_))
    }

    pub(crate) fn describe_selector(&self) -> String {
        self.selector.describe()
    }

    /// Checks everything that does not depend on the monitor.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let name = &self.name;
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(Error::config(format!(
                "rule {name:?}: the name must be 1 to 128 printable characters"
            )));
        }
        if let Selector::SlowOperation(pattern) = &self.selector
            && pattern.is_empty()
        {
            return Err(Error::config(format!("rule {name:?}: empty slow_operation")));
        }
        match &self.condition {
            Condition::Threshold { count, window } => {
                if *count == 0 {
                    return Err(Error::config(format!(
                        "rule {name:?}: the threshold must be at least 1"
                    )));
                }
                if window.is_zero() {
                    return Err(Error::config(format!(
                        "rule {name:?}: the window must be longer than zero"
                    )));
                }
            }
            Condition::Spike(spike) => spike
                .check()
                .map_err(|why| Error::config(format!("rule {name:?}: {why}")))?,
        }
        if self.timing.group_interval.is_zero() {
            return Err(Error::config(format!(
                "rule {name:?}: group_interval must be longer than zero"
            )));
        }
        if self.timing.repeat_interval.is_zero() {
            return Err(Error::config(format!(
                "rule {name:?}: repeat_interval must be longer than zero"
            )));
        }
        Ok(())
    }
}

/// Mutes alerts while a more important one fires, as Alertmanager's
/// inhibition does: while an alert matching `source` fires, alerts matching
/// `target` with the same values of the `equal` labels are not notified.
///
/// ```
/// use zt_monitoring::{GroupLabel, InhibitRule, Selector};
/// use zt_types::Severity;
///
/// // A critical alert mutes warnings of the same category.
/// let rule = InhibitRule::new(Selector::MinSeverity(Severity::Critical), Selector::MinSeverity(Severity::Warning))
///     .with_equal([GroupLabel::Category]);
/// # let _ = rule;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InhibitRule {
    source: Selector,
    target: Selector,
    equal: Vec<GroupLabel>,
}

impl InhibitRule {
    /// Alerts matching `source` mute alerts matching `target`.
    pub fn new(source: Selector, target: Selector) -> Self {
        Self {
            source,
            target,
            equal: Vec::new(),
        }
    }

    /// Only when these labels have the same value on both alerts.
    #[must_use]
    pub fn with_equal(mut self, labels: impl IntoIterator<Item = GroupLabel>) -> Self {
        self.equal = labels.into_iter().collect();
        self
    }

    /// The muting side.
    pub fn source(&self) -> &Selector {
        &self.source
    }

    /// The muted side.
    pub fn target(&self) -> &Selector {
        &self.target
    }

    /// The labels that must match.
    pub fn equal(&self) -> &[GroupLabel] {
        &self.equal
    }
}

/// A slow-run threshold for a named operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowThreshold {
    /// The operation's name, as passed to [`crate::Monitor::operation`].
    pub name: String,
    /// Runs at least this long count as slow.
    pub threshold: Duration,
}

/// A set of rules, inhibitions and slow-operation thresholds, built in code or
/// loaded from a TOML or JSON file.
///
/// ```
/// use zt_monitoring::AlertConfig;
///
/// let config = AlertConfig::from_toml_str(r#"
///     [defaults]
///     group_wait = "10s"
///     repeat_interval = "1h"
///
///     [[rules]]
///     name = "db-unavailable"
///     code = "DB_UNAVAILABLE"
///     threshold = 10
///     window = "1m"
///
///     [[rules]]
///     name = "session-spike"
///     category = "session"
///     split_by_code = true
///     spike = { factor = 4.0, recent = "1m", baseline = "30m", min_count = 20 }
///
///     [[inhibit]]
///     source = { min_severity = "critical" }
///     target = { min_severity = "warning" }
///     equal = ["category"]
///
///     [[operations]]
///     name = "db.query"
///     slow = "250ms"
/// "#)?;
/// assert_eq!(config.rules().len(), 2);
/// assert_eq!(config.rules()[0].timing().group_wait().as_secs(), 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The same in JSON: `{"rules": [{"name": "db-unavailable", "code":
/// "DB_UNAVAILABLE", "threshold": 10, "window": "1m"}]}`. Durations are in
/// humantime's grammar, the one the `zt` command reads too: `250ms`, `30s`,
/// `5m`, `4h`, `1d`, `2w`, sums such as `1h30m` or `1h 30m`; a bare JSON
/// number is seconds. A rule names at most one of `code`, `category`, `min_severity`
/// and `slow_operation` (none means every code), and either `threshold` with
/// `window`, or `spike`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertConfig {
    rules: Vec<AlertRule>,
    inhibit: Vec<InhibitRule>,
    operations: Vec<SlowThreshold>,
}

impl AlertConfig {
    /// An empty configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule.
    #[must_use]
    pub fn rule(mut self, rule: AlertRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds an inhibition.
    #[must_use]
    pub fn inhibit(mut self, rule: InhibitRule) -> Self {
        self.inhibit.push(rule);
        self
    }

    /// Sets the slow-run threshold of an operation.
    #[must_use]
    pub fn slow_operation(mut self, name: impl Into<String>, threshold: Duration) -> Self {
        self.operations.push(SlowThreshold {
            name: name.into(),
            threshold,
        });
        self
    }

    /// The rules.
    pub fn rules(&self) -> &[AlertRule] {
        &self.rules
    }

    /// The inhibitions.
    pub fn inhibitions(&self) -> &[InhibitRule] {
        &self.inhibit
    }

    /// The slow-operation thresholds.
    pub fn operations(&self) -> &[SlowThreshold] {
        &self.operations
    }

    /// Adds everything from `other`; its rules replace rules of the same name.
    #[must_use]
    pub fn merge(mut self, other: AlertConfig) -> Self {
        for rule in other.rules {
            self.rules.retain(|existing| existing.name != rule.name);
            self.rules.push(rule);
        }
        self.inhibit.extend(other.inhibit);
        self.operations.extend(other.operations);
        self
    }

    /// Checks names, conditions and timers.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let mut names = HashSet::new();
        for rule in &self.rules {
            rule.check()?;
            if !names.insert(rule.name.as_str()) {
                return Err(Error::config(format!("rule {:?} is defined twice", rule.name)));
            }
        }
        for operation in &self.operations {
            if operation.name.is_empty() || operation.threshold.is_zero() {
                return Err(Error::config(format!(
                    "operation {:?}: a slow threshold needs a name and a duration above zero",
                    operation.name
                )));
            }
        }
        Ok(())
    }
}

/// How spikes are detected: the rate over the `recent` span against the rate
/// over the `baseline` span just before it.
///
/// A spike needs at least `min_count` recent events and a recent rate at
/// least `factor` times the baseline rate. An empty baseline counts as one
/// event, so a code that was silent spikes on `min_count` events. Until the
/// monitor has seen at least one `recent` span of baseline, nothing spikes.
///
/// Defaults: factor 3, recent 1 min, baseline 30 min, min count 10.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpikeConfig {
    factor: f64,
    recent: Duration,
    baseline: Duration,
    min_count: u64,
}

impl Default for SpikeConfig {
    fn default() -> Self {
        Self::new(3.0)
    }
}

impl SpikeConfig {
    /// A recent rate `factor` times the baseline's, with the other defaults.
    pub fn new(factor: f64) -> Self {
        Self {
            factor,
            recent: Duration::from_secs(60),
            baseline: Duration::from_secs(1800),
            min_count: 10,
        }
    }

    /// Sets the recent span. Default: 1 min.
    #[must_use]
    pub fn with_recent(mut self, span: Duration) -> Self {
        self.recent = span;
        self
    }

    /// Sets the baseline span. Default: 30 min.
    #[must_use]
    pub fn with_baseline(mut self, span: Duration) -> Self {
        self.baseline = span;
        self
    }

    /// Sets the fewest recent events that can spike. Default: 10.
    #[must_use]
    pub fn with_min_count(mut self, count: u64) -> Self {
        self.min_count = count;
        self
    }

    /// The factor.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// The recent span.
    pub fn recent(&self) -> Duration {
        self.recent
    }

    /// The baseline span.
    pub fn baseline(&self) -> Duration {
        self.baseline
    }

    /// The fewest recent events that can spike.
    pub fn min_count(&self) -> u64 {
        self.min_count
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if !self.factor.is_finite() || self.factor < 1.0 {
            return Err(format!("spike factor {} must be a number of at least 1", self.factor));
        }
        if self.recent.is_zero() || self.baseline < self.recent {
            return Err("spike spans need recent above zero and a baseline at least as long".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_replaces_rules_by_name() {
        let base = AlertConfig::new().rule(AlertRule::critical());
        let other = AlertConfig::new().rule(AlertRule::critical().with_severity(Severity::Error));
        let merged = base.merge(other);
        assert_eq!(merged.rules().len(), 1);
        assert_eq!(merged.rules()[0].severity(), Some(Severity::Error));
    }

    #[test]
    fn spike_config_is_checked() {
        assert!(SpikeConfig::new(0.5).check().is_err());
        assert!(SpikeConfig::new(f64::NAN).check().is_err());
        assert!(
            SpikeConfig::new(2.0)
                .with_baseline(Duration::from_secs(1))
                .check()
                .is_err()
        );
        assert!(SpikeConfig::default().check().is_ok());
    }
}
