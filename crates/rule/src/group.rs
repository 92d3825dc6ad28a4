//! A rule group and one evaluation of it, as Prometheus 2.42's `Group.Eval` does it
//! (`rules/manager.go`): the rules in file order, each queried at the evaluation time through
//! the querier, recording rules' results and alerting rules' `ALERTS` / `ALERTS_FOR_STATE`
//! appended in one commit per rule, series a rule returned last time but not now marked
//! stale, firing and resolved alerts handed to the notifier. A failed query or append marks
//! the rule unhealthy with its error and the group carries on with the next rule.
//!
//! Everything outside the group is a trait: the querier ([`RuleQuerier`]), where samples go
//! ([`SampleSink`]: the ruler's TSDB, or a remote-write queue), template expansion
//! ([`AlertTemplater`]), the notifier ([`AlertNotifier`]) and, for restoring `for` state
//! after a restart, the ruler's own `ALERTS_FOR_STATE` samples ([`ForStateSource`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rthanos_model::Labels;

use crate::alerting::{Alert, AlertingRule};
use crate::recording;
use crate::rulefmt::{PartialResponseStrategy, RuleGroup, RuleKind};

/// Prometheus's staleness marker.
pub const STALE_NAN: f64 = f64::from_bits(0x7ff0_0000_0000_0002);

/// What an instant query returned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryOutcome {
    /// The vector (a scalar is one sample without labels).
    pub samples: Vec<(Labels, f64)>,
    /// Warnings the querier returned with it (a partial response).
    pub warnings: Vec<String>,
}

/// An instant query through the querier's HTTP API.
#[async_trait::async_trait]
pub trait RuleQuerier: Send + Sync {
    /// Evaluates `expr` at `ts` (ms) with the group's partial-response strategy.
    ///
    /// # Errors
    /// No querier answered, or the answer is not a vector or scalar; the text is the rule's
    /// last error.
    async fn query(
        &self,
        expr: &str,
        ts: i64,
        strategy: PartialResponseStrategy,
    ) -> Result<QueryOutcome, String>;
}

/// Why one sample was not appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Older than the series' newest sample.
    OutOfOrder,
    /// Older than the TSDB accepts.
    TooOld,
    /// A different value at the series' newest timestamp.
    Duplicate,
    /// Anything else.
    Other(String),
}

impl Refusal {
    /// Whether Prometheus expects it when it marks a series stale (another rule may write the
    /// same series), so it is not logged.
    fn expected_for_stale_marker(&self) -> bool {
        !matches!(self, Refusal::Other(_))
    }
}

/// Where a rule's samples go.
pub trait SampleSink: Send + Sync {
    /// Appends `samples` at `ts` (ms) in one commit: for each sample `None` (appended) or why
    /// it was refused.
    ///
    /// # Errors
    /// The commit failed: none was kept.
    fn append(&self, ts: i64, samples: &[(Labels, f64)]) -> Result<Vec<Option<Refusal>>, String>;
}

/// Expands an alerting rule's label and annotation templates.
pub trait AlertTemplater: Send + Sync {
    /// Expands `text` of rule `rule` for a series with `labels` and `value`, evaluated at
    /// `ts` (ms) with the group's strategy (for the template's `query` function). An
    /// expansion error gives Prometheus's `<error expanding template: …>` text.
    fn expand(
        &self,
        rule: &str,
        text: &str,
        labels: &Labels,
        value: f64,
        ts: i64,
        strategy: PartialResponseStrategy,
    ) -> String;
}

/// Templates copied unexpanded: for checks and tests that need no template language.
#[derive(Clone, Copy, Debug, Default)]
pub struct VerbatimTemplates;

impl AlertTemplater for VerbatimTemplates {
    fn expand(
        &self,
        _: &str,
        text: &str,
        _: &Labels,
        _: f64,
        _: i64,
        _: PartialResponseStrategy,
    ) -> String {
        text.to_string()
    }
}

/// Takes the alerts to send.
pub trait AlertNotifier: Send + Sync {
    /// Queues the firing and resolved `alerts` of the rule with expression `expr`.
    fn notify(&self, expr: &str, alerts: Vec<Alert>);
}

/// A notifier that drops every alert (no Alertmanager configured).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoNotifier;

impl AlertNotifier for NoNotifier {
    fn notify(&self, _: &str, _: Vec<Alert>) {}
}

