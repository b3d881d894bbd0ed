//! The alert engine: rules in, deduplicated, grouped and rate-limited
//! notifications out, in the style of Alertmanager.
//!
//! Each evaluation ("tick") turns the counts into candidate alerts, one per
//! fingerprint (rule plus labels), so the same condition is one alert however
//! many errors feed it. Alerts join groups; a group notifies after
//! `group_wait`, then at most every `group_interval` when its alerts changed,
//! and every `repeat_interval` when they did not. A resolved alert is notified
//! once, then may not fire again for `cooldown`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use zt_error_codes::ErrorCode;
use zt_types::{Severity, Timestamp};

use crate::duration;
use crate::evaluate::spike::measure_spike;
use crate::rules::model::{AlertRule, Condition, InhibitRule, Labels, Selector};
use crate::window::Windows;

/// Whether an alert fires or has resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertStatus {
    /// The condition holds.
    Firing,
    /// The condition held and no longer does.
    Resolved,
}

impl AlertStatus {
    /// `firing` or `resolved`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// One alert: a rule's condition for one set of labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Alert {
    /// The alert's identity: the rule and its labels, such as
    /// `critical{code="AUDIT_WRITE_FAILED",severity="critical"}`. Stable
    /// across evaluations, so downstream tools can deduplicate by it.
    pub fingerprint: String,
    /// The rule's name.
    pub rule: String,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// How bad it is.
    pub severity: Severity,
    /// `code`, `category`, `operation` and `severity`, where they apply.
    pub labels: BTreeMap<String, String>,
    /// The count that was compared, at the last evaluation where it held.
    pub value: u64,
    /// The count it was compared with.
    pub threshold: u64,
    /// The span counted.
    #[serde(serialize_with = "duration::serialize")]
    pub window: Duration,
    /// One line for people, such as `DB_UNAVAILABLE: 12 in 1m (threshold 10)`.
    pub summary: String,
    /// When it started firing.
    pub started_at: Timestamp,
    /// When it resolved.
    pub ended_at: Option<Timestamp>,
    /// Whether an inhibition mutes it.
    pub inhibited: bool,
}

/// One notification of a group of alerts, what sinks such as the webhook
/// sink deliver.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Notification {
    /// Firing if any alert in it fires, otherwise resolved.
    pub status: AlertStatus,
    /// The rule's name.
    pub rule: String,
    /// The group's identity, stable for the life of the group; use it as a
    /// pager's deduplication key.
    pub group_key: String,
    /// The values of the rule's `group_by` labels.
    pub group_labels: BTreeMap<String, String>,
    /// The highest severity among the alerts.
    pub severity: Severity,
    /// The firing alerts, then the newly resolved ones.
    pub alerts: Vec<Alert>,
    /// Whether this repeats an unchanged group after `repeat_interval`.
    pub repeat: bool,
    /// When it was sent.
    pub sent_at: Timestamp,
}

impl Notification {
    /// The firing alerts.
    pub fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.iter().filter(|alert| alert.status == AlertStatus::Firing)
    }

    /// The resolved alerts.
    pub fn resolved(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.iter().filter(|alert| alert.status == AlertStatus::Resolved)
    }

    /// A one-line title such as `[FIRING:2] database-errors category=database`.
    pub fn title(&self) -> String {
        let mut title = match self.status {
            AlertStatus::Firing => format!("[FIRING:{}] {}", self.firing().count(), self.rule),
            AlertStatus::Resolved => format!("[RESOLVED] {}", self.rule),
        };
        for (name, value) in &self.group_labels {
            let _ = write!(title, " {name}={value}");
        }
        title
    }

    /// The title, then each alert's summary.
    pub fn text(&self) -> String {
        let mut text = self.title();
        for alert in &self.alerts {
            let _ = write!(text, "\n- {}: {}", alert.status.as_str(), alert.summary);
        }
        text
    }

    /// The notification as JSON.
    pub fn to_json(&self) -> String {
        // Every field serializes infallibly: strings, numbers and timestamps.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The counts the engine reads.
pub(crate) struct Sources<'a> {
    pub(crate) codes: &'a Windows,
    pub(crate) now: u64,
    /// Each operation's name and its ring of slow runs, indexed like `codes`.
    pub(crate) operations: Vec<(&'a str, &'a Windows)>,
}

