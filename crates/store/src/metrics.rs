//! The store gateway's metrics, named as Thanos names them.

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntGauge, Registry};

/// Every metric of the store gateway but the index cache's.
pub struct StoreMetrics {
    /// `thanos_bucket_store_blocks_loaded`.
    pub blocks_loaded: IntGauge,
    /// `thanos_bucket_store_block_loads_total`.
    pub block_loads: IntCounter,
    /// `thanos_bucket_store_block_load_failures_total`.
    pub block_load_failures: IntCounter,
    /// `thanos_bucket_store_block_drops_total`.
    pub block_drops: IntCounter,
    /// `thanos_bucket_store_series_data_fetched`, by `data_type` (bytes per request).
    pub series_data_fetched: HistogramVec,
    /// `thanos_bucket_store_series_get_all_duration_seconds`: Series latency.
    pub series_duration: Histogram,
    /// `thanos_bucket_store_series_blocks_queried`.
    pub series_blocks_queried: Histogram,
    /// `thanos_bucket_store_series_gate_duration_seconds`: waits at the Series concurrency
    /// gate (`--store.grpc.series-max-concurrency`).
    pub series_gate_duration: Histogram,
    /// `thanos_bucket_store_series_gate_queries_in_flight`: Series calls past the gate.
    pub series_gate_in_flight: IntGauge,
    /// `thanos_bucket_store_corrupted_reads_total` (rthanos): corrupt data read from a block.
    pub corrupt_reads: IntCounter,
    /// `thanos_bucket_store_bucket_fetched_bytes_total` (rthanos): bytes read from the bucket
    /// for queries (index-header builds excluded).
    pub bucket_bytes_fetched: IntCounter,
}

impl StoreMetrics {
    /// The metrics, registered in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let blocks_loaded = IntGauge::new(
            "thanos_bucket_store_blocks_loaded",
            "Number of currently loaded blocks.",
        )?;
        registry.register(Box::new(blocks_loaded.clone()))?;
        let series_data_fetched = HistogramVec::new(
            HistogramOpts::new(
                "thanos_bucket_store_series_data_fetched",
                "Size in bytes of data fetched from the bucket, per request and data type.",
            )
            .buckets(prometheus::exponential_buckets(1024.0, 4.0, 12)?),
            &["data_type"],
        )?;
        registry.register(Box::new(series_data_fetched.clone()))?;
        let series_duration = Histogram::with_opts(
            HistogramOpts::new(
                "thanos_bucket_store_series_get_all_duration_seconds",
                "Time it takes until all per-block prepares and loads for a query are finished.",
            )
            .buckets(vec![
                0.001, 0.01, 0.1, 0.3, 0.6, 1.0, 3.0, 6.0, 9.0, 20.0, 30.0, 60.0, 90.0, 120.0,
            ]),
        )?;
        registry.register(Box::new(series_duration.clone()))?;
        let series_blocks_queried = Histogram::with_opts(
            HistogramOpts::new(
                "thanos_bucket_store_series_blocks_queried",
                "Number of blocks in a bucket store that were touched to satisfy a query.",
            )
            .buckets(prometheus::exponential_buckets(1.0, 2.0, 10)?),
        )?;
        registry.register(Box::new(series_blocks_queried.clone()))?;
        let series_gate_duration = Histogram::with_opts(
            HistogramOpts::new(
                "thanos_bucket_store_series_gate_duration_seconds",
                "How many seconds it took for queries to wait at the gate.",
            )
            .buckets(vec![
                0.01, 0.1, 0.3, 0.6, 1.0, 3.0, 6.0, 9.0, 20.0, 30.0, 60.0, 90.0, 120.0, 240.0,
                360.0, 720.0,
            ]),
        )?;
        registry.register(Box::new(series_gate_duration.clone()))?;
        let series_gate_in_flight = IntGauge::new(
            "thanos_bucket_store_series_gate_queries_in_flight",
            "Number of queries that are currently in flight.",
        )?;
        registry.register(Box::new(series_gate_in_flight.clone()))?;
        Ok(Self {
            series_gate_duration,
            series_gate_in_flight,
            blocks_loaded,
            block_loads: counter(
                "thanos_bucket_store_block_loads_total",
                "Total number of remote block loading attempts.",
            )?,
            block_load_failures: counter(
                "thanos_bucket_store_block_load_failures_total",
                "Total number of failed remote block loading attempts.",
            )?,
            block_drops: counter(
                "thanos_bucket_store_block_drops_total",
                "Total number of local blocks that were dropped.",
            )?,
            series_data_fetched,
            series_duration,
            series_blocks_queried,
            corrupt_reads: counter(
                "thanos_bucket_store_corrupted_reads_total",
                "Total number of reads of corrupt data from a block (rthanos).",
            )?,
            bucket_bytes_fetched: counter(
                "thanos_bucket_store_bucket_fetched_bytes_total",
                "Total bytes read from the bucket to answer queries (rthanos).",
            )?,
        })
    }

    /// Records what one request fetched.
    pub fn observe_fetched(&self, fetched: &crate::block::Fetched) {
        for (kind, bytes) in [
            ("postings", fetched.postings),
            ("series", fetched.series),
            ("chunks", fetched.chunks),
        ] {
            self.series_data_fetched
                .with_label_values(&[kind])
                .observe(bytes as f64);
        }
    }
}
