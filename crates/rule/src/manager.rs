//! The rule manager: reads the rule files (`--rule-file` globs), runs each group on its own
//! schedule, and applies a reload, as Thanos's ruler does over Prometheus 2.42's manager.
//!
//! - A group is evaluated at its aligned slots (`schedule`), the first one after start; a
//!   slot missed because an evaluation overran is counted and skipped.
//! - At start-up, a group restores its alerts' `for` state after its second evaluation
//!   (the first one may run before the data it needs is there), as Prometheus does.
//! - A reload that does not parse changes nothing. Groups whose rules are unchanged keep
//!   running untouched; a changed group takes over the state of its predecessor's rules; a
//!   removed group's series are marked stale two intervals later, unless a new rule wrote them.
//! - Groups are keyed as Thanos keys them: the file is its rewritten copy's path,
//!   `<data-dir>/.tmp-rules/<WARN|ABORT>/<file>`, which decides the evaluation offset and the
//!   `rule_group` label of the metrics (rthanos writes no such copy; see the operator guide).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use tokio::sync::{Mutex, watch};

use crate::group::{EvalEnv, ForStateSource, Group, GroupKey, GroupObserver};
use crate::rulefmt::{self, PartialResponseStrategy};
use crate::schedule;

/// Rule files that cannot be loaded: every problem, with file, group and rule.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct LoadError {
    /// Each file's problem.
    pub problems: Vec<String>,
}

/// A clock, in milliseconds since the epoch (injected, so tests choose the time).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    })
}

/// How the manager runs groups.
#[derive(Clone)]
pub struct ManagerOptions {
    /// `--data-dir`: the base of Thanos's group keys.
    pub data_dir: PathBuf,
    /// `--eval-interval`: for groups without their own.
    pub eval_interval: Duration,
    /// `--for-outage-tolerance`.
    pub outage_tolerance: Duration,
    /// `--for-grace-period`.
    pub for_grace_period: Duration,
    /// The time.
    pub clock: Clock,
}

/// The manager's metrics: Prometheus's rule metrics with Thanos's `strategy` label, and
/// Thanos's own.
pub struct RuleMetrics {
    evaluations: IntCounterVec,
    failures: IntCounterVec,
    iterations: IntCounterVec,
    missed: IntCounterVec,
    last_duration: GaugeVec,
    last_evaluation: GaugeVec,
    interval: GaugeVec,
    rules: IntGaugeVec,
    last_samples: IntGaugeVec,
    warnings: IntCounterVec,
    loaded: IntGaugeVec,
    reload_ok: IntGaugeVec,
    reload_time: GaugeVec,
    rule_duration: crate::summary::SummaryVec,
    group_duration: crate::summary::SummaryVec,
}

