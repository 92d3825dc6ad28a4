//! The shipper: uploads each new block of a TSDB directory to the bucket: the blocks
//! Prometheus writes under the sidecar's `--tsdb.path`, and the ruler's own (each block's
//! `thanos.source` says which).
//!
//! A block is shipped once complete (its directory is named by a ULID and holds meta.json:
//! Prometheus writes blocks under a temporary name and renames them when done). Its files are
//! first hard-linked into `<tsdb>/thanos/upload/<ULID>`, so Prometheus deleting the block
//! (retention, compaction) cannot cut an upload short; then chunks and index are uploaded,
//! meta.json with the `thanos` section last: a reader never sees a block without its meta.json
//! as anything but a partial upload. Shipped blocks are recorded in `thanos.shipper.json`; a
//! block whose meta.json is already in the bucket counts as shipped (a restart after a crash
//! between upload and record). A failed block is retried at the next sync.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use prometheus::{IntCounter, Registry};
use rthanos_model::Labels;
use rthanos_objstore::Bucket;
use rthanos_tsdb::meta::{BlockMeta, Downsample};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// Why shipping failed.
#[derive(Debug, thiserror::Error)]
pub enum ShipperError {
    /// The shipper cannot be set up.
    #[error("{0}")]
    Config(String),
    /// A block could not be shipped (retried at the next sync).
    #[error("{0}")]
    Upload(String),
}

/// The state file Thanos's shipper keeps in the TSDB directory.
pub const SHIPPER_STATE_FILE: &str = "thanos.shipper.json";
const UPLOAD_DIR: &str = "thanos/upload";

#[derive(Debug, Default, Serialize, Deserialize)]
struct ShipperState {
    version: u32,
    #[serde(default)]
    uploaded: Vec<String>,
}

/// `thanos_shipper_*` counters.
#[derive(Clone)]
struct ShipperMetrics {
    dir_syncs: IntCounter,
    dir_sync_failures: IntCounter,
    uploads: IntCounter,
    upload_failures: IntCounter,
}

impl ShipperMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        Ok(Self {
            dir_syncs: counter(
                "thanos_shipper_dir_syncs_total",
                "Total number of dir syncs",
            )?,
            dir_sync_failures: counter(
                "thanos_shipper_dir_sync_failures_total",
                "Total number of failed dir syncs",
            )?,
            uploads: counter(
                "thanos_shipper_uploads_total",
                "Total number of uploaded blocks",
            )?,
            upload_failures: counter(
                "thanos_shipper_upload_failures_total",
                "Total number of block upload failures",
            )?,
        })
    }
}

/// Ships the blocks of one TSDB directory.
pub struct Shipper {
    dir: PathBuf,
    bucket: Bucket,
    upload_compacted: bool,
    source: String,
    metrics: ShipperMetrics,
}

/// What one sync did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Blocks uploaded by this sync.
    pub uploaded: Vec<String>,
    /// Blocks that failed (retried next sync).
    pub failed: Vec<String>,
}

impl Shipper {
    /// A shipper of the blocks under `dir`; only blocks of compaction level 1 unless
    /// `upload_compacted` (`--shipper.upload-compacted`). `source` goes in each block's
    /// `thanos.source` (Thanos's `sidecar`, `ruler`).
    ///
    /// # Errors
    /// The metrics cannot be registered.
    pub fn new(
        dir: &Path,
        bucket: Bucket,
        upload_compacted: bool,
        source: &str,
        registry: &Registry,
    ) -> Result<Self, ShipperError> {
        Ok(Self {
            dir: dir.to_path_buf(),
            bucket,
            upload_compacted,
            source: source.to_string(),
            metrics: ShipperMetrics::new(registry)
                .map_err(|e| ShipperError::Config(format!("shipper metrics: {e}")))?,
        })
    }

    /// Uploads every complete block not shipped yet, labelled with `external_labels`.
    pub async fn sync(&self, external_labels: &Labels) -> Result<SyncReport, ShipperError> {
        let result = self.sync_blocks(external_labels).await;
        // As in Thanos: a sync is counted once done, a failed one in its own counter.
        match result {
            Ok(_) => self.metrics.dir_syncs.inc(),
            Err(_) => self.metrics.dir_sync_failures.inc(),
        }
        result
    }

    async fn sync_blocks(&self, external_labels: &Labels) -> Result<SyncReport, ShipperError> {
        let shipped: BTreeSet<String> = self.read_state()?.uploaded.into_iter().collect();
        let dir = self.dir.clone();
        let local = tokio::task::spawn_blocking(move || local_blocks(&dir))
            .await
            .map_err(|e| ShipperError::Upload(format!("listing blocks: {e}")))??;
        let mut report = SyncReport::default();
        let mut still_local = Vec::new();
        for (id, meta) in local {
            if shipped.contains(&id) {
                still_local.push(id);
                continue;
            }
            // After a failure nothing newer is shipped: a gap in the bucket would let the
            // compactor compact around the missing block (Thanos's shipper stops too).
            if !report.failed.is_empty()
                || meta.stats.num_samples == 0
                || (meta.compaction.level > 1 && !self.upload_compacted)
            {
                continue;
            }
            match self.ship(&id, meta, external_labels).await {
                Ok(uploaded) => {
                    if uploaded {
                        report.uploaded.push(id.clone());
                        self.metrics.uploads.inc();
                    }
                    still_local.push(id);
                    // Recorded after each block, so a crash re-uploads at most one block.
                    self.write_state(&still_local)?;
                }
                Err(e) => {
                    tracing::error!(block = %id, err = %e, "shipping block failed; it and newer blocks are retried at the next sync");
                    self.metrics.upload_failures.inc();
                    report.failed.push(id);
                }
            }
        }
        // Blocks Prometheus deleted drop out of the record, as in Thanos.
        self.write_state(&still_local)?;
        if report.failed.is_empty() {
            Ok(report)
        } else {
            Err(ShipperError::Upload(format!(
                "block {} failed to upload",
                report.failed.join(", ")
            )))
        }
    }

