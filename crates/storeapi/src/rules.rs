//! The Rules API's messages as JSON, the way Thanos's `rulespb` marshals them for
//! `/api/v1/rules` and `/api/v1/alerts` (ruler and querier alike): labels as objects, states
//! in lower case, strategies by name, times as Go's RFC 3339 with nanoseconds, and empty lists
//! as `[]`.

use serde_json::{Map, Value, json};

use crate::thanos::{
    AlertInstance, AlertState, PartialResponseStrategy, Rule, RuleGroup, ZLabelSet, rule,
};

/// `{"groups": [...]}`.
pub fn rule_groups_json(groups: &[RuleGroup]) -> Value {
    json!({"groups": groups.iter().map(rule_group_json).collect::<Vec<_>>()})
}

/// `{"alerts": [...]}`.
pub fn alerts_json(alerts: &[AlertInstance]) -> Value {
    json!({"alerts": alerts.iter().map(alert_instance_json).collect::<Vec<_>>()})
}

fn rule_group_json(group: &RuleGroup) -> Value {
    json!({
        "name": group.name,
        "file": group.file,
        "rules": group.rules.iter().filter_map(rule_json).collect::<Vec<_>>(),
        "interval": go_number(group.interval),
        "evaluationTime": go_number(group.evaluation_duration_seconds),
        "lastEvaluation": go_time(group.last_evaluation.as_ref()),
        "limit": group.limit,
        "partialResponseStrategy": strategy_name(group.partial_response_strategy),
    })
}

fn rule_json(rule: &Rule) -> Option<Value> {
    let mut out = Map::new();
    match rule.result.as_ref()? {
        rule::Result::Recording(r) => {
            out.insert("name".into(), json!(r.name));
            out.insert("query".into(), json!(r.query));
            out.insert("labels".into(), labels_json(r.labels.as_ref()));
            out.insert("health".into(), json!(r.health));
            if !r.last_error.is_empty() {
                out.insert("lastError".into(), json!(r.last_error));
            }
            out.insert(
                "evaluationTime".into(),
                go_number(r.evaluation_duration_seconds),
            );
            out.insert(
                "lastEvaluation".into(),
                json!(go_time(r.last_evaluation.as_ref())),
            );
            out.insert("type".into(), json!("recording"));
        }
        rule::Result::Alert(a) => {
            out.insert("state".into(), json!(state_name(a.state)));
            out.insert("name".into(), json!(a.name));
            out.insert("query".into(), json!(a.query));
            out.insert("duration".into(), go_number(a.duration_seconds));
            out.insert("labels".into(), labels_json(a.labels.as_ref()));
            out.insert("annotations".into(), labels_json(a.annotations.as_ref()));
            out.insert(
                "alerts".into(),
                Value::Array(a.alerts.iter().map(alert_instance_json).collect()),
            );
            out.insert("health".into(), json!(a.health));
            if !a.last_error.is_empty() {
                out.insert("lastError".into(), json!(a.last_error));
            }
            out.insert(
                "evaluationTime".into(),
                go_number(a.evaluation_duration_seconds),
            );
            out.insert(
                "lastEvaluation".into(),
                json!(go_time(a.last_evaluation.as_ref())),
            );
            out.insert("keepFiringFor".into(), go_number(a.keep_firing_for_seconds));
            out.insert("type".into(), json!("alerting"));
        }
    }
    Some(Value::Object(out))
}

fn alert_instance_json(alert: &AlertInstance) -> Value {
    let mut out = Map::new();
    out.insert("labels".into(), labels_json(alert.labels.as_ref()));
    out.insert(
        "annotations".into(),
        labels_json(alert.annotations.as_ref()),
    );
    out.insert("state".into(), json!(state_name(alert.state)));
    if let Some(at) = &alert.active_at {
        out.insert("activeAt".into(), json!(go_time(Some(at))));
    }
    out.insert("value".into(), json!(alert.value));
    out.insert(
        "partialResponseStrategy".into(),
        json!(strategy_name(alert.partial_response_strategy)),
    );
    Value::Object(out)
}