/// The ruler's own samples, read back to restore `for` state: from its TSDB, or in
/// stateless mode from the queriers (where the remote-write target's data is seen).
#[async_trait::async_trait]
pub trait ForStateSource: Send + Sync {
    /// The newest sample in `[min_time, max_time]` (ms) of the series with exactly `labels`.
    async fn last_sample(
        &self,
        labels: &Labels,
        min_time: i64,
        max_time: i64,
    ) -> Option<(i64, f64)>;
}

/// Counts a group's evaluations; the metrics themselves live with the manager.
pub trait GroupObserver: Send + Sync {
    /// One rule was evaluated (`failed`: its query, expansion or append failed).
    fn rule_evaluated(&self, group: &GroupKey, duration: Duration, failed: bool);
    /// A query returned warnings.
    fn query_warnings(&self, group: &GroupKey, strategy: PartialResponseStrategy);
}

/// Counts nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl GroupObserver for NoObserver {
    fn rule_evaluated(&self, _: &GroupKey, _: Duration, _: bool) {}
    fn query_warnings(&self, _: &GroupKey, _: PartialResponseStrategy) {}
}

/// What a group's evaluation uses outside the group.
#[derive(Clone)]
pub struct EvalEnv {
    /// The querier.
    pub querier: Arc<dyn RuleQuerier>,
    /// Where samples go.
    pub sink: Arc<dyn SampleSink>,
    /// Template expansion.
    pub templater: Arc<dyn AlertTemplater>,
    /// Alert delivery.
    pub notifier: Arc<dyn AlertNotifier>,
    /// Metrics.
    pub observer: Arc<dyn GroupObserver>,
    /// `--resend-delay`, ms.
    pub resend_delay_ms: i64,
}

/// A group's identity: Prometheus's `GroupKey` is `file;name`, where Thanos's file is the
/// rewritten copy under `<data-dir>/.tmp-rules/<STRATEGY>/` (it decides the evaluation
/// offset and the `rule_group` label); `original_file` is what the API shows.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// The file as Prometheus's manager sees it.
    pub file: String,
    /// The group's name.
    pub name: String,
}

impl GroupKey {
    /// Prometheus's `rule_group` label value.
    pub fn label(&self) -> String {
        format!("{};{}", self.file, self.name)
    }
}

/// A rule's health after its last evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Not evaluated yet.
    Unknown,
    /// Evaluated without error.
    Ok,
    /// The last evaluation failed.
    Err,
}

