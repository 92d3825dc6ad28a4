//! Blocks in a bucket, laid out as Thanos lays them out (`<ULID>/meta.json`, `index`,
//! `chunks/…`, and the marker files beside them): reading every block's meta.json (a block
//! without one is a partial upload), the deletion and no-compact marks, uploading a block
//! directory with meta.json last, downloading one, and deleting one with meta.json first, so a
//! block is never seen half there. The store gateway, the compactor and the bucket tools stand
//! on it.

mod marks;
mod transfer;

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use rthanos_objstore::{Bucket, BucketError};
use rthanos_tsdb::BlockMeta;

pub use marks::{
    DeletionMark, Marker, NoCompactMark, NoDownsampleMark, mark_for_deletion, mark_no_compact,
    mark_no_downsample, read_deletion_mark, read_deletion_marks, read_no_compact_mark,
};
pub use transfer::{delete_block, download_block, upload_block};

/// Errors of block operations on a bucket.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The bucket failed.
    #[error(transparent)]
    Bucket(#[from] BucketError),
    /// A block's file (meta.json, a marker) does not parse.
    #[error("block {id}: {detail}")]
    Malformed {
        /// The block.
        id: ulid::Ulid,
        /// What is wrong.
        detail: String,
    },
    /// A block's meta.json is JSON that rthanos cannot use (another version, inverted times,
    /// another block's ID): somebody's block, not a write cut short.
    #[error("block {id}: {detail}")]
    Unsupported {
        /// The block.
        id: ulid::Ulid,
        /// What is wrong.
        detail: String,
    },
    /// A local file or directory could not be read or written.
    #[error("{path}: {source}")]
    Local {
        /// The file or directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The object name of `file` in block `id`.
pub fn object(id: ulid::Ulid, file: &str) -> String {
    format!("{id}/{file}")
}

/// The IDs of the blocks in the bucket (its top-level directories named by a ULID).
pub async fn block_ids(bucket: &Bucket) -> Result<BTreeSet<ulid::Ulid>, BlockError> {
    Ok(bucket
        .iter("", false)
        .await?
        .iter()
        .filter_map(|n| n.strip_suffix('/'))
        .filter_map(|n| n.parse().ok())
        .collect())
}

/// The meta.json of block `id`: `None` when it has none (a partial upload, or a block being
/// deleted); [`BlockError::Malformed`] when it is not JSON (a write cut short);
/// [`BlockError::Unsupported`] when it is JSON rthanos cannot use or names another block.
pub async fn fetch_meta(bucket: &Bucket, id: ulid::Ulid) -> Result<Option<BlockMeta>, BlockError> {
    match bucket.get(&object(id, "meta.json")).await {
        Ok(bytes) => {
            if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                return Err(BlockError::Malformed {
                    id,
                    detail: e.to_string(),
                });
            }
            let meta = BlockMeta::parse(&bytes).map_err(|e| BlockError::Unsupported {
                id,
                detail: e.to_string(),
            })?;
            if meta.ulid != id.to_string() {
                return Err(BlockError::Unsupported {
                    id,
                    detail: format!("meta.json names block {}", meta.ulid),
                });
            }
            Ok(Some(meta))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What one look at the bucket found.
#[derive(Debug, Default)]
pub struct BucketBlocks {
    /// Blocks with a meta.json that parses.
    pub metas: BTreeMap<ulid::Ulid, BlockMeta>,
    /// Blocks without meta.json.
    pub partial: BTreeSet<ulid::Ulid>,
    /// Blocks whose meta.json is not JSON, with why.
    pub malformed: BTreeMap<ulid::Ulid, String>,
    /// Blocks whose meta.json is JSON that rthanos cannot use, with why: left alone.
    pub unsupported: BTreeMap<ulid::Ulid, String>,
}

/// `read` of every block of `ids`, `concurrency` at a time, each answer with its block.
async fn per_block<T, Fut>(
    ids: impl IntoIterator<Item = ulid::Ulid>,
    concurrency: usize,
    read: impl Fn(ulid::Ulid) -> Fut,
) -> Vec<(ulid::Ulid, T)>
where
    Fut: Future<Output = T>,
{
    let read = &read;
    futures::stream::iter(ids)
        .map(|id| async move { (id, read(id).await) })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

/// Reads the meta.json of every block, `concurrency` at a time. A bucket error fails the whole
/// look (a block whose meta.json cannot be read is not a block without one).
pub async fn fetch_metas(bucket: &Bucket, concurrency: usize) -> Result<BucketBlocks, BlockError> {
    let ids = block_ids(bucket).await?;
    let fetched = per_block(ids, concurrency, |id| fetch_meta(bucket, id)).await;
    let mut out = BucketBlocks::default();
    for (id, result) in fetched {
        match result {
            Ok(Some(meta)) => {
                out.metas.insert(id, meta);
            }
            Ok(None) => {
                out.partial.insert(id);
            }
            Err(BlockError::Malformed { detail, .. }) => {
                out.malformed.insert(id, detail);
            }
            Err(BlockError::Unsupported { detail, .. }) => {
                out.unsupported.insert(id, detail);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Blocks whose data another block holds whole, as Thanos's deduplicate filter finds them:
/// at the same resolution, a block whose compaction sources are all among another's (a
/// compactor's output is in the bucket before its sources are marked for deletion). Of two
/// blocks with the same sources, the one with the smaller ID goes.
pub fn duplicates(blocks: &BTreeMap<ulid::Ulid, BlockMeta>) -> Vec<ulid::Ulid> {
    let mut by_size: Vec<(&ulid::Ulid, &BlockMeta)> = blocks.iter().collect();
    // Most sources first; among equals, the newest ID first, so it is the one kept.
    by_size.sort_by(|a, b| {
        b.1.compaction
            .sources
            .len()
            .cmp(&a.1.compaction.sources.len())
            .then(b.0.cmp(a.0))
    });
    let mut kept: Vec<(i64, BTreeSet<&str>)> = Vec::new();
    let mut out = Vec::new();
    for (id, meta) in by_size {
        let sources: BTreeSet<&str> = meta.compaction.sources.iter().map(String::as_str).collect();
        let resolution = meta.resolution();
        let covered = !sources.is_empty()
            && kept
                .iter()
                .any(|(r, k)| *r == resolution && sources.is_subset(k));
        if covered {
            out.push(*id);
        } else {
            kept.push((resolution, sources));
        }
    }
    out
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: ulid::Ulid, sources: &[ulid::Ulid], resolution: i64) -> BlockMeta {
        let sources: Vec<String> = sources.iter().map(ToString::to_string).collect();
        BlockMeta::parse(
            serde_json::json!({
                "ulid": id.to_string(), "minTime": 0, "maxTime": 1, "version": 1,
                "compaction": {"level": 1, "sources": sources},
                "thanos": {"labels": {}, "downsample": {"resolution": resolution}, "source": "compactor"},
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn compacted_sources_are_duplicates_as_for_thanos() {
        let ids: Vec<ulid::Ulid> = (1..=6).map(|n| ulid::Ulid::from_parts(n, 0)).collect();
        let (a, b, c) = (ids[0], ids[1], ids[2]);
        let compacted = ids[3];
        let downsampled = ids[4];
        let copy = ids[5];
        let blocks: BTreeMap<ulid::Ulid, BlockMeta> = [
            (a, meta(a, &[a], 0)),
            (b, meta(b, &[b], 0)),
            (c, meta(c, &[c], 0)),
            (compacted, meta(compacted, &[a, b], 0)),
            // Same sources, other resolution: not a duplicate.
            (downsampled, meta(downsampled, &[a, b], 300_000)),
            // Same sources as `compacted`: the older ID goes.
            (copy, meta(copy, &[a, b], 0)),
        ]
        .into_iter()
        .collect();
        let mut gone = duplicates(&blocks);
        gone.sort();
        assert_eq!(gone, vec![a, b, compacted]);
    }
}