struct Candidate {
    rule: usize,
    labels: Labels,
    severity: Severity,
    value: u64,
    threshold: u64,
    window: Duration,
    summary: String,
    code: Option<ErrorCode>,
}

struct AlertState {
    alert: Alert,
    rule: usize,
    group: String,
    code: Option<ErrorCode>,
    notified: bool,
}

struct Group {
    rule: usize,
    labels: Labels,
    next_flush: i64,
    last_sent: Option<i64>,
    last_firing: Vec<String>,
}

/// Rules, inhibitions and the state of every alert and group.
pub(crate) struct Engine {
    rules: Vec<AlertRule>,
    inhibit: Vec<InhibitRule>,
    alerts: BTreeMap<String, AlertState>,
    groups: BTreeMap<String, Group>,
    cooldown_until: HashMap<String, i64>,
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

fn fingerprint(rule: &str, labels: &Labels) -> String {
    let mut out = String::from(rule);
    out.push('{');
    for (position, (name, value)) in labels.iter().enumerate() {
        if position > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}={value:?}");
    }
    out.push('}');
    out
}

impl Engine {
    pub(crate) fn new(rules: Vec<AlertRule>, inhibit: Vec<InhibitRule>) -> Self {
        Self {
            rules,
            inhibit,
            alerts: BTreeMap::new(),
            groups: BTreeMap::new(),
            cooldown_until: HashMap::new(),
        }
    }

    pub(crate) fn rules(&self) -> &[AlertRule] {
        &self.rules
    }

    /// Evaluates every rule at `now` and returns the notifications due.
    pub(crate) fn tick(&mut self, now: Timestamp, sources: &Sources<'_>) -> Vec<Notification> {
        let now_us = now.unix_micros();
        let candidates = self.evaluate(sources);
        let mut seen = HashSet::with_capacity(candidates.len());
        for candidate in candidates {
            let rule = &self.rules[candidate.rule];
            let fingerprint = fingerprint(rule.name(), &candidate.labels);
            let cooling = self
                .cooldown_until
                .get(&fingerprint)
                .is_some_and(|&until| until > now_us);
            seen.insert(fingerprint.clone());
            if let Some(state) = self.alerts.get_mut(&fingerprint) {
                if state.alert.status == AlertStatus::Resolved {
                    if cooling {
                        continue;
                    }
                    // It came back before its resolution went out: it never stopped, as
                    // far as anyone was told.
                    state.alert.status = AlertStatus::Firing;
                    state.alert.ended_at = None;
                    self.cooldown_until.remove(&fingerprint);
                }
                state.alert.value = candidate.value;
                state.alert.summary = candidate.summary;
                state.alert.severity = candidate.severity;
                continue;
            }
            if cooling {
                continue;
            }
            let group_labels: Labels = rule
                .group_by()
                .iter()
                .map(|label| {
                    let name = label.as_str();
                    (name.to_owned(), candidate.labels.get(name).cloned().unwrap_or_default())
                })
                .collect();
            let group_key = fingerprint_group(rule.name(), &group_labels);
            let group_wait = micros(rule.timing().group_wait());
            self.groups.entry(group_key.clone()).or_insert_with(|| Group {
                rule: candidate.rule,
                labels: group_labels,
                next_flush: now_us.saturating_add(group_wait),
                last_sent: None,
                last_firing: Vec::new(),
            });
            let alert = Alert {
                fingerprint: fingerprint.clone(),
                rule: rule.name().to_owned(),
                status: AlertStatus::Firing,
                severity: candidate.severity,
                labels: candidate.labels,
                value: candidate.value,
                threshold: candidate.threshold,
                window: candidate.window,
                summary: candidate.summary,
                started_at: now,
                ended_at: None,
                inhibited: false,
            };
            self.alerts.insert(
                fingerprint,
                AlertState {
                    alert,
                    rule: candidate.rule,
                    group: group_key,
                    code: candidate.code,
                    notified: false,
                },
            );
        }
        for (fingerprint, state) in &mut self.alerts {
            if state.alert.status == AlertStatus::Firing && !seen.contains(fingerprint) {
                state.alert.status = AlertStatus::Resolved;
                state.alert.ended_at = Some(now);
                let cooldown = micros(self.rules[state.rule].timing().cooldown());
                if cooldown > 0 {
                    self.cooldown_until
                        .insert(fingerprint.clone(), now_us.saturating_add(cooldown));
                }
            }
        }
        self.apply_inhibitions();
        let notifications = self.flush_groups(now);
        self.cooldown_until.retain(|_, until| *until > now_us);
        notifications
    }

