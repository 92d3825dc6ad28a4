//! The querier's rules and alerts: Thanos's Rules API asked of every endpoint that announces
//! it (rulers), at once, then merged as Thanos's querier merges it: filtered by the request's
//! selectors, rule names, groups and files; groups with the same file and name joined; rules
//! deduplicated after the replica labels are removed from their labels, keeping the most
//! severe alerting rule (firing over pending), else the most recently evaluated.

use std::cmp::Ordering;

use rthanos_model::Matcher;
use rthanos_storeapi::thanos::{AlertInstance, Label, RuleGroup, RulesRequest, rule};

use crate::metadata::NamedMetadataApi;

/// The merged rule groups of every ruler, and warnings.
///
/// # Errors
/// A selector does not parse, or a ruler failed without partial responses.
pub async fn rule_groups(
    endpoints: &[NamedMetadataApi],
    request: RulesRequest,
    replica_labels: &[String],
    partial_response: bool,
) -> Result<(Vec<RuleGroup>, Vec<String>), String> {
    let mut selectors = Vec::with_capacity(request.matcher_string.len());
    for s in &request.matcher_string {
        selectors.push(rthanos_promql::parse_selector(s).map_err(|e| e.to_string())?);
    }
    let asked: Vec<&NamedMetadataApi> =
        endpoints.iter().filter(|e| e.api.support().rules).collect();
    let answers =
        futures::future::join_all(asked.iter().map(|e| e.api.rules(request.clone()))).await;
    let (mut groups, mut warnings) = (Vec::new(), Vec::new());
    for (endpoint, answer) in asked.iter().zip(answers) {
        match answer {
            Ok((theirs, their_warnings)) => {
                groups.extend(theirs);
                warnings.extend(their_warnings);
            }
            Err(status) => {
                let message = format!("endpoint {}: {}", endpoint.name, status.message());
                if partial_response {
                    warnings.push(message);
                } else {
                    return Err(message);
                }
            }
        }
    }
    let groups = filter(groups, &selectors, &request);
    let mut groups = dedup_groups(groups);
    for g in &mut groups {
        dedup_rules(&mut g.rules, replica_labels);
    }
    Ok((groups, warnings))
}

