//! `rthanos compact`: Thanos's compactor flags, wired to the compactor of `rthanos-compact`:
//! one iteration without `--wait`; with it, an iteration every `--wait-interval` and a cleanup
//! every `--compact.cleanup-interval`, until stopped. A halt (overlapping blocks without
//! vertical compaction, a block failing its check) stops the iterations but not the process,
//! as in Thanos, so `thanos_compact_halted` can be alerted on.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rthanos_compact::{Compactor, CompactorConfig, Retention};
use rthanos_model::PromDuration;
use rthanos_objstore::Bucket;
use rthanos_runtime::flags::{HttpFlags, LogFlags, ObjstoreFlags};
use tokio_util::sync::CancellationToken;

use super::TracingFlags;
use super::store::BlockSelectionFlags;

/// Flags of `rthanos compact`.
#[derive(Args, Debug)]
pub(crate) struct CompactArgs {
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
    pub(crate) objstore: ObjstoreFlags,
    #[command(flatten)]
    pub(crate) selection: BlockSelectionFlags,

    /// Data directory in which to cache blocks and process compactions.
    #[arg(
        id = "data-dir",
        long = "data-dir",
        default_value = "./data",
        value_name = "DIR"
    )]
    pub(crate) data_dir: std::path::PathBuf,
    /// Do not exit after all compactions have been processed and wait for new work.
    #[arg(id = "wait", short = 'w', long = "wait")]
    pub(crate) wait: bool,
    /// Wait interval between consecutive compaction runs and bucket refreshes. Only works when
    /// --wait flag specified.
    #[arg(
        id = "wait-interval",
        long = "wait-interval",
        default_value = "5m",
        value_name = "DURATION"
    )]
    pub(crate) wait_interval: PromDuration,
    /// Minimum age of fresh (non-compacted) blocks before they are being processed. Malformed
    /// blocks older than the maximum of consistency-delay and 48h0m0s will be removed (marked
    /// for deletion, then deleted after --delete-delay).
    #[arg(
        id = "consistency-delay",
        long = "consistency-delay",
        default_value = "30m",
        value_name = "DURATION"
    )]
    pub(crate) consistency_delay: PromDuration,
    /// Time before a block marked for deletion is deleted from bucket. If delete-delay is non
    /// zero, blocks will be marked for deletion and compactor component will delete blocks
    /// marked for deletion from the bucket. If delete-delay is 0, blocks will be deleted
    /// straight away.
    #[arg(
        id = "delete-delay",
        long = "delete-delay",
        default_value = "48h",
        value_name = "DURATION"
    )]
    pub(crate) delete_delay: PromDuration,
    /// How long to retain raw samples in bucket. Setting this to 0d will retain samples of this
    /// resolution forever.
    #[arg(
        id = "retention.resolution-raw",
        long = "retention.resolution-raw",
        default_value = "0d",
        value_name = "DURATION"
    )]
    pub(crate) retention_raw: PromDuration,
    /// How long to retain samples of resolution 1 (5 minutes) in bucket. Setting this to 0d
    /// will retain samples of this resolution forever.
    #[arg(
        id = "retention.resolution-5m",
        long = "retention.resolution-5m",
        default_value = "0d",
        value_name = "DURATION"
    )]
    pub(crate) retention_5m: PromDuration,
    /// How long to retain samples of resolution 2 (1 hour) in bucket. Setting this to 0d will
    /// retain samples of this resolution forever.
    #[arg(
        id = "retention.resolution-1h",
        long = "retention.resolution-1h",
        default_value = "0d",
        value_name = "DURATION"
    )]
    pub(crate) retention_1h: PromDuration,
    /// Number of goroutines to use when compacting groups.
    #[arg(id = "compact.concurrency", long = "compact.concurrency", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) compact_concurrency: u32,
    /// Number of goroutines to use when download block during compaction.
    #[arg(
        id = "compact.blocks-fetch-concurrency",
        long = "compact.blocks-fetch-concurrency",
        default_value_t = 1
    )]
    pub(crate) blocks_fetch_concurrency: u32,
    /// How often we should clean up partially uploaded blocks and blocks with deletion mark in
    /// the background when --wait has been enabled. Setting it to "0s" disables it - the
    /// cleaning will only happen at the end of an iteration.
    #[arg(
        id = "compact.cleanup-interval",
        long = "compact.cleanup-interval",
        default_value = "5m",
        value_name = "DURATION"
    )]
    pub(crate) cleanup_interval: PromDuration,
    /// Frequency of calculating the compaction progress in the background when --wait has been
    /// enabled. Setting it to "0s" disables it.
    #[arg(
        id = "compact.progress-interval",
        long = "compact.progress-interval",
        default_value = "5m",
        value_name = "DURATION"
    )]
    pub(crate) progress_interval: PromDuration,
    /// Enable vertical compaction: blocks that overlap in time are merged, deduplicating
    /// samples (needed for --deduplication.replica-label).
    #[arg(
        id = "compact.enable-vertical-compaction",
        long = "compact.enable-vertical-compaction"
    )]
    pub(crate) enable_vertical_compaction: bool,
    /// Number of goroutines to use when downsampling blocks.
    #[arg(id = "downsample.concurrency", long = "downsample.concurrency", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) downsample_concurrency: u32,
    /// Disables downsampling. This is not recommended as querying long time ranges without
    /// non-downsampled data is not efficient and useful e.g it is not possible to render all
    /// samples for a human eye anyway.
    #[arg(id = "downsampling.disable", long = "downsampling.disable")]
    pub(crate) downsampling_disable: bool,
    /// Number of goroutines to use when fetching/uploading block files from object storage.
    #[arg(id = "block-files-concurrency", long = "block-files-concurrency", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) block_files_concurrency: u32,
    /// Number of goroutines to use when fetching block metadata from object storage.
    #[arg(
        id = "block-meta-fetch-concurrency",
        long = "block-meta-fetch-concurrency",
        default_value_t = 32
    )]
    pub(crate) block_meta_fetch_concurrency: u32,
    /// Repeat interval for syncing the blocks between local and remote view for /global Block
    /// Viewer UI.
    #[arg(
        id = "block-viewer.global.sync-block-interval",
        long = "block-viewer.global.sync-block-interval",
        default_value = "1m",
        value_name = "DURATION"
    )]
    pub(crate) block_viewer_sync_interval: PromDuration,
    /// Maximum time for syncing the blocks between local and remote view for /global Block
    /// Viewer UI.
    #[arg(
        id = "block-viewer.global.sync-block-timeout",
        long = "block-viewer.global.sync-block-timeout",
        default_value = "5m",
        value_name = "DURATION"
    )]
    pub(crate) block_viewer_sync_timeout: PromDuration,
    /// Label to treat as a replica indicator of blocks that can be deduplicated (repeated
    /// flag). This will merge multiple replica blocks into one. This process is irreversible.
    #[arg(
        id = "deduplication.replica-label",
        long = "deduplication.replica-label",
        value_name = "LABEL"
    )]
    pub(crate) deduplication_replica_labels: Vec<String>,
    /// Experimental. Deduplication algorithm for merging overlapping blocks. Possible values
    /// are: "", "penalty".
    #[arg(id = "deduplication.func", long = "deduplication.func", default_value = "", value_parser = ["", "penalty"])]
    pub(crate) deduplication_func: String,
    /// Specify which hash function to use when calculating the hashes of produced files.
    #[arg(id = "hash-func", long = "hash-func", default_value = "", value_parser = ["", "SHA256"])]
    pub(crate) hash_func: String,
    /// Disable UI/API admin operations like marking blocks for deletion and no compaction.
    #[arg(id = "disable-admin-operations", long = "disable-admin-operations")]
    pub(crate) disable_admin_operations: bool,
    /// Prefix for API and UI endpoints.
    #[arg(id = "web.route-prefix", long = "web.route-prefix", default_value = "")]
    pub(crate) web_route_prefix: String,
}