    /// Uploads one block; `false` when its meta.json was already in the bucket.
    async fn ship(
        &self,
        id: &str,
        mut meta: BlockMeta,
        external_labels: &Labels,
    ) -> Result<bool, ShipperError> {
        let upload_err = |e: rthanos_objstore::BucketError| ShipperError::Upload(e.to_string());
        if self
            .bucket
            .exists(&format!("{id}/meta.json"))
            .await
            .map_err(upload_err)?
        {
            tracing::info!(
                block = id,
                "block already in the bucket, recording it as shipped"
            );
            return Ok(false);
        }
        let staging = self.dir.join(UPLOAD_DIR).join(id);
        let files = {
            let (block, staging) = (self.dir.join(id), staging.clone());
            tokio::task::spawn_blocking(move || stage(&block, &staging))
                .await
                .map_err(|e| ShipperError::Upload(format!("staging: {e}")))??
        };
        tracing::info!(block = id, files = files.len(), "uploading block");

        let mut thanos = meta.thanos.take().unwrap_or_default();
        thanos.labels = external_labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        thanos.downsample = Downsample { resolution: 0 };
        thanos.source = self.source.clone();
        meta.thanos = Some(thanos);
        // Chunks, then the index, then meta.json (with Thanos's `files`), as Thanos uploads.
        rthanos_block::upload_block(&self.bucket, &staging, meta)
            .await
            .map_err(|e| ShipperError::Upload(e.to_string()))?;
        if let Err(e) = std::fs::remove_dir_all(&staging) {
            tracing::warn!(dir = %staging.display(), err = %e, "cannot remove upload staging directory");
        }
        tracing::info!(block = id, "block uploaded");
        Ok(true)
    }

    fn read_state(&self) -> Result<ShipperState, ShipperError> {
        let path = self.dir.join(SHIPPER_STATE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<ShipperState>(&bytes) {
                Ok(state) if state.version == 1 => Ok(state),
                Ok(state) => Err(ShipperError::Upload(format!(
                    "{}: unsupported version {}",
                    path.display(),
                    state.version
                ))),
                Err(e) => {
                    // A damaged record only costs re-checking the bucket for each block.
                    tracing::warn!(file = %path.display(), err = %e, "ignoring unreadable shipper state");
                    Ok(ShipperState::default())
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ShipperState::default()),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    /// Writes the state file atomically and durably (a synced temporary file, renamed, its
    /// directory synced).
    fn write_state(&self, uploaded: &[String]) -> Result<(), ShipperError> {
        let mut uploaded = uploaded.to_vec();
        uploaded.sort();
        uploaded.dedup();
        let state = ShipperState {
            version: 1,
            uploaded,
        };
        let json = serde_json::to_vec_pretty(&state)
            .map_err(|e| ShipperError::Upload(format!("shipper state: {e}")))?;
        let path = self.dir.join(SHIPPER_STATE_FILE);
        rthanos_durable::write_file(&path, &json).map_err(|e| io_error(&e.path, e.source))
    }

    /// Removes leftovers of uploads a crash interrupted.
    pub fn clean_staging(&self) {
        let dir = self.dir.join(UPLOAD_DIR);
        if dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!(dir = %dir.display(), err = %e, "cannot clean upload staging directory");
        }
    }
}

/// Complete blocks in the directory, oldest first.
fn local_blocks(dir: &Path) -> Result<BTreeMap<String, BlockMeta>, ShipperError> {
    let mut blocks = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if Ulid::from_string(&name).is_err() || !entry.path().is_dir() {
            continue;
        }
        let meta_path = entry.path().join("meta.json");
        let bytes = match std::fs::read(&meta_path) {
            Ok(bytes) => bytes,
            // Still being written, or being deleted.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&meta_path, e)),
        };
        match BlockMeta::parse(&bytes) {
            Ok(meta) => {
                blocks.insert(name, meta);
            }
            Err(e) => {
                tracing::warn!(block = %name, err = %e, "skipping block with unreadable meta.json")
            }
        }
    }
    Ok(blocks)
}

/// Hard-links (or copies, across file systems) the block's index and chunk segments into
/// `staging`; returns their paths relative to the block, with sizes, in upload order.
fn stage(block: &Path, staging: &Path) -> Result<Vec<(String, u64)>, ShipperError> {
    if staging.exists() {
        std::fs::remove_dir_all(staging).map_err(|e| io_error(staging, e))?;
    }
    std::fs::create_dir_all(staging.join("chunks")).map_err(|e| io_error(staging, e))?;
    let mut files = Vec::new();
    let chunks_dir = block.join("chunks");
    let mut segments: Vec<String> = std::fs::read_dir(&chunks_dir)
        .map_err(|e| io_error(&chunks_dir, e))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    segments.sort();
    for segment in segments {
        files.push(format!("chunks/{segment}"));
    }
    files.push("index".to_string());
    let mut staged = Vec::with_capacity(files.len());
    for rel in files {
        let from = block.join(&rel);
        let to = staging.join(&rel);
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).map_err(|e| io_error(&from, e))?;
        }
        let size = std::fs::metadata(&to).map_err(|e| io_error(&to, e))?.len();
        staged.push((rel, size));
    }
    Ok(staged)
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> ShipperError {
    ShipperError::Upload(format!("{}: {e}", path.display()))
}
