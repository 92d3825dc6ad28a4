//! `rthanos store`: Thanos's store gateway flags, wired to the store crate: the bucket, block
//! selection (time window, relabelling, deletion marks), the index cache and limits, and the
//! StoreAPI server; blocks are synced every `--sync-block-duration`.

use std::sync::Arc;

use anyhow::Context;
use rthanos_objstore::Bucket;
use rthanos_store::{BucketStore, StoreConfig};
use rthanos_storeapi::{SeriesLimits, StoreServer};

use clap::Args;
use rthanos_model::{ByteSize, PromDuration, TimeOrDuration};
use rthanos_runtime::flags::{GrpcServerFlags, HttpFlags, LogFlags, ObjstoreFlags};

use super::{RequestLoggingFlags, StoreLimitFlags, TracingFlags};

/// Flags that choose which blocks a store or compactor sees: time window and relabelling.
#[derive(Args, Debug)]
pub(crate) struct BlockSelectionFlags {
    /// Start of time range limit to serve. Option can be a constant time in RFC3339 format or
    /// time duration relative to current time, such as -1d or 2h45m. Valid duration units are
    /// ms, s, m, h, d, w, y.
    #[arg(
        id = "min-time",
        long = "min-time",
        default_value = "0000-01-01T00:00:00Z",
        value_name = "TIME"
    )]
    pub(crate) min_time: TimeOrDuration,
    /// End of time range limit to serve. Option can be a constant time in RFC3339 format or
    /// time duration relative to current time, such as -1d or 2h45m. Valid duration units are
    /// ms, s, m, h, d, w, y.
    #[arg(
        id = "max-time",
        long = "max-time",
        default_value = "9999-12-31T23:59:59Z",
        value_name = "TIME"
    )]
    pub(crate) max_time: TimeOrDuration,
    /// Path to YAML file with relabeling configuration that allows selecting blocks. It follows
    /// native Prometheus relabel-config syntax.
    #[arg(
        id = "selector.relabel-config-file",
        long = "selector.relabel-config-file",
        value_name = "FILE"
    )]
    pub(crate) relabel_config_file: Option<std::path::PathBuf>,
    /// Alternative to 'selector.relabel-config-file' flag (mutually exclusive). Content of YAML
    /// file with relabeling configuration.
    #[arg(
        id = "selector.relabel-config",
        long = "selector.relabel-config",
        value_name = "CONTENT",
        conflicts_with = "selector.relabel-config-file"
    )]
    pub(crate) relabel_config: Option<String>,
}

impl BlockSelectionFlags {
    /// The relabelling rules of `--selector.relabel-config(-file)`, checked.
    pub(crate) fn relabel(&self) -> anyhow::Result<rthanos_model::relabel::Relabel> {
        let text = rthanos_runtime::flags::path_or_content(
            "selector.relabel-config",
            self.relabel_config_file.as_deref(),
            self.relabel_config.as_deref(),
        )?
        .unwrap_or_default();
        rthanos_model::relabel::Relabel::from_yaml(&text).context("--selector.relabel-config")
    }
}

/// Flags of `rthanos store`.
#[derive(Args, Debug)]
pub(crate) struct StoreArgs {
    #[command(flatten)]
    pub(crate) log: LogFlags,
    #[command(flatten)]
    pub(crate) tracing: TracingFlags,
    #[command(flatten)]
    pub(crate) web: super::WebPrefixFlags,
    #[command(flatten)]
    pub(crate) bucket_web: super::BucketWebFlags,
    #[command(flatten)]
    pub(crate) http: HttpFlags,
    #[command(flatten)]
    pub(crate) grpc: GrpcServerFlags,
    #[command(flatten)]
    pub(crate) objstore: ObjstoreFlags,
    #[command(flatten)]
    pub(crate) request_logging: RequestLoggingFlags,
    #[command(flatten)]
    pub(crate) limits: StoreLimitFlags,
    #[command(flatten)]
    pub(crate) selection: BlockSelectionFlags,

