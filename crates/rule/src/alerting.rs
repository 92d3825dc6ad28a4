//! An alerting rule's state, as Prometheus 2.42's `AlertingRule.Eval` keeps it
//! (`rules/alerting.go`): each series of the expression's result is an alert, keyed by its
//! labels (the series' labels without `__name__`, the rule's labels, `alertname`). A new
//! alert is pending; it fires once it has been active for `for`; when its series is gone a
//! pending alert is forgotten and a firing one resolves (inactive, kept 15 minutes so its
//! resolution is sent), unless `keep_firing_for` holds it firing. Each evaluation writes
//! `ALERTS{alertstate}` (1) and `ALERTS_FOR_STATE` (the active-since time, in seconds) for
//! every pending and firing alert.

use std::collections::{BTreeMap, HashMap};

use rthanos_model::Labels;

/// How long a resolved alert is kept (Prometheus's `resolvedRetention`).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// An alert's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertState {
    /// Resolved: its series is gone.
    Inactive,
    /// Active for less than `for`.
    Pending,
    /// Active for `for` or longer.
    Firing,
}

impl AlertState {
    /// Prometheus's name of the state (`alertstate` label, API).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of a rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// Its labels (with `alertname`).
    pub labels: Labels,
    /// Its annotations, expanded at the last evaluation that saw it.
    pub annotations: BTreeMap<String, String>,
    /// Its state.
    pub state: AlertState,
    /// The expression's value at the last evaluation that saw it.
    pub value: f64,
    /// When it became active (ms).
    pub active_at: i64,
    /// When it fired (ms).
    pub fired_at: Option<i64>,
    /// When it resolved (ms).
    pub resolved_at: Option<i64>,
    /// Since when `keep_firing_for` holds it firing (ms).
    pub keep_firing_since: Option<i64>,
    /// When it was last handed to the notifier (ms).
    pub last_sent_at: Option<i64>,
    /// Until when Alertmanager should hold it firing without hearing again (ms): the
    /// `endsAt` of a firing alert.
    pub valid_until: i64,
}

/// Why an evaluation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    /// Two series give one alert.
    #[error("vector contains metrics with the same labelset after applying alert labels")]
    DuplicateLabels,
    /// More alerts than the group's `limit`: every alert is dropped, as in Prometheus.
    #[error("exceeded limit of {limit} with {alerts} alerts")]
    Limit {
        /// The group's limit.
        limit: usize,
        /// Pending and firing alerts.
        alerts: usize,
    },
}

/// An alerting rule and its alerts.
#[derive(Clone, Debug)]
pub struct AlertingRule {
    name: String,
    hold_ms: i64,
    keep_firing_for_ms: i64,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    active: HashMap<Labels, Alert>,
    /// Whether `for` state was restored after start: until then no ALERTS series are
    /// written (Prometheus's `restored`).
    restored: bool,
}

fn with_label(labels: &Labels, name: &str, value: &str) -> Labels {
    let mut pairs: Vec<(String, String)> = labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    pairs.push((name.to_string(), value.to_string()));
    Labels::from_pairs(pairs)
}

impl AlertingRule {
    /// A rule named `name` firing after `hold_ms`, kept firing `keep_firing_for_ms` after its
    /// condition ends, with label and annotation templates.
    pub fn new(
        name: impl Into<String>,
        hold_ms: i64,
        keep_firing_for_ms: i64,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    ) -> Self {
        AlertingRule {
            name: name.into(),
            hold_ms,
            keep_firing_for_ms,
            labels,
            annotations,
            active: HashMap::new(),
            restored: false,
        }
    }

    /// The alert name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Marks `for` state as restored (or found nothing to restore): evaluations write
    /// ALERTS series from now on.
    pub fn set_restored(&mut self) {
        self.restored = true;
    }

    /// The alerts, in label order.
    pub fn alerts(&self) -> Vec<&Alert> {
        let mut out: Vec<&Alert> = self.active.values().collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// How long an alert is pending before it fires (`for`, ms).
    pub fn hold_ms(&self) -> i64 {
        self.hold_ms
    }

    /// How long a firing alert is held after its condition ends (`keep_firing_for`, ms).
    pub fn keep_firing_for_ms(&self) -> i64 {
        self.keep_firing_for_ms
    }

    /// The label templates.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// The annotation templates.
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        &self.annotations
    }