impl Health {
    /// Prometheus's API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// What a rule is.
#[derive(Clone, Debug)]
pub enum RuleState {
    /// A recording rule: the metric name and labels its results get.
    Recording {
        /// `record`.
        name: String,
        /// `labels`.
        labels: BTreeMap<String, String>,
    },
    /// An alerting rule with its alerts.
    Alerting(AlertingRule),
}

impl RuleState {
    /// The recorded metric or alert name, and the rule's (unexpanded) labels.
    fn name_and_labels(&self) -> (&str, &BTreeMap<String, String>) {
        match self {
            RuleState::Recording { name, labels } => (name, labels),
            RuleState::Alerting(rule) => (rule.name(), rule.labels()),
        }
    }
}

/// One rule of a group and what its last evaluation left.
#[derive(Clone, Debug)]
pub struct RuleEntry {
    /// The rule.
    pub state: RuleState,
    /// Its PromQL expression.
    pub expr: String,
    /// Health after the last evaluation.
    pub health: Health,
    /// The last evaluation's error.
    pub last_error: Option<String>,
    /// When it was last evaluated (ms).
    pub last_evaluation: Option<i64>,
    /// How long that took.
    pub evaluation_duration: Duration,
    /// Series written by the last successful evaluation (to mark those gone stale).
    previous: HashSet<Labels>,
    /// The expression as the parser prints it back: what a reload compares (Prometheus
    /// compares `rule.String()`), so a change of spacing or layout is no change.
    canonical_expr: String,
}

impl RuleEntry {
    /// The recorded metric or alert name.
    pub fn name(&self) -> &str {
        match &self.state {
            RuleState::Recording { name, .. } => name,
            RuleState::Alerting(rule) => rule.name(),
        }
    }
}

/// A group of rules, evaluated together every interval.
#[derive(Clone, Debug)]
pub struct Group {
    key: GroupKey,
    original_file: String,
    interval: Duration,
    limit: usize,
    strategy: PartialResponseStrategy,
    rules: Vec<RuleEntry>,
    last_evaluation: Option<i64>,
    evaluation_duration: Duration,
    /// Series of rules a reload removed, marked stale at the end of the next evaluation
    /// (Prometheus's `staleSeries`).
    stale_series: Vec<Labels>,
}

impl Group {
    /// The group `spec` read from `original_file`, keyed by `key_file` (see [`GroupKey`]),
    /// evaluated every `interval` unless the group sets its own.
    pub fn new(spec: &RuleGroup, original_file: &str, key_file: &str, interval: Duration) -> Self {
        let rules = spec
            .rules
            .iter()
            .map(|rule| RuleEntry {
                state: match &rule.kind {
                    RuleKind::Record(name) => RuleState::Recording {
                        name: name.clone(),
                        labels: rule.labels.clone(),
                    },
                    RuleKind::Alert(name) => RuleState::Alerting(AlertingRule::new(
                        name.clone(),
                        duration_ms(rule.for_.as_std()),
                        duration_ms(rule.keep_firing_for.as_std()),
                        rule.labels.clone(),
                        rule.annotations.clone(),
                    )),
                },
                expr: rule.expr.clone(),
                health: Health::Unknown,
                last_error: None,
                last_evaluation: None,
                evaluation_duration: Duration::ZERO,
                previous: HashSet::new(),
                canonical_expr: canonical_expr(&rule.expr),
            })
            .collect();
        Group {
            key: GroupKey {
                file: key_file.to_string(),
                name: spec.name.clone(),
            },
            original_file: original_file.to_string(),
            // `interval: 0s` is no interval, as in Prometheus: the default applies.
            interval: spec
                .interval
                .map(|i| i.as_std())
                .filter(|i| !i.is_zero())
                .unwrap_or(interval),
            limit: usize::try_from(spec.limit).unwrap_or(usize::MAX),
            strategy: spec.partial_response_strategy,
            rules,
            last_evaluation: None,
            evaluation_duration: Duration::ZERO,
            stale_series: Vec::new(),
        }
    }

    /// The group's identity.
    pub fn key(&self) -> &GroupKey {
        &self.key
    }

    /// The rule file as written by the user.
    pub fn original_file(&self) -> &str {
        &self.original_file
    }

    /// How often it is evaluated.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Its series / alerts limit per rule (0: none).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Its partial-response strategy.
    pub fn strategy(&self) -> PartialResponseStrategy {
        self.strategy
    }

    /// Its rules.
    pub fn rules(&self) -> &[RuleEntry] {
        &self.rules
    }

    /// When it was last evaluated (ms).
    pub fn last_evaluation(&self) -> Option<i64> {
        self.last_evaluation
    }

    /// How long the last evaluation took.
    pub fn evaluation_duration(&self) -> Duration {
        self.evaluation_duration
    }

    /// Whether `other` is the same group with the same rules, so that a reload keeps it
    /// running with its state.
    pub fn same_rules(&self, other: &Group) -> bool {
        self.key == other.key
            && self.interval == other.interval
            && self.limit == other.limit
            && self.strategy == other.strategy
            && self.rules.len() == other.rules.len()
            && self.rules.iter().zip(&other.rules).all(|(a, b)| {
                a.canonical_expr == b.canonical_expr && same_definition(&a.state, &b.state)
            })
    }

    /// Takes over the series and alerts of the rules of `old` with the same name and labels
    /// (the first unused one of each), as Prometheus's `CopyState` on a reload: an edited
    /// expression, `for` or annotation keeps a rule's alerts. The series of old rules that
    /// match none are marked stale at the end of the next evaluation.
    pub fn take_state(&mut self, old: &mut Group) {
        let mut used = vec![false; old.rules.len()];
        for rule in &mut self.rules {
            let found = old
                .rules
                .iter()
                .enumerate()
                .position(|(i, o)| !used[i] && same_name_and_labels(&o.state, &rule.state));
            let Some(i) = found else { continue };
            used[i] = true;
            let o = &mut old.rules[i];
            rule.previous = std::mem::take(&mut o.previous);
            if let (RuleState::Alerting(new), RuleState::Alerting(old)) =
                (&mut rule.state, &mut o.state)
            {
                new.take_state(old);
            }
        }
        self.stale_series = std::mem::take(&mut old.stale_series);
        for (o, _) in old.rules.iter_mut().zip(&used).filter(|(_, used)| !**used) {
            self.stale_series.extend(o.previous.drain());
        }
        self.last_evaluation = old.last_evaluation;
        self.evaluation_duration = old.evaluation_duration;
    }