/// A float as Go's encoding/json writes it where it matters to readers: whole numbers without
/// a fraction (`60`, not `60.0`).
fn go_number(x: f64) -> Value {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

fn labels_json(labels: Option<&ZLabelSet>) -> Value {
    Value::Object(
        labels
            .into_iter()
            .flat_map(|set| &set.labels)
            .map(|l| (l.name.clone(), Value::String(l.value.clone())))
            .collect(),
    )
}

/// The lower-case state name, as Thanos's `AlertState.MarshalJSON`.
pub fn state_name(state: i32) -> &'static str {
    match AlertState::try_from(state) {
        Ok(AlertState::Inactive) => "inactive",
        Ok(AlertState::Pending) => "pending",
        Ok(AlertState::Firing) => "firing",
        _ => "unknown",
    }
}

fn strategy_name(strategy: i32) -> &'static str {
    match PartialResponseStrategy::try_from(strategy) {
        Ok(PartialResponseStrategy::Abort) => "ABORT",
        _ => "WARN",
    }
}

/// Go's `time.Time` JSON: RFC 3339 in UTC with the nanoseconds' trailing zeros cut; the zero
/// time when unset.
pub fn go_time(at: Option<&prost_types::Timestamp>) -> String {
    let Some(at) = at else {
        return "0001-01-01T00:00:00Z".to_string();
    };
    let nanos = u32::try_from(at.nanos).unwrap_or(0);
    let Some(t) = chrono::DateTime::from_timestamp(at.seconds, nanos) else {
        return "0001-01-01T00:00:00Z".to_string();
    };
    let mut out = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Milliseconds since the epoch as a protobuf timestamp.
pub fn timestamp_ms(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thanos::{Alert, Label, RecordingRule};

    fn labels(pairs: &[(&str, &str)]) -> Option<ZLabelSet> {
        Some(ZLabelSet {
            labels: pairs
                .iter()
                .map(|(n, v)| Label {
                    name: (*n).into(),
                    value: (*v).into(),
                })
                .collect(),
        })
    }

    /// The JSON of Thanos's own rulespb test (custom_test.go), field for field.
    #[test]
    fn groups_marshal_as_thanos_marshals_them() {
        let group = RuleGroup {
            name: "group1".into(),
            file: "file1.yml".into(),
            interval: 2442.0,
            evaluation_duration_seconds: 2.1,
            partial_response_strategy: PartialResponseStrategy::Abort as i32,
            rules: vec![Rule {
                result: Some(rule::Result::Alert(Alert {
                    state: AlertState::Pending as i32,
                    name: "alert1".into(),
                    query: "up == 0".into(),
                    duration_seconds: 60.0,
                    labels: labels(&[("a2", "b2"), ("c2", "d2")]),
                    annotations: labels(&[("ann1", "ann44"), ("ann2", "ann33")]),
                    health: "health2".into(),
                    last_error: "1".into(),
                    evaluation_duration_seconds: 1.1,
                    ..Default::default()
                })),
            }],
            ..Default::default()
        };
        assert_eq!(
            rule_groups_json(&[group]).to_string(),
            r#"{"groups":[{"name":"group1","file":"file1.yml","rules":[{"state":"pending","name":"alert1","query":"up == 0","duration":60,"labels":{"a2":"b2","c2":"d2"},"annotations":{"ann1":"ann44","ann2":"ann33"},"alerts":[],"health":"health2","lastError":"1","evaluationTime":1.1,"lastEvaluation":"0001-01-01T00:00:00Z","keepFiringFor":0,"type":"alerting"}],"interval":2442,"evaluationTime":2.1,"lastEvaluation":"0001-01-01T00:00:00Z","limit":0,"partialResponseStrategy":"ABORT"}]}"#
        );
        let recording = Rule {
            result: Some(rule::Result::Recording(RecordingRule {
                name: "r".into(),
                query: "up".into(),
                health: "ok".into(),
                last_evaluation: Some(timestamp_ms(1_700_000_000_120)),
                ..Default::default()
            })),
        };
        let json = rule_json(&recording).expect("json");
        assert_eq!(json["lastEvaluation"], "2023-11-14T22:13:20.12Z");
        assert_eq!(json["labels"], json!({}));
        assert!(json.get("lastError").is_none());
        assert_eq!(json["type"], "recording");
    }
}