    fn evaluate(&self, sources: &Sources<'_>) -> Vec<Candidate> {
        let mut out = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            if let Selector::SlowOperation(_) = rule.selector() {
                for (name, windows) in sources
                    .operations
                    .iter()
                    .filter(|(name, _)| rule.selector().matches_operation(name))
                {
                    if let Some(measure) = measure(windows, &[0], sources.now, rule.condition()) {
                        let labels = Labels::from([("operation".to_owned(), (*name).to_owned())]);
                        let summary = format!("{name} slow runs: {}", measure.detail);
                        out.push(candidate(
                            index,
                            labels,
                            rule.severity().unwrap_or(Severity::Warning),
                            &measure,
                            summary,
                            None,
                        ));
                    }
                }
                continue;
            }
            let codes: Vec<(usize, ErrorCode)> = ErrorCode::ALL
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, code)| rule.selector().matches_code(*code))
                .collect();
            if rule.per_code() {
                for (series, code) in codes {
                    if let Some(measure) = measure(sources.codes, &[series], sources.now, rule.condition()) {
                        let labels = Labels::from([
                            ("code".to_owned(), code.reason().to_owned()),
                            ("category".to_owned(), code.category().as_str().to_owned()),
                        ]);
                        let summary = format!("{}: {}", code.reason(), measure.detail);
                        let severity = rule.severity().unwrap_or(code.severity());
                        out.push(candidate(index, labels, severity, &measure, summary, Some(code)));
                    }
                }
            } else {
                let series: Vec<usize> = codes.iter().map(|(series, _)| *series).collect();
                if let Some(measure) = measure(sources.codes, &series, sources.now, rule.condition()) {
                    let mut labels = Labels::new();
                    if let Selector::Category(category) = rule.selector() {
                        labels.insert("category".to_owned(), category.as_str().to_owned());
                    }
                    let severity = rule.severity().unwrap_or(match rule.selector() {
                        Selector::MinSeverity(minimum) => *minimum,
                        _ => Severity::Error,
                    });
                    let summary = format!("{}: {}", rule.describe_selector(), measure.detail);
                    out.push(candidate(index, labels, severity, &measure, summary, None));
                }
            }
        }
        out
    }

    fn apply_inhibitions(&mut self) {
        if self.inhibit.is_empty() {
            return;
        }
        let firing: Vec<(String, Labels, Severity)> = self
            .alerts
            .iter()
            .filter(|(_, state)| state.alert.status == AlertStatus::Firing)
            .map(|(fingerprint, state)| (fingerprint.clone(), state.alert.labels.clone(), state.alert.severity))
            .collect();
        for (fingerprint, state) in &mut self.alerts {
            let labels = &state.alert.labels;
            let severity = state.alert.severity;
            state.alert.inhibited = state.alert.status == AlertStatus::Firing
                && self.inhibit.iter().any(|rule| {
                    // An alert that matches both sides cannot be muted by this rule,
                    // so two such alerts never mute each other.
                    rule.target().matches_alert(labels, severity)
                        && !rule.source().matches_alert(labels, severity)
                        && firing.iter().any(|(other, other_labels, other_severity)| {
                            other != fingerprint
                                && rule.source().matches_alert(other_labels, *other_severity)
                                && rule
                                    .equal()
                                    .iter()
                                    .all(|label| labels.get(label.as_str()) == other_labels.get(label.as_str()))
                        })
                });
        }
    }

    fn flush_groups(&mut self, now: Timestamp) -> Vec<Notification> {
        let now_us = now.unix_micros();
        let due: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, group)| group.next_flush <= now_us)
            .map(|(key, _)| key.clone())
            .collect();
        let mut notifications = Vec::new();
        for key in due {
            let Some(group) = self.groups.get_mut(&key) else {
                continue;
            };
            let timing = self.rules[group.rule].timing();
            let members: Vec<&String> = self
                .alerts
                .iter()
                .filter(|(_, state)| state.group == key)
                .map(|(fingerprint, _)| fingerprint)
                .collect();
            let mut firing = Vec::new();
            let mut resolved = Vec::new();
            for fingerprint in &members {
                let state = &self.alerts[*fingerprint];
                match state.alert.status {
                    AlertStatus::Firing if !state.alert.inhibited => {
                        firing.push((*fingerprint).clone());
                    }
                    AlertStatus::Resolved if state.notified => {
                        resolved.push((*fingerprint).clone());
                    }
                    _ => {}
                }
            }
            let changed = firing != group.last_firing || !resolved.is_empty();
            let repeat_due = !firing.is_empty()
                && group
                    .last_sent
                    .is_some_and(|sent| now_us >= sent.saturating_add(micros(timing.repeat_interval())));
            let worth_sending = !firing.is_empty() || !resolved.is_empty();
            if worth_sending && (changed || repeat_due) {
                let alerts: Vec<Alert> = firing
                    .iter()
                    .chain(&resolved)
                    .map(|fingerprint| self.alerts[fingerprint].alert.clone())
                    .collect();
                notifications.push(Notification {
                    status: if firing.is_empty() {
                        AlertStatus::Resolved
                    } else {
                        AlertStatus::Firing
                    },
                    rule: self.rules[group.rule].name().to_owned(),
                    group_key: key.clone(),
                    group_labels: group.labels.clone(),
                    severity: alerts
                        .iter()
                        .map(|alert| alert.severity)
                        .max()
                        .unwrap_or(Severity::Info),
                    alerts,
                    repeat: !changed,
                    sent_at: now,
                });
                group.last_sent = Some(now_us);
                for fingerprint in &firing {
                    if let Some(state) = self.alerts.get_mut(fingerprint) {
                        state.notified = true;
                    }
                }
            }
            group.last_firing = firing;
            group.next_flush = now_us.saturating_add(micros(timing.group_interval()));
            self.alerts
                .retain(|_, state| !(state.group == key && state.alert.status == AlertStatus::Resolved));
            if !self.alerts.values().any(|state| state.group == key) {
                self.groups.remove(&key);
            }
        }
        notifications
    }

    /// Alerts that fire, or resolved and not yet notified.
    pub(crate) fn active(&self) -> Vec<Alert> {
        self.alerts.values().map(|state| state.alert.clone()).collect()
    }

    /// Codes that have a firing alert of their own.
    pub(crate) fn firing_codes(&self) -> impl Iterator<Item = ErrorCode> + '_ {
        self.alerts
            .values()
            .filter(|state| state.alert.status == AlertStatus::Firing)
            .filter_map(|state| state.code)
    }

    /// The number of firing alerts per rule, every rule listed.
    pub(crate) fn firing_per_rule(&self) -> Vec<(&str, usize)> {
        self.rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                let count = self
                    .alerts
                    .values()
                    .filter(|state| state.rule == index && state.alert.status == AlertStatus::Firing)
                    .count();
                (rule.name(), count)
            })
            .collect()
    }
}

