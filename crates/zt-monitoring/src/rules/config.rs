//! The rule file format: [`AlertConfig`] from TOML or JSON. Each rule,
//! inhibition and threshold of a file is read into a `Raw*` shape that mirrors
//! the file, then built with the model's own constructors, so a file can say
//! nothing code cannot. Durations are [`crate::duration`]'s grammar.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use zt_error_codes::{Category, ErrorCode};
use zt_types::Severity;

use crate::duration;
use crate::error::{Error, ErrorKind};
use crate::rules::model::{AlertConfig, AlertRule, Condition, GroupLabel, InhibitRule, Selector, SpikeConfig, Timing};

impl AlertConfig {
    /// Parses TOML.
    pub fn from_toml_str(text: &str) -> Result<Self, Error> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|error| Error::config("invalid alert rules (toml)").with_source(error))?;
        raw.into_config()
    }

    /// Parses JSON.
    pub fn from_json_str(text: &str) -> Result<Self, Error> {
        let raw: RawConfig = serde_json::from_str(text)
            .map_err(|error| Error::config("invalid alert rules (json)").with_source(error))?;
        raw.into_config()
    }

    /// Reads a `.toml` or `.json` file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| {
            Error::new(
                ErrorKind::Io,
                format!("cannot read alert rules from {}", path.display()),
            )
            .with_source(error)
        })?;
        match path.extension().and_then(|extension| extension.to_str()) {
            Some(extension) if extension.eq_ignore_ascii_case("toml") => Self::from_toml_str(&text),
            Some(extension) if extension.eq_ignore_ascii_case("json") => Self::from_json_str(&text),
            _ => Err(Error::config(format!(
                "alert rules file {} must end in .toml or .json",
                path.display()
            ))),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    defaults: RawTiming,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    inhibit: Vec<RawInhibit>,
    #[serde(default)]
    operations: Vec<RawOperation>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct RawTiming {
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    group_wait: Option<Duration>,
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    group_interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    repeat_interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    cooldown: Option<Duration>,
}

impl RawTiming {
    /// `base`, with what the file sets.
    fn apply(self, base: Timing) -> Timing {
        base.with_group_wait(self.group_wait.unwrap_or(base.group_wait()))
            .with_group_interval(self.group_interval.unwrap_or(base.group_interval()))
            .with_repeat_interval(self.repeat_interval.unwrap_or(base.repeat_interval()))
            .with_cooldown(self.cooldown.unwrap_or(base.cooldown()))
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSelector {
    code: Option<ErrorCode>,
    category: Option<Category>,
    min_severity: Option<Severity>,
    slow_operation: Option<String>,
}

impl RawSelector {
    fn into_selector(self, owner: &str) -> Result<Selector, Error> {
        let mut selectors = Vec::new();
        selectors.extend(self.code.map(Selector::Code));
        selectors.extend(self.category.map(Selector::Category));
        selectors.extend(self.min_severity.map(Selector::MinSeverity));
        selectors.extend(self.slow_operation.map(Selector::SlowOperation));
        match selectors.len() {
            0 => Ok(Selector::Any),
            1 => Ok(selectors.remove(0)),
            _ => Err(Error::config(format!(
                "{owner}: name at most one of code, category, min_severity and slow_operation"
            ))),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpike {
    factor: f64,
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    recent: Option<Duration>,
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    baseline: Option<Duration>,
    min_count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    code: Option<ErrorCode>,
    category: Option<Category>,
    min_severity: Option<Severity>,
    slow_operation: Option<String>,
    severity: Option<Severity>,
    threshold: Option<u64>,
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    window: Option<Duration>,
    spike: Option<RawSpike>,
    #[serde(default)]
    split_by_code: bool,
    #[serde(default)]
    group_by: Vec<GroupLabel>,
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    group_wait: Option<Duration>,
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    group_interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    repeat_interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    cooldown: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInhibit {
    source: RawSelector,
    target: RawSelector,
    #[serde(default)]
    equal: Vec<GroupLabel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperation {
    name: String,
    #[serde(deserialize_with = "duration::deserialize")]
    slow: Duration,
}

impl RawConfig {
    fn into_config(self) -> Result<AlertConfig, Error> {
        let defaults = self.defaults.apply(Timing::default());
        let mut config = AlertConfig::new();
        for raw in self.rules {
            let owner = format!("rule {:?}", raw.name);
            let selector = RawSelector {
                code: raw.code,
                category: raw.category,
                min_severity: raw.min_severity,
                slow_operation: raw.slow_operation,
            }
            .into_selector(&owner)?;
            let condition = match (raw.threshold, raw.window, raw.spike) {
                (Some(count), Some(window), None) => Condition::threshold(count, window),
                (None, None, Some(spike)) => {
                    let mut config = SpikeConfig::new(spike.factor);
                    if let Some(recent) = spike.recent {
                        config = config.with_recent(recent);
                    }
                    if let Some(baseline) = spike.baseline {
                        config = config.with_baseline(baseline);
                    }
                    if let Some(min_count) = spike.min_count {
                        config = config.with_min_count(min_count);
                    }
                    Condition::Spike(config)
                }
                _ => {
                    return Err(Error::config(format!(
                        "{owner}: give either threshold and window, or spike"
                    )));
                }
            };
            let timing = RawTiming {
                group_wait: raw.group_wait,
                group_interval: raw.group_interval,
                repeat_interval: raw.repeat_interval,
                cooldown: raw.cooldown,
            }
            .apply(defaults);
            let mut rule = AlertRule::new(raw.name, selector, condition)
                .with_split_by_code(raw.split_by_code)
                .with_group_by(raw.group_by)
                .with_timing(timing);
            if let Some(severity) = raw.severity {
                rule = rule.with_severity(severity);
            }
            config = config.rule(rule);
        }
        for (position, raw) in self.inhibit.into_iter().enumerate() {
            let owner = format!("inhibit rule {}", position + 1);
            let source = raw.source.into_selector(&owner)?;
            let target = raw.target.into_selector(&owner)?;
            config = config.inhibit(InhibitRule::new(source, target).with_equal(raw.equal));
        }
        for raw in self.operations {
            config = config.slow_operation(raw.name, raw.slow);
        }
        config.check()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_toml_agree() {
        let toml = AlertConfig::from_toml_str(
            r#"
            [[rules]]
            name = "db"
            category = "database"
            threshold = 5
            window = "1m"
            split_by_code = true
            group_by = ["category"]
            cooldown = "10m"
            "#,
        )
        .unwrap();
        let json = AlertConfig::from_json_str(
            r#"{"rules": [{"name": "db", "category": "database", "threshold": 5, "window": 60,
                "split_by_code": true, "group_by": ["category"], "cooldown": "10m"}]}"#,
        )
        .unwrap();
        assert_eq!(toml, json);
        let rule = &toml.rules()[0];
        assert_eq!(rule.selector(), &Selector::Category(Category::Database));
        assert_eq!(rule.timing().cooldown(), Duration::from_secs(600));
        assert_eq!(rule.timing().group_wait(), Duration::from_secs(30));
    }

    #[test]
    fn bad_files_name_the_problem() {
        let cases = [
            (
                r#"[[rules]]
                name = "x"
                code = "NOPE"
                threshold = 1
                window = "1m""#,
                "invalid alert rules",
            ),
            (
                r#"[[rules]]
                name = "x"
                code = "INTERNAL"
                category = "database"
                threshold = 1
                window = "1m""#,
                "at most one",
            ),
            (
                r#"[[rules]]
                name = "x"
                threshold = 1"#,
                "either threshold and window",
            ),
            (
                r#"[[rules]]
                name = "x"
                threshold = 0
                window = "1m""#,
                "at least 1",
            ),
            (
                r#"[[rules]]
                name = "x"
                threshold = 1
                window = "1 fortnight""#,
                "invalid alert rules",
            ),
            (
                r#"[[rules]]
                name = "x"
                threshold = 1
                window = "1m"
                [[rules]]
                name = "x"
                threshold = 2
                window = "1m""#,
                "defined twice",
            ),
            (
                r#"[[rulez]]
                name = "x""#,
                "invalid alert rules",
            ),
        ];
        for (text, expected) in cases {
            let error = AlertConfig::from_toml_str(text).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Config);
            assert!(error.to_string().contains(expected), "{error}");
        }
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let error = AlertConfig::from_path("/nonexistent/rules.toml").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Io);
    }
}
