//! A Prometheus TSDB directory of our own: the head and its WAL (`wal/`), and the blocks cut
//! from the head (`<ULID>/`), laid out as Prometheus 2.42 lays them out, so Prometheus and
//! `promtool tsdb dump` can open a copy. Opening replays the WAL from the last checkpoint;
//! [`Db::compact`] cuts the head's oldest chunk range into a block once the head spans 1.5
//! ranges, then truncates the head and the WAL (checkpoint, old segments deleted), as
//! Prometheus's `DB.Compact` does; [`Db::apply_retention`] deletes blocks past retention.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use rthanos_chunkenc::Encoding;

use crate::TsdbError;
use crate::head::{AppendError, Appender, Committed, Head, range_end};
use crate::meta::{BlockMeta, Compaction};
use crate::wal::record::{self, Record};
use crate::wal::{Wal, WalError, checkpoint};
use crate::writer::{BlockWriter, ChunkToWrite, Lineage};

/// Two hours, Prometheus's (and Thanos's ruler's) block range.
pub const DEFAULT_BLOCK_RANGE: i64 = 2 * 3_600_000;

/// How the directory is kept.
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// Range of a block cut from the head, and of the head's chunks (ms).
    pub block_range: i64,
    /// Blocks whose end is this far (ms) behind the newest block's end are deleted; `None`
    /// keeps them.
    pub retention: Option<i64>,
    /// Snappy-compress WAL records.
    pub wal_compression: bool,
    /// Bytes of a WAL segment.
    pub wal_segment_size: usize,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            block_range: DEFAULT_BLOCK_RANGE,
            retention: None,
            wal_compression: false,
            wal_segment_size: crate::wal::DEFAULT_SEGMENT_SIZE,
        }
    }
}

/// What opening found.
#[derive(Clone, Debug, Default)]
pub struct Replayed {
    /// Series records read.
    pub series: usize,
    /// Samples added to the head.
    pub samples: usize,
    /// Samples passed over (in a block already, out of order, or of an unknown series).
    pub skipped_samples: usize,
    /// The corruption the WAL was repaired of, if any: what was after it is lost.
    pub repaired: Option<String>,
}

