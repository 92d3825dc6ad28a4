//! One iteration of the compactor over a bucket, in Thanos's order: compact every group until
//! the planner finds nothing more, downsample (two passes, so new 5m blocks can go on to 1h),
//! mark blocks past their resolution's retention, then delete what was marked longer ago than
//! the delete delay and partial uploads abandoned for longer than the consistency delay.
//!
//! Kill-safety: a compacted or downsampled block is uploaded whole (meta.json last) before
//! anything is marked; a block whose compaction sources another block holds whole is marked
//! for deletion at the next look (Thanos's garbage collection), so a run cut short between
//! upload and marking is finished by the next; deletions take meta.json first and the mark
//! last; local work directories are emptied before use.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use rthanos_block::{BlockError, DeletionMark, duplicates, now_ms};
use rthanos_model::Labels;
use rthanos_model::relabel::Relabel;
use rthanos_objstore::Bucket;
use rthanos_tsdb::meta::ThanosMeta;
use rthanos_tsdb::{Block, BlockMeta};

use crate::CompactError;
use crate::downsample::{RES_1H, RES_5M, downsample_block, target_resolution};
use crate::merge::merge_blocks;
use crate::metrics::CompactMetrics;
use crate::plan::{group_key, groups, overlapping, plan, todo};

/// Sources of blocks that are complete when they appear: the consistency delay is waived.
const TRUSTED_SOURCES: [&str; 3] = ["compactor", "bucket.repair", "bucket.rewrite"];

/// How old a block without meta.json must be (by its ULID) before it is taken for an
/// abandoned upload and marked for deletion: Thanos's `PartialUploadThresholdAge`.
pub const PARTIAL_UPLOAD_THRESHOLD_AGE: Duration = Duration::from_secs(48 * 3600);

/// Retention per resolution; zero keeps blocks forever.
#[derive(Clone, Copy, Debug, Default)]
pub struct Retention {
    /// `--retention.resolution-raw`.
    pub raw: Duration,
    /// `--retention.resolution-5m`.
    pub five_minutes: Duration,
    /// `--retention.resolution-1h`.
    pub one_hour: Duration,
}

impl Retention {
    fn for_resolution(&self, resolution: i64) -> Duration {
        match resolution {
            0 => self.raw,
            RES_5M => self.five_minutes,
            RES_1H => self.one_hour,
            _ => Duration::ZERO,
        }
    }
}

/// What the compactor does, from its flags.
#[derive(Clone)]
pub struct CompactorConfig {
    /// `--data-dir`: where blocks are downloaded and built.
    pub data_dir: PathBuf,
    /// Compaction levels in ms (2h, 8h, 2d, 14d).
    pub ranges: Vec<i64>,
    /// `--consistency-delay`.
    pub consistency_delay: Duration,
    /// `--delete-delay`.
    pub delete_delay: Duration,
    /// `--retention.resolution-*`.
    pub retention: Retention,
    /// `--compact.concurrency`: groups compacted at once.
    pub compact_concurrency: usize,
    /// `--downsample.concurrency`: blocks downsampled at once.
    pub downsample_concurrency: usize,
    /// `--block-meta-fetch-concurrency`: meta.json and marker reads at once.
    pub fetch_concurrency: usize,
    /// `--block-files-concurrency`: blocks downloaded at once for a compaction.
    pub files_concurrency: usize,
    /// `--compact.enable-vertical-compaction`.
    pub vertical_compaction: bool,
    /// `--deduplication.replica-label`: external labels removed, so replicas' blocks share a
    /// group and are merged by vertical compaction.
    pub dedup_replica_labels: Vec<String>,
    /// `!--downsampling.disable`.
    pub downsampling: bool,
    /// `--selector.relabel-config`: which blocks (by external labels) are this compactor's.
    pub relabel: Relabel,
    /// `--min-time` / `--max-time`: blocks overlapping this window (ms) are this compactor's.
    pub time_window: TimeWindow,
}