fn fingerprint_group(rule: &str, labels: &Labels) -> String {
    fingerprint(rule, labels)
}

struct Measure {
    value: u64,
    threshold: u64,
    window: Duration,
    detail: String,
}

fn measure(windows: &Windows, series: &[usize], now: u64, condition: &Condition) -> Option<Measure> {
    match condition {
        Condition::Threshold { count, window } => {
            let buckets = windows.buckets_for(*window);
            let value: u64 = series.iter().map(|&one| windows.recent(one, now, buckets)).sum();
            (value >= *count).then(|| Measure {
                value,
                threshold: *count,
                window: *window,
                detail: format!("{value} in {} (threshold {count})", duration::format(*window)),
            })
        }
        Condition::Spike(spike) => {
            let measured = measure_spike(windows, series, now, spike);
            measured.spike.then(|| Measure {
                value: measured.recent,
                threshold: spike.min_count(),
                window: spike.recent(),
                detail: format!(
                    "{} in {}, {:.1}x the baseline of {:.2}/min",
                    measured.recent,
                    duration::format(spike.recent()),
                    measured.ratio,
                    measured.baseline_per_minute
                ),
            })
        }
    }
}

fn candidate(
    rule_index: usize,
    mut labels: Labels,
    severity: Severity,
    measure: &Measure,
    summary: String,
    code: Option<ErrorCode>,
) -> Candidate {
    labels.insert("severity".to_owned(), severity.as_str().to_owned());
    Candidate {
        rule: rule_index,
        labels,
        severity,
        value: measure.value,
        threshold: measure.threshold,
        window: measure.window,
        summary,
        code,
    }
}