/// Errors of the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The WAL failed.
    #[error("WAL: {0}")]
    Wal(#[from] WalError),
    /// A block could not be written, read or deleted.
    #[error(transparent)]
    Block(#[from] TsdbError),
}

/// The database.
pub struct Db {
    dir: PathBuf,
    options: DbOptions,
    head: Head,
    wal: Mutex<Wal>,
    blocks: RwLock<Vec<BlockMeta>>,
    /// One compaction at a time.
    compaction: Mutex<()>,
    last_wal_truncation: AtomicI64,
}

impl Db {
    /// Opens (or makes) the database in `dir`: its blocks, then the WAL replayed into the
    /// head. A corrupt or torn WAL tail is cut off (reported in [`Replayed::repaired`]).
    ///
    /// # Errors
    /// The directory cannot be read or made, a checkpoint is corrupt, or the WAL cannot be
    /// opened for writing.
    pub fn open(dir: &Path, options: DbOptions) -> Result<(Db, Replayed), DbError> {
        rthanos_durable::create_dir_all(dir).map_err(TsdbError::from)?;
        let blocks = load_blocks(dir)?;
        let min_valid_time = blocks.last().map_or(i64::MIN, |b| b.max_time);
        let head = Head::new(options.block_range, min_valid_time);
        let wal_dir = dir.join("wal");
        rthanos_durable::create_dir_all(&wal_dir).map_err(TsdbError::from)?;
        let replayed = replay(&head, &wal_dir)?;
        let wal = Wal::open_sized(&wal_dir, options.wal_segment_size, options.wal_compression)?;
        Ok((
            Db {
                dir: dir.to_path_buf(),
                options,
                head,
                wal: Mutex::new(wal),
                blocks: RwLock::new(blocks),
                compaction: Mutex::new(()),
                last_wal_truncation: AtomicI64::new(i64::MIN),
            },
            replayed,
        ))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The head.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// The blocks, oldest first.
    pub fn blocks(&self) -> Vec<BlockMeta> {
        self.blocks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The series matching every one of `matchers` with chunks overlapping
    /// `[min_time, max_time]` (ms), in label order, each with those chunks (XOR bytes) in time
    /// order: the local blocks' then the head's. For the ruler's StoreAPI and its `for`-state
    /// restore; a block is opened (its index mmapped) for the call.
    ///
    /// # Errors
    /// A block's index or chunks cannot be read.
    pub fn select(
        &self,
        matchers: &[rthanos_model::Matcher],
        min_time: i64,
        max_time: i64,
    ) -> Result<Vec<(rthanos_model::Labels, Vec<SelectedChunk>)>, TsdbError> {
        let mut series: std::collections::BTreeMap<rthanos_model::Labels, Vec<SelectedChunk>> =
            std::collections::BTreeMap::new();
        for meta in self.blocks() {
            if meta.max_time <= min_time || meta.min_time > max_time {
                continue;
            }
            let block = crate::Block::open(&self.dir.join(&meta.ulid))?;
            for id in block.index().select(matchers)? {
                let entry = block.index().series(id)?;
                let mut chunks = Vec::new();
                for c in &entry.chunks {
                    if c.max_time < min_time || c.min_time > max_time {
                        continue;
                    }
                    let chunk = block.chunks().chunk(c.reference)?;
                    chunks.push(SelectedChunk {
                        min_time: c.min_time,
                        max_time: c.max_time,
                        encoding: chunk.encoding,
                        data: chunk.data.into(),
                    });
                }
                if !chunks.is_empty() {
                    series.entry(entry.labels).or_default().extend(chunks);
                }
            }
        }
        for (labels, chunks) in self.head.select(matchers, min_time, max_time) {
            series
                .entry(labels)
                .or_default()
                .extend(chunks.into_iter().map(|c| SelectedChunk {
                    min_time: c.min_time,
                    max_time: c.max_time,
                    encoding: Encoding::Xor,
                    data: c.data,
                }));
        }
        Ok(series.into_iter().collect())
    }

    /// An appender whose commit goes to the WAL, then the head.
    pub fn appender(&self) -> DbAppender<'_> {
        DbAppender {
            inner: self.head.appender(),
            wal: &self.wal,
        }
    }

    /// Fsyncs the WAL: what was committed survives a power cut too.
    ///
    /// # Errors
    /// The sync failed.
    pub fn sync(&self) -> Result<(), DbError> {
        Ok(self
            .wal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sync()?)
    }

    /// Cuts blocks from the head while it spans more than 1.5 block ranges, each the head's
    /// oldest range, then truncates the head and the WAL. Returns the blocks written.
    ///
    /// # Errors
    /// Writing a block or a checkpoint failed; what was written stays, and the head keeps
    /// its samples until a later compaction succeeds.
    pub fn compact(&self) -> Result<Vec<BlockMeta>, DbError> {
        let _one = self
            .compaction
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut written = Vec::new();
        let mut truncated_to = None;
        while self.head.compactable() {
            let min_time = self.head.min_time();
            let max_time = range_end(min_time, self.options.block_range);
            if let Some(meta) = self.write_block(min_time, max_time)? {
                let mut blocks = self.blocks.write().unwrap_or_else(PoisonError::into_inner);
                blocks.push(meta.clone());
                blocks.sort_by_key(|b| b.min_time);
                written.push(meta);
            }
            let segment = self
                .wal
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .current_segment();
            self.head.truncate(max_time, segment);
            truncated_to = Some(max_time);
        }
        if let Some(min_time) = truncated_to {
            self.truncate_wal(min_time)?;
        }
        Ok(written)
    }

    /// Writes the head's `[min_time, max_time)` as a level-1 block; none when it is empty.
    fn write_block(&self, min_time: i64, max_time: i64) -> Result<Option<BlockMeta>, DbError> {
        // Block ranges are half-open, chunk ranges closed.
        let series = self.head.series_in(min_time, max_time - 1);
        if series.is_empty() {
            return Ok(None);
        }
        let mut symbols = BTreeSet::new();
        for (labels, _) in &series {
            for label in labels {
                symbols.insert(label.name.clone());
                symbols.insert(label.value.clone());
            }
        }
        let mut writer = BlockWriter::create(&self.dir, &symbols)?;
        let ulid = writer.ulid().to_string();
        for (labels, chunks) in &series {
            let chunks: Vec<ChunkToWrite<'_>> = chunks
                .iter()
                .filter(|c| c.min_time < max_time)
                .map(|c| ChunkToWrite {
                    min_time: c.min_time,
                    max_time: c.max_time,
                    encoding: Encoding::Xor,
                    data: &c.data[..],
                    samples: c.samples as u64,
                })
                .collect();
            writer.add_series(labels, &chunks)?;
        }
        let meta = writer.finish_with(
            None,
            Some(Lineage {
                compaction: Compaction {
                    level: 1,
                    sources: vec![ulid],
                    ..Compaction::default()
                },
                min_time,
                max_time,
            }),
        )?;
        Ok(Some(meta))
    }

    /// Prometheus's `truncateWAL`: a new segment is started; the older two thirds of the
    /// finished segments go into a checkpoint (series still in the head, samples from
    /// `min_time`) and are deleted, with the checkpoints before it.
    fn truncate_wal(&self, min_time: i64) -> Result<(), DbError> {
        if min_time <= self.last_wal_truncation.load(Ordering::Acquire) {
            return Ok(());
        }
        self.last_wal_truncation.store(min_time, Ordering::Release);
        let mut wal = self.wal.lock().unwrap_or_else(PoisonError::into_inner);
        let segments = crate::wal::segments(wal.dir())?;
        let (Some(&first), Some(&last)) = (segments.first(), segments.last()) else {
            return Ok(());
        };
        wal.next_segment()?;
        // The segment written until now is never checkpointed.
        let Some(last) = last.checked_sub(1) else {
            return Ok(());
        };
        let last = first + (last.saturating_sub(first)) * 2 / 3;
        if last <= first {
            return Ok(());
        }
        checkpoint::checkpoint(
            &wal,
            first,
            last,
            |r| self.head.keep_in_checkpoint(r),
            min_time,
        )?;
        wal.truncate_before(last + 1)?;
        self.head.forget_deleted_before(first);
        checkpoint::delete_checkpoints(wal.dir(), last)?;
        Ok(())
    }

    /// Deletes the blocks whose end is more than the retention behind the newest block's end
    /// (Prometheus's time retention). Returns their ULIDs.
    ///
    /// # Errors
    /// A block could not be deleted.
    pub fn apply_retention(&self) -> Result<Vec<String>, DbError> {
        let Some(retention) = self.options.retention else {
            return Ok(Vec::new());
        };
        let mut blocks = self.blocks.write().unwrap_or_else(PoisonError::into_inner);
        let Some(newest) = blocks.iter().map(|b| b.max_time).max() else {
            return Ok(Vec::new());
        };
        let mut deleted = Vec::new();
        for meta in blocks
            .iter()
            .filter(|b| newest.saturating_sub(b.max_time) > retention)
        {
            delete_block(&self.dir, &meta.ulid)?;
            deleted.push(meta.ulid.clone());
        }
        blocks.retain(|b| !deleted.contains(&b.ulid));
        Ok(deleted)
    }

    /// Writes out the WAL's last page and fsyncs it.
    ///
    /// # Errors
    /// Writing failed.
    pub fn close(self) -> Result<(), DbError> {
        Ok(self
            .wal
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .close()?)
    }
}

/// A chunk of [`Db::select`]'s answer.
#[derive(Clone, Debug)]
pub struct SelectedChunk {
    /// First sample's timestamp.
    pub min_time: i64,
    /// Last sample's timestamp.
    pub max_time: i64,
    /// How `data` is encoded.
    pub encoding: Encoding,
    /// The chunk's bytes.
    pub data: std::sync::Arc<[u8]>,
}

/// Samples added together; [`DbAppender::commit`] logs them to the WAL and adds them to the
/// head.
pub struct DbAppender<'a> {
    inner: Appender<'a>,
    wal: &'a Mutex<Wal>,
}

impl DbAppender<'_> {
    /// Adds a sample of series `labels`; see [`Appender::append`].
    ///
    /// # Errors
    /// The sample is refused, with Prometheus's reason.
    pub fn append(
        &mut self,
        labels: &rthanos_model::Labels,
        t: i64,
        v: f64,
    ) -> Result<u64, AppendError> {
        self.inner.append(labels, t, v)
    }

    /// Adds a sample of the series an earlier append returned `reference` for; see
    /// [`Appender::append_ref`].
    ///
    /// # Errors
    /// The sample is refused, with Prometheus's reason.
    pub fn append_ref(
        &mut self,
        reference: u64,
        labels: &rthanos_model::Labels,
        t: i64,
        v: f64,
    ) -> Result<u64, AppendError> {
        self.inner.append_ref(reference, labels, t, v)
    }

    /// Logs and adds the samples; when this returns they survive the process being killed.
    ///
    /// # Errors
    /// The WAL could not be written: nothing was added.
    pub fn commit(self) -> Result<Committed, DbError> {
        Ok(self.inner.commit(Some(self.wal))?)
    }

    /// Drops the samples.
    pub fn rollback(self) {}
}