impl RuleMetrics {
    /// Registers the metrics in `registry`.
    ///
    /// # Errors
    /// A metric of the same name is registered already.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let group = &["rule_group", "strategy"];
        fn reg<C: prometheus::core::Collector + Clone + 'static>(
            registry: &Registry,
            c: C,
        ) -> Result<C, prometheus::Error> {
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        }
        let counter = |name: &str, help: &str, labels: &[&str]| {
            reg(registry, IntCounterVec::new(Opts::new(name, help), labels)?)
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            reg(registry, GaugeVec::new(Opts::new(name, help), labels)?)
        };
        let int_gauge = |name: &str, help: &str, labels: &[&str]| {
            reg(registry, IntGaugeVec::new(Opts::new(name, help), labels)?)
        };
        let metrics = RuleMetrics {
            // Prometheus's summaries, labelled by strategy as Thanos's wrapped registry does.
            rule_duration: reg(
                registry,
                crate::summary::SummaryVec::new(
                    "prometheus_rule_evaluation_duration_seconds",
                    "The duration for a rule to execute.",
                    &["strategy"],
                    &[0.5, 0.9, 0.99],
                )?,
            )?,
            group_duration: reg(
                registry,
                crate::summary::SummaryVec::new(
                    "prometheus_rule_group_duration_seconds",
                    "The duration of rule group evaluations.",
                    &["strategy"],
                    &[0.01, 0.05, 0.5, 0.9, 0.99],
                )?,
            )?,
            evaluations: counter(
                "prometheus_rule_evaluations_total",
                "The total number of rule evaluations.",
                group,
            )?,
            failures: counter(
                "prometheus_rule_evaluation_failures_total",
                "The total number of rule evaluation failures.",
                group,
            )?,
            iterations: counter(
                "prometheus_rule_group_iterations_total",
                "The total number of scheduled rule group evaluations, whether executed or missed.",
                group,
            )?,
            missed: counter(
                "prometheus_rule_group_iterations_missed_total",
                "The total number of rule group evaluations missed due to slow rule group evaluation.",
                group,
            )?,
            last_duration: gauge(
                "prometheus_rule_group_last_duration_seconds",
                "The duration of the last rule group evaluation.",
                group,
            )?,
            last_evaluation: gauge(
                "prometheus_rule_group_last_evaluation_timestamp_seconds",
                "The timestamp of the last rule group evaluation in seconds.",
                group,
            )?,
            interval: gauge(
                "prometheus_rule_group_interval_seconds",
                "The interval of a rule group.",
                group,
            )?,
            rules: int_gauge("prometheus_rule_group_rules", "The number of rules.", group)?,
            last_samples: int_gauge(
                "prometheus_rule_group_last_evaluation_samples",
                "The number of samples returned during the last rule group evaluation.",
                group,
            )?,
            warnings: counter(
                "thanos_rule_evaluation_with_warnings_total",
                "The total number of rule evaluation that were successful but had non PromQL warnings which can indicate partial error.",
                &["strategy"],
            )?,
            loaded: int_gauge(
                "thanos_rule_loaded_rules",
                "Loaded rules partitioned by file and group.",
                &["strategy", "file", "group"],
            )?,
            reload_ok: int_gauge(
                "thanos_rule_config_last_reload_successful",
                "Whether the last configuration reload attempt was successful.",
                &[],
            )?,
            reload_time: gauge(
                "thanos_rule_config_last_reload_success_timestamp_seconds",
                "Timestamp of the last successful configuration reload.",
                &[],
            )?,
        };
        for strategy in ["warn", "abort"] {
            metrics.warnings.with_label_values(&[strategy]);
        }
        Ok(metrics)
    }

    fn group_labels(key: &GroupKey, strategy: PartialResponseStrategy) -> [String; 2] {
        [key.label(), strategy_label(strategy).to_string()]
    }

    fn forget_group(&self, group: &Group) {
        let labels = Self::group_labels(group.key(), group.strategy());
        let labels = [labels[0].as_str(), labels[1].as_str()];
        let _ = self.evaluations.remove_label_values(&labels);
        let _ = self.failures.remove_label_values(&labels);
        let _ = self.iterations.remove_label_values(&labels);
        let _ = self.missed.remove_label_values(&labels);
        let _ = self.last_duration.remove_label_values(&labels);
        let _ = self.last_evaluation.remove_label_values(&labels);
        let _ = self.interval.remove_label_values(&labels);
        let _ = self.rules.remove_label_values(&labels);
        let _ = self.last_samples.remove_label_values(&labels);
    }
}

fn strategy_label(strategy: PartialResponseStrategy) -> &'static str {
    match strategy {
        PartialResponseStrategy::Warn => "warn",
        PartialResponseStrategy::Abort => "abort",
    }
}

fn strategy_dir(strategy: PartialResponseStrategy) -> &'static str {
    match strategy {
        PartialResponseStrategy::Warn => "WARN",
        PartialResponseStrategy::Abort => "ABORT",
    }
}

/// Which strategy a group's metrics carry: the group's (each strategy is one of Thanos's
/// Prometheus managers).
struct Observer {
    metrics: Arc<RuleMetrics>,
    strategy: PartialResponseStrategy,
}