impl CompactorConfig {
    /// Thanos's defaults (levels 2h to 14d, 30m consistency delay, 48h delete delay, no
    /// retention, one group and one block at a time, downsampling on), working in `data_dir`.
    pub fn with_defaults(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            ranges: crate::plan::DEFAULT_RANGES.to_vec(),
            consistency_delay: Duration::from_secs(30 * 60),
            delete_delay: Duration::from_secs(48 * 3600),
            retention: Retention::default(),
            compact_concurrency: 1,
            downsample_concurrency: 1,
            fetch_concurrency: 32,
            files_concurrency: 1,
            vertical_compaction: false,
            dedup_replica_labels: Vec::new(),
            downsampling: true,
            relabel: Relabel::default(),
            time_window: std::sync::Arc::new(|| (i64::MIN, i64::MAX)),
        }
    }
}

/// The `(min, max)` time window in ms, resolved when the bucket is looked at (a relative
/// `--min-time=-2w` moves with the clock).
pub type TimeWindow = std::sync::Arc<dyn Fn() -> (i64, i64) + Send + Sync>;

/// The compactor of one bucket.
pub struct Compactor {
    bucket: Bucket,
    config: CompactorConfig,
    metrics: CompactMetrics,
    /// Blocks this process is uploading.
    uploading: std::sync::Mutex<BTreeSet<ulid::Ulid>>,
}

/// A block's deletion mark, if any, and whether it has a no-compact and a no-downsample mark.
type Marks = (Option<DeletionMark>, bool, bool);

/// The bucket as the compactor sees it at one moment.
#[derive(Debug, Default)]
struct View {
    /// Blocks to work on: whole, selected, old enough, not marked for deletion; external
    /// labels without the replica labels.
    metas: BTreeMap<ulid::Ulid, BlockMeta>,
    /// Every block's deletion mark, partial blocks' included.
    marked: BTreeMap<ulid::Ulid, DeletionMark>,
    /// Blocks without meta.json.
    partial: BTreeSet<ulid::Ulid>,
    /// Blocks with a no-compact mark (by ULID string, as the planner takes them).
    no_compact: BTreeSet<String>,
    /// Blocks with a no-downsample mark.
    no_downsample: BTreeSet<ulid::Ulid>,
}

fn work_dir_error(path: &Path, source: std::io::Error) -> CompactError {
    CompactError::Block(BlockError::Local {
        path: path.to_path_buf(),
        source,
    })
}

/// Empties (or creates) a local work directory.
async fn fresh_dir(path: &Path) -> Result<(), CompactError> {
    if tokio::fs::try_exists(path).await.unwrap_or(false) {
        tokio::fs::remove_dir_all(path)
            .await
            .map_err(|e| work_dir_error(path, e))?;
    }
    tokio::fs::create_dir_all(path)
        .await
        .map_err(|e| work_dir_error(path, e))
}

impl Compactor {
    /// A compactor of `bucket`, its metrics registered in `registry`.
    pub fn new(
        bucket: Bucket,
        config: CompactorConfig,
        registry: &prometheus::Registry,
    ) -> Result<Self, prometheus::Error> {
        Ok(Self {
            bucket,
            config,
            metrics: CompactMetrics::new(registry)?,
            uploading: std::sync::Mutex::new(BTreeSet::new()),
        })
    }

    /// The compactor's metrics.
    pub fn metrics(&self) -> &CompactMetrics {
        &self.metrics
    }

    /// One full iteration. A [`CompactError::Halt`] sets `thanos_compact_halted`; the caller
    /// stops iterating.
    pub async fn iterate(&self) -> Result<(), CompactError> {
        let result = self.iterate_inner().await;
        match &result {
            Ok(()) => self.metrics.iterations.inc(),
            Err(CompactError::Halt(reason)) => {
                self.metrics.halted.set(1);
                tracing::error!(reason = %reason, "critical error detected; halting");
            }
            Err(_) => {}
        }
        result
    }