    /// Marks every alerting rule restored: it writes `ALERTS` from now on.
    pub fn mark_restored(&mut self) {
        for rule in &mut self.rules {
            if let RuleState::Alerting(alerting) = &mut rule.state
                && !alerting.restored()
            {
                alerting.set_restored();
            }
        }
    }

    /// Takes the series the rules wrote at their last evaluation (to mark them stale when
    /// the group is gone).
    pub fn take_series(&mut self) -> Vec<Labels> {
        let mut out: Vec<Labels> = self
            .rules
            .iter_mut()
            .flat_map(|r| std::mem::take(&mut r.previous))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Evaluates every rule at `ts` (ms); returns the samples written.
    pub async fn eval(&mut self, ts: i64, env: &EvalEnv) -> usize {
        let started = Instant::now();
        let mut samples_total = 0;
        let interval_ms = duration_ms(self.interval);
        for rule in &mut self.rules {
            let rule_started = Instant::now();
            let failed = match eval_rule(rule, &self.key, self.strategy, self.limit, ts, env).await
            {
                Ok(vector) => {
                    samples_total += vector.len();
                    if let RuleState::Alerting(alerting) = &mut rule.state {
                        let alerts = alerting.alerts_to_send(ts, env.resend_delay_ms, interval_ms);
                        env.notifier.notify(&rule.expr, alerts);
                    }
                    append(rule, &self.key, ts, &vector, env.sink.as_ref())
                }
                Err(err) => {
                    tracing::warn!(
                        group = %self.key.name, name = rule.name(), err = %err,
                        "Evaluating rule failed"
                    );
                    rule.health = Health::Err;
                    rule.last_error = Some(err);
                    true
                }
            };
            rule.last_evaluation = Some(ts);
            rule.evaluation_duration = rule_started.elapsed();
            env.observer
                .rule_evaluated(&self.key, rule.evaluation_duration, failed);
        }
        self.mark_removed_rules_stale(ts, env.sink.as_ref());
        self.last_evaluation = Some(ts);
        self.evaluation_duration = started.elapsed();
        samples_total
    }

    /// Prometheus's `cleanupStaleSeries`: the series of rules a reload removed get a stale
    /// marker at `ts`; one refused because a rule of the new file wrote the series is
    /// expected.
    fn mark_removed_rules_stale(&mut self, ts: i64, sink: &dyn SampleSink) {
        if self.stale_series.is_empty() {
            return;
        }
        let stale: Vec<(Labels, f64)> = std::mem::take(&mut self.stale_series)
            .into_iter()
            .map(|l| (l, STALE_NAN))
            .collect();
        match sink.append(ts, &stale) {
            Ok(refusals) => {
                for (refusal, (series, _)) in refusals.iter().zip(&stale) {
                    if let Some(refusal) = refusal
                        && !refusal.expected_for_stale_marker()
                    {
                        tracing::warn!(
                            group = %self.key.name, sample = %series, err = ?refusal,
                            "Adding stale sample for previous configuration failed"
                        );
                    }
                }
            }
            Err(e) => tracing::warn!(
                group = %self.key.name, err = %e,
                "Stale sample appender commit failed"
            ),
        }
    }

    /// Restores the `for` state of alerts found active by the evaluations since start, from
    /// the `ALERTS_FOR_STATE` samples in `[ts - outage_tolerance, ts]`, as Prometheus's
    /// `RestoreForState`; rules whose `for` is shorter than `grace_period` need none. Every
    /// alerting rule is marked restored afterwards.
    pub async fn restore_for_state(
        &mut self,
        ts: i64,
        source: &dyn ForStateSource,
        outage_tolerance: Duration,
        grace_period: Duration,
    ) {
        let min_time = ts.saturating_sub(duration_ms(outage_tolerance));
        let grace_ms = duration_ms(grace_period);
        for rule in &mut self.rules {
            let RuleState::Alerting(alerting) = &mut rule.state else {
                continue;
            };
            let hold = alerting.hold_ms();
            if hold < grace_ms {
                alerting.set_restored();
                continue;
            }
            let active: Vec<(Labels, i64)> = alerting
                .alerts()
                .iter()
                .map(|a| (a.labels.clone(), a.active_at))
                .collect();
            for (labels, _) in active {
                let mut pairs: Vec<(String, String)> = labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect();
                pairs.push(("__name__".to_string(), "ALERTS_FOR_STATE".to_string()));
                let series = Labels::from_pairs(pairs);
                let Some((t, v)) = source.last_sample(&series, min_time, ts).await else {
                    continue;
                };
                // Not a time in seconds (read back from remote storage in stateless mode, it
                // may be anything): nothing to restore, and no arithmetic to overflow.
                if v.to_bits() == STALE_NAN.to_bits() || !v.is_finite() || v.abs() > 1e12 {
                    continue;
                }
                // Prometheus works in whole seconds here (`time.Unix(t/1000, 0)`).
                let down_at = t.div_euclid(1000) * 1000;
                let mut restored = (v as i64).saturating_mul(1000);
                let remaining = hold - (down_at - restored);
                if remaining <= 0 {
                    // It was firing when the ruler went down: the next evaluation decides.
                } else if remaining < grace_ms {
                    restored = ts + grace_ms - hold;
                } else {
                    restored += ts - down_at;
                }
                alerting.restore_active_at(&labels, restored);
                tracing::debug!(
                    group = %self.key.name, alert = alerting.name(), labels = %labels,
                    "'for' state restored"
                );
            }
            alerting.set_restored();
        }
    }
}

/// The expression as the parser prints it (the text itself if it does not parse, which a
/// loaded rule always does).
fn canonical_expr(expr: &str) -> String {
    rthanos_promql::parse_query(expr).map_or_else(
        |_| expr.to_string(),
        |parsed| parsed.on_stack(|e| e.to_string()),
    )
}

/// Prometheus's `nameAndLabels`: the rule's name and its (unexpanded) labels.
fn same_name_and_labels(a: &RuleState, b: &RuleState) -> bool {
    a.name_and_labels() == b.name_and_labels()
}

/// Prometheus's `rule.String()` equality, less the expression (compared apart).
fn same_definition(a: &RuleState, b: &RuleState) -> bool {
    match (a, b) {
        (RuleState::Recording { .. }, RuleState::Recording { .. }) => same_name_and_labels(a, b),
        (RuleState::Alerting(x), RuleState::Alerting(y)) => {
            same_name_and_labels(a, b)
                && x.hold_ms() == y.hold_ms()
                && x.keep_firing_for_ms() == y.keep_firing_for_ms()
                && x.annotations() == y.annotations()
        }
        _ => false,
    }
}

async fn eval_rule(
    rule: &mut RuleEntry,
    key: &GroupKey,
    strategy: PartialResponseStrategy,
    limit: usize,
    ts: i64,
    env: &EvalEnv,
) -> Result<Vec<(Labels, f64)>, String> {
    let outcome = env.querier.query(&rule.expr, ts, strategy).await?;
    if !outcome.warnings.is_empty() {
        env.observer.query_warnings(key, strategy);
        tracing::warn!(
            warnings = %outcome.warnings.join(", "), query = %rule.expr,
            "query returned warnings"
        );
    }
    match &mut rule.state {
        RuleState::Recording { name, labels } => {
            recording::record(name, labels, &outcome.samples, limit).map_err(|e| e.to_string())
        }
        RuleState::Alerting(alerting) => {
            let name = alerting.name().to_string();
            let templater = Arc::clone(&env.templater);
            alerting
                .eval(
                    ts,
                    &outcome.samples,
                    |text, labels, value| {
                        templater.expand(&name, text, labels, value, ts, strategy)
                    },
                    limit,
                )
                .map_err(|e| e.to_string())
        }
    }
}

/// Appends a rule's results and the stale markers of its series gone since the last
/// evaluation; returns whether the rule failed.
fn append(
    rule: &mut RuleEntry,
    key: &GroupKey,
    ts: i64,
    vector: &[(Labels, f64)],
    sink: &dyn SampleSink,
) -> bool {
    let returned: HashSet<&Labels> = vector.iter().map(|(l, _)| l).collect();
    let stale: Vec<(Labels, f64)> = rule
        .previous
        .iter()
        .filter(|l| !returned.contains(l))
        .map(|l| (l.clone(), STALE_NAN))
        .collect();
    let mut batch = Vec::with_capacity(vector.len() + stale.len());
    batch.extend_from_slice(vector);
    batch.extend(stale);
    let refusals = match sink.append(ts, &batch) {
        Ok(refusals) => refusals,
        Err(err) => {
            tracing::warn!(
                group = %key.name, name = rule.name(), err = %err,
                "Rule sample appending failed"
            );
            rule.health = Health::Err;
            rule.last_error = Some(err);
            return true;
        }
    };
    let mut kept = HashSet::with_capacity(vector.len());
    let mut failed = None;
    let (mut out_of_order, mut too_old, mut duplicates) = (0, 0, 0);
    for (i, (labels, _)) in batch.iter().enumerate() {
        let refusal = refusals.get(i).cloned().flatten();
        let is_result = i < vector.len();
        match refusal {
            None if is_result => {
                kept.insert(labels.clone());
            }
            None => {}
            Some(refusal) if !is_result && !refusal.expected_for_stale_marker() => {
                tracing::warn!(
                    group = %key.name, name = rule.name(), sample = %labels,
                    err = ?refusal, "Adding stale sample failed"
                );
            }
            Some(_) if !is_result => {}
            Some(refusal) => {
                match &refusal {
                    Refusal::OutOfOrder => out_of_order += 1,
                    Refusal::TooOld => too_old += 1,
                    Refusal::Duplicate => duplicates += 1,
                    Refusal::Other(err) => tracing::warn!(
                        group = %key.name, name = rule.name(), sample = %labels, err = %err,
                        "Rule evaluation result discarded"
                    ),
                }
                failed = Some(refusal);
            }
        }
    }
    for (count, what) in [
        (out_of_order, "out-of-order"),
        (too_old, "too old"),
        (duplicates, "duplicate"),
    ] {
        if count > 0 {
            tracing::warn!(
                group = %key.name, name = rule.name(), num_dropped = count,
                "Error on ingesting {what} result from rule evaluation"
            );
        }
    }
    rule.previous = kept;
    match failed {
        // Prometheus keeps the rule healthy only if every sample went in; the error is
        // that of the last refused sample.
        Some(refusal) => {
            rule.health = Health::Err;
            rule.last_error = Some(match refusal {
                Refusal::OutOfOrder => "out of order sample".to_string(),
                Refusal::TooOld => "out of bounds".to_string(),
                Refusal::Duplicate => "duplicate sample for timestamp".to_string(),
                Refusal::Other(err) => err,
            });
            false
        }
        None => {
            rule.health = Health::Ok;
            rule.last_error = None;
            false
        }
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::rulefmt;

    type Answer = Result<Vec<(Labels, f64)>, String>;

    /// Answers each query from a table the test changes between evaluations.
    #[derive(Default)]
    struct Answers(Mutex<BTreeMap<String, Answer>>);

    #[async_trait::async_trait]
    impl RuleQuerier for Answers {
        async fn query(
            &self,
            expr: &str,
            _: i64,
            _: PartialResponseStrategy,
        ) -> Result<QueryOutcome, String> {
            let answers = self.0.lock().map_err(|e| e.to_string())?;
            let samples = answers.get(expr).cloned().unwrap_or(Ok(Vec::new()))?;
            Ok(QueryOutcome {
                samples,
                warnings: Vec::new(),
            })
        }
    }

    #[derive(Default)]
    struct Written(Mutex<Vec<(i64, Labels, u64)>>);

    impl SampleSink for Written {
        fn append(
            &self,
            ts: i64,
            samples: &[(Labels, f64)],
        ) -> Result<Vec<Option<Refusal>>, String> {
            let mut written = self.0.lock().map_err(|e| e.to_string())?;
            written.extend(samples.iter().map(|(l, v)| (ts, l.clone(), v.to_bits())));
            Ok(vec![None; samples.len()])
        }
    }

    struct NoMetrics;

    impl GroupObserver for NoMetrics {
        fn rule_evaluated(&self, _: &GroupKey, _: Duration, _: bool) {}
        fn query_warnings(&self, _: &GroupKey, _: PartialResponseStrategy) {}
    }

    #[derive(Default)]
    struct Notified(Mutex<Vec<Alert>>);

    impl AlertNotifier for Notified {
        fn notify(&self, _: &str, alerts: Vec<Alert>) {
            if let Ok(mut n) = self.0.lock() {
                n.extend(alerts);
            }
        }
    }

    fn group(yaml: &str) -> Group {
        let file = rulefmt::parse("r.yml", yaml).expect("rules");
        Group::new(&file.groups[0], "r.yml", "r.yml", Duration::from_secs(60))
    }

    fn env(answers: &Arc<Answers>, written: &Arc<Written>, notified: &Arc<Notified>) -> EvalEnv {
        EvalEnv {
            querier: Arc::clone(answers) as Arc<dyn RuleQuerier>,
            sink: Arc::clone(written) as Arc<dyn SampleSink>,
            templater: Arc::new(VerbatimTemplates),
            notifier: Arc::clone(notified) as Arc<dyn AlertNotifier>,
            observer: Arc::new(NoMetrics),
            resend_delay_ms: 60_000,
        }
    }

    fn job(name: &str) -> Labels {
        Labels::from_pairs([("__name__", "up"), ("job", name)])
    }

    fn answer(answers: &Answers, expr: &str, value: Answer) {
        if let Ok(mut a) = answers.0.lock() {
            a.insert(expr.to_string(), value);
        }
    }

    #[tokio::test]
    async fn recorded_series_gone_are_marked_stale_and_a_failed_query_keeps_them() {
        let mut g = group("groups:\n- name: g\n  rules:\n  - record: job:up\n    expr: up\n");
        let (answers, written, notified) = Default::default();
        let env = env(&answers, &written, &notified);
        answer(&answers, "up", Ok(vec![(job("a"), 1.0), (job("b"), 0.0)]));
        assert_eq!(g.eval(60_000, &env).await, 2);
        assert_eq!(g.rules()[0].health, Health::Ok);
        answer(&answers, "up", Err("no query API server reachable".into()));
        assert_eq!(g.eval(120_000, &env).await, 0);
        assert_eq!(g.rules()[0].health, Health::Err);
        assert_eq!(
            g.rules()[0].last_error.as_deref(),
            Some("no query API server reachable")
        );
        answer(&answers, "up", Ok(vec![(job("a"), 1.0)]));
        g.eval(180_000, &env).await;
        let written = written.0.lock().expect("lock").clone();
        let recorded = |j: &str| Labels::from_pairs([("__name__", "job:up"), ("job", j)]);
        assert_eq!(
            written,
            vec![
                (60_000, recorded("a"), 1f64.to_bits()),
                (60_000, recorded("b"), 0f64.to_bits()),
                (180_000, recorded("a"), 1f64.to_bits()),
                (180_000, recorded("b"), STALE_NAN.to_bits()),
            ]
        );
        assert_eq!(g.rules()[0].health, Health::Ok);
    }

    #[tokio::test]
    async fn alerts_are_written_once_restored_and_sent_when_firing_or_resolved() {
        let mut g = group(
            "groups:\n- name: g\n  rules:\n  - alert: Down\n    expr: up == 0\n    for: 2m\n",
        );
        let (answers, written, notified) = Default::default();
        let env = env(&answers, &written, &notified);
        answer(&answers, "up == 0", Ok(vec![(job("a"), 0.0)]));
        g.eval(0, &env).await;
        assert!(
            written.0.lock().expect("lock").is_empty(),
            "not restored yet"
        );
        g.mark_restored();
        for ts in [60_000, 120_000, 180_000] {
            g.eval(ts, &env).await;
        }
        let sent = notified.0.lock().expect("lock").clone();
        assert_eq!(
            sent.len(),
            1,
            "firing at 2m, not resent within the resend delay"
        );
        assert_eq!(sent[0].fired_at, Some(120_000));
        assert_eq!(sent[0].valid_until, 120_000 + 4 * 60_000);
        answer(&answers, "up == 0", Ok(vec![]));
        g.eval(240_000, &env).await;
        let sent = notified.0.lock().expect("lock").clone();
        assert_eq!(sent.len(), 2, "the resolution is sent at once");
        assert_eq!(sent[1].resolved_at, Some(240_000));
        // ALERTS series go stale when the alert resolves.
        let written = written.0.lock().expect("lock").clone();
        let at_240: Vec<_> = written.iter().filter(|w| w.0 == 240_000).collect();
        assert_eq!(at_240.len(), 2);
        assert!(at_240.iter().all(|w| w.2 == STALE_NAN.to_bits()));
    }

    #[tokio::test]
    async fn a_reload_keeps_alerts_by_name_and_labels_and_marks_removed_rules_stale() {
        let before = "groups:\n- name: g\n  rules:\n  - alert: Down\n    expr: up == 0\n    for: 5m\n  - record: job:up\n    expr: up\n";
        let mut old = group(before);
        let (answers, written, notified) = Default::default();
        let env = env(&answers, &written, &notified);
        answer(&answers, "up == 0", Ok(vec![(job("a"), 0.0)]));
        answer(&answers, "up", Ok(vec![(job("a"), 0.0)]));
        old.mark_restored();
        old.eval(60_000, &env).await;
        // Spacing is no change; a new `for` or annotation is one, yet the alert stays.
        assert!(old.same_rules(&group(&before.replace("up == 0", "up==0"))));
        let after = "groups:\n- name: g\n  rules:\n  - alert: Down\n    expr: up   ==   0\n    for: 10m\n    annotations: {summary: down}\n";
        let mut new = group(after);
        assert!(!old.same_rules(&new));
        new.take_state(&mut old);
        new.mark_restored();
        let RuleState::Alerting(rule) = &new.rules()[0].state else {
            panic!("an alerting rule");
        };
        assert_eq!(rule.alerts()[0].active_at, 60_000, "the alert is kept");
        answer(&answers, "up   ==   0", Ok(vec![(job("a"), 0.0)]));
        written.0.lock().expect("lock").clear();
        new.eval(120_000, &env).await;
        let written = written.0.lock().expect("lock").clone();
        let recorded = Labels::from_pairs([("__name__", "job:up"), ("job", "a")]);
        assert!(
            written.contains(&(120_000, recorded, STALE_NAN.to_bits())),
            "the removed rule's series is stale: {written:?}"
        );
        assert!(new.stale_series.is_empty(), "marked once");
    }

    struct ForState(Option<(i64, f64)>);

    #[async_trait::async_trait]
    impl ForStateSource for ForState {
        async fn last_sample(&self, labels: &Labels, _: i64, _: i64) -> Option<(i64, f64)> {
            assert_eq!(labels.get("__name__"), Some("ALERTS_FOR_STATE"));
            assert_eq!(labels.get("alertname"), Some("Down"));
            self.0
        }
    }

    async fn restored_active_at(hold: &str, sample: Option<(i64, f64)>, now: i64) -> i64 {
        let mut g = group(&format!(
            "groups:\n- name: g\n  rules:\n  - alert: Down\n    expr: up == 0\n    for: {hold}\n"
        ));
        let (answers, written, notified) = Default::default();
        let env = env(&answers, &written, &notified);
        answer(&answers, "up == 0", Ok(vec![(job("a"), 0.0)]));
        g.eval(now, &env).await;
        g.restore_for_state(
            now,
            &ForState(sample),
            Duration::from_secs(3600),
            Duration::from_secs(600),
        )
        .await;
        let RuleState::Alerting(rule) = &g.rules()[0].state else {
            panic!("an alerting rule");
        };
        assert!(rule.restored());
        rule.alerts()[0].active_at
    }

    #[tokio::test]
    async fn for_state_is_restored_as_prometheus_restores_it() {
        const MIN: i64 = 60_000;
        let now = 100 * MIN;
        // Active since 50m, down at 90m, `for` 1h: 20m still to wait → active-at moves by
        // the 10m outage.
        let active = restored_active_at("1h", Some((90 * MIN, 50.0 * 60.0)), now).await;
        assert_eq!(active, 60 * MIN);
        // Only 5m left, under the 10m grace period: it fires a grace period from now.
        let active = restored_active_at("1h", Some((90 * MIN, 35.0 * 60.0)), now).await;
        assert_eq!(active, now + 10 * MIN - 60 * MIN);
        // Already firing when the ruler went down: left as it was.
        let active = restored_active_at("1h", Some((90 * MIN, 10.0 * 60.0)), now).await;
        assert_eq!(active, 10 * MIN);
        // No sample, a stale one, or `for` under the grace period: evaluation's own time.
        assert_eq!(restored_active_at("1h", None, now).await, now);
        assert_eq!(
            restored_active_at("1h", Some((90 * MIN, STALE_NAN)), now).await,
            now
        );
        assert_eq!(
            restored_active_at("5m", Some((90 * MIN, 0.0)), now).await,
            now
        );
        assert_eq!(
            restored_active_at("1h", Some((90 * MIN, -1e300)), now).await,
            now,
            "not a time"
        );
    }
}
