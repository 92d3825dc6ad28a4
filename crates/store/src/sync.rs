//! Block synchronisation: which blocks of the bucket are served. Each sync lists the bucket,
//! reads the meta.json of blocks not yet known (a block without one is a partial upload and
//! waits), applies the filters (time window, consistency delay, deletion marks past
//! `--ignore-deletion-marks-delay`, relabel selection on the external labels and
//! `__block_id`), loads the new blocks and forgets those that left.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rthanos_model::Labels;
use rthanos_tsdb::BlockMeta;
use tokio_util::sync::CancellationToken;

use crate::block::BucketBlock;
use crate::{BucketStore, StoreError};

/// Sources of blocks that are complete when they appear, so the consistency delay is waived
/// (as Thanos's consistency-delay filter does).
const TRUSTED_SOURCES: [&str; 3] = ["compactor", "bucket.repair", "bucket.rewrite"];

/// What a sync saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Blocks served after the sync.
    pub loaded: usize,
    /// Blocks without meta.json.
    pub partial: usize,
    /// Blocks left out by the filters.
    pub filtered: usize,
    /// Blocks that failed to load (corrupt index, missing file, …).
    pub failed: usize,
}

use rthanos_block::{duplicates, now_ms};

impl BucketStore {
    /// Brings the served blocks in line with the bucket. Bucket listing errors fail the sync
    /// (the blocks served stay as they were); a block that fails is skipped and counted.
    pub async fn sync(&self) -> Result<SyncReport, StoreError> {
        let window = (self.config.time_window)();
        if let Ok(mut w) = self.time_window.write() {
            *w = window;
        }
        let ids = rthanos_block::block_ids(&self.bucket)
            .await
            .map_err(|e| StoreError::Bucket(e.to_string()))?;
        let known: BTreeMap<ulid::Ulid, Arc<BucketBlock>> =
            self.blocks.read().map(|b| b.clone()).unwrap_or_default();
        let mut report = SyncReport::default();

        // Metas: known blocks keep theirs; new ones are read, a few at a time.
        let concurrency = self.config.block_sync_concurrency.max(1);
        let metas: Vec<(ulid::Ulid, Option<BlockMeta>)> =
            futures::stream::iter(ids.iter().copied())
                .map(|id| {
                    let known = known.get(&id).map(|b| b.meta.clone());
                    async move {
                        match known {
                            // Deleting a block removes its meta.json first: stop serving it then.
                            Some(meta) => {
                                match self.bucket.exists(&format!("{id}/meta.json")).await {
                                    Ok(false) => (id, None),
                                    _ => (id, Some(meta)),
                                }
                            }
                            None => (id, self.fetch_meta(id).await),
                        }
                    }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
        let marked = self.deletion_marked(&ids).await;

        let mut wanted = BTreeMap::new();
        for (id, meta) in metas {
            let Some(meta) = meta else {
                report.partial += 1;
                continue;
            };
            if marked.contains(&id) || !self.selected(id, &meta, window) {
                report.filtered += 1;
                continue;
            }
            wanted.insert(id, meta);
        }
        for id in duplicates(&wanted) {
            wanted.remove(&id);
            report.filtered += 1;
        }

        let mut blocks: BTreeMap<ulid::Ulid, Arc<BucketBlock>> = known
            .iter()
            .filter(|(id, _)| wanted.contains_key(id))
            .map(|(id, b)| (*id, Arc::clone(b)))
            .collect();
        let new: Vec<(ulid::Ulid, BlockMeta)> = wanted
            .into_iter()
            .filter(|(id, _)| !known.contains_key(id))
            .collect();
        let loaded: Vec<Result<BucketBlock, (ulid::Ulid, StoreError)>> = futures::stream::iter(new)
            .map(|(id, meta)| async move {
                self.metrics.block_loads.inc();
                let dir = self.config.data_dir.join(id.to_string());
                BucketBlock::load(
                    self.bucket.clone(),
                    Arc::clone(&self.cache),
                    Arc::clone(&self.metrics),
                    &dir,
                    meta,
                )
                .await
                .map_err(|e| (id, e))
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for result in loaded {
            match result {
                Ok(block) => {
                    tracing::info!(block = %block.id, "loaded block");
                    blocks.insert(block.id, Arc::new(block));
                }
                Err((id, e)) => {
                    report.failed += 1;
                    self.metrics.block_load_failures.inc();
                    tracing::warn!(block = %id, err = %e, "block not loaded; skipped until the next sync");
                }
            }
        }
        for id in known.keys().filter(|id| !blocks.contains_key(id)) {
            self.metrics.block_drops.inc();
            tracing::info!(block = %id, "dropped block");
            let dir = self.config.data_dir.join(id.to_string());
            if let Err(e) = tokio::fs::remove_dir_all(&dir).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %dir.display(), err = %e, "cannot remove a dropped block's index-header");
            }
        }
        report.loaded = blocks.len();
        self.metrics
            .blocks_loaded
            .set(i64::try_from(blocks.len()).unwrap_or(i64::MAX));
        if let Ok(mut current) = self.blocks.write() {
            *current = blocks;
        }
        let first = !self.synced.swap(true, std::sync::atomic::Ordering::AcqRel);
        if first {
            self.remove_stale_dirs().await;
        }
        Ok(report)
    }

    /// Removes, after the first sync, the directories of `--data-dir` that belong to no
    /// served block (left by an earlier run).
    async fn remove_stale_dirs(&self) {
        let served: BTreeSet<String> = self.blocks().iter().map(|b| b.id.to_string()).collect();
        let Ok(mut entries) = tokio::fs::read_dir(&self.config.data_dir).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.parse::<ulid::Ulid>().is_ok() && !served.contains(&name) {
                let _ = tokio::fs::remove_dir_all(entry.path()).await;
            }
        }
    }

    /// Syncs every `interval` until `shutdown`, logging failures.
    pub async fn sync_loop(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; the caller has just synced.
        ticks.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {
                    if let Err(e) = self.sync().await {
                        tracing::warn!(err = %e, "block sync failed; serving the blocks of the last sync");
                    }
                }
            }
        }
    }

    /// meta.json of block `id`, or `None` when the block has none (a partial upload) or it
    /// does not parse (logged).
    async fn fetch_meta(&self, id: ulid::Ulid) -> Option<BlockMeta> {
        match rthanos_block::fetch_meta(&self.bucket, id).await {
            Ok(meta) => meta,
            Err(
                e @ (rthanos_block::BlockError::Malformed { .. }
                | rthanos_block::BlockError::Unsupported { .. }),
            ) => {
                tracing::warn!(block = %id, err = %e, "meta.json unreadable; block skipped");
                None
            }
            Err(e) => {
                tracing::warn!(block = %id, err = %e, "meta.json not read; block skipped this sync");
                None
            }
        }
    }

    /// The blocks whose deletion mark is older than `--ignore-deletion-marks-delay`.
    async fn deletion_marked(&self, ids: &BTreeSet<ulid::Ulid>) -> BTreeSet<ulid::Ulid> {
        let delay_s =
            i64::try_from(self.config.ignore_deletion_marks_delay.as_secs()).unwrap_or(i64::MAX);
        let now_s = now_ms() / 1000;
        let checks = futures::stream::iter(ids.iter().copied())
            .map(|id| async move {
                let mark = rthanos_block::read_deletion_mark(&self.bucket, id)
                    .await
                    .ok()??;
                (now_s.saturating_sub(mark.deletion_time) > delay_s).then_some(id)
            })
            .buffer_unordered(self.config.block_sync_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        checks.into_iter().flatten().collect()
    }

    /// Whether the filters let a block through.
    fn selected(&self, id: ulid::Ulid, meta: &BlockMeta, (min, max): (i64, i64)) -> bool {
        if meta.max_time <= min || meta.min_time > max {
            return false;
        }
        let source = meta.thanos.as_ref().map_or("", |t| t.source.as_str());
        let delay = i64::try_from(self.config.consistency_delay.as_millis()).unwrap_or(i64::MAX);
        let created = i64::try_from(id.timestamp_ms()).unwrap_or(i64::MAX);
        if delay > 0
            && now_ms().saturating_sub(created) < delay
            && !TRUSTED_SOURCES.contains(&source)
        {
            return false;
        }
        if self.config.relabel.is_empty() {
            return true;
        }
        let mut pairs: Vec<(String, String)> = meta
            .thanos
            .as_ref()
            .map(|t| t.labels.clone().into_iter().collect())
            .unwrap_or_default();
        pairs.push(("__block_id".into(), id.to_string()));
        self.config
            .relabel
            .process(&Labels::from_pairs(pairs))
            .is_some()
    }
}
