//! Marker files beside a block: `deletion-mark.json` (delete after `--delete-delay`; readers
//! stop using the block after their own delay) and `no-compact-mark.json` (the planner leaves
//! the block alone), with Thanos's fields.

use bytes::Bytes;
use rthanos_objstore::Bucket;
use serde::{Deserialize, Serialize};

use crate::{BlockError, object};

/// A marker file a block can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// `deletion-mark.json`.
    Deletion,
    /// `no-compact-mark.json`.
    NoCompact,
    /// `no-downsample-mark.json`.
    NoDownsample,
}

impl Marker {
    /// The marker's file name in the block directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Marker::Deletion => "deletion-mark.json",
            Marker::NoCompact => "no-compact-mark.json",
            Marker::NoDownsample => "no-downsample-mark.json",
        }
    }

    /// The marker named by `file_name`, if it is one.
    pub fn from_file_name(file_name: &str) -> Option<Self> {
        [Marker::Deletion, Marker::NoCompact, Marker::NoDownsample]
            .into_iter()
            .find(|m| m.file_name() == file_name)
    }
}

/// `deletion-mark.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionMark {
    /// The block.
    pub id: String,
    /// Format version, 1.
    pub version: u32,
    /// Why it was marked.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    /// When it was marked, in Unix seconds.
    pub deletion_time: i64,
}

/// `no-compact-mark.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoCompactMark {
    /// The block.
    pub id: String,
    /// Format version, 1.
    pub version: u32,
    /// Why it was marked, in words.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    /// When it was marked, in Unix seconds.
    pub no_compact_time: i64,
    /// Why it was marked, as Thanos's reasons ("manual", "index-size-exceeding", …).
    pub reason: String,
}

async fn read_marker<T: for<'de> Deserialize<'de>>(
    bucket: &Bucket,
    id: ulid::Ulid,
    marker: Marker,
) -> Result<Option<T>, BlockError> {
    match bucket.get(&object(id, marker.file_name())).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| BlockError::Malformed {
                id,
                detail: format!("{}: {e}", marker.file_name()),
            }),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The deletion mark of block `id`, if it has one.
pub async fn read_deletion_mark(
    bucket: &Bucket,
    id: ulid::Ulid,
) -> Result<Option<DeletionMark>, BlockError> {
    read_marker(bucket, id, Marker::Deletion).await
}

/// The deletion marks of blocks `ids`, read `concurrency` at a time: the marked blocks only.
pub async fn read_deletion_marks(
    bucket: &Bucket,
    ids: impl IntoIterator<Item = ulid::Ulid>,
    concurrency: usize,
) -> Result<std::collections::BTreeMap<ulid::Ulid, DeletionMark>, BlockError> {
    let read = crate::per_block(ids, concurrency, |id| read_deletion_mark(bucket, id)).await;
    let mut marks = std::collections::BTreeMap::new();
    for (id, mark) in read {
        if let Some(mark) = mark? {
            marks.insert(id, mark);
        }
    }
    Ok(marks)
}

/// The no-compact mark of block `id`, if it has one.
pub async fn read_no_compact_mark(
    bucket: &Bucket,
    id: ulid::Ulid,
) -> Result<Option<NoCompactMark>, BlockError> {
    read_marker(bucket, id, Marker::NoCompact).await
}

fn now_s() -> i64 {
    crate::now_ms() / 1000
}

async fn write_marker<T: Serialize>(
    bucket: &Bucket,
    id: ulid::Ulid,
    marker: Marker,
    mark: &T,
) -> Result<bool, BlockError> {
    let name = object(id, marker.file_name());
    if bucket.exists(&name).await? {
        return Ok(false);
    }
    let json = serde_json::to_vec_pretty(mark).map_err(|e| BlockError::Malformed {
        id,
        detail: e.to_string(),
    })?;
    bucket.upload(&name, Bytes::from(json)).await?;
    Ok(true)
}

/// Marks block `id` for deletion; `false` when it already was (the first mark's time stands).
pub async fn mark_for_deletion(
    bucket: &Bucket,
    id: ulid::Ulid,
    details: &str,
) -> Result<bool, BlockError> {
    let mark = DeletionMark {
        id: id.to_string(),
        version: 1,
        details: details.to_string(),
        deletion_time: now_s(),
    };
    write_marker(bucket, id, Marker::Deletion, &mark).await
}

/// Marks block `id` as not to be compacted; `false` when it already was.
pub async fn mark_no_compact(
    bucket: &Bucket,
    id: ulid::Ulid,
    reason: &str,
    details: &str,
) -> Result<bool, BlockError> {
    let mark = NoCompactMark {
        id: id.to_string(),
        version: 1,
        details: details.to_string(),
        no_compact_time: now_s(),
        reason: reason.to_string(),
    };
    write_marker(bucket, id, Marker::NoCompact, &mark).await
}

/// `no-downsample-mark.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoDownsampleMark {
    /// The block.
    pub id: String,
    /// Format version, 1.
    pub version: u32,
    /// Why it was marked, in words.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    /// When it was marked, in Unix seconds.
    pub no_downsample_time: i64,
    /// Why it was marked.
    pub reason: String,
}

/// Marks block `id` as not to be downsampled; `false` when it already was.
pub async fn mark_no_downsample(
    bucket: &Bucket,
    id: ulid::Ulid,
    reason: &str,
    details: &str,
) -> Result<bool, BlockError> {
    let mark = NoDownsampleMark {
        id: id.to_string(),
        version: 1,
        details: details.to_string(),
        no_downsample_time: now_s(),
        reason: reason.to_string(),
    };
    write_marker(bucket, id, Marker::NoDownsample, &mark).await
}