/// Runs the compactor.
pub(crate) async fn run(args: CompactArgs) -> anyhow::Result<()> {
    let prepared = super::prepare(&super::CommonFlags {
        log: &args.log,
        tracing: &args.tracing,
        request_logging: None,
        http: &args.http,
        grpc: None,
        objstore: Some(&args.objstore),
    })?;
    super::reject_unsupported(&[
        ("deduplication.func", !args.deduplication_func.is_empty()),
        ("hash-func", !args.hash_func.is_empty()),
    ])?;
    let objstore = args
        .objstore
        .content()?
        .context("--objstore.config or --objstore.config-file is required")?;
    let (min_time, max_time) = (args.selection.min_time, args.selection.max_time);
    let time_window: rthanos_compact::TimeWindow = Arc::new(move || {
        let now = rthanos_block::now_ms();
        (min_time.resolve(now), max_time.resolve(now))
    });
    let config = CompactorConfig {
        data_dir: args.data_dir.clone(),
        ranges: rthanos_compact::plan::DEFAULT_RANGES.to_vec(),
        consistency_delay: args.consistency_delay.as_std(),
        delete_delay: args.delete_delay.as_std(),
        retention: Retention {
            raw: args.retention_raw.as_std(),
            five_minutes: args.retention_5m.as_std(),
            one_hour: args.retention_1h.as_std(),
        },
        compact_concurrency: args.compact_concurrency as usize,
        downsample_concurrency: args.downsample_concurrency as usize,
        fetch_concurrency: (args.block_meta_fetch_concurrency as usize).max(1),
        files_concurrency: (args
            .block_files_concurrency
            .max(args.blocks_fetch_concurrency) as usize)
            .max(1),
        vertical_compaction: args.enable_vertical_compaction,
        dedup_replica_labels: args.deduplication_replica_labels.clone(),
        downsampling: !args.downsampling_disable,
        relabel: args.selection.relabel()?,
        time_window,
    };
    if !config.dedup_replica_labels.is_empty() && !config.vertical_compaction {
        tracing::warn!(
            "--deduplication.replica-label without --compact.enable-vertical-compaction: replicas' blocks overlap and their group halts"
        );
    }
    let (wait, wait_interval) = (args.wait, args.wait_interval.as_std());
    let cleanup_interval = args.cleanup_interval.as_std();
    prepared
        .serve("compact", move |runtime| {
            let bucket =
                Bucket::from_yaml(&objstore, runtime.registry()).context("--objstore.config")?;
            let compactor = Arc::new(Compactor::new(bucket, config, runtime.registry())?);
            let prober = runtime.prober().clone();
            let shutdown = runtime.shutdown_token();
            let supervisor = runtime.supervisor().clone();
            super::Component::work(async move {
                prober.ready();
                if wait && !cleanup_interval.is_zero() {
                    let (compactor, shutdown) = (Arc::clone(&compactor), shutdown.clone());
                    // A cleanup loop that panics is restarted: marked blocks keep being deleted.
                    supervisor.spawn_loop("cleanup", cleanup_interval, move || {
                        cleanup_loop(Arc::clone(&compactor), cleanup_interval, shutdown.clone())
                    });
                }
                loop {
                    // A panicking iteration is counted and fails like any other, so a bug in
                    // one block's compaction does not end the compactor's work on the others.
                    let outcome = tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        outcome = supervisor.catch("compaction", compactor.iterate()) => outcome,
                    };
                    let outcome = match outcome {
                        Ok(outcome) => outcome.map_err(anyhow::Error::from),
                        Err(panic) => Err(anyhow::anyhow!("compaction iteration {panic}")),
                    };
                    match outcome {
                        Ok(()) => tracing::info!("compaction iteration done"),
                        Err(e) if matches!(e.downcast_ref(), Some(rthanos_compact::CompactError::Halt(_))) => {
                            if !wait {
                                return Err(e.into());
                            }
                            // Halted: serve metrics and probes until stopped, compact no more.
                            shutdown.cancelled().await;
                            return Ok(());
                        }
                        Err(e) if !wait => return Err(e.into()),
                        Err(e) => tracing::warn!(err = %format!("{e:#}"), "compaction iteration failed; retried after --wait-interval"),
                    }
                    if !wait {
                        return Ok(());
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(wait_interval) => {}
                    }
                }
            })
        })
        .await
}

/// Deletes what `--delete-delay` allows and marks old partial uploads every
/// `--compact.cleanup-interval`, until `shutdown`.
async fn cleanup_loop(compactor: Arc<Compactor>, interval: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {
                if let Err(e) = compactor.cleanup().await {
                    tracing::warn!(err = %e, "cleanup failed");
                }
            }
        }
    }
}
