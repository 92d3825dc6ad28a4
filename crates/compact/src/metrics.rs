//! The compactor's metrics, named as Thanos names them, so the thanos-mixin dashboards and
//! alerts (ThanosCompactHalted, ThanosCompactHighCompactionFailures, …) work unchanged.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Every metric of the compactor (the bucket's own come from the objstore crate).
#[derive(Clone)]
pub struct CompactMetrics {
    /// `thanos_compact_halted`: 1 once a group hit an error that needs an operator.
    pub halted: IntGauge,
    /// `thanos_compact_iterations_total`.
    pub iterations: IntCounter,
    /// `thanos_compact_group_compactions_total{group}`: compactions that made a new block.
    pub compactions: IntCounterVec,
    /// `thanos_compact_group_compaction_runs_started_total{group}`.
    pub runs_started: IntCounterVec,
    /// `thanos_compact_group_compaction_runs_completed_total{group}`.
    pub runs_completed: IntCounterVec,
    /// `thanos_compact_group_compactions_failures_total{group}`.
    pub compaction_failures: IntCounterVec,
    /// `thanos_compact_group_vertical_compactions_total{group}`.
    pub vertical_compactions: IntCounterVec,
    /// `thanos_compact_downsample_total{group}`.
    pub downsamples: IntCounterVec,
    /// `thanos_compact_downsample_failures_total{group}`.
    pub downsample_failures: IntCounterVec,
    /// `thanos_compact_blocks_cleaned_total`.
    pub blocks_cleaned: IntCounter,
    /// `thanos_compact_block_cleanup_failures_total`.
    pub block_cleanup_failures: IntCounter,
    /// `thanos_compact_blocks_marked_total{marker, reason}`.
    pub blocks_marked: IntCounterVec,
    /// `thanos_compact_garbage_collected_blocks_total`.
    pub garbage_collected: IntCounter,
    /// `thanos_compact_aborted_partial_uploads_deletion_attempts_total`.
    pub partial_deletions: IntCounter,
    /// `thanos_compact_todo_compactions`: compactions the planner still sees.
    pub todo_compactions: IntGauge,
    /// `thanos_compact_todo_compaction_blocks`: blocks in those compactions.
    pub todo_compaction_blocks: IntGauge,
    /// `thanos_compact_todo_downsample_blocks`: blocks due for downsampling.
    pub todo_downsample_blocks: IntGauge,
    /// `thanos_compact_todo_deletion_blocks`: blocks marked for deletion, waiting.
    pub todo_deletion_blocks: IntGauge,
}

impl CompactMetrics {
    /// The metrics, registered in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self::register(registry)?;
        // The marks the compactor makes, at 0 from the start (alerts see a series, not none).
        for (marker, reason) in [
            ("deletion-mark.json", "compacted"),
            ("deletion-mark.json", "retention"),
            ("no-compact-mark.json", "downsample-vertical-compaction"),
        ] {
            metrics.blocks_marked.with_label_values(&[marker, reason]);
        }
        Ok(metrics)
    }

    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let counters =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        Ok(Self {
            halted: gauge(
                "thanos_compact_halted",
                "Set to 1 if the compactor halted due to an unexpected error.",
            )?,
            iterations: counter(
                "thanos_compact_iterations_total",
                "Total number of iterations that were executed successfully.",
            )?,
            compactions: counters(
                "thanos_compact_group_compactions_total",
                "Total number of group compaction attempts that resulted in a new block.",
                &["group"],
            )?,
            runs_started: counters(
                "thanos_compact_group_compaction_runs_started_total",
                "Total number of group compaction attempts.",
                &["group"],
            )?,
            runs_completed: counters(
                "thanos_compact_group_compaction_runs_completed_total",
                "Total number of group completed compaction runs. This also includes compactor group runs that resulted with no compaction.",
                &["group"],
            )?,
            compaction_failures: counters(
                "thanos_compact_group_compactions_failures_total",
                "Total number of failed group compactions.",
                &["group"],
            )?,
            vertical_compactions: counters(
                "thanos_compact_group_vertical_compactions_total",
                "Total number of group compaction attempts that resulted in a new block based on overlapping blocks.",
                &["group"],
            )?,
            downsamples: counters(
                "thanos_compact_downsample_total",
                "Total number of downsampling attempts.",
                &["group"],
            )?,
            downsample_failures: counters(
                "thanos_compact_downsample_failures_total",
                "Total number of failed downsampling attempts.",
                &["group"],
            )?,
            blocks_cleaned: counter(
                "thanos_compact_blocks_cleaned_total",
                "Total number of blocks deleted in compactor.",
            )?,
            block_cleanup_failures: counter(
                "thanos_compact_block_cleanup_failures_total",
                "Failures encountered while deleting blocks in compactor.",
            )?,
            blocks_marked: counters(
                "thanos_compact_blocks_marked_total",
                "Total number of blocks marked in compactor.",
                &["marker", "reason"],
            )?,
            garbage_collected: counter(
                "thanos_compact_garbage_collected_blocks_total",
                "Total number of blocks marked for deletion by compactor.",
            )?,
            partial_deletions: counter(
                "thanos_compact_aborted_partial_uploads_deletion_attempts_total",
                "Total number of started deletions of blocks that are assumed aborted and only partially uploaded.",
            )?,
            todo_compactions: gauge(
                "thanos_compact_todo_compactions",
                "The number of planned compactions.",
            )?,
            todo_compaction_blocks: gauge(
                "thanos_compact_todo_compaction_blocks",
                "The number of blocks planned to be merged.",
            )?,
            todo_downsample_blocks: gauge(
                "thanos_compact_todo_downsample_blocks",
                "The number of blocks to be downsampled.",
            )?,
            todo_deletion_blocks: gauge(
                "thanos_compact_todo_deletion_blocks",
                "The number of blocks that have deletion mark.",
            )?,
        })
    }
}