impl GroupObserver for Observer {
    fn rule_evaluated(&self, group: &GroupKey, duration: Duration, failed: bool) {
        let labels = RuleMetrics::group_labels(group, self.strategy);
        let labels = [labels[0].as_str(), labels[1].as_str()];
        self.metrics
            .rule_duration
            .observe(&[labels[1]], duration.as_secs_f64());
        self.metrics.evaluations.with_label_values(&labels).inc();
        if failed {
            self.metrics.failures.with_label_values(&labels).inc();
        }
    }

    fn query_warnings(&self, _group: &GroupKey, strategy: PartialResponseStrategy) {
        self.metrics
            .warnings
            .with_label_values(&[strategy_label(strategy)])
            .inc();
    }
}

/// `filepath.Join(data_dir, ".tmp-rules", STRATEGY, file)`, cleaned as Go cleans it.
pub fn thanos_group_file(data_dir: &Path, strategy: PartialResponseStrategy, file: &str) -> String {
    let joined = format!(
        "{}/.tmp-rules/{}/{file}",
        data_dir.display(),
        strategy_dir(strategy)
    );
    clean_path(&joined)
}

/// Go's `path.Clean`.
fn clean_path(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_string(),
        (false, false) => body,
    }
}

/// The files `patterns` (globs) name, in order, without repeats.
///
/// # Errors
/// A pattern is not a valid glob.
pub fn rule_files(patterns: &[String]) -> Result<Vec<String>, LoadError> {
    let (files, problems) = matching_files(patterns);
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(LoadError { problems })
    }
}

/// The files `patterns` match, and the patterns that are no glob (each a problem, as Thanos
/// words it: the others are still read).
fn matching_files(patterns: &[String]) -> (Vec<String>, Vec<String>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for pattern in patterns {
        match glob::glob(pattern) {
            Ok(paths) => {
                for path in paths.flatten() {
                    let path = path.display().to_string();
                    if !files.contains(&path) {
                        files.push(path);
                    }
                }
            }
            Err(e) => problems.push(format!(
                "retrieving rule files failed. Ignoring file. pattern {pattern}: {e}"
            )),
        }
    }
    (files, problems)
}