    /// Local data directory used for caching purposes (index-header, in-mem cache items and
    /// meta.jsons). If removed, no data will be lost, just store will have to rebuild the
    /// cache. NOTE: Putting raw blocks here will not cause the store to read them. For such use
    /// cases use Prometheus + sidecar. Ignored if --no-cache-index-header option is specified.
    #[arg(
        id = "data-dir",
        long = "data-dir",
        default_value = "./data",
        value_name = "DIR"
    )]
    pub(crate) data_dir: std::path::PathBuf,
    /// Cache TSDB index-headers on disk to reduce startup time. When set to true, Thanos Store
    /// will download index headers from remote object storage on startup and create a header
    /// file on disk. Use --data-dir to set the directory in which index headers will be
    /// downloaded.
    #[arg(
        id = "cache-index-header",
        long = "cache-index-header",
        overrides_with = "no-cache-index-header"
    )]
    pub(crate) cache_index_header: bool,
    #[arg(
        id = "no-cache-index-header",
        long = "no-cache-index-header",
        hide = true,
        overrides_with = "cache-index-header"
    )]
    pub(crate) no_cache_index_header: bool,
    /// Maximum size of items held in the in-memory index cache. Ignored if
    /// --index-cache.config or --index-cache.config-file option is specified.
    #[arg(
        id = "index-cache-size",
        long = "index-cache-size",
        default_value = "250MB",
        value_name = "SIZE"
    )]
    pub(crate) index_cache_size: ByteSize,
    /// Path to YAML file that contains index cache configuration.
    #[arg(
        id = "index-cache.config-file",
        long = "index-cache.config-file",
        value_name = "FILE"
    )]
    pub(crate) index_cache_config_file: Option<std::path::PathBuf>,
    /// Alternative to 'index-cache.config-file' flag (mutually exclusive). Content of YAML file
    /// that contains index cache configuration.
    #[arg(
        id = "index-cache.config",
        long = "index-cache.config",
        value_name = "CONTENT",
        conflicts_with = "index-cache.config-file"
    )]
    pub(crate) index_cache_config: Option<String>,
    /// Maximum size of concurrently allocatable bytes reserved strictly to reuse for chunks in
    /// memory.
    #[arg(
        id = "chunk-pool-size",
        long = "chunk-pool-size",
        default_value = "2GB",
        value_name = "SIZE"
    )]
    pub(crate) chunk_pool_size: ByteSize,
    /// DEPRECATED: use store.limits.request-samples.
    #[arg(
        id = "store.grpc.series-sample-limit",
        long = "store.grpc.series-sample-limit",
        default_value_t = 0
    )]
    pub(crate) series_sample_limit: u64,
    /// DEPRECATED: use store.limits.request-series.
    #[arg(
        id = "store.grpc.touched-series-limit",
        long = "store.grpc.touched-series-limit",
        default_value_t = 0
    )]
    pub(crate) touched_series_limit: u64,
    /// Maximum amount of downloaded (either fetched or touched) bytes in a single
    /// Series/LabelNames/LabelValues call. The Series call fails if this limit is exceeded. 0
    /// means no limit.
    #[arg(
        id = "store.grpc.downloaded-bytes-limit",
        long = "store.grpc.downloaded-bytes-limit",
        default_value_t = 0
    )]
    pub(crate) downloaded_bytes_limit: u64,
    /// Maximum number of concurrent Series calls.
    #[arg(
        id = "store.grpc.series-max-concurrency",
        long = "store.grpc.series-max-concurrency",
        default_value_t = 20
    )]
    pub(crate) series_max_concurrency: usize,
    /// Repeat interval for syncing the blocks between local and remote view.
    #[arg(
        id = "sync-block-duration",
        long = "sync-block-duration",
        default_value = "15m",
        value_name = "DURATION"
    )]
    pub(crate) sync_block_duration: PromDuration,
    /// Number of goroutines to use when constructing index-cache.json blocks from object
    /// storage. Must be equal or greater than 1.
    #[arg(id = "block-sync-concurrency", long = "block-sync-concurrency", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) block_sync_concurrency: u32,
    /// Number of goroutines to use when fetching block metadata from object storage.
    #[arg(
        id = "block-meta-fetch-concurrency",
        long = "block-meta-fetch-concurrency",
        default_value_t = 32
    )]
    pub(crate) block_meta_fetch_concurrency: u32,
    /// Minimum age of all blocks before they are being read. Set it to safe value (e.g 30m) if
    /// your object storage is eventually consistent. GCS and S3 are (roughly) strongly
    /// consistent.
    #[arg(
        id = "consistency-delay",
        long = "consistency-delay",
        default_value = "0s",
        value_name = "DURATION"
    )]
    pub(crate) consistency_delay: PromDuration,
    /// Duration after which the blocks marked for deletion will be filtered out while fetching
    /// blocks. The idea of ignore-deletion-marks-delay is to ignore blocks that are marked for
    /// deletion with some delay. This ensures store can still serve blocks that are meant to be
    /// deleted but do not have a replacement yet.
    #[arg(
        id = "ignore-deletion-marks-delay",
        long = "ignore-deletion-marks-delay",
        default_value = "24h",
        value_name = "DURATION"
    )]
    pub(crate) ignore_deletion_marks_delay: PromDuration,
    /// If true, Store Gateway will lazy memory map index-header only once the block is required
    /// by a query. rthanos always maps index-headers and keeps one in 32 of their entries in
    /// memory, so an idle block costs what Thanos's lazy reader saves; the flag changes nothing.
    #[arg(
        id = "store.enable-index-header-lazy-reader",
        long = "store.enable-index-header-lazy-reader"
    )]
    pub(crate) index_header_lazy_reader: bool,
    /// If true, Store Gateway will estimate postings size and try to lazily expand postings if
    /// it downloads less data than expanding all postings. Accepted; rthanos expands all
    /// postings (answers are the same, only the bytes read differ).
    #[arg(
        id = "store.enable-lazy-expanded-postings",
        long = "store.enable-lazy-expanded-postings"
    )]
    pub(crate) lazy_expanded_postings: bool,
    /// Strategy of how to download index headers lazily. Supported values: eager, lazy. If
    /// eager, always download index header during initial load. If lazy, download index header
    /// during query time. Accepted; rthanos builds every index-header at load (from two ranged
    /// reads per block).
    #[arg(id = "store.index-header-lazy-download-strategy", long = "store.index-header-lazy-download-strategy", default_value = "eager", value_parser = ["eager", "lazy"])]
    pub(crate) index_header_lazy_download_strategy: String,
}