    async fn iterate_inner(&self) -> Result<(), CompactError> {
        // What an earlier iteration (or process) left in the work directories goes first.
        for work in ["compact", "downsample"] {
            let dir = self.config.data_dir.join(work);
            if let Err(e) = tokio::fs::remove_dir_all(&dir).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(work_dir_error(&dir, e));
            }
        }
        self.compact_all().await?;
        if self.config.downsampling {
            for pass in ["first", "second"] {
                tracing::info!(pass, "downsampling pass");
                self.downsample_all().await?;
            }
        }
        self.apply_retention().await?;
        self.cleanup().await
    }

    /// Looks at the bucket: metas, marks, and the filters.
    async fn view(&self) -> Result<View, CompactError> {
        let concurrency = self.config.fetch_concurrency.max(1);
        let seen = rthanos_block::fetch_metas(&self.bucket, concurrency).await?;
        for (id, why) in &seen.malformed {
            tracing::warn!(block = %id, err = %why, "meta.json is not JSON; block ignored (cleaned as a partial upload)");
        }
        // Never deleted: a newer producer's block must not be taken for a broken upload.
        for (id, why) in &seen.unsupported {
            tracing::warn!(block = %id, err = %why, "meta.json cannot be used; block left alone (neither compacted nor deleted)");
        }
        // This compactor's selection first (time window, relabelling): blocks outside it are
        // another's, marks included, so their marks are not even read.
        let (min_time, max_time) = (self.config.time_window)();
        let mut selected: Vec<(ulid::Ulid, BlockMeta)> = Vec::new();
        for (id, mut meta) in seen.metas {
            if meta.max_time < min_time || meta.min_time > max_time {
                continue;
            }
            let thanos = meta.thanos.get_or_insert_with(ThanosMeta::default);
            if !self.config.relabel.is_empty() {
                let mut pairs: Vec<(String, String)> = thanos.labels.clone().into_iter().collect();
                pairs.push(("__block_id".into(), id.to_string()));
                if self
                    .config
                    .relabel
                    .process(&Labels::from_pairs(pairs))
                    .is_none()
                {
                    continue;
                }
            }
            selected.push((id, meta));
        }
        let mut view = View {
            partial: seen.partial,
            ..View::default()
        };
        // A block whose meta.json is not JSON is cleaned up as a partial upload, as Thanos does.
        view.partial.extend(seen.malformed.keys().copied());
        let ids: Vec<ulid::Ulid> = selected
            .iter()
            .map(|(id, _)| *id)
            .chain(view.partial.iter().copied())
            .collect();
        let marks: Vec<(ulid::Ulid, Result<Marks, BlockError>)> = futures::stream::iter(ids)
            .map(|id| async move { (id, self.marks(id).await) })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut marks_of: BTreeMap<ulid::Ulid, Marks> = BTreeMap::new();
        for (id, marks) in marks {
            marks_of.insert(id, marks?);
        }
        for id in &view.partial {
            if let Some((Some(mark), _, _)) = marks_of.get(id) {
                view.marked.insert(*id, mark.clone());
            }
        }
        let delay = i64::try_from(self.config.consistency_delay.as_millis()).unwrap_or(i64::MAX);
        let now = now_ms();
        for (id, mut meta) in selected {
            let (deletion, no_compact, no_downsample) = marks_of.remove(&id).unwrap_or_default();
            if let Some(mark) = deletion {
                view.marked.insert(id, mark);
                continue;
            }
            if no_compact {
                view.no_compact.insert(id.to_string());
            }
            if no_downsample {
                view.no_downsample.insert(id);
            }
            let thanos = meta.thanos.get_or_insert_with(ThanosMeta::default);
            let created = i64::try_from(id.timestamp_ms()).unwrap_or(i64::MAX);
            if delay > 0
                && now.saturating_sub(created) < delay
                && !TRUSTED_SOURCES.contains(&thanos.source.as_str())
            {
                continue;
            }
            for label in &self.config.dedup_replica_labels {
                thanos.labels.remove(label);
            }
            view.metas.insert(id, meta);
        }
        Ok(view)
    }

    /// The marks of block `id`. A mark that does not parse (cut short while written) still
    /// counts: a deletion mark from when its object was written, a no-compact or
    /// no-downsample mark as present.
    async fn marks(&self, id: ulid::Ulid) -> Result<Marks, BlockError> {
        let deletion = match rthanos_block::read_deletion_mark(&self.bucket, id).await {
            Err(BlockError::Malformed { detail, .. }) => {
                let name = rthanos_block::object(id, rthanos_block::Marker::Deletion.file_name());
                let written = self.bucket.attributes(&name).await?.last_modified;
                let at = written
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                tracing::warn!(block = %id, err = %detail, "deletion mark does not parse; its write time stands for its deletion time");
                Some(DeletionMark {
                    id: id.to_string(),
                    version: 1,
                    details: String::new(),
                    deletion_time: at,
                })
            }
            other => other?,
        };
        let no_compact = match rthanos_block::read_no_compact_mark(&self.bucket, id).await {
            Err(BlockError::Malformed { .. }) => true,
            other => other?.is_some(),
        };
        // Only its presence counts, so it is never parsed.
        let no_downsample = self
            .bucket
            .exists(&rthanos_block::object(
                id,
                rthanos_block::Marker::NoDownsample.file_name(),
            ))
            .await?;
        Ok((deletion, no_compact, no_downsample))
    }

    /// Marks for deletion the blocks another block holds whole (a compaction or a dedup whose
    /// sources were not marked yet); they leave the view.
    async fn garbage_collect(&self, view: &mut View) -> Result<(), CompactError> {
        for id in duplicates(&view.metas) {
            self.mark_for_deletion(
                id,
                "compacted",
                "its data is in a block that holds all its sources",
            )
            .await?;
            self.metrics.garbage_collected.inc();
            view.metas.remove(&id);
        }
        Ok(())
    }

    async fn mark_for_deletion(
        &self,
        id: ulid::Ulid,
        reason: &str,
        details: &str,
    ) -> Result<(), CompactError> {
        if rthanos_block::mark_for_deletion(&self.bucket, id, details).await? {
            tracing::info!(block = %id, reason, "block marked for deletion");
            self.metrics
                .blocks_marked
                .with_label_values(&["deletion-mark.json", reason])
                .inc();
        }
        Ok(())
    }

    /// Compacts every group until no group has work.
    async fn compact_all(&self) -> Result<(), CompactError> {
        loop {
            let mut view = self.view().await?;
            self.garbage_collect(&mut view).await?;
            let groups = groups(view.metas.values());
            // Every group's series exist from the first look, at 0, as Thanos shows them.
            for key in groups.keys() {
                for counter in [
                    &self.metrics.compactions,
                    &self.metrics.runs_started,
                    &self.metrics.runs_completed,
                    &self.metrics.compaction_failures,
                    &self.metrics.vertical_compactions,
                    &self.metrics.downsamples,
                    &self.metrics.downsample_failures,
                ] {
                    counter.with_label_values(&[key]);
                }
            }
            // The whole backlog, this iteration's compactions included (Thanos's progress
            // gauges); this iteration runs each group's first plan.
            let (todo_compactions, todo_blocks) = groups
                .values()
                .map(|blocks| todo(&self.config.ranges, &view.no_compact, blocks))
                .fold((0, 0), |(c, b), (gc, gb)| (c + gc, b + gb));
            let plans: Vec<(String, Vec<BlockMeta>)> = groups
                .into_iter()
                .map(|(key, blocks)| {
                    let planned: Vec<BlockMeta> =
                        plan(&self.config.ranges, &view.no_compact, &blocks)
                            .into_iter()
                            .cloned()
                            .collect();
                    (key, planned)
                })
                .filter(|(_, planned)| !planned.is_empty())
                .collect();
            self.metrics
                .todo_compactions
                .set(i64::try_from(todo_compactions).unwrap_or(i64::MAX));
            self.metrics
                .todo_compaction_blocks
                .set(i64::try_from(todo_blocks).unwrap_or(i64::MAX));
            if plans.is_empty() {
                return Ok(());
            }
            let results: Vec<Result<(), CompactError>> = futures::stream::iter(plans)
                .map(|(key, planned)| async move { self.compact_group(&key, &planned).await })
                .buffer_unordered(self.config.compact_concurrency.max(1))
                .collect()
                .await;
            // A halt wins over other errors; any error ends the iteration.
            let mut first_error = None;
            for result in results {
                match result {
                    Err(e @ CompactError::Halt(_)) => return Err(e),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                    Ok(()) => {}
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
        }
    }

    async fn compact_group(&self, key: &str, planned: &[BlockMeta]) -> Result<(), CompactError> {
        self.metrics.runs_started.with_label_values(&[key]).inc();
        let result = self.compact_group_inner(key, planned).await;
        match &result {
            Ok(()) => self.metrics.runs_completed.with_label_values(&[key]).inc(),
            Err(e) => {
                self.metrics
                    .compaction_failures
                    .with_label_values(&[key])
                    .inc();
                tracing::warn!(group = key, err = %e, "group compaction failed");
            }
        }
        result
    }

    async fn compact_group_inner(
        &self,
        key: &str,
        planned: &[BlockMeta],
    ) -> Result<(), CompactError> {
        let ids: Vec<ulid::Ulid> = planned.iter().filter_map(|m| m.ulid.parse().ok()).collect();
        let refs: Vec<&BlockMeta> = planned.iter().collect();
        let vertical = !overlapping(&refs).is_empty();
        if vertical && !self.config.vertical_compaction {
            return Err(CompactError::Halt(format!(
                "group {key}: blocks {} overlap and vertical compaction is off (--compact.enable-vertical-compaction); pre compaction overlap check failed",
                ids.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if vertical && planned.iter().any(|m| m.resolution() != 0) {
            // Overlapping downsampled blocks cannot be merged sample by sample (Thanos marks them).
            for id in &ids {
                if rthanos_block::mark_no_compact(
                    &self.bucket,
                    *id,
                    "downsample-vertical-compaction",
                    "overlapping downsampled block: vertical compaction of aggregates is not possible",
                )
                .await?
                {
                    self.metrics
                        .blocks_marked
                        .with_label_values(&["no-compact-mark.json", "downsample-vertical-compaction"])
                        .inc();
                }
            }
            return Ok(());
        }
        let dir = self
            .config
            .data_dir
            .join("compact")
            .join(key.replace('@', "-"));
        fresh_dir(&dir).await?;
        tracing::info!(
            group = key,
            blocks = ids.len(),
            vertical,
            "compacting blocks"
        );
        let downloaded: Vec<Result<PathBuf, CompactError>> =
            futures::stream::iter(ids.iter().copied())
                .map(|id| {
                    let dir = dir.clone();
                    async move {
                        rthanos_block::download_block(&self.bucket, id, &dir)
                            .await
                            .map(|(path, _)| path)
                            .map_err(CompactError::from)
                    }
                })
                .buffered(self.config.files_concurrency.max(1))
                .collect()
                .await;
        let paths: Vec<PathBuf> = downloaded.into_iter().collect::<Result<_, _>>()?;
        let group_thanos = {
            let mut thanos = planned
                .first()
                .and_then(|m| m.thanos.clone())
                .unwrap_or_default();
            thanos.source = "compactor".into();
            thanos.files.clear();
            thanos.segment_files.clear();
            thanos.index_stats = None;
            thanos
        };
        let out_dir = dir.join("out");
        let merged = {
            let out_dir = out_dir.clone();
            tokio::task::spawn_blocking(
                move || -> Result<Option<(PathBuf, BlockMeta)>, CompactError> {
                    let mut sources = Vec::with_capacity(paths.len());
                    for path in &paths {
                        let report = rthanos_tsdb::check::check_block(path)?;
                        if !report.issues.is_empty() {
                            return Err(CompactError::Halt(format!(
                                "block {} failed its check before compaction: {}",
                                path.display(),
                                report.issues.join("; ")
                            )));
                        }
                        sources.push(Block::open(path)?);
                    }
                    std::fs::create_dir_all(&out_dir).map_err(|e| work_dir_error(&out_dir, e))?;
                    let merged = merge_blocks(&sources, &out_dir, group_thanos)?;
                    // The sources' mapped pages are let go before the result is read through.
                    drop(sources);
                    let Some(meta) = merged else {
                        return Ok(None);
                    };
                    let block_dir = out_dir.join(&meta.ulid);
                    let report = rthanos_tsdb::check::check_block(&block_dir)?;
                    if !report.issues.is_empty() {
                        return Err(CompactError::Halt(format!(
                            "compacted block {} failed its check: {}",
                            meta.ulid,
                            report.issues.join("; ")
                        )));
                    }
                    Ok(Some((block_dir, meta)))
                },
            )
            .await
            .map_err(|e| CompactError::Check {
                block: key.to_string(),
                detail: format!("compaction task: {e}"),
            })??
        };
        match merged {
            Some((block_dir, meta)) => {
                let id = meta.ulid.clone();
                self.upload(&block_dir, meta).await?;
                tracing::info!(group = key, block = %id, sources = ids.len(), "compacted block uploaded");
                self.metrics.compactions.with_label_values(&[key]).inc();
                if vertical {
                    self.metrics
                        .vertical_compactions
                        .with_label_values(&[key])
                        .inc();
                }
            }
            None => tracing::info!(
                group = key,
                "compacted block would be empty; sources only marked"
            ),
        }
        for id in &ids {
            self.mark_for_deletion(*id, "compacted", "source of a compacted block")
                .await?;
        }
        let _ = tokio::fs::remove_dir_all(&dir).await;
        Ok(())
    }

    /// Downsamples every block that is due and not yet downsampled (one pass).
    pub async fn downsample_all(&self) -> Result<(), CompactError> {
        let view = self.view().await?;
        let mut covered: BTreeMap<i64, BTreeSet<&str>> = BTreeMap::new();
        for meta in view.metas.values() {
            covered
                .entry(meta.resolution())
                .or_default()
                .extend(meta.compaction.sources.iter().map(String::as_str));
        }
        let due: Vec<(BlockMeta, i64)> = view
            .metas
            .values()
            .filter(|meta| {
                meta.ulid
                    .parse()
                    .is_ok_and(|id: ulid::Ulid| !view.no_downsample.contains(&id))
            })
            .filter_map(|meta| {
                let target = target_resolution(meta)?;
                let done = covered.get(&target).is_some_and(|c| {
                    meta.compaction
                        .sources
                        .iter()
                        .all(|s| c.contains(s.as_str()))
                });
                (!done).then(|| (meta.clone(), target))
            })
            .collect();
        self.metrics
            .todo_downsample_blocks
            .set(i64::try_from(due.len()).unwrap_or(i64::MAX));
        let results: Vec<Result<(), CompactError>> = futures::stream::iter(due)
            .map(|(meta, target)| async move {
                let key = group_key(&meta);
                self.metrics.downsamples.with_label_values(&[&key]).inc();
                let result = self.downsample_one(&meta, target).await;
                if let Err(e) = &result {
                    self.metrics
                        .downsample_failures
                        .with_label_values(&[&key])
                        .inc();
                    tracing::warn!(block = %meta.ulid, err = %e, "downsampling failed");
                }
                result
            })
            .buffer_unordered(self.config.downsample_concurrency.max(1))
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn downsample_one(&self, meta: &BlockMeta, resolution: i64) -> Result<(), CompactError> {
        let id: ulid::Ulid = meta.ulid.parse().map_err(|_| CompactError::Check {
            block: meta.ulid.clone(),
            detail: "ULID does not parse".into(),
        })?;
        let dir = self.config.data_dir.join("downsample").join(&meta.ulid);
        fresh_dir(&dir).await?;
        tracing::info!(block = %id, resolution, "downsampling block");
        let (path, _) = rthanos_block::download_block(&self.bucket, id, &dir).await?;
        let out_dir = dir.join("out");
        let result = tokio::task::spawn_blocking(
            move || -> Result<Option<(PathBuf, BlockMeta)>, CompactError> {
                let source = Block::open(&path)?;
                std::fs::create_dir_all(&out_dir).map_err(|e| work_dir_error(&out_dir, e))?;
                let Some(meta) = downsample_block(&source, &out_dir, resolution)? else {
                    return Ok(None);
                };
                let block_dir = out_dir.join(&meta.ulid);
                let report = rthanos_tsdb::check::check_block(&block_dir)?;
                if !report.issues.is_empty() {
                    return Err(CompactError::Check {
                        block: meta.ulid,
                        detail: report.issues.join("; "),
                    });
                }
                Ok(Some((block_dir, meta)))
            },
        )
        .await
        .map_err(|e| CompactError::Check {
            block: id.to_string(),
            detail: format!("downsampling task: {e}"),
        })??;
        if let Some((block_dir, mut out)) = result {
            if let Some(t) = out.thanos.as_mut() {
                t.source = "compactor".into();
                // The labels of the group it came from (replica labels removed, as Thanos).
                t.labels = meta
                    .thanos
                    .as_ref()
                    .map(|m| m.labels.clone())
                    .unwrap_or_default();
            }
            let new_id = out.ulid.clone();
            self.upload(&block_dir, out).await?;
            tracing::info!(block = %id, downsampled = %new_id, resolution, "downsampled block uploaded");
        }
        let _ = tokio::fs::remove_dir_all(&dir).await;
        Ok(())
    }

    /// Marks for deletion the blocks whose whole range is older than their resolution's
    /// retention.
    pub async fn apply_retention(&self) -> Result<(), CompactError> {
        let view = self.view().await?;
        let now = now_ms();
        for (id, meta) in &view.metas {
            let keep = self.config.retention.for_resolution(meta.resolution());
            if keep.is_zero() {
                continue;
            }
            let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
            if meta.max_time < now.saturating_sub(keep_ms) {
                self.mark_for_deletion(*id, "retention", "past the retention of its resolution")
                    .await?;
            }
        }
        Ok(())
    }

    /// Marks for deletion the partial uploads that are old enough to be abandoned, then
    /// deletes the blocks marked longer ago than the delete delay. Failures are counted and
    /// left for the next cleanup.
    pub async fn cleanup(&self) -> Result<(), CompactError> {
        // Records read before the view: a record of an upload that has finished since is
        // gone by then, its block whole.
        let own = self.unfinished_uploads().await;
        let view = self.view().await?;
        let mut marked: Vec<(ulid::Ulid, i64)> = view
            .marked
            .iter()
            .map(|(id, mark)| (*id, mark.deletion_time))
            .collect();
        for id in view
            .partial
            .iter()
            .filter(|id| !view.marked.contains_key(id))
        {
            let abandoned = if own.contains(id) {
                !self.is_uploading(*id)
            } else {
                self.partial_upload_abandoned(*id).await
            };
            if abandoned {
                self.metrics.partial_deletions.inc();
                self.mark_for_deletion(*id, "partial upload", "partial upload abandoned")
                    .await?;
                marked.push((*id, now_ms() / 1000));
            }
        }
        // Records of uploads that neither run nor left a partial block (the block is whole,
        // marked, or gone).
        for id in &own {
            if !self.is_uploading(*id)
                && (!view.partial.contains(id) || view.marked.contains_key(id))
            {
                remove_record(&self.upload_records().join(id.to_string())).await?;
            }
        }
        let now_s = now_ms() / 1000;
        let delay = i64::try_from(self.config.delete_delay.as_secs()).unwrap_or(i64::MAX);
        let mut waiting = 0i64;
        for (id, deletion_time) in marked {
            if now_s.saturating_sub(deletion_time) < delay {
                waiting += 1;
                continue;
            }
            self.delete(id, "marked for deletion").await;
        }
        self.metrics.todo_deletion_blocks.set(waiting);
        Ok(())
    }

    /// Whether a block without meta.json is an upload that will never finish. As in Thanos,
    /// only its ULID's age tells, and it must exceed [`PARTIAL_UPLOAD_THRESHOLD_AGE`] (or the
    /// consistency delay, if longer): an object store shows no object of an upload still in
    /// flight (an S3 multipart upload appears whole when it completes), so a large block
    /// uploaded slowly looks idle for as long as its chunk files take. Beyond that, nothing
    /// this process is uploading, and nothing written to within the consistency delay.
    async fn partial_upload_abandoned(&self, id: ulid::Ulid) -> bool {
        let threshold = PARTIAL_UPLOAD_THRESHOLD_AGE.max(self.config.consistency_delay);
        let threshold_ms = u64::try_from(threshold.as_millis()).unwrap_or(u64::MAX);
        let age = u64::try_from(now_ms())
            .unwrap_or(0)
            .saturating_sub(id.timestamp_ms());
        if age <= threshold_ms || self.is_uploading(id) {
            return false;
        }
        match self.bucket.last_write(&format!("{id}/")).await {
            Ok(written) => {
                let idle = written.map_or(Duration::MAX, |t| t.elapsed().unwrap_or(Duration::ZERO));
                idle >= self.config.consistency_delay && !self.is_uploading(id)
            }
            Err(e) => {
                tracing::warn!(block = %id, err = %e, "cannot inspect partial block");
                false
            }
        }
    }

    /// Whether this process is uploading block `id` now (the cleanup running beside an
    /// iteration must not take it for an abandoned upload).
    fn is_uploading(&self, id: ulid::Ulid) -> bool {
        self.uploading.lock().is_ok_and(|u| u.contains(&id))
    }

    /// Uploads a block built here, known as in progress while it goes up (until the upload
    /// ends, fails or is cancelled). A record of it under `<data-dir>/uploads/` lasts until
    /// the upload succeeds, so an upload cut short by a crash or an error is known as this
    /// compactor's own, and cleaned at once rather than after
    /// [`PARTIAL_UPLOAD_THRESHOLD_AGE`].
    async fn upload(&self, dir: &Path, meta: BlockMeta) -> Result<(), CompactError> {
        let id: Option<ulid::Ulid> = meta.ulid.parse().ok();
        let _in_progress = id.map(|id| InProgress::new(&self.uploading, id));
        let record = id.map(|id| self.upload_records().join(id.to_string()));
        if let Some(record) = &record {
            write_record(record).await?;
        }
        rthanos_block::upload_block(&self.bucket, dir, meta).await?;
        if let Some(record) = &record {
            remove_record(record).await?;
        }
        Ok(())
    }

    /// Where the records of this compactor's unfinished uploads are.
    fn upload_records(&self) -> PathBuf {
        self.config.data_dir.join("uploads")
    }

    /// Blocks this compactor began to upload and did not finish, as its records say.
    async fn unfinished_uploads(&self) -> BTreeSet<ulid::Ulid> {
        let mut out = BTreeSet::new();
        let Ok(mut entries) = tokio::fs::read_dir(self.upload_records()).await else {
            return out;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                out.insert(id);
            }
        }
        out
    }

    async fn delete(&self, id: ulid::Ulid, why: &str) {
        match rthanos_block::delete_block(&self.bucket, id).await {
            Ok(()) => {
                tracing::info!(block = %id, reason = why, "deleted block");
                self.metrics.blocks_cleaned.inc();
            }
            Err(e) => {
                tracing::warn!(block = %id, err = %e, "deleting block failed; retried at the next cleanup");
                self.metrics.block_cleanup_failures.inc();
            }
        }
    }
}

/// Writes an empty record file (and its directory), synced so that it outlives a crash.
async fn write_record(path: &Path) -> Result<(), CompactError> {
    let record = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let dir = record.parent().unwrap_or(Path::new("."));
        rthanos_durable::create_dir_all(dir)?;
        rthanos_durable::write_synced(&record, b"")?;
        rthanos_durable::sync_dir(dir)
    })
    .await
    .unwrap_or_else(|e| {
        Err(rthanos_durable::DurableError {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })
    })
    .map_err(|e| {
        rthanos_tsdb::TsdbError::Io {
            path: e.path,
            source: e.source,
        }
        .into()
    })
}

async fn remove_record(path: &Path) -> Result<(), CompactError> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(rthanos_tsdb::TsdbError::Io {
            path: path.to_path_buf(),
            source: e,
        }
        .into()),
        _ => Ok(()),
    }
}

/// A block in `set` while this lives: dropped when its upload ends, whichever way.
struct InProgress<'a> {
    set: &'a std::sync::Mutex<BTreeSet<ulid::Ulid>>,
    id: ulid::Ulid,
}

impl<'a> InProgress<'a> {
    fn new(set: &'a std::sync::Mutex<BTreeSet<ulid::Ulid>>, id: ulid::Ulid) -> Self {
        if let Ok(mut blocks) = set.lock() {
            blocks.insert(id);
        }
        Self { set, id }
    }
}

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        if let Ok(mut blocks) = self.set.lock() {
            blocks.remove(&self.id);
        }
    }
}
