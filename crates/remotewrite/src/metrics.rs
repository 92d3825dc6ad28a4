//! The queues' metrics, with Prometheus 2.42's names and `remote_name` / `url` labels, so the
//! Prometheus mixin's remote-write alerts (`PrometheusRemoteStorageFailures`,
//! `PrometheusRemoteWriteBehind`) work on the ruler as on a Prometheus.

use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

const NAMESPACE: &str = "prometheus";
const SUBSYSTEM: &str = "remote_storage";
const LABELS: &[&str] = &["remote_name", "url"];

/// Every queue's metrics, registered once.
#[derive(Clone)]
pub(crate) struct RemoteWriteMetrics {
    samples_total: IntCounterVec,
    samples_failed: IntCounterVec,
    samples_retried: IntCounterVec,
    samples_dropped: IntCounterVec,
    bytes_total: IntCounterVec,
    samples_pending: IntGaugeVec,
    highest_sent_timestamp: GaugeVec,
    sent_batch_duration: HistogramVec,
    shards: IntGaugeVec,
    shards_max: IntGaugeVec,
    shards_min: IntGaugeVec,
    shards_desired: GaugeVec,
    shard_capacity: IntGaugeVec,
    max_samples_per_send: IntGaugeVec,
    decode_failures: IntCounterVec,
    current_segment: IntGaugeVec,
}

/// One queue's metrics.
#[derive(Clone)]
pub(crate) struct QueueMetrics {
    pub(crate) samples_total: prometheus::IntCounter,
    pub(crate) samples_failed: prometheus::IntCounter,
    pub(crate) samples_retried: prometheus::IntCounter,
    pub(crate) samples_dropped: prometheus::IntCounter,
    pub(crate) bytes_total: prometheus::IntCounter,
    pub(crate) samples_pending: prometheus::IntGauge,
    pub(crate) highest_sent_timestamp: prometheus::Gauge,
    pub(crate) sent_batch_duration: prometheus::Histogram,
    pub(crate) decode_failures: prometheus::IntCounter,
    pub(crate) current_segment: prometheus::IntGauge,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
        .namespace(NAMESPACE)
        .subsystem(SUBSYSTEM)
}

impl RemoteWriteMetrics {
    pub(crate) fn new(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(opts(name, help), LABELS)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let int_gauge = |name: &str, help: &str| -> Result<IntGaugeVec, prometheus::Error> {
            let g = IntGaugeVec::new(opts(name, help), LABELS)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let gauge = |name: &str, help: &str| -> Result<GaugeVec, prometheus::Error> {
            let g = GaugeVec::new(opts(name, help), LABELS)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let mut buckets = prometheus::DEFAULT_BUCKETS.to_vec();
        buckets.extend([25.0, 60.0, 120.0, 300.0]);
        let sent_batch_duration = HistogramVec::new(
            HistogramOpts::new(
                "sent_batch_duration_seconds",
                "Duration of send calls to the remote storage.",
            )
            .namespace(NAMESPACE)
            .subsystem(SUBSYSTEM)
            .buckets(buckets),
            LABELS,
        )?;
        registry.register(Box::new(sent_batch_duration.clone()))?;
        // The WAL watcher's, labelled by the queue reading (Prometheus's `consumer`).
        let decode_failures = IntCounterVec::new(
            Opts::new(
                "prometheus_wal_watcher_record_decode_failures_total",
                "Number of records read by the WAL watcher that resulted in an error when decoding.",
            ),
            &["consumer"],
        )?;
        registry.register(Box::new(decode_failures.clone()))?;
        let current_segment = IntGaugeVec::new(
            Opts::new(
                "prometheus_wal_watcher_current_segment",
                "Current segment the WAL watcher is reading records from.",
            ),
            &["consumer"],
        )?;
        registry.register(Box::new(current_segment.clone()))?;
        Ok(RemoteWriteMetrics {
            decode_failures,
            current_segment,
            samples_total: counter(
                "samples_total",
                "Total number of samples sent to remote storage.",
            )?,
            samples_failed: counter(
                "samples_failed_total",
                "Total number of samples which failed on send to remote storage, non-recoverable errors.",
            )?,
            samples_retried: counter(
                "samples_retried_total",
                "Total number of samples which failed on send to remote storage but were retried because the send error was recoverable.",
            )?,
            samples_dropped: counter(
                "samples_dropped_total",
                "Total number of samples which were dropped after being read from the WAL before being sent via remote write, either via relabelling or unintentionally because of an unknown reference ID.",
            )?,
            bytes_total: counter(
                "bytes_total",
                "The total number of bytes of data (not metadata) sent by the queue after compression.",
            )?,
            samples_pending: int_gauge(
                "samples_pending",
                "The number of samples pending in the queues shards to be sent to the remote storage.",
            )?,
            highest_sent_timestamp: gauge(
                "queue_highest_sent_timestamp_seconds",
                "Timestamp from a WAL sample, the highest timestamp successfully sent by this queue, in seconds since epoch.",
            )?,
            sent_batch_duration,
            shards: int_gauge(
                "shards",
                "The number of shards used for parallel sending to the remote storage.",
            )?,
            shards_max: int_gauge(
                "shards_max",
                "The maximum number of shards that the queue is allowed to run.",
            )?,
            shards_min: int_gauge(
                "shards_min",
                "The minimum number of shards that the queue is allowed to run.",
            )?,
            shards_desired: gauge(
                "shards_desired",
                "The number of shards that the queues shard calculation wants to run based on the rate of samples in vs. samples out.",
            )?,
            shard_capacity: int_gauge(
                "shard_capacity",
                "The capacity of each shard of the queue used for parallel sending to the remote storage.",
            )?,
            max_samples_per_send: int_gauge(
                "max_samples_per_send",
                "The maximum number of samples to be sent, in a single request, to the remote storage.",
            )?,
        })
    }

    /// The metrics of the queue `name` sending to `url`, sending from one shard (requests go
    /// out one at a time, in log order).
    pub(crate) fn queue(
        &self,
        name: &str,
        url: &str,
        capacity: usize,
        max_per_send: usize,
    ) -> QueueMetrics {
        let values = [name, url];
        self.shards.with_label_values(&values).set(1);
        self.shards_max.with_label_values(&values).set(1);
        self.shards_min.with_label_values(&values).set(1);
        self.shards_desired.with_label_values(&values).set(1.0);
        self.shard_capacity
            .with_label_values(&values)
            .set(i64::try_from(capacity).unwrap_or(i64::MAX));
        self.max_samples_per_send
            .with_label_values(&values)
            .set(i64::try_from(max_per_send).unwrap_or(i64::MAX));
        QueueMetrics {
            samples_total: self.samples_total.with_label_values(&values),
            samples_failed: self.samples_failed.with_label_values(&values),
            samples_retried: self.samples_retried.with_label_values(&values),
            samples_dropped: self.samples_dropped.with_label_values(&values),
            bytes_total: self.bytes_total.with_label_values(&values),
            samples_pending: self.samples_pending.with_label_values(&values),
            highest_sent_timestamp: self.highest_sent_timestamp.with_label_values(&values),
            sent_batch_duration: self.sent_batch_duration.with_label_values(&values),
            decode_failures: self.decode_failures.with_label_values(&[name]),
            current_segment: self.current_segment.with_label_values(&[name]),
        }
    }
}