/// Reads the groups of `files`.
///
/// # Errors
/// A file cannot be read or is not valid: every file's problems.
pub fn load_groups(
    files: &[String],
    data_dir: &Path,
    eval_interval: Duration,
) -> Result<Vec<Group>, LoadError> {
    let mut groups = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        match rulefmt::read_file(Path::new(file)) {
            Ok(parsed) => {
                for spec in &parsed.groups {
                    let key_file =
                        thanos_group_file(data_dir, spec.partial_response_strategy, file);
                    groups.push(Group::new(spec, file, &key_file, eval_interval));
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    if problems.is_empty() {
        groups.sort_by(|a, b| a.key().cmp(b.key()));
        Ok(groups)
    } else {
        Err(LoadError { problems })
    }
}

struct Running {
    key: GroupKey,
    group: Arc<Mutex<Group>>,
    /// The group as of its last evaluation, for the API: read without waiting for an
    /// evaluation under way (its queries may take minutes).
    snapshot: Arc<std::sync::RwLock<Group>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// A group of a reload: kept running (or new), or changed and stopping.
enum Slot {
    Kept(Running),
    Changed(Running, Group),
}

/// Runs the rule groups.
pub struct Manager {
    options: ManagerOptions,
    env: EvalEnv,
    for_state: Arc<dyn ForStateSource>,
    metrics: Arc<RuleMetrics>,
    running: Mutex<Vec<Running>>,
    /// The running groups' snapshots, published once a load is applied.
    published: std::sync::RwLock<Vec<Arc<std::sync::RwLock<Group>>>>,
    /// Set once the first load ran: only groups of the first load restore `for` state.
    loaded_once: std::sync::atomic::AtomicBool,
    shutdown: watch::Sender<bool>,
}

impl Manager {
    /// A manager evaluating through `env`, restoring `for` state from `for_state`.
    pub fn new(
        options: ManagerOptions,
        env: EvalEnv,
        for_state: Arc<dyn ForStateSource>,
        metrics: Arc<RuleMetrics>,
    ) -> Self {
        Manager {
            options,
            env,
            for_state,
            metrics,
            running: Mutex::new(Vec::new()),
            published: std::sync::RwLock::new(Vec::new()),
            loaded_once: std::sync::atomic::AtomicBool::new(false),
            shutdown: watch::channel(false).0,
        }
    }

    /// Loads the files `patterns` name and runs their groups in place of the current ones.
    ///
    /// # Errors
    /// A file is not valid: nothing changes. A pattern that is no glob is passed over, as
    /// Thanos does: the other files are loaded, and the pattern is the error.
    pub async fn update(&self, patterns: &[String]) -> Result<(), LoadError> {
        let result = self.apply(patterns).await;
        match &result {
            Ok(_) => {
                self.metrics
                    .reload_ok
                    .with_label_values(&[] as &[&str])
                    .set(1);
                let now = (self.options.clock)() as f64 / 1000.0;
                self.metrics
                    .reload_time
                    .with_label_values(&[] as &[&str])
                    .set(now);
            }
            Err(_) => self
                .metrics
                .reload_ok
                .with_label_values(&[] as &[&str])
                .set(0),
        }
        match result? {
            ignored if ignored.is_empty() => Ok(()),
            ignored => Err(LoadError { problems: ignored }),
        }
    }

    /// Loads and runs the groups; returns the patterns passed over.
    async fn apply(&self, patterns: &[String]) -> Result<Vec<String>, LoadError> {
        let (files, ignored) = matching_files(patterns);
        let new_groups = load_groups(&files, &self.options.data_dir, self.options.eval_interval)?;
        let first = !self
            .loaded_once
            .swap(true, std::sync::atomic::Ordering::SeqCst);
        let mut running = self.running.lock().await;
        let mut old: Vec<Running> = std::mem::take(&mut *running);
        self.metrics.loaded.reset();
        let mut slots = Vec::with_capacity(new_groups.len());
        for group in new_groups {
            // Thanos's strategy label here is the enum's name (`WARN`, `ABORT`).
            let labels = [
                strategy_dir(group.strategy()),
                group.original_file(),
                group.key().name.as_str(),
            ];
            self.metrics
                .loaded
                .with_label_values(&labels)
                .set(i64::try_from(group.rules().len()).unwrap_or(i64::MAX));
            let same = old
                .iter()
                .position(|r| &r.key == group.key())
                .map(|i| old.remove(i));
            // Compared with the snapshot of the definition: no waiting for an evaluation
            // under way (its queries may take minutes).
            match same {
                Some(previous)
                    if previous
                        .snapshot
                        .read()
                        .is_ok_and(|snapshot| snapshot.same_rules(&group)) =>
                {
                    slots.push(Slot::Kept(previous));
                }
                Some(previous) => {
                    let _ = previous.stop.send(true);
                    slots.push(Slot::Changed(previous, group));
                }
                None => slots.push(Slot::Kept(self.start(group, first))),
            }
        }
        for gone in &old {
            let _ = gone.stop.send(true);
        }
        // Every changed group was told to stop above, so they stop together; each starts
        // again with its rules' state.
        for slot in slots {
            match slot {
                Slot::Kept(r) => running.push(r),
                Slot::Changed(previous, mut group) => {
                    let _ = previous.task.await;
                    let mut previous_group = previous.group.lock().await;
                    group.take_state(&mut previous_group);
                    drop(previous_group);
                    running.push(self.start(group, false));
                }
            }
        }
        // Groups gone: stopped, their series marked stale two intervals later.
        for gone in old {
            let _ = gone.task.await;
            let group = Arc::clone(&gone.group);
            let metrics = Arc::clone(&self.metrics);
            let sink = Arc::clone(&self.env.sink);
            let clock = Arc::clone(&self.options.clock);
            let mut shutdown = self.shutdown.subscribe();
            // Stale at the time the group stopped: a renamed rule that writes the same
            // series has newer samples, and the markers are refused as out of order.
            let stopped_at = clock();
            // Forgotten now: a group of the same key added by a later reload keeps its series.
            metrics.forget_group(&*group.lock().await);
            tokio::spawn(async move {
                let mut group = group.lock().await;
                let wait = group.interval().saturating_mul(2);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => return,
                }
                let stale: Vec<_> = group
                    .take_series()
                    .into_iter()
                    .map(|l| (l, crate::group::STALE_NAN))
                    .collect();
                if !stale.is_empty()
                    && let Err(e) = sink.append(stopped_at, &stale)
                {
                    tracing::warn!(err = %e, "marking a removed group's series stale failed");
                }
            });
        }
        if let Ok(mut published) = self.published.write() {
            *published = running.iter().map(|r| Arc::clone(&r.snapshot)).collect();
        }
        Ok(ignored)
    }

    fn start(&self, mut group: Group, restore: bool) -> Running {
        if !restore {
            // Only the first load restores `for` state; rules loaded later write ALERTS from
            // their first evaluation (Prometheus's `restored` of the manager).
            group.mark_restored();
        }
        let strategy = group.strategy();
        let labels = RuleMetrics::group_labels(group.key(), strategy);
        let labels_ref = [labels[0].as_str(), labels[1].as_str()];
        // Every series of the group exists from its start, as in Prometheus (a failure rate
        // is 0, not absent).
        for counter in [
            &self.metrics.evaluations,
            &self.metrics.failures,
            &self.metrics.iterations,
            &self.metrics.missed,
        ] {
            counter.with_label_values(&labels_ref);
        }
        self.metrics
            .interval
            .with_label_values(&labels_ref)
            .set(group.interval().as_secs_f64());
        self.metrics
            .rules
            .with_label_values(&labels_ref)
            .set(i64::try_from(group.rules().len()).unwrap_or(i64::MAX));
        let key = group.key().clone();
        let mut env = self.env.clone();
        env.observer = Arc::new(Observer {
            metrics: Arc::clone(&self.metrics),
            strategy,
        });
        let snapshot = Arc::new(std::sync::RwLock::new(group.clone()));
        let group = Arc::new(Mutex::new(group));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run_group(GroupRun {
            group: Arc::clone(&group),
            snapshot: Arc::clone(&snapshot),
            env,
            for_state: Arc::clone(&self.for_state),
            metrics: Arc::clone(&self.metrics),
            labels,
            options: self.options.clone(),
            restore,
            stopped,
        }));
        Running {
            key,
            group,
            snapshot,
            stop,
            task,
        }
    }

    /// The groups now running, as of their last evaluation, sorted by file and name. Never
    /// waits for an evaluation or a reload under way.
    pub async fn groups(&self) -> Vec<Group> {
        let published: Vec<Arc<std::sync::RwLock<Group>>> =
            self.published.read().map(|p| p.clone()).unwrap_or_default();
        let mut out: Vec<Group> = published
            .iter()
            .filter_map(|g| g.read().ok().map(|g| g.clone()))
            .collect();
        out.sort_by(|a, b| {
            (a.original_file(), &a.key().name).cmp(&(b.original_file(), &b.key().name))
        });
        out
    }

    /// Stops every group (an evaluation under way finishes first).
    pub async fn stop(&self) {
        let _ = self.shutdown.send(true);
        if let Ok(mut published) = self.published.write() {
            published.clear();
        }
        let running = std::mem::take(&mut *self.running.lock().await);
        for r in &running {
            let _ = r.stop.send(true);
        }
        for r in running {
            let _ = r.task.await;
        }
    }
}

struct GroupRun {
    group: Arc<Mutex<Group>>,
    snapshot: Arc<std::sync::RwLock<Group>>,
    env: EvalEnv,
    for_state: Arc<dyn ForStateSource>,
    metrics: Arc<RuleMetrics>,
    labels: [String; 2],
    options: ManagerOptions,
    restore: bool,
    stopped: watch::Receiver<bool>,
}

/// Sleeps until `at` (ms on the clock); false when stopped first.
async fn sleep_until(clock: &Clock, at: i64, stopped: &mut watch::Receiver<bool>) -> bool {
    let wait = u64::try_from(at.saturating_sub(clock())).unwrap_or(0);
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(wait)) => !*stopped.borrow(),
        _ = stopped.changed() => false,
    }
}

