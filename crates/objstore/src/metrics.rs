//! Thanos's bucket metrics (`thanos_objstore_bucket_*`), one set per bucket: the `bucket` label
//! is constant, the `operation` label is one of Thanos's operation names.

use prometheus::{Gauge, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// A bucket operation, named as Thanos names it in the `operation` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Whole-object read.
    Get,
    /// Byte-range read.
    GetRange,
    /// Write of a whole object.
    Upload,
    /// Removal of an object.
    Delete,
    /// Listing.
    Iter,
    /// Existence check.
    Exists,
    /// Size and modification time.
    Attributes,
}

impl Operation {
    /// Every operation, so all label values exist from the start (as Thanos pre-initialises them).
    pub const ALL: [Operation; 7] = [
        Operation::Get,
        Operation::GetRange,
        Operation::Upload,
        Operation::Delete,
        Operation::Iter,
        Operation::Exists,
        Operation::Attributes,
    ];

    /// Whether the operation reads or removes one named object, so "not found" is an answer.
    pub fn reads_object(self) -> bool {
        !matches!(self, Operation::Upload | Operation::Iter)
    }

    /// The `operation` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::GetRange => "get_range",
            Operation::Upload => "upload",
            Operation::Delete => "delete",
            Operation::Iter => "iter",
            Operation::Exists => "exists",
            Operation::Attributes => "attributes",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct BucketMetrics {
    ops: IntCounterVec,
    failures: IntCounterVec,
    fetched_bytes: IntCounterVec,
    duration: HistogramVec,
    last_upload: Gauge,
}

impl BucketMetrics {
    pub(crate) fn new(bucket: &str, registry: &Registry) -> Result<Self, prometheus::Error> {
        let opts = |name: &str, help: &str| Opts::new(name, help).const_label("bucket", bucket);
        let ops = IntCounterVec::new(
            opts(
                "thanos_objstore_bucket_operations_total",
                "Total number of all attempted operations against a bucket.",
            ),
            &["operation"],
        )?;
        let failures = IntCounterVec::new(
            opts(
                "thanos_objstore_bucket_operation_failures_total",
                "Total number of operations against a bucket that failed, but were not expected to fail in certain way from caller perspective. Those errors have to be investigated.",
            ),
            &["operation"],
        )?;
        let fetched_bytes = IntCounterVec::new(
            opts(
                "thanos_objstore_bucket_operation_fetched_bytes_total",
                "Total number of bytes fetched from bucket, per operation.",
            ),
            &["operation"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "thanos_objstore_bucket_operation_duration_seconds",
                "Duration of successful operations against the bucket per operation - iter operations include time spent on each callback.",
            )
            .const_label("bucket", bucket)
            .buckets(vec![
                0.001, 0.01, 0.1, 0.3, 0.6, 1.0, 3.0, 6.0, 9.0, 20.0, 30.0, 60.0, 90.0, 120.0,
            ]),
            &["operation"],
        )?;
        let last_upload = Gauge::with_opts(opts(
            "thanos_objstore_bucket_last_successful_upload_time",
            "Second timestamp of the last successful upload to the bucket.",
        ))?;
        for op in Operation::ALL {
            ops.with_label_values(&[op.as_str()]);
            failures.with_label_values(&[op.as_str()]);
            fetched_bytes.with_label_values(&[op.as_str()]);
            duration.with_label_values(&[op.as_str()]);
        }
        registry.register(Box::new(ops.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(fetched_bytes.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(last_upload.clone()))?;
        Ok(Self {
            ops,
            failures,
            fetched_bytes,
            duration,
            last_upload,
        })
    }

    pub(crate) fn started(&self, op: Operation) {
        self.ops.with_label_values(&[op.as_str()]).inc();
    }

    pub(crate) fn failed(&self, op: Operation) {
        self.failures.with_label_values(&[op.as_str()]).inc();
    }

    pub(crate) fn succeeded(&self, op: Operation, seconds: f64, fetched: u64) {
        self.duration
            .with_label_values(&[op.as_str()])
            .observe(seconds);
        if fetched > 0 {
            self.fetched_bytes
                .with_label_values(&[op.as_str()])
                .inc_by(fetched);
        }
        if op == Operation::Upload {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            self.last_upload.set(now);
        }
    }
}
