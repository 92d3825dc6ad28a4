//! What the sidecar knows of its Prometheus, refreshed by the heartbeat: whether it answers,
//! its external labels and the oldest sample time. Read by every StoreAPI call, written by one
//! task.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rthanos_model::{Labels, TimeOrDuration};

/// External labels, reachability and time range of the Prometheus behind the sidecar.
#[derive(Debug)]
pub struct Metadata {
    external_labels: RwLock<Option<Labels>>,
    up: AtomicBool,
    out_of_order: AtomicBool,
    lowest_timestamp: AtomicI64,
    head_min_time: AtomicI64,
    min_time_flag: TimeOrDuration,
}

impl Metadata {
    /// Nothing known yet; `min_time_flag` is `--min-time`, resolved at each use when relative.
    pub fn new(min_time_flag: TimeOrDuration) -> Self {
        Self {
            external_labels: RwLock::new(None),
            up: AtomicBool::new(false),
            out_of_order: AtomicBool::new(false),
            lowest_timestamp: AtomicI64::new(i64::MIN),
            head_min_time: AtomicI64::new(i64::MAX),
            min_time_flag,
        }
    }

    /// The external labels, once read from Prometheus.
    pub fn external_labels(&self) -> Option<Labels> {
        self.external_labels
            .read()
            .ok()
            .and_then(|labels| labels.clone())
    }

    /// Records the external labels read from Prometheus.
    pub fn set_external_labels(&self, labels: Labels) {
        if let Ok(mut current) = self.external_labels.write() {
            *current = Some(labels);
        }
    }

    /// Records whether Prometheus accepts out-of-order samples
    /// (`storage.tsdb.out_of_order_time_window`).
    pub fn set_out_of_order(&self, out_of_order: bool) {
        self.out_of_order.store(out_of_order, Ordering::Relaxed);
    }

    /// Whether Prometheus accepts out-of-order samples, as its configuration last said.
    pub fn out_of_order(&self) -> bool {
        self.out_of_order.load(Ordering::Relaxed)
    }

    /// Records whether the last heartbeat reached Prometheus.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }

    /// Whether the sidecar can answer queries: Prometheus answered the last heartbeat and its
    /// external labels are known.
    pub fn serving(&self) -> bool {
        self.up.load(Ordering::Relaxed) && self.external_labels().is_some()
    }

    /// Records the oldest sample time and the head's oldest sample time (ms) Prometheus
    /// reports; `None` for an empty TSDB or head.
    pub fn set_tsdb_times(&self, times: crate::prometheus::TsdbTimes) {
        self.lowest_timestamp
            .store(times.lowest.unwrap_or(i64::MIN), Ordering::Relaxed);
        self.head_min_time
            .store(times.head_min.unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// The oldest sample time Prometheus reported, if any.
    pub fn lowest_timestamp(&self) -> Option<i64> {
        Some(self.lowest_timestamp.load(Ordering::Relaxed)).filter(|&t| t != i64::MIN)
    }

    /// The head's oldest sample time Prometheus reported; `None` for an empty head (or
    /// before the first report).
    pub fn head_min_time(&self) -> Option<i64> {
        Some(self.head_min_time.load(Ordering::Relaxed)).filter(|&t| t != i64::MAX)
    }

    /// The oldest time served: the oldest sample, or `--min-time` if later (a relative
    /// `--min-time` moves with the clock, as in Thanos).
    pub fn min_time(&self) -> i64 {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.lowest_timestamp
            .load(Ordering::Relaxed)
            .max(self.min_time_flag.resolve(now_ms))
    }
}