async fn run_group(mut run: GroupRun) {
    let (name, file, interval) = {
        let g = run.group.lock().await;
        (g.key().name.clone(), g.key().file.clone(), g.interval())
    };
    let interval_ms = i64::try_from(interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let clock = Arc::clone(&run.options.clock);
    let now_nanos = clock().saturating_mul(1_000_000);
    let slot = schedule::eval_timestamp_nanos(&name, &file, interval, now_nanos) / 1_000_000;
    let mut eval_ts = slot.saturating_add(interval_ms);
    let labels = [run.labels[0].as_str(), run.labels[1].as_str()];
    if !sleep_until(&clock, eval_ts, &mut run.stopped).await {
        return;
    }
    let mut evaluations = 0u32;
    loop {
        run.metrics.iterations.with_label_values(&labels).inc();
        let started = std::time::Instant::now();
        let samples = {
            let mut group = run.group.lock().await;
            let samples = group.eval(eval_ts, &run.env).await;
            evaluations += 1;
            if run.restore && evaluations == 2 {
                group
                    .restore_for_state(
                        clock(),
                        run.for_state.as_ref(),
                        run.options.outage_tolerance,
                        run.options.for_grace_period,
                    )
                    .await;
                run.restore = false;
            }
            if !run.restore {
                group.mark_restored();
            }
            if let Ok(mut snapshot) = run.snapshot.write() {
                *snapshot = group.clone();
            }
            samples
        };
        run.metrics
            .last_duration
            .with_label_values(&labels)
            .set(started.elapsed().as_secs_f64());
        run.metrics
            .group_duration
            .observe(&[labels[1]], started.elapsed().as_secs_f64());
        run.metrics
            .last_evaluation
            .with_label_values(&labels)
            .set(eval_ts as f64 / 1000.0);
        run.metrics
            .last_samples
            .with_label_values(&labels)
            .set(i64::try_from(samples).unwrap_or(i64::MAX));
        if !sleep_until(
            &clock,
            eval_ts.saturating_add(interval_ms),
            &mut run.stopped,
        )
        .await
        {
            return;
        }
        let missed = (clock() - eval_ts) / interval_ms - 1;
        if missed > 0 {
            run.metrics
                .missed
                .with_label_values(&labels)
                .inc_by(u64::try_from(missed).unwrap_or(0));
            run.metrics
                .iterations
                .with_label_values(&labels)
                .inc_by(u64::try_from(missed).unwrap_or(0));
        }
        eval_ts = eval_ts.saturating_add((missed.max(0) + 1).saturating_mul(interval_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{NoNotifier, NoObserver, QueryOutcome, RuleQuerier, VerbatimTemplates};

    /// A querier whose every query waits until the test lets it go.
    struct Stuck {
        entered: tokio::sync::Notify,
        release: tokio::sync::Notify,
    }

    #[async_trait::async_trait]
    impl RuleQuerier for Stuck {
        async fn query(
            &self,
            _: &str,
            _: i64,
            _: PartialResponseStrategy,
        ) -> Result<QueryOutcome, String> {
            self.entered.notify_one();
            self.release.notified().await;
            Ok(QueryOutcome::default())
        }
    }

    struct Nothing;

    impl crate::group::SampleSink for Nothing {
        fn append(
            &self,
            _: i64,
            samples: &[(rthanos_model::Labels, f64)],
        ) -> Result<Vec<Option<crate::group::Refusal>>, String> {
            Ok(vec![None; samples.len()])
        }
    }

    #[async_trait::async_trait]
    impl ForStateSource for Nothing {
        async fn last_sample(
            &self,
            _: &rthanos_model::Labels,
            _: i64,
            _: i64,
        ) -> Option<(i64, f64)> {
            None
        }
    }

    /// A manager over `querier` with groups' own intervals (1 h by default), storing nothing.
    fn manager(dir: &std::path::Path, querier: Arc<Stuck>, registry: &Registry) -> Manager {
        Manager::new(
            ManagerOptions {
                data_dir: dir.to_path_buf(),
                eval_interval: Duration::from_secs(3600),
                outage_tolerance: Duration::from_secs(3600),
                for_grace_period: Duration::from_secs(600),
                clock: system_clock(),
            },
            EvalEnv {
                querier: querier as Arc<dyn RuleQuerier>,
                sink: Arc::new(Nothing),
                templater: Arc::new(VerbatimTemplates),
                notifier: Arc::new(NoNotifier),
                observer: Arc::new(NoObserver),
                resend_delay_ms: 60_000,
            },
            Arc::new(Nothing),
            Arc::new(RuleMetrics::new(registry).expect("metrics")),
        )
    }

    #[tokio::test]
    async fn a_pattern_that_is_no_glob_is_passed_over_and_reported() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("rules.yml");
        std::fs::write(
            &file,
            "groups:\n- name: g\n  interval: 1h\n  rules:\n  - record: r\n    expr: vector(1)\n",
        )
        .expect("rules");
        let registry = Registry::new();
        let querier = Arc::new(Stuck {
            entered: tokio::sync::Notify::new(),
            release: tokio::sync::Notify::new(),
        });
        let manager = manager(dir.path(), querier, &registry);
        let err = manager
            .update(&[file.display().to_string(), "[rules".to_string()])
            .await
            .expect_err("a bad pattern");
        assert!(
            err.problems[0].contains("Ignoring file. pattern [rules"),
            "{err:?}"
        );
        // The good file is loaded all the same, and the reload counts as done (Thanos's).
        let groups = manager.groups().await;
        assert_eq!(groups.len(), 1);
        let ok = registry
            .gather()
            .into_iter()
            .find(|f| f.name() == "thanos_rule_config_last_reload_successful")
            .map(|f| f.get_metric()[0].get_gauge().value());
        assert_eq!(ok, Some(1.0));
        manager.stop().await;
    }

    #[tokio::test]
    async fn the_groups_are_listed_while_an_evaluation_waits_for_its_query() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("rules.yml");
        std::fs::write(
            &file,
            "groups:\n- name: g\n  interval: 1s\n  rules:\n  - record: r\n    expr: vector(1)\n",
        )
        .expect("rules");
        let querier = Arc::new(Stuck {
            entered: tokio::sync::Notify::new(),
            release: tokio::sync::Notify::new(),
        });
        let manager = manager(dir.path(), Arc::clone(&querier), &Registry::new());
        manager
            .update(&[file.display().to_string()])
            .await
            .expect("load");
        // The group's first evaluation is now stuck in its query.
        tokio::time::timeout(Duration::from_secs(30), querier.entered.notified())
            .await
            .expect("evaluated");
        let groups = tokio::time::timeout(Duration::from_secs(30), manager.groups())
            .await
            .expect("listed while the evaluation waits");
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].key().name, "g");
        querier.release.notify_one();
        manager.stop().await;
        assert!(manager.groups().await.is_empty());
    }

    #[test]
    fn group_files_are_thanos_rewritten_paths() {
        let data = Path::new("data/");
        assert_eq!(
            thanos_group_file(data, PartialResponseStrategy::Abort, "rules/a.yaml"),
            "data/.tmp-rules/ABORT/rules/a.yaml"
        );
        assert_eq!(
            thanos_group_file(
                Path::new("/var/thanos/rule"),
                PartialResponseStrategy::Warn,
                "/etc/rules/../r/a.yaml"
            ),
            "/var/thanos/rule/.tmp-rules/WARN/etc/r/a.yaml"
        );
        assert_eq!(clean_path("./a//b/./c/.."), "a/b");
        assert_eq!(clean_path("../../a"), "../../a");
    }
}