/// Runs the store gateway.
pub(crate) async fn run(args: StoreArgs) -> anyhow::Result<()> {
    let prepared = super::prepare(&super::CommonFlags {
        log: &args.log,
        tracing: &args.tracing,
        request_logging: Some(&args.request_logging),
        http: &args.http,
        grpc: Some(&args.grpc),
        objstore: Some(&args.objstore),
    })?;
    super::reject_unsupported(&[
        (
            "index-cache.config",
            args.index_cache_config.is_some() || args.index_cache_config_file.is_some(),
        ),
        (
            "store.grpc.downloaded-bytes-limit",
            args.downloaded_bytes_limit > 0,
        ),
    ])?;
    // Thanos's memory and download tunings: answers do not depend on them, so a deployment
    // that sets them starts, and is told what rthanos does instead.
    for (flag, set) in [
        (
            "store.enable-index-header-lazy-reader",
            args.index_header_lazy_reader,
        ),
        (
            "store.enable-lazy-expanded-postings",
            args.lazy_expanded_postings,
        ),
        (
            "store.index-header-lazy-download-strategy",
            args.index_header_lazy_download_strategy != "eager",
        ),
    ] {
        if set {
            tracing::info!(
                flag,
                "flag accepted without effect: index-headers are always mmapped with 1 in 32 entries in memory, built at load, and postings are always expanded"
            );
        }
    }
    let objstore = args
        .objstore
        .content()?
        .context("--objstore.config or --objstore.config-file is required")?;
    let relabel = args.selection.relabel()?;
    let (min_time, max_time) = (args.selection.min_time, args.selection.max_time);
    let time_window: rthanos_store::TimeWindow = Arc::new(move || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        (min_time.resolve(now), max_time.resolve(now))
    });
    // The old names of the request limits still count when the new ones are not set.
    let limits = SeriesLimits {
        series: match args.limits.request_series {
            0 => args.touched_series_limit,
            n => n,
        },
        samples: match args.limits.request_samples {
            0 => args.series_sample_limit,
            n => n,
        },
    };
    let config = StoreConfig {
        data_dir: args.data_dir.clone(),
        time_window,
        relabel,
        ignore_deletion_marks_delay: args.ignore_deletion_marks_delay.as_std(),
        consistency_delay: args.consistency_delay.as_std(),
        block_sync_concurrency: usize::try_from(args.block_sync_concurrency).unwrap_or(20),
        index_cache_bytes: args.index_cache_size.bytes(),
        series_max_concurrency: args.series_max_concurrency,
        chunk_pool_bytes: args.chunk_pool_size.bytes(),
    };
    let sync_interval = args.sync_block_duration.as_std();
    prepared
        .serve("store", move |runtime| {
            let bucket =
                Bucket::from_yaml(&objstore, runtime.registry()).context("--objstore.config")?;
            let store = Arc::new(BucketStore::new(config, bucket, runtime.registry())?);
            let grpc = StoreServer::new(Arc::clone(&store) as Arc<dyn rthanos_storeapi::Store>)
                .with_limits(limits)
                .routes();
            let prober = runtime.prober().clone();
            let shutdown = runtime.shutdown_token();
            let supervisor = runtime.supervisor().clone();
            Ok(super::Component {
                http: None,
                grpc: Some(grpc),
                work: Box::pin(async move {
                    // Ready once the first sync has loaded what it could, as Thanos's store.
                    let report = store.sync().await?;
                    tracing::info!(
                        loaded = report.loaded,
                        partial = report.partial,
                        filtered = report.filtered,
                        failed = report.failed,
                        "initial block sync done"
                    );
                    prober.ready();
                    // A sync loop that panics is restarted: the store keeps seeing new blocks.
                    supervisor
                        .run_loop("block_sync", sync_interval, move || {
                            Arc::clone(&store).sync_loop(sync_interval, shutdown.clone())
                        })
                        .await;
                    Ok(())
                }),
            })
        })
        .await
}
