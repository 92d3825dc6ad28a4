//! rthanos store, as a library: the store gateway, which makes the blocks of a bucket
//! queryable over the StoreAPI while holding little of them. At each sync it lists the
//! bucket, reads the meta.json of new blocks, keeps those the time window, deletion marks and
//! relabel selection let through, and builds each block's index-header from ranged reads of
//! its index (kept under the data directory, mmapped, reused after a restart). A Series call
//! reads only what it needs: postings lists for its matchers, then series entries, then
//! chunks, each by coalesced ranged reads, with postings and series cached by size. A block
//! that cannot be loaded or read is logged, counted and skipped; it never stops the others.

pub mod block;
pub mod cache;
pub mod metrics;
pub mod partition;
mod store;
mod sync;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rthanos_model::relabel::Relabel;
use rthanos_objstore::Bucket;

use crate::block::BucketBlock;
use crate::cache::IndexCache;
use crate::metrics::StoreMetrics;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The bucket failed (after its retries).
    #[error("bucket: {0}")]
    Bucket(String),
    /// A block is unreadable (corrupt, or a file is missing).
    #[error("{0}")]
    Block(String),
    /// The local data directory failed.
    #[error("data dir: {0}")]
    Local(String),
    /// The configuration is wrong.
    #[error("{0}")]
    Config(String),
    /// The chunks of the Series calls in flight would pass `--chunk-pool-size`.
    #[error("chunk pool exhausted: {0} more bytes of chunks would pass --chunk-pool-size")]
    PoolExhausted(u64),
}

/// The time window blocks must overlap, resolved when asked (ms).
pub type TimeWindow = Arc<dyn Fn() -> (i64, i64) + Send + Sync>;

/// How the store gateway selects and serves blocks.
#[derive(Clone)]
pub struct StoreConfig {
    /// Where index-headers are kept (`--data-dir`).
    pub data_dir: PathBuf,
    /// Blocks are served if they overlap [min_time, max_time] (ms; resolved at each sync, so
    /// relative times move).
    pub time_window: TimeWindow,
    /// `--selector.relabel-config`.
    pub relabel: Relabel,
    /// `--ignore-deletion-marks-delay`: blocks marked for deletion longer ago are not served.
    pub ignore_deletion_marks_delay: Duration,
    /// `--consistency-delay`: blocks younger than this (by ULID) are not loaded yet, unless
    /// a compactor made them.
    pub consistency_delay: Duration,
    /// `--block-sync-concurrency`: blocks loaded at once.
    pub block_sync_concurrency: usize,
    /// `--index-cache-size` in bytes.
    pub index_cache_bytes: u64,
    /// `--store.grpc.series-max-concurrency`: Series calls served at once.
    pub series_max_concurrency: usize,
    /// `--chunk-pool-size` in bytes: chunk bytes held at once by the Series calls in flight;
    /// a call that would pass it fails with RESOURCE_EXHAUSTED, as Thanos's pool does.
    pub chunk_pool_bytes: u64,
}

/// The store gateway.
pub struct BucketStore {
    config: StoreConfig,
    time_window: RwLock<(i64, i64)>,
    bucket: Bucket,
    cache: Arc<IndexCache>,
    metrics: Arc<StoreMetrics>,
    blocks: RwLock<BTreeMap<ulid::Ulid, Arc<BucketBlock>>>,
    synced: std::sync::atomic::AtomicBool,
    series_gate: Arc<tokio::sync::Semaphore>,
    /// Chunk bytes in flight, in KiB permits.
    chunk_pool: Arc<tokio::sync::Semaphore>,
}

impl BucketStore {
    /// A store over `bucket`; nothing is loaded until [`BucketStore::sync`].
    pub fn new(
        config: StoreConfig,
        bucket: Bucket,
        registry: &prometheus::Registry,
    ) -> Result<Self, StoreError> {
        let metric_error = |e: prometheus::Error| StoreError::Config(format!("metrics: {e}"));
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| StoreError::Local(format!("{}: {e}", config.data_dir.display())))?;
        Ok(Self {
            cache: Arc::new(
                IndexCache::new(config.index_cache_bytes, registry).map_err(metric_error)?,
            ),
            metrics: Arc::new(StoreMetrics::new(registry).map_err(metric_error)?),
            time_window: RwLock::new((config.time_window)()),
            series_gate: Arc::new(tokio::sync::Semaphore::new(
                config.series_max_concurrency.max(1),
            )),
            chunk_pool: Arc::new(tokio::sync::Semaphore::new(
                usize::try_from(config.chunk_pool_bytes / 1024)
                    .unwrap_or(usize::MAX)
                    .min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
            config,
            bucket,
            blocks: RwLock::new(BTreeMap::new()),
            synced: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The blocks loaded now.
    pub fn blocks(&self) -> Vec<Arc<BucketBlock>> {
        self.blocks
            .read()
            .map(|b| b.values().cloned().collect())
            .unwrap_or_default()
    }
}
