//! Alert delivery to Alertmanager, as Thanos's ruler does it (`pkg/alert`): firing and
//! resolved alerts go into a queue (capacity 10,000; the oldest are dropped when full) with
//! the `--label` external labels set, `--alert.label-drop` labels removed and
//! `--alert.relabel-config` applied; a sender takes batches of up to 100 and posts each batch
//! to every discovered Alertmanager at once (`/api/v2/alerts`, or `/api/v1/alerts` for
//! `api_version: v1`). A batch counts as delivered when one Alertmanager took it; a batch
//! no Alertmanager took is dropped and counted, and the alerts go again at the next resend
//! (`--resend-delay`), which is the retry. A firing alert's `endsAt` is four evaluation
//! intervals (or resend delays) ahead, so Alertmanager keeps it through two missed sends; a
//! resolved alert's `endsAt` is its resolution time.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};
use rthanos_discovery::{AddressSpec, DnsProvider, FileSd};
use rthanos_httpclient::{Auth, HttpClientConfig};
use rthanos_model::Labels;
use rthanos_model::relabel::Relabel;
use serde::Deserialize;
use tokio::sync::Notify;

use crate::alerting::Alert;
use crate::group::AlertNotifier;
use crate::querier::FileSdConfig;

/// Thanos's queue capacity and batch size.
pub const QUEUE_CAPACITY: usize = 10_000;
/// Alerts per post.
pub const MAX_BATCH: usize = 100;

/// An alerting configuration that is not valid.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AlertingConfigError(String);

/// `--alertmanagers.config`: `{alertmanagers: [...]}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    /// The Alertmanager sets.
    #[serde(default)]
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

/// One Alertmanager set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// How to reach them.
    #[serde(default)]
    pub http_config: HttpClientConfig,
    /// Addresses (which may use the DNS prefixes).
    #[serde(default)]
    pub static_configs: Vec<String>,
    /// File-SD files whose targets are addresses.
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// `http` (default) or `https`.
    #[serde(default = "http")]
    pub scheme: String,
    /// A path the API sits under.
    #[serde(default)]
    pub path_prefix: String,
    /// How long one post may take (default 10s).
    #[serde(default)]
    pub timeout: Option<rthanos_model::PromDuration>,
    /// `v1` or `v2` (default).
    #[serde(default = "v2")]
    pub api_version: String,
}

fn http() -> String {
    "http".into()
}

fn v2() -> String {
    "v2".into()
}

/// Parses `--alertmanagers.config`.
///
/// # Errors
/// The YAML does not parse, has unknown fields, or names an unknown API version.
pub fn parse_alerting_config(text: &str) -> Result<Vec<AlertmanagerConfig>, AlertingConfigError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let de = serde_yaml::Deserializer::from_str(text);
    let config: AlertingConfig = serde_path_to_error::deserialize(de)
        .map_err(|e| AlertingConfigError(format!("--alertmanagers.config: {e}")))?;
    for am in &config.alertmanagers {
        if am.api_version != "v1" && am.api_version != "v2" {
            return Err(AlertingConfigError(format!(
                "--alertmanagers.config: expected Alertmanager API version to be one of [v1 v2] but got {:?}",
                am.api_version
            )));
        }
    }
    Ok(config.alertmanagers)
}

