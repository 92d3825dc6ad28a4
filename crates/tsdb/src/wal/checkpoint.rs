//! Checkpoints, as Prometheus 2.42 makes them (`tsdb/wlog/checkpoint.go`): the records of
//! segments `from..=to` (and of the previous checkpoint) that are still needed, written as a
//! log of their own in `checkpoint.NNNNNNNN` (`to`'s number), so those segments can be
//! deleted. Series still in the head are kept, samples and tombstones at or after the head's
//! new start; the rest is dropped. The checkpoint is written under a `.tmp` name, synced, and
//! renamed into place, so a crash leaves the previous one in force.

use std::path::{Path, PathBuf};

use super::record::{self, Record};
use super::{SegmentRange, Wal, WalError, read_records};

const PREFIX: &str = "checkpoint.";

/// What a checkpoint kept and dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Series records' series read.
    pub series: usize,
    /// Of them, dropped.
    pub dropped_series: usize,
    /// Samples read.
    pub samples: usize,
    /// Of them, dropped.
    pub dropped_samples: usize,
    /// Tombstones read.
    pub tombstones: usize,
    /// Of them, dropped.
    pub dropped_tombstones: usize,
}

/// The directory of checkpoint `index` in the log's directory.
pub fn checkpoint_dir(wal_dir: &Path, index: u32) -> PathBuf {
    wal_dir.join(format!("{PREFIX}{index:08}"))
}

/// The checkpoints in `wal_dir`, oldest first (a `.tmp` one, left by a crash, is not one).
///
/// # Errors
/// The directory cannot be read.
pub fn checkpoints(wal_dir: &Path) -> Result<Vec<(u32, PathBuf)>, WalError> {
    let entries = std::fs::read_dir(wal_dir).map_err(|e| WalError::io(wal_dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| WalError::io(wal_dir, e))?;
        let name = entry.file_name();
        let Some(number) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(index) = number.parse::<u32>() {
            out.push((index, entry.path()));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The newest checkpoint, if any.
///
/// # Errors
/// The directory cannot be read.
pub fn last_checkpoint(wal_dir: &Path) -> Result<Option<(u32, PathBuf)>, WalError> {
    Ok(checkpoints(wal_dir)?.pop())
}

/// Deletes the checkpoints older than `index`.
///
/// # Errors
/// Listing or deleting failed.
pub fn delete_checkpoints(wal_dir: &Path, index: u32) -> Result<(), WalError> {
    for (i, dir) in checkpoints(wal_dir)? {
        if i >= index {
            break;
        }
        std::fs::remove_dir_all(&dir).map_err(|e| WalError::io(&dir, e))?;
    }
    Ok(())
}

/// Writes checkpoint `to` from the previous checkpoint and segments `from..=to` of `wal`,
/// keeping the series for which `keep` holds and the samples and tombstones from `min_time`
/// on.
///
/// # Errors
/// Reading (a corrupt segment) or writing failed; the previous checkpoint stays in force.
pub fn checkpoint(
    wal: &Wal,
    from: u32,
    to: u32,
    keep: impl Fn(u64) -> bool,
    min_time: i64,
) -> Result<CheckpointStats, WalError> {
    checkpoint_in(wal.dir(), wal.compressed(), from, to, keep, min_time)
}

/// [`checkpoint`] of the log in `dir` without its writer (records snappy-compressed with
/// `compress`): segments `from..=to` are finished, so it may run beside appends.
///
/// # Errors
/// As [`checkpoint`].
pub fn checkpoint_in(
    dir: &Path,
    compress: bool,
    from: u32,
    to: u32,
    keep: impl Fn(u64) -> bool,
    min_time: i64,
) -> Result<CheckpointStats, WalError> {
    let mut ranges = Vec::new();
    let mut from = from;
    if let Some((last, path)) = last_checkpoint(dir)? {
        if from > last + 1 {
            return Err(WalError::Gap {
                before: last,
                after: from,
            });
        }
        from = last + 1;
        ranges.push(SegmentRange::all(&path));
    }
    ranges.push(SegmentRange {
        dir: dir.to_path_buf(),
        first: from,
        last: to,
    });
    let final_dir = checkpoint_dir(dir, to);
    let mut staging = final_dir.clone().into_os_string();
    staging.push(".tmp");
    let staging = PathBuf::from(staging);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| WalError::io(&staging, e))?;
    }
    let result = write(&ranges, &staging, compress, &keep, min_time);
    let stats = match result {
        Ok(stats) => stats,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(|e| WalError::io(&final_dir, e))?;
    }
    rthanos_durable::rename(&staging, &final_dir).map_err(|e| WalError::io(&e.path, e.source))?;
    Ok(stats)
}

fn write(
    ranges: &[SegmentRange],
    staging: &Path,
    compress: bool,
    keep: &impl Fn(u64) -> bool,
    min_time: i64,
) -> Result<CheckpointStats, WalError> {
    let mut out = Wal::open(staging, compress)?;
    let mut stats = CheckpointStats::default();
    // Records are gathered and logged about every MiB, as Prometheus does.
    let mut records: Vec<Vec<u8>> = Vec::new();
    let mut pending = 0usize;
    let mut failed: Option<WalError> = None;
    read_records(ranges, |_, bytes| {
        let mut record = Vec::new();
        match record::decode(bytes)? {
            Record::Series(series) => {
                let kept = kept(
                    series,
                    |s| keep(s.reference),
                    &mut stats.series,
                    &mut stats.dropped_series,
                );
                if !kept.is_empty() {
                    record::encode_series(&kept, &mut record);
                }
            }
            Record::Samples(samples) => {
                let kept = kept(
                    samples,
                    |s| s.t >= min_time,
                    &mut stats.samples,
                    &mut stats.dropped_samples,
                );
                if !kept.is_empty() {
                    record::encode_samples(&kept, &mut record);
                }
            }
            Record::Tombstones(stones) => {
                let kept = kept(
                    stones,
                    |s| s.max_time >= min_time,
                    &mut stats.tombstones,
                    &mut stats.dropped_tombstones,
                );
                if !kept.is_empty() {
                    record::encode_tombstones(&kept, &mut record);
                }
            }
            // Prometheus's checkpoint keeps exemplars and metadata; this log writes none.
            Record::Other(_) => {}
        }
        if !record.is_empty() {
            pending += record.len();
            records.push(record);
        }
        if pending > 1 << 20 {
            pending = 0;
            if let Err(e) = log_all(&mut out, &mut records) {
                let detail = e.to_string();
                failed = Some(e);
                return Err(detail);
            }
        }
        Ok(())
    })
    .map_err(|e| failed.take().unwrap_or(e))?;
    log_all(&mut out, &mut records)?;
    out.close()?;
    rthanos_durable::sync_dir(staging).map_err(|e| WalError::io(&e.path, e.source))?;
    Ok(stats)
}

/// The items `keep` holds for, counting what was read and what dropped.
fn kept<T>(
    items: Vec<T>,
    keep: impl Fn(&T) -> bool,
    read: &mut usize,
    dropped: &mut usize,
) -> Vec<T> {
    let n = items.len();
    let kept: Vec<T> = items.into_iter().filter(|i| keep(i)).collect();
    *read += n;
    *dropped += n - kept.len();
    kept
}

fn log_all(out: &mut Wal, records: &mut Vec<Vec<u8>>) -> Result<(), WalError> {
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    let logged = out.log(&refs);
    records.clear();
    logged
}
