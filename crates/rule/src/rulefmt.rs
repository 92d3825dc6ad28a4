//! Rule files: `groups:` of recording and alerting rules in Prometheus's format
//! (`model/rulefmt` of Prometheus 2.42), plus Thanos's group field
//! `partial_response_strategy` (`warn` or `abort`); alerting rules' `keep_firing_for` is
//! Prometheus 2.42's. Unknown fields are refused, as Prometheus's strict YAML decoding
//! refuses them. Every error names the group, the rule (its 1-based index and name) and
//! what is wrong, in Prometheus's words; Prometheus also gives the YAML line and column,
//! which are not kept here.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use rthanos_model::PromDuration;
use serde::Deserialize;

/// What a group does when a store of the querier fails (Thanos's rule groups).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PartialResponseStrategy {
    /// The evaluation fails (Thanos's default for rules).
    #[default]
    Abort,
    /// The evaluation goes on with what answered, counted as a warning.
    Warn,
}

/// A rule file.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleFile {
    /// Its groups, in file order.
    pub groups: Vec<RuleGroup>,
}

/// A group: rules evaluated in order, every `interval`.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleGroup {
    /// Name, unique in its file.
    pub name: String,
    /// Evaluation interval; `None` for the ruler's `--eval-interval`.
    pub interval: Option<PromDuration>,
    /// Most series a rule may produce (0: no limit).
    pub limit: u64,
    /// Thanos's partial response strategy.
    pub partial_response_strategy: PartialResponseStrategy,
    /// The rules.
    pub rules: Vec<Rule>,
}

/// What a rule is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleKind {
    /// A recording rule and the series name it writes.
    Record(String),
    /// An alerting rule and its alert name.
    Alert(String),
}

/// A rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Recording or alerting, with its name.
    pub kind: RuleKind,
    /// The PromQL expression (parsed and checked when the file is read).
    pub expr: String,
    /// How long an alert is pending before it fires.
    pub for_: PromDuration,
    /// How long an alert keeps firing after its condition ends.
    pub keep_firing_for: PromDuration,
    /// Labels added to the results (templates, for alerts).
    pub labels: BTreeMap<String, String>,
    /// An alert's annotations (templates).
    pub annotations: BTreeMap<String, String>,
}

/// Why a rule file is refused.
#[derive(Debug, thiserror::Error)]
pub enum RuleFileError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not YAML of the rule file's shape (a wrong type, an unknown field).
    #[error("{path}: {source}")]
    Yaml {
        /// The file.
        path: String,
        /// The decoder's message.
        #[source]
        source: serde_yaml::Error,
    },
    /// Well-formed, but a group or rule is not valid: every problem found.
    #[error("{path}: {}", .problems.join("; "))]
    Invalid {
        /// The file.
        path: String,
        /// Each problem, as Prometheus words it.
        problems: Vec<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Vec<RawGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: String,
    #[serde(default)]
    interval: Option<PromDuration>,
    #[serde(default)]
    limit: u64,
    #[serde(default)]
    partial_response_strategy: Option<String>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    record: Option<Scalar>,
    #[serde(default)]
    alert: Option<Scalar>,
    #[serde(default)]
    expr: Option<Scalar>,
    #[serde(default, rename = "for")]
    for_: Option<PromDuration>,
    #[serde(default)]
    keep_firing_for: Option<PromDuration>,
    #[serde(default)]
    labels: BTreeMap<String, Scalar>,
    #[serde(default)]
    annotations: BTreeMap<String, Scalar>,
}

/// A YAML scalar read as text, as Go's YAML decoder reads any scalar into a string
/// (`expr: 1` is the expression "1").
#[derive(Clone, Debug, Default)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) => Ok(Scalar(s)),
            serde_yaml::Value::Number(n) => Ok(Scalar(n.to_string())),
            serde_yaml::Value::Bool(b) => Ok(Scalar(b.to_string())),
            serde_yaml::Value::Null => Ok(Scalar(String::new())),
            other => Err(D::Error::custom(format!(
                "expected a string, found {}",
                match other {
                    serde_yaml::Value::Sequence(_) => "a sequence",
                    serde_yaml::Value::Mapping(_) => "a mapping",
                    _ => "a tagged value",
                }
            ))),
        }
    }
}

/// Reads and checks the rule file at `path`.
///
/// # Errors
/// The file cannot be read, is not a rule file, or has invalid groups or rules.
pub fn read_file(path: &Path) -> Result<RuleFile, RuleFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| RuleFileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&path.display().to_string(), &text)
}