/// The blocks in `dir` (directories with a readable meta.json), oldest first. Leftovers of
/// a crash while a block was written or deleted are removed.
fn load_blocks(dir: &Path) -> Result<Vec<BlockMeta>, TsdbError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| TsdbError::io(dir, e))? {
        let entry = entry.map_err(|e| TsdbError::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with(".tmp-for-creation") || name.ends_with(".tmp-for-deletion") {
            std::fs::remove_dir_all(&path).map_err(|e| TsdbError::io(&path, e))?;
            continue;
        }
        if ulid::Ulid::from_string(&name).is_err() || !path.is_dir() {
            continue;
        }
        let meta_path = path.join("meta.json");
        let Ok(bytes) = std::fs::read(&meta_path) else {
            continue;
        };
        out.push(BlockMeta::parse(&bytes)?);
    }
    out.sort_by_key(|b| b.min_time);
    Ok(out)
}

/// Deletes a block as Prometheus does: renamed aside first, so a crash never leaves a
/// block without some of its files under its own name.
fn delete_block(dir: &Path, ulid: &str) -> Result<(), TsdbError> {
    let from = dir.join(ulid);
    let aside = dir.join(format!("{ulid}.tmp-for-deletion"));
    rthanos_durable::rename(&from, &aside).map_err(TsdbError::from)?;
    std::fs::remove_dir_all(&aside).map_err(|e| TsdbError::io(&aside, e))
}

/// Reads the last checkpoint and the segments after it into `head`; cuts the WAL at a
/// corruption.
fn replay(head: &Head, wal_dir: &Path) -> Result<Replayed, DbError> {
    let mut replayed = Replayed::default();
    let mut apply = |bytes: &[u8]| -> Result<(), String> {
        match record::decode(bytes)? {
            Record::Series(series) => {
                replayed.series += series.len();
                for s in &series {
                    head.replay_series(s);
                }
            }
            Record::Samples(samples) => {
                for s in &samples {
                    if head.replay_sample(s) {
                        replayed.samples += 1;
                    } else {
                        replayed.skipped_samples += 1;
                    }
                }
            }
            // Deletions through the head are not offered; records of other types are a
            // Prometheus's (exemplars, metadata, histograms).
            Record::Tombstones(_) | Record::Other(_) => {}
        }
        Ok(())
    };
    let repaired = crate::wal::replay(wal_dir, |_, r| apply(r))?;
    replayed.repaired = repaired;
    Ok(replayed)
}