/// Every alert of the alerting rules of `groups`.
pub fn alerts(groups: &[RuleGroup]) -> Vec<AlertInstance> {
    groups
        .iter()
        .flat_map(|g| &g.rules)
        .filter_map(|r| match &r.result {
            Some(rule::Result::Alert(a)) => Some(a.alerts.iter().cloned()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn rule_labels(r: &rthanos_storeapi::thanos::Rule) -> &[Label] {
    let set = match &r.result {
        Some(rule::Result::Recording(r)) => r.labels.as_ref(),
        Some(rule::Result::Alert(a)) => a.labels.as_ref(),
        None => None,
    };
    set.map_or(&[], |s| s.labels.as_slice())
}

fn rule_name(r: &rthanos_storeapi::thanos::Rule) -> &str {
    match &r.result {
        Some(rule::Result::Recording(r)) => &r.name,
        Some(rule::Result::Alert(a)) => &a.name,
        None => "",
    }
}

fn filter(
    groups: Vec<RuleGroup>,
    selectors: &[Vec<Matcher>],
    request: &RulesRequest,
) -> Vec<RuleGroup> {
    groups
        .into_iter()
        .filter(|g| request.rule_group.is_empty() || request.rule_group.contains(&g.name))
        .filter(|g| request.file.is_empty() || request.file.contains(&g.file))
        .map(|mut g| {
            g.rules.retain(|r| {
                let labels = rule_labels(r);
                let value = |name: &str| {
                    labels
                        .iter()
                        .find(|l| l.name == name)
                        .map_or("", |l| l.value.as_str())
                };
                (request.rule_name.is_empty()
                    || request.rule_name.iter().any(|n| n == rule_name(r)))
                    && (selectors.is_empty()
                        || selectors
                            .iter()
                            .any(|set| set.iter().all(|m| m.matches(value(&m.name)))))
            });
            g
        })
        .collect()
}

/// Groups with the same file and name become one, their rules joined.
fn dedup_groups(mut groups: Vec<RuleGroup>) -> Vec<RuleGroup> {
    groups.sort_by(|a, b| (&a.file, &a.name).cmp(&(&b.file, &b.name)));
    let mut out: Vec<RuleGroup> = Vec::with_capacity(groups.len());
    for g in groups {
        match out.last_mut() {
            Some(last) if last.file == g.file && last.name == g.name => last.rules.extend(g.rules),
            _ => out.push(g),
        }
    }
    out
}

fn evaluated_ms(r: &rthanos_storeapi::thanos::Rule) -> (i64, i32) {
    let at = match &r.result {
        Some(rule::Result::Recording(r)) => r.last_evaluation.as_ref(),
        Some(rule::Result::Alert(a)) => a.last_evaluation.as_ref(),
        None => None,
    };
    at.map_or((i64::MIN, 0), |t| (t.seconds, t.nanos))
}

/// Thanos's `Rule.Compare`: alerting rules first, then name, labels, query, and `for`.
fn compare(a: &rthanos_storeapi::thanos::Rule, b: &rthanos_storeapi::thanos::Rule) -> Ordering {
    let kind =
        |r: &rthanos_storeapi::thanos::Rule| matches!(r.result, Some(rule::Result::Recording(_)));
    let query = |r: &rthanos_storeapi::thanos::Rule| match &r.result {
        Some(rule::Result::Recording(r)) => r.query.clone(),
        Some(rule::Result::Alert(a)) => a.query.clone(),
        None => String::new(),
    };
    let labels = |r: &rthanos_storeapi::thanos::Rule| -> Vec<(String, String)> {
        rule_labels(r)
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect()
    };
    let hold = |r: &rthanos_storeapi::thanos::Rule| match &r.result {
        Some(rule::Result::Alert(a)) => a.duration_seconds,
        _ => 0.0,
    };
    kind(a)
        .cmp(&kind(b))
        .then_with(|| rule_name(a).cmp(rule_name(b)))
        .then_with(|| labels(a).cmp(&labels(b)))
        .then_with(|| query(a).cmp(&query(b)))
        .then_with(|| hold(a).total_cmp(&hold(b)))
}

/// Whether `candidate` should replace `kept`, of two equal rules: the more severe alerting
/// rule, else the more recently evaluated.
fn better(
    candidate: &rthanos_storeapi::thanos::Rule,
    kept: &rthanos_storeapi::thanos::Rule,
) -> bool {
    if let (Some(rule::Result::Alert(c)), Some(rule::Result::Alert(k))) =
        (&candidate.result, &kept.result)
        && c.state != k.state
    {
        return c.state > k.state;
    }
    evaluated_ms(candidate) > evaluated_ms(kept)
}

/// Removes the replica labels from each rule's labels, then keeps one of each set of equal
/// rules.
fn dedup_rules(rules: &mut Vec<rthanos_storeapi::thanos::Rule>, replica_labels: &[String]) {
    for r in rules.iter_mut() {
        let set = match &mut r.result {
            Some(rule::Result::Recording(r)) => r.labels.as_mut(),
            Some(rule::Result::Alert(a)) => a.labels.as_mut(),
            None => None,
        };
        if let Some(set) = set {
            set.labels.retain(|l| !replica_labels.contains(&l.name));
            set.labels.sort_by(|a, b| a.name.cmp(&b.name));
        }
    }
    rules.sort_by(compare);
    let mut out: Vec<rthanos_storeapi::thanos::Rule> = Vec::with_capacity(rules.len());
    for r in rules.drain(..) {
        match out.last_mut() {
            Some(kept) if compare(kept, &r) == Ordering::Equal => {
                if better(&r, kept) {
                    *kept = r;
                }
            }
            _ => out.push(r),
        }
    }
    *rules = out;
}

#[cfg(test)]
mod tests {
    use rthanos_storeapi::thanos::{Alert, AlertState, RecordingRule, Rule, ZLabelSet};

    use super::*;

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

    fn alert(replica: &str, state: AlertState, evaluated: i64) -> Rule {
        Rule {
            result: Some(rule::Result::Alert(Alert {
                name: "Down".into(),
                query: "up == 0".into(),
                state: state as i32,
                labels: labels(&[("replica", replica), ("severity", "page")]),
                last_evaluation: Some(rthanos_storeapi::rules::timestamp_ms(evaluated)),
                ..Default::default()
            })),
        }
    }

    fn recording(replica: &str, evaluated: i64) -> Rule {
        Rule {
            result: Some(rule::Result::Recording(RecordingRule {
                name: "job:up".into(),
                query: "sum by (job) (up)".into(),
                labels: labels(&[("replica", replica)]),
                last_evaluation: Some(rthanos_storeapi::rules::timestamp_ms(evaluated)),
                ..Default::default()
            })),
        }
    }

    fn group(rules: Vec<Rule>) -> RuleGroup {
        RuleGroup {
            name: "g".into(),
            file: "rules.yml".into(),
            rules,
            ..Default::default()
        }
    }

    #[test]
    fn replicas_groups_merge_and_their_rules_deduplicate_as_thanos_does() {
        let groups = vec![
            group(vec![
                alert("a", AlertState::Pending, 2000),
                recording("a", 1000),
            ]),
            group(vec![
                alert("b", AlertState::Firing, 1000),
                recording("b", 3000),
            ]),
        ];
        let mut merged = dedup_groups(filter(groups, &[], &RulesRequest::default()));
        assert_eq!(merged.len(), 1);
        dedup_rules(&mut merged[0].rules, &["replica".to_string()]);
        let rules = &merged[0].rules;
        assert_eq!(rules.len(), 2, "{rules:?}");
        let Some(rule::Result::Alert(a)) = &rules[0].result else {
            panic!("alerting rules first");
        };
        assert_eq!(
            a.state,
            AlertState::Firing as i32,
            "the more severe replica"
        );
        assert_eq!(a.labels, labels(&[("severity", "page")]));
        assert_eq!(
            evaluated_ms(&rules[1]).0,
            3,
            "the recording rule evaluated last"
        );
        // Without replica labels to remove, both replicas' rules stay.
        let mut both = vec![recording("a", 1000), recording("b", 2000)];
        dedup_rules(&mut both, &[]);
        assert_eq!(both.len(), 2);
    }

    #[test]
    fn requests_filter_by_selector_name_group_and_file() {
        let groups = || {
            vec![group(vec![
                alert("a", AlertState::Firing, 0),
                recording("a", 0),
            ])]
        };
        let only = |request: RulesRequest| {
            let selectors: Vec<Vec<Matcher>> = request
                .matcher_string
                .iter()
                .map(|s| rthanos_promql::parse_selector(s).expect("selector"))
                .collect();
            filter(groups(), &selectors, &request)
                .iter()
                .map(|g| g.rules.len())
                .sum::<usize>()
        };
        assert_eq!(only(RulesRequest::default()), 2);
        assert_eq!(
            only(RulesRequest {
                matcher_string: vec!["{severity=\"page\"}".into()],
                ..Default::default()
            }),
            1
        );
        assert_eq!(
            only(RulesRequest {
                rule_name: vec!["job:up".into()],
                ..Default::default()
            }),
            1
        );
        assert_eq!(
            only(RulesRequest {
                file: vec!["other.yml".into()],
                ..Default::default()
            }),
            0
        );
    }
}
