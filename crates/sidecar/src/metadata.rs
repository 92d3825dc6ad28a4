//! What the sidecar knows of its Prometheus, refreshed by the heartbeat: external labels and
//! the oldest sample time. Read by every StoreAPI call, written by one task.

use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};

use rthanos_model::Labels;

/// External labels and time range of the Prometheus behind the sidecar.
#[derive(Debug)]
pub struct Metadata {
    external_labels: RwLock<Option<Labels>>,
    lowest_timestamp: AtomicI64,
    min_time_flag: i64,
}

impl Metadata {
    /// Nothing known yet; `min_time_flag` is `--min-time` (ms).
    pub fn new(min_time_flag: i64) -> Self {
        Self {
            external_labels: RwLock::new(None),
            lowest_timestamp: AtomicI64::new(i64::MIN),
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

    /// Records the oldest sample time (ms) Prometheus reports; `None` for an empty TSDB.
    pub fn set_lowest_timestamp(&self, lowest: Option<i64>) {
        self.lowest_timestamp
            .store(lowest.unwrap_or(i64::MIN), Ordering::Relaxed);
    }

    /// The oldest time served: the oldest sample, or `--min-time` if later.
    pub fn min_time(&self) -> i64 {
        self.lowest_timestamp
            .load(Ordering::Relaxed)
            .max(self.min_time_flag)
    }
}