/// One `--alertmanagers.url`: `scheme://[user:password@]host[:port][/prefix]`, the scheme
/// optionally prefixed with `dns+`, `dnssrv+` or `dnssrvnoa+` (`dns+` without a port uses
/// 9093).
///
/// # Errors
/// The URL has no scheme or host.
pub fn alertmanager_from_url(
    address: &str,
    timeout: Duration,
) -> Result<AlertmanagerConfig, AlertingConfigError> {
    let bad = |why: &str| AlertingConfigError(format!("--alertmanagers.url {address:?}: {why}"));
    let (scheme, rest) = address
        .split_once("://")
        .ok_or_else(|| bad("alertmanagers.url contains empty scheme"))?;
    if scheme.is_empty() {
        return Err(bad("alertmanagers.url contains empty scheme"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    if host.is_empty() {
        return Err(bad("alertmanagers.url contains empty host"));
    }
    let mut scheme = scheme.to_string();
    let mut host = host.to_string();
    for prefix in ["dnssrvnoa+", "dnssrv+", "dns+"] {
        if let Some(plain) = scheme.to_lowercase().strip_prefix(prefix) {
            if prefix == "dns+" && !has_port(&host) {
                host = format!("{host}:9093");
            }
            host = format!("{prefix}{host}");
            scheme = plain.to_string();
            break;
        }
    }
    let mut http_config = String::new();
    if let Some(user) = user {
        let (name, password) = user.split_once(':').unwrap_or((user, ""));
        http_config = format!(
            "basic_auth:\n  username: {}\n  password: {}\n",
            serde_json::Value::String(percent_decode(name)),
            serde_json::Value::String(percent_decode(password))
        );
    }
    Ok(AlertmanagerConfig {
        http_config: HttpClientConfig::parse("--alertmanagers.url", &http_config)
            .map_err(|e| AlertingConfigError(e.to_string()))?,
        static_configs: vec![host],
        file_sd_configs: Vec::new(),
        scheme,
        path_prefix: path.to_string(),
        timeout: Some(rthanos_model::PromDuration::new(timeout)),
        api_version: "v2".into(),
    })
}

fn has_port(host: &str) -> bool {
    match host.rsplit_once(':') {
        Some((h, p)) => !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':'),
        None => false,
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(hex), 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Go's `url.QueryEscape`.
pub fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An alert as Alertmanager takes it.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifierAlert {
    /// Labels, external labels set.
    pub labels: Labels,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it fired (ms).
    pub starts_at: i64,
    /// Until when it holds (ms): its resolution, or its validity.
    pub ends_at: i64,
    /// A link to the expression.
    pub generator_url: String,
}

fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00.000Z".to_string())
}

/// The JSON body of a post (the same shape in API v1 and v2).
pub fn alerts_body(alerts: &[NotifierAlert]) -> serde_json::Value {
    serde_json::Value::Array(
        alerts
            .iter()
            .map(|a| {
                let labels: serde_json::Map<String, serde_json::Value> = a
                    .labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone().into()))
                    .collect();
                serde_json::json!({
                    "labels": labels,
                    "annotations": a.annotations,
                    "startsAt": rfc3339_ms(a.starts_at),
                    "endsAt": rfc3339_ms(a.ends_at),
                    "generatorURL": a.generator_url,
                })
            })
            .collect(),
    )
}

struct QueueMetrics {
    pushed: IntCounter,
    popped: IntCounter,
    dropped: IntCounter,
}

/// The alert queue between the rules and the sender.
pub struct AlertQueue {
    queue: Mutex<VecDeque<NotifierAlert>>,
    more: Notify,
    capacity: usize,
    max_batch: usize,
    external: Labels,
    exclude: Vec<String>,
    relabel: Relabel,
    metrics: QueueMetrics,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    c: C,
) -> Result<C, prometheus::Error> {
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

impl AlertQueue {
    /// A queue adding `external` labels (less `exclude`), removing `exclude` labels and
    /// applying `relabel`; metrics go to `registry`.
    ///
    /// # Errors
    /// The metrics cannot be registered.
    pub fn new(
        registry: &Registry,
        external: &Labels,
        exclude: Vec<String>,
        relabel: Relabel,
    ) -> Result<Arc<Self>, prometheus::Error> {
        let counter = |name: &str, help: &str| register(registry, IntCounter::new(name, help)?);
        let queue = Arc::new(AlertQueue {
            queue: Mutex::new(VecDeque::new()),
            more: Notify::new(),
            capacity: QUEUE_CAPACITY,
            max_batch: MAX_BATCH,
            external: Labels::from_pairs(
                external
                    .iter()
                    .filter(|l| !exclude.contains(&l.name))
                    .map(|l| (l.name.clone(), l.value.clone())),
            ),
            exclude,
            relabel,
            metrics: QueueMetrics {
                pushed: counter(
                    "thanos_alert_queue_alerts_pushed_total",
                    "Total number of alerts pushed to the queue.",
                )?,
                popped: counter(
                    "thanos_alert_queue_alerts_popped_total",
                    "Total number of alerts popped from the queue.",
                )?,
                dropped: counter(
                    "thanos_alert_queue_alerts_dropped_total",
                    "Total number of alerts that were dropped from the queue.",
                )?,
            },
        });
        let capacity = prometheus::IntGauge::new(
            "thanos_alert_queue_capacity",
            "Capacity of the alert queue.",
        )?;
        capacity.set(i64::try_from(QUEUE_CAPACITY).unwrap_or(i64::MAX));
        register(registry, capacity)?;
        register(
            registry,
            QueueLength(
                Arc::downgrade(&queue),
                prometheus::core::Desc::new(
                    "thanos_alert_queue_length".into(),
                    "Length of the alert queue.".into(),
                    Vec::new(),
                    std::collections::HashMap::new(),
                )?,
            ),
        )?;
        Ok(queue)
    }

    /// Alerts waiting.
    pub fn len(&self) -> usize {
        self.queue.lock().map_or(0, |q| q.len())
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `alerts`, relabelled; the oldest go when the queue is full.
    pub fn push(&self, alerts: Vec<NotifierAlert>) {
        if alerts.is_empty() {
            return;
        }
        self.metrics.pushed.inc_by(alerts.len() as u64);
        let mut kept: Vec<NotifierAlert> = alerts
            .into_iter()
            .filter_map(|mut a| {
                let mut pairs: Vec<(String, String)> = a
                    .labels
                    .iter()
                    .filter(|l| !self.exclude.contains(&l.name))
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect();
                pairs.extend(
                    self.external
                        .iter()
                        .map(|l| (l.name.clone(), l.value.clone())),
                );
                let labels = Labels::from_pairs(pairs);
                a.labels = self.relabel.process(&labels)?;
                Some(a)
            })
            .collect();
        if kept.is_empty() {
            return;
        }
        let Ok(mut queue) = self.queue.lock() else {
            return;
        };
        if kept.len() > self.capacity {
            let d = kept.len() - self.capacity;
            kept.drain(..d);
            tracing::warn!(
                num_dropped = d,
                "Alert batch larger than queue capacity, dropping alerts"
            );
            self.metrics.dropped.inc_by(d as u64);
        }
        let overflow = (queue.len() + kept.len()).saturating_sub(self.capacity);
        if overflow > 0 {
            queue.drain(..overflow);
            tracing::warn!(
                num_dropped = overflow,
                "Alert notification queue full, dropping alerts"
            );
            self.metrics.dropped.inc_by(overflow as u64);
        }
        queue.extend(kept);
        drop(queue);
        self.more.notify_one();
    }

    /// Waits for alerts and takes up to a batch of them.
    pub async fn pop(&self) -> Vec<NotifierAlert> {
        loop {
            {
                if let Ok(mut queue) = self.queue.lock()
                    && !queue.is_empty()
                {
                    let n = queue.len().min(self.max_batch);
                    let batch: Vec<NotifierAlert> = queue.drain(..n).collect();
                    self.metrics.popped.inc_by(n as u64);
                    return batch;
                }
            }
            self.more.notified().await;
        }
    }
}

/// `thanos_alert_queue_length`, read when scraped.
#[derive(Clone)]
struct QueueLength(std::sync::Weak<AlertQueue>, prometheus::core::Desc);

impl prometheus::core::Collector for QueueLength {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        vec![&self.1]
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let length = self.0.upgrade().map_or(0, |q| q.len());
        let gauge = prometheus::IntGauge::with_opts(Opts::new(
            "thanos_alert_queue_length",
            "Length of the alert queue.",
        ));
        match gauge {
            Ok(g) => {
                g.set(i64::try_from(length).unwrap_or(i64::MAX));
                prometheus::core::Collector::collect(&g)
            }
            Err(_) => Vec::new(),
        }
    }
}

/// The rules' side of delivery: turns a rule's alerts into Alertmanager's, with the link to
/// the expression, and queues them.
pub struct RuleNotifier {
    queue: Arc<AlertQueue>,
    query_url: String,
    link_template: String,
}

impl RuleNotifier {
    /// Alerts into `queue`, their generator URL `query_url` followed by `link_template`
    /// (`--alert.query-template`) with `{{.Expr}}` the query-escaped expression.
    pub fn new(queue: Arc<AlertQueue>, query_url: String, link_template: String) -> Self {
        RuleNotifier {
            queue,
            query_url,
            link_template,
        }
    }

    fn link(&self, expr: &str) -> String {
        let link =
            crate::template::expand_expression_link(&self.link_template, &query_escape(expr))
                .unwrap_or_else(|e| {
                    // Thanos logs it and sends the query URL alone.
                    tracing::warn!(expr, err = %e, "failed to generate link for expression");
                    String::new()
                });
        format!("{}{link}", self.query_url)
    }
}

impl AlertNotifier for RuleNotifier {
    fn notify(&self, expr: &str, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        let url = self.link(expr);
        let out = alerts
            .into_iter()
            .map(|a| NotifierAlert {
                labels: a.labels,
                annotations: a.annotations,
                starts_at: a.fired_at.unwrap_or(a.active_at),
                ends_at: a.resolved_at.unwrap_or(a.valid_until),
                generator_url: url.clone(),
            })
            .collect();
        self.queue.push(out);
    }
}

struct Target {
    http: reqwest::Client,
    auth: Auth,
    scheme: String,
    path_prefix: String,
    timeout: Duration,
    version: String,
    specs: Vec<AddressSpec>,
    file_sd: Vec<FileSd>,
    addresses: RwLock<Vec<String>>,
}

struct SenderMetrics {
    sent: IntCounterVec,
    errors: IntCounterVec,
    dropped: IntCounter,
    latency: HistogramVec,
}

/// Posts batches to every Alertmanager.
pub struct Sender {
    targets: Vec<Target>,
    dns: DnsProvider,
    metrics: SenderMetrics,
}

impl Sender {
    /// Alertmanagers from `configs`, `default_timeout` where a set gives none; metrics (and
    /// `thanos_rule_alertmanagers_dns_*`) go to `registry`.
    ///
    /// # Errors
    /// An address or HTTP configuration is invalid, or metrics cannot be registered.
    pub fn new(
        configs: Vec<AlertmanagerConfig>,
        default_timeout: Duration,
        file_sd_interval: Duration,
        registry: &Registry,
    ) -> Result<Self, AlertingConfigError> {
        let metric = |e: prometheus::Error| AlertingConfigError(format!("metrics: {e}"));
        let mut targets = Vec::with_capacity(configs.len());
        for config in configs {
            let (http, auth) = config
                .http_config
                .build("--alertmanagers.config http_config")
                .map_err(|e| AlertingConfigError(e.to_string()))?;
            let specs = config
                .static_configs
                .iter()
                .map(|a| AddressSpec::parse(a).map_err(|e| AlertingConfigError(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            let file_sd = config
                .file_sd_configs
                .into_iter()
                .map(|sd| {
                    FileSd::new(
                        sd.files,
                        sd.refresh_interval.map_or(file_sd_interval, |d| d.as_std()),
                    )
                })
                .collect();
            targets.push(Target {
                http,
                auth,
                scheme: config.scheme,
                path_prefix: config.path_prefix.trim_end_matches('/').to_string(),
                timeout: config.timeout.map_or(default_timeout, |t| t.as_std()),
                version: config.api_version,
                specs,
                file_sd,
                addresses: RwLock::new(Vec::new()),
            });
        }
        let vec = |name: &str, help: &str| -> Result<IntCounterVec, prometheus::Error> {
            register(
                registry,
                IntCounterVec::new(Opts::new(name, help), &["alertmanager"])?,
            )
        };
        Ok(Sender {
            targets,
            dns: DnsProvider::new(registry, "thanos_rule_alertmanagers").map_err(metric)?,
            metrics: SenderMetrics {
                sent: vec(
                    "thanos_alert_sender_alerts_sent_total",
                    "Total number of alerts sent by alertmanager.",
                )
                .map_err(metric)?,
                errors: vec(
                    "thanos_alert_sender_errors_total",
                    "Total number of errors while sending alerts to alertmanager.",
                )
                .map_err(metric)?,
                dropped: register(
                    registry,
                    IntCounter::new(
                        "thanos_alert_sender_alerts_dropped_total",
                        "Total number of alerts dropped in case of all sends to alertmanagers failed.",
                    )
                    .map_err(metric)?,
                )
                .map_err(metric)?,
                latency: register(
                    registry,
                    HistogramVec::new(
                        HistogramOpts::new(
                            "thanos_alert_sender_latency_seconds",
                            "Latency for sending alert notifications (not including dropped notifications).",
                        ),
                        &["alertmanager"],
                    )
                    .map_err(metric)?,
                )
                .map_err(metric)?,
            },
        })
    }

    /// Resolves every set's addresses again.
    pub async fn resolve(&self) {
        for target in &self.targets {
            let mut specs = target.specs.clone();
            for sd in &target.file_sd {
                for t in sd.targets() {
                    match AddressSpec::parse(&t) {
                        Ok(spec) => specs.push(spec),
                        Err(e) => tracing::warn!(err = %e, "Alertmanager file SD target skipped"),
                    }
                }
            }
            let found = self.dns.resolve(&specs).await;
            if let Ok(mut addresses) = target.addresses.write() {
                *addresses = found;
            }
        }
    }

    /// Posts `alerts` to every Alertmanager at once; counts a drop when none took them.
    pub async fn send(&self, alerts: &[NotifierAlert]) {
        if alerts.is_empty() {
            return;
        }
        let body = alerts_body(alerts).to_string();
        let mut posts = Vec::new();
        for target in &self.targets {
            let addresses = target
                .addresses
                .read()
                .map(|a| a.clone())
                .unwrap_or_default();
            for address in addresses {
                let url = format!(
                    "{}://{address}{}/api/{}/alerts",
                    target.scheme, target.path_prefix, target.version
                );
                let request = target
                    .auth
                    .apply(target.http.post(&url))
                    .timeout(target.timeout)
                    .header("Content-Type", "application/json")
                    .body(body.clone());
                posts.push(async move {
                    let started = std::time::Instant::now();
                    let result = match request.send().await {
                        Ok(r) if r.status().is_success() => Ok(()),
                        Ok(r) => Err(format!("bad response status {}", r.status())),
                        Err(e) => Err(e.to_string()),
                    };
                    (address, started.elapsed(), result)
                });
            }
        }
        let mut delivered = false;
        for (address, took, result) in futures::future::join_all(posts).await {
            match result {
                Ok(()) => {
                    delivered = true;
                    self.metrics
                        .latency
                        .with_label_values(&[address.as_str()])
                        .observe(took.as_secs_f64());
                    self.metrics
                        .sent
                        .with_label_values(&[address.as_str()])
                        .inc_by(alerts.len() as u64);
                }
                Err(err) => {
                    tracing::warn!(alertmanager = %address, err = %err, "sending alerts failed");
                    self.metrics
                        .errors
                        .with_label_values(&[address.as_str()])
                        .inc();
                }
            }
        }
        if !delivered {
            self.metrics.dropped.inc_by(alerts.len() as u64);
            tracing::warn!(
                num_alerts = alerts.len(),
                "failed to send alerts to all alertmanagers"
            );
        }
    }

    /// Sends what the queue gives until `stop` is cancelled, resolving addresses every
    /// `dns_interval`.
    pub async fn run(
        self: Arc<Self>,
        queue: Arc<AlertQueue>,
        dns_interval: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        self.resolve().await;
        let resolver = Arc::clone(&self);
        let resolve_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = resolve_stop.cancelled() => return,
                    () = tokio::time::sleep(dns_interval) => resolver.resolve().await,
                }
            }
        });
        loop {
            let batch = tokio::select! {
                () = stop.cancelled() => return,
                batch = queue.pop() => batch,
            };
            self.send(&batch).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_alertmanager_sets_as_thanos_builds_them() {
        let am = alertmanager_from_url(
            "http://user:p%40ss@am.example:9094/prefix",
            Duration::from_secs(5),
        )
        .expect("valid");
        assert_eq!(am.scheme, "http");
        assert_eq!(am.static_configs, ["am.example:9094"]);
        assert_eq!(am.path_prefix, "/prefix");
        let am = alertmanager_from_url("dns+https://am.monitoring.svc", Duration::from_secs(5))
            .expect("valid");
        assert_eq!(am.scheme, "https");
        assert_eq!(am.static_configs, ["dns+am.monitoring.svc:9093"]);
        let am = alertmanager_from_url(
            "dnssrv+http://_web._tcp.am.monitoring.svc",
            Duration::from_secs(5),
        )
        .expect("valid");
        assert_eq!(am.static_configs, ["dnssrv+_web._tcp.am.monitoring.svc"]);
        assert!(alertmanager_from_url("am:9093", Duration::from_secs(5)).is_err());
        assert!(alertmanager_from_url("http://", Duration::from_secs(5)).is_err());
    }

    #[test]
    fn alerting_config_is_thanos_format() {
        let configs = parse_alerting_config(
            "alertmanagers:\n- static_configs: [am:9093]\n  timeout: 3s\n  api_version: v1\n  path_prefix: /am\n",
        )
        .expect("valid");
        assert_eq!(configs[0].api_version, "v1");
        assert_eq!(configs[0].scheme, "http");
        assert_eq!(
            configs[0].timeout.map(|t| t.as_std()),
            Some(Duration::from_secs(3))
        );
        let err = parse_alerting_config("alertmanagers:\n- api_version: v3\n").expect_err("v3");
        assert!(err.to_string().contains("[v1 v2]"), "{err}");
        assert!(parse_alerting_config("alertmanagers:\n- url: x\n").is_err());
    }

    #[test]
    fn expressions_are_escaped_as_go_escapes_queries() {
        assert_eq!(
            query_escape("sum(up{job=\"a b\"}) > 0"),
            "sum%28up%7Bjob%3D%22a+b%22%7D%29+%3E+0"
        );
    }

    fn alert(name: &str, replica: &str) -> NotifierAlert {
        NotifierAlert {
            labels: Labels::from_pairs([("alertname", name), ("replica", replica)]),
            annotations: BTreeMap::new(),
            starts_at: 0,
            ends_at: 1000,
            generator_url: String::new(),
        }
    }

    #[tokio::test]
    async fn the_queue_labels_relabels_drops_the_oldest_and_batches() {
        let relabel =
            Relabel::from_yaml("- source_labels: [alertname]\n  regex: Dropped\n  action: drop\n")
                .expect("relabel");
        let queue = AlertQueue::new(
            &Registry::new(),
            &Labels::from_pairs([("ruler", "r1"), ("replica", "x")]),
            vec!["replica".into()],
            relabel,
        )
        .expect("queue");
        queue.push(vec![alert("A", "1"), alert("Dropped", "1")]);
        let batch = queue.pop().await;
        assert_eq!(batch.len(), 1);
        assert_eq!(
            batch[0].labels,
            Labels::from_pairs([("alertname", "A"), ("ruler", "r1")]),
            "external labels added, dropped labels gone (from both)"
        );
        let many: Vec<NotifierAlert> = (0..QUEUE_CAPACITY + 5)
            .map(|i| alert(&format!("A{i}"), "1"))
            .collect();
        queue.push(many);
        assert_eq!(queue.len(), QUEUE_CAPACITY);
        assert_eq!(queue.metrics.dropped.get(), 5);
        let batch = queue.pop().await;
        assert_eq!(batch.len(), MAX_BATCH);
        assert_eq!(
            batch[0].labels.get("alertname"),
            Some("A5"),
            "the oldest went"
        );
        let body = alerts_body(&batch[..1]);
        assert_eq!(body[0]["endsAt"], "1970-01-01T00:00:01.000Z");
        assert_eq!(body[0]["labels"]["alertname"], "A5");
    }
}