/// Parses and checks rule file text; `path` names it in errors.
///
/// # Errors
/// As [`read_file`].
pub fn parse(path: &str, text: &str) -> Result<RuleFile, RuleFileError> {
    // An empty file is a file without groups, as in Prometheus.
    let raw: RawFile = if text.trim().is_empty() {
        RawFile { groups: Vec::new() }
    } else {
        serde_yaml::from_str(text).map_err(|source| RuleFileError::Yaml {
            path: path.to_string(),
            source,
        })?
    };
    let mut problems = Vec::new();
    let mut names = HashSet::new();
    let mut groups = Vec::new();
    for g in raw.groups {
        if g.name.is_empty() {
            problems.push("Groupname must not be empty".to_string());
        } else if !names.insert(g.name.clone()) {
            problems.push(format!(
                "groupname: {:?} is repeated in the same file",
                g.name
            ));
        }
        let strategy = match g.partial_response_strategy.as_deref() {
            None => PartialResponseStrategy::default(),
            Some(s) if s.eq_ignore_ascii_case("abort") => PartialResponseStrategy::Abort,
            Some(s) if s.eq_ignore_ascii_case("warn") => PartialResponseStrategy::Warn,
            Some(other) => {
                problems.push(format!(
                    "group {:?}: partial_response_strategy {other:?} is not one of warn, abort",
                    g.name
                ));
                PartialResponseStrategy::default()
            }
        };
        let mut rules = Vec::new();
        for (i, r) in g.rules.into_iter().enumerate() {
            match check_rule(r) {
                Ok(rule) => rules.push(rule),
                Err((name, errors)) => {
                    for e in errors {
                        problems.push(format!("group {:?}, rule {}, {name:?}: {e}", g.name, i + 1));
                    }
                }
            }
        }
        groups.push(RuleGroup {
            name: g.name,
            interval: g.interval,
            limit: g.limit,
            partial_response_strategy: strategy,
            rules,
        });
    }
    if problems.is_empty() {
        Ok(RuleFile { groups })
    } else {
        Err(RuleFileError::Invalid {
            path: path.to_string(),
            problems,
        })
    }
}

/// Prometheus's `RuleNode.Validate`; an error is the rule's name and its problems.
fn check_rule(r: RawRule) -> Result<Rule, (String, Vec<String>)> {
    let record = r.record.map(|s| s.0).filter(|s| !s.is_empty());
    let alert = r.alert.map(|s| s.0).filter(|s| !s.is_empty());
    // Prometheus names the rule by its alert name when it has one.
    let name = alert.clone().or_else(|| record.clone()).unwrap_or_default();
    let mut errors = Vec::new();
    match (&record, &alert) {
        (Some(_), Some(_)) => errors.push("only one of 'record' and 'alert' must be set".into()),
        (None, None) => errors.push("one of 'record' or 'alert' must be set".into()),
        _ => {}
    }
    let expr = r.expr.map(|s| s.0).unwrap_or_default();
    if expr.is_empty() {
        errors.push("field 'expr' must be set in rule".into());
    } else if let Err(e) = rthanos_promql::parse_query(&expr) {
        errors.push(format!("could not parse expression: {e}"));
    }
    if let Some(record) = &record {
        if !r.annotations.is_empty() {
            errors.push("invalid field 'annotations' in recording rule".into());
        }
        if r.for_.is_some_and(|d| !d.is_zero()) {
            errors.push("invalid field 'for' in recording rule".into());
        }
        if r.keep_firing_for.is_some_and(|d| !d.is_zero()) {
            errors.push("invalid field 'keep_firing_for' in recording rule".into());
        }
        if !rthanos_model::is_valid_metric_name(record) {
            errors.push(format!("invalid recording rule name: {record}"));
        }
    }
    for name in r.labels.keys() {
        if !rthanos_model::is_valid_label_name(name) || name == "__name__" {
            errors.push(format!("invalid label name: {name}"));
        }
    }
    for name in r.annotations.keys() {
        if !rthanos_model::is_valid_label_name(name) {
            errors.push(format!("invalid annotation name: {name}"));
        }
    }
    // Templates are parsed as Prometheus's `testTemplateParsing` does: labels, then
    // annotations (in name order; Prometheus's map order is random).
    if let Some(alert) = &alert {
        for (what, templates) in [("label", &r.labels), ("annotation", &r.annotations)] {
            for (key, text) in templates {
                if let Err(e) = crate::template::check_alert_template(alert, &text.0) {
                    errors.push(format!("{what} {key:?}: {}", e.go_error()));
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err((name, errors));
    }
    let kind = match (record, alert) {
        (Some(record), None) => RuleKind::Record(record),
        (None, Some(alert)) => RuleKind::Alert(alert),
        _ => return Err((name, vec!["one of 'record' or 'alert' must be set".into()])),
    };
    Ok(Rule {
        kind,
        expr,
        for_: r.for_.unwrap_or_default(),
        keep_firing_for: r.keep_firing_for.unwrap_or_default(),
        labels: r.labels.into_iter().map(|(k, v)| (k, v.0)).collect(),
        annotations: r.annotations.into_iter().map(|(k, v)| (k, v.0)).collect(),
    })
}

impl RuleFile {
    /// Number of rules.
    pub fn rules(&self) -> usize {
        self.groups.iter().map(|g| g.rules.len()).sum()
    }
}