    /// Whether `for` state has been restored (or needed no restoring).
    pub fn restored(&self) -> bool {
        self.restored
    }

    /// Takes over the alerts of the same rule from before a reload, as Prometheus's
    /// `copyState` does.
    pub fn take_state(&mut self, old: &mut AlertingRule) {
        self.active = std::mem::take(&mut old.active);
        self.restored = old.restored;
    }

    /// The alerts to hand to the notifier after the evaluation at `ts`, as Prometheus's
    /// `sendAlerts`: every firing or resolved alert not sent within `resend_delay_ms`, or
    /// resolved since it was last sent. Each is valid for four evaluation intervals or
    /// resend delays, whichever is longer (two failed evaluations or sends are tolerated).
    pub fn alerts_to_send(
        &mut self,
        ts: i64,
        resend_delay_ms: i64,
        interval_ms: i64,
    ) -> Vec<Alert> {
        let delta = resend_delay_ms.max(interval_ms);
        let mut out = Vec::new();
        for alert in self.active.values_mut() {
            if alert.state == AlertState::Pending {
                continue;
            }
            let resolved_since_sent = match (alert.resolved_at, alert.last_sent_at) {
                (Some(resolved), Some(sent)) => resolved > sent,
                (Some(_), None) => true,
                _ => false,
            };
            let due = alert
                .last_sent_at
                .is_none_or(|sent| sent.saturating_add(resend_delay_ms) < ts);
            if resolved_since_sent || due {
                alert.last_sent_at = Some(ts);
                alert.valid_until = ts.saturating_add(delta.saturating_mul(4));
                out.push(alert.clone());
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Restores an alert's active-since time from `ALERTS_FOR_STATE` after a restart.
    pub fn restore_active_at(&mut self, labels: &Labels, active_at: i64) {
        if let Some(alert) = self.active.get_mut(labels) {
            alert.active_at = active_at;
        }
    }

    /// Evaluates at `ts` (ms) on the expression's `result` (series labels and values).
    /// `expand(template, labels, value)` expands a label or annotation template for one
    /// series. Returns the ALERTS and ALERTS_FOR_STATE samples to write at `ts`.
    ///
    /// # Errors
    /// Two series give the same alert, or there are more alerts than `limit` (0: none).
    pub fn eval(
        &mut self,
        ts: i64,
        result: &[(Labels, f64)],
        mut expand: impl FnMut(&str, &Labels, f64) -> String,
        limit: usize,
    ) -> Result<Vec<(Labels, f64)>, AlertError> {
        let mut seen: HashMap<Labels, Alert> = HashMap::with_capacity(result.len());
        for (series, value) in result {
            let mut pairs: Vec<(String, String)> = series
                .iter()
                .filter(|l| l.name != "__name__")
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            for (name, template) in &self.labels {
                pairs.push((name.clone(), expand(template, series, *value)));
            }
            pairs.push(("alertname".to_string(), self.name.clone()));
            // Later pairs win: the rule's labels over the series', alertname over both. A
            // label whose template expands to "" is removed, as Prometheus's builder does.
            let labels = Labels::from_pairs(pairs);
            let labels = if labels.iter().any(|l| l.value.is_empty()) {
                Labels::from_pairs(
                    labels
                        .iter()
                        .filter(|l| !l.value.is_empty())
                        .map(|l| (l.name.clone(), l.value.clone())),
                )
            } else {
                labels
            };
            let annotations = self
                .annotations
                .iter()
                .map(|(name, template)| (name.clone(), expand(template, series, *value)))
                .collect();
            if seen.contains_key(&labels) {
                return Err(AlertError::DuplicateLabels);
            }
            seen.insert(
                labels.clone(),
                Alert {
                    labels,
                    annotations,
                    state: AlertState::Pending,
                    value: *value,
                    active_at: ts,
                    fired_at: None,
                    resolved_at: None,
                    keep_firing_since: None,
                    last_sent_at: None,
                    valid_until: 0,
                },
            );
        }
        let current: std::collections::HashSet<Labels> = seen.keys().cloned().collect();
        for (labels, alert) in seen {
            match self.active.get_mut(&labels) {
                Some(existing) if existing.state != AlertState::Inactive => {
                    existing.value = alert.value;
                    existing.annotations = alert.annotations;
                }
                _ => {
                    self.active.insert(labels, alert);
                }
            }
        }
        let mut samples = Vec::new();
        let mut active = 0;
        let mut forget = Vec::new();
        for (labels, alert) in &mut self.active {
            if current.contains(labels) {
                alert.keep_firing_since = None;
            } else {
                let mut keep_firing = false;
                if alert.state == AlertState::Firing && self.keep_firing_for_ms > 0 {
                    let since = *alert.keep_firing_since.get_or_insert(ts);
                    keep_firing = ts - since < self.keep_firing_for_ms;
                }
                if alert.state == AlertState::Pending
                    || alert
                        .resolved_at
                        .is_some_and(|at| ts - at > RESOLVED_RETENTION_MS)
                {
                    forget.push(labels.clone());
                }
                if alert.state != AlertState::Inactive && !keep_firing {
                    alert.state = AlertState::Inactive;
                    alert.resolved_at = Some(ts);
                }
                if !keep_firing {
                    continue;
                }
            }
            active += 1;
            if alert.state == AlertState::Pending && ts - alert.active_at >= self.hold_ms {
                alert.state = AlertState::Firing;
                alert.fired_at = Some(ts);
            }
            if self.restored {
                let with_name = |name: &str| with_label(&alert.labels, "__name__", name);
                samples.push((
                    with_label(&with_name("ALERTS"), "alertstate", alert.state.as_str()),
                    1.0,
                ));
                // Whole seconds, as Prometheus's `ActiveAt.Unix()`.
                samples.push((
                    with_name("ALERTS_FOR_STATE"),
                    alert.active_at.div_euclid(1000) as f64,
                ));
            }
        }
        for labels in forget {
            self.active.remove(&labels);
        }
        if limit > 0 && active > limit {
            self.active.clear();
            return Err(AlertError::Limit {
                limit,
                alerts: active,
            });
        }
        samples.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn up(instance: &str) -> (Labels, f64) {
        (
            Labels::from_pairs([("__name__", "up"), ("instance", instance), ("job", "api")]),
            0.0,
        )
    }

    fn rule(hold: i64, keep: i64) -> AlertingRule {
        let mut r = AlertingRule::new(
            "InstanceDown",
            hold,
            keep,
            BTreeMap::from([("severity".to_string(), "page".to_string())]),
            BTreeMap::from([("summary".to_string(), "down".to_string())]),
        );
        r.set_restored();
        r
    }

    fn copy(t: &str, _: &Labels, _: f64) -> String {
        t.to_string()
    }

    fn states(r: &AlertingRule) -> Vec<(String, AlertState)> {
        r.alerts()
            .iter()
            .map(|a| (a.labels.get("instance").unwrap_or("").to_string(), a.state))
            .collect()
    }

    #[test]
    fn pending_then_firing_after_for_then_resolved_and_kept_15_minutes() {
        let mut r = rule(5 * MIN, 0);
        let out = r.eval(0, &[up("a")], copy, 0).expect("eval");
        assert_eq!(states(&r), [("a".into(), AlertState::Pending)]);
        let alerts = Labels::from_pairs([
            ("__name__", "ALERTS"),
            ("alertname", "InstanceDown"),
            ("alertstate", "pending"),
            ("instance", "a"),
            ("job", "api"),
            ("severity", "page"),
        ]);
        assert_eq!(out[0], (alerts, 1.0));
        assert_eq!(out[1].0.get("__name__"), Some("ALERTS_FOR_STATE"));
        assert_eq!(out[1].1, 0.0);
        r.eval(5 * MIN - 1, &[up("a")], copy, 0).expect("eval");
        assert_eq!(states(&r), [("a".into(), AlertState::Pending)]);
        r.eval(5 * MIN, &[up("a")], copy, 0).expect("eval");
        assert_eq!(states(&r), [("a".into(), AlertState::Firing)]);
        assert_eq!(r.alerts()[0].fired_at, Some(5 * MIN));
        // Gone: resolved, no ALERTS written, kept for its resolution to be sent.
        let out = r.eval(6 * MIN, &[], copy, 0).expect("eval");
        assert!(out.is_empty());
        assert_eq!(states(&r), [("a".into(), AlertState::Inactive)]);
        assert_eq!(r.alerts()[0].resolved_at, Some(6 * MIN));
        r.eval(21 * MIN, &[], copy, 0).expect("eval");
        assert_eq!(states(&r).len(), 1, "kept 15 minutes");
        r.eval(21 * MIN + 1, &[], copy, 0).expect("eval");
        assert!(states(&r).is_empty());
    }

    #[test]
    fn a_pending_alert_that_goes_away_is_forgotten_and_starts_again() {
        let mut r = rule(5 * MIN, 0);
        r.eval(0, &[up("a")], copy, 0).expect("eval");
        r.eval(MIN, &[], copy, 0).expect("eval");
        assert!(states(&r).is_empty());
        r.eval(2 * MIN, &[up("a")], copy, 0).expect("eval");
        assert_eq!(r.alerts()[0].active_at, 2 * MIN);
        // A resolved alert that comes back is a new pending alert.
        let mut r = rule(0, 0);
        r.eval(0, &[up("a")], copy, 0).expect("eval");
        assert_eq!(
            states(&r),
            [("a".into(), AlertState::Firing)],
            "for 0 fires at once"
        );
        r.eval(MIN, &[], copy, 0).expect("eval");
        r.eval(2 * MIN, &[up("a")], copy, 0).expect("eval");
        assert_eq!(states(&r), [("a".into(), AlertState::Firing)]);
        assert_eq!(r.alerts()[0].active_at, 2 * MIN);
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert() {
        let mut r = rule(0, 3 * MIN);
        r.eval(0, &[up("a")], copy, 0).expect("eval");
        let out = r.eval(MIN, &[], copy, 0).expect("eval");
        assert_eq!(states(&r), [("a".into(), AlertState::Firing)]);
        assert_eq!(out.len(), 2, "still written as firing");
        r.eval(4 * MIN - 1, &[], copy, 0).expect("eval");
        assert_eq!(states(&r), [("a".into(), AlertState::Firing)]);
        r.eval(4 * MIN, &[], copy, 0).expect("eval");
        assert_eq!(states(&r), [("a".into(), AlertState::Inactive)]);
    }

    #[test]
    fn duplicates_and_limits_are_errors() {
        let mut r = rule(0, 0);
        let twice = [
            (Labels::from_pairs([("__name__", "a"), ("x", "1")]), 1.0),
            (Labels::from_pairs([("__name__", "b"), ("x", "1")]), 1.0),
        ];
        assert_eq!(r.eval(0, &twice, copy, 0), Err(AlertError::DuplicateLabels));
        assert_eq!(
            r.eval(0, &[up("a"), up("b")], copy, 1),
            Err(AlertError::Limit {
                limit: 1,
                alerts: 2
            })
        );
        assert!(states(&r).is_empty(), "every alert dropped");
    }

    #[test]
    fn nothing_is_written_until_restored_and_templates_see_each_series() {
        let mut r = AlertingRule::new(
            "A",
            0,
            0,
            BTreeMap::from([("who".to_string(), "$labels.instance".to_string())]),
            BTreeMap::new(),
        );
        let expand =
            |_: &str, l: &Labels, v: f64| format!("{}={v}", l.get("instance").unwrap_or(""));
        let out = r.eval(0, &[up("a")], expand, 0).expect("eval");
        assert!(out.is_empty());
        assert_eq!(r.alerts()[0].labels.get("who"), Some("a=0"));
        r.set_restored();
        assert_eq!(r.eval(1000, &[up("a")], expand, 0).expect("eval").len(), 2);
    }
}
