//! One block in the bucket, as the store gateway reads it: its index-header on local disk
//! (mmapped) answers label names and values and says where each postings list is; postings
//! lists, series entries and chunks are fetched by ranged reads, nearby ranges coalesced, and
//! postings and series kept in the index cache. Nothing is read that a query does not need,
//! and never a whole index or chunk file.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use rthanos_model::Labels;
use rthanos_objstore::Bucket;
use rthanos_tsdb::BlockMeta;
use rthanos_tsdb::index::{SeriesEntry, Toc};
use rthanos_tsdb::index_header::{self, IndexHeader};
use rthanos_tsdb::postings::PostingsKey;

use crate::StoreError;
use crate::cache::{IndexCache, Key};
use crate::metrics::StoreMetrics;
use crate::partition::{MAX_GAP, partition};

/// Thanos's estimates of the largest series entry and chunk, when meta.json has no
/// `index_stats`: a first read takes this much, and a longer entry is read again in full.
const DEFAULT_MAX_SERIES_SIZE: u64 = 64 * 1024;
const DEFAULT_MAX_CHUNK_SIZE: u64 = 16_000;
/// On a FILESYSTEM bucket the first read of a series entry or chunk takes at most this much:
/// a second read of a longer one is a positioned read of a cached file, cheaper than reading
/// (and zeroing) the remote estimates for every entry. Most chunks of 120 samples and most
/// series entries are a few hundred bytes.
const LOCAL_FIRST_READ: u64 = 1024;
/// Ranges of a local file this close are read together.
const LOCAL_MAX_GAP: u64 = 4096;
/// Bytes around a series entry or chunk: a length prefix (≤ 10), an encoding byte, a CRC.
const ENVELOPE: u64 = 15;

/// A loaded block.
pub struct BucketBlock {
    /// The block's ID.
    pub id: ulid::Ulid,
    /// Its meta.json.
    pub meta: BlockMeta,
    /// Its external labels (meta.json's `thanos.labels`).
    pub labels: Labels,
    header: IndexHeader,
    bucket: Bucket,
    cache: Arc<IndexCache>,
    metrics: Arc<StoreMetrics>,
    max_series_size: u64,
    max_chunk_size: u64,
    /// Sizes of the chunk segment files, from meta.json where it lists them.
    segment_sizes: Vec<Option<u64>>,
}

/// Bytes fetched from the bucket, by kind, for one request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fetched {
    /// Postings lists.
    pub postings: u64,
    /// Series entries.
    pub series: u64,
    /// Chunks.
    pub chunks: u64,
}

impl BucketBlock {
    /// Opens the block's index-header under `dir`, building it from ranged reads of the index
    /// when it is missing or unreadable (a header left by an earlier run is reused).
    pub(crate) async fn load(
        bucket: Bucket,
        cache: Arc<IndexCache>,
        metrics: Arc<StoreMetrics>,
        dir: &Path,
        meta: BlockMeta,
    ) -> Result<Self, StoreError> {
        let id: ulid::Ulid = meta
            .ulid
            .parse()
            .map_err(|_| StoreError::Block(format!("meta.json: invalid ULID {:?}", meta.ulid)))?;
        let header_path = dir.join("index-header");
        let header = match open_header(header_path.clone()).await {
            Ok(header) => header,
            Err(_) => {
                build_header(&bucket, id, &header_path).await?;
                open_header(header_path).await?
            }
        };
        check_chunk_files(&bucket, id, &meta).await?;
        let thanos = meta.thanos.clone().unwrap_or_default();
        let stats = thanos.index_stats.unwrap_or_default();
        // Thanos's stats measure an entry's body and a chunk's data: room is added for the
        // length prefix, encoding byte and CRC around them.
        let positive = |v: i64, default: u64| {
            u64::try_from(v)
                .ok()
                .filter(|&v| v > 0)
                .map_or(default, |v| v + ENVELOPE)
        };
        let segment_sizes = thanos
            .segment_files
            .iter()
            .map(|name| {
                let path = format!("chunks/{name}");
                thanos
                    .files
                    .iter()
                    .find(|f| f.rel_path == path)
                    .and_then(|f| f.size_bytes)
            })
            .collect();
        Ok(Self {
            id,
            labels: Labels::from_pairs(thanos.labels),
            max_series_size: first_read(
                &bucket,
                positive(stats.series_max_size, DEFAULT_MAX_SERIES_SIZE),
            ),
            max_chunk_size: first_read(
                &bucket,
                positive(stats.chunk_max_size, DEFAULT_MAX_CHUNK_SIZE),
            ),
            segment_sizes,
            meta,
            header,
            bucket,
            cache,
            metrics,
        })
    }

    /// Resolution of the block's data (ms; 0 for raw).
    pub fn resolution(&self) -> i64 {
        self.meta.resolution()
    }

    /// Label names in the block, sorted.
    pub fn label_names(&self) -> impl Iterator<Item = &str> {
        self.header.label_names().filter(|n| !n.is_empty())
    }

    /// Values of `name` in the block, sorted.
    pub fn label_values(&self, name: &str) -> Vec<&str> {
        self.header.label_values(name).collect()
    }

    /// The postings lists of `keys`, raw (`len | count | IDs | CRC`, checked); a label pair
    /// the block lacks has no entry.
    pub async fn postings(
        &self,
        keys: &[PostingsKey],
        fetched: &mut Fetched,
    ) -> Result<HashMap<PostingsKey, Bytes>, StoreError> {
        let mut found = HashMap::with_capacity(keys.len());
        let mut missing: Vec<(PostingsKey, Range<u64>)> = Vec::new();
        for key in keys {
            if let Some(bytes) = self.cache.get(&Key::postings(self.id, &key.0, &key.1)) {
                found.insert(key.clone(), bytes);
            } else if let Some(range) = self.header.postings_range(&key.0, &key.1) {
                missing.push((key.clone(), range));
            }
        }
        let ranges: Vec<Range<u64>> = missing.iter().map(|(_, r)| r.clone()).collect();
        let pieces = self
            .read_ranges("index", &ranges, &mut fetched.postings)
            .await?;
        for ((key, _), bytes) in missing.into_iter().zip(pieces) {
            // Checked before use or caching: a corrupt list is this block's error.
            rthanos_tsdb::index::postings_at(&bytes, 0).map_err(|e| self.corrupt(&e))?;
            // A copy: a slice would keep the whole coalesced read alive in the cache.
            let bytes = Bytes::copy_from_slice(&bytes);
            self.cache
                .insert(Key::postings(self.id, &key.0, &key.1), bytes.clone());
            found.insert(key, bytes);
        }
        Ok(found)
    }

    /// The series entries of `ids`, in the same order.
    pub async fn series(
        &self,
        ids: &[u64],
        fetched: &mut Fetched,
    ) -> Result<Vec<SeriesEntry>, StoreError> {
        let mut raw: Vec<Option<Bytes>> = ids
            .iter()
            .map(|&id| self.cache.get(&Key::series(self.id, id)))
            .collect();
        let missing: Vec<usize> = (0..ids.len()).filter(|&i| raw[i].is_none()).collect();
        // Index v2: a series ID is its entry's offset / 16. Entries end before the postings.
        let end = self.header.postings_end();
        let ranges: Vec<Range<u64>> = missing
            .iter()
            .map(|&i| {
                let start = ids[i].saturating_mul(16);
                start
                    ..start
                        .saturating_add(self.max_series_size)
                        .min(end)
                        .max(start)
            })
            .collect();
        let pieces = self
            .read_ranges("index", &ranges, &mut fetched.series)
            .await?;
        for ((i, range), mut bytes) in missing.into_iter().zip(ranges).zip(pieces) {
            let needed = rthanos_tsdb::index::series_entry_len(&bytes).ok_or_else(|| {
                StoreError::Block(format!("block {}: series entry unreadable", self.id))
            })?;
            if needed > bytes.len() {
                // Longer than estimated: read it whole, if its length is believable.
                let exact = self.exact_range(&range, needed, "series entry")?;
                let mut more = self
                    .read_ranges("index", &[exact], &mut fetched.series)
                    .await?;
                bytes = more.pop().unwrap_or_default();
            }
            let bytes = Bytes::copy_from_slice(&bytes[..needed.min(bytes.len())]);
            // Checked before it is cached: a bad read must not stay in the cache.
            rthanos_tsdb::index::read_series_with(&bytes, 0, |r| self.header.symbol(r))
                .map_err(|e| self.corrupt(&e))?;
            self.cache
                .insert(Key::series(self.id, ids[i]), bytes.clone());
            raw[i] = Some(bytes);
        }
        raw.into_iter()
            .map(|bytes| {
                let bytes = bytes.unwrap_or_default();
                rthanos_tsdb::index::read_series_with(&bytes, 0, |r| self.header.symbol(r))
                    .map_err(|e| self.corrupt(&e))
            })
            .collect()
    }

    /// The chunks at `refs` (segment << 32 | offset), as stored: length, encoding, data,
    /// CRC; in the same order.
    pub async fn chunks(
        &self,
        refs: &[u64],
        fetched: &mut Fetched,
    ) -> Result<Vec<Bytes>, StoreError> {
        let mut by_segment: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, r) in refs.iter().enumerate() {
            by_segment.entry((r >> 32) as usize).or_default().push(i);
        }
        let mut out = vec![Bytes::new(); refs.len()];
        for (segment, members) in by_segment {
            let name = self.segment_name(segment)?;
            let size = self.segment_sizes.get(segment).copied().flatten();
            let ranges: Vec<Range<u64>> = members
                .iter()
                .map(|&i| {
                    let start = refs[i] & 0xffff_ffff;
                    let end = start.saturating_add(self.max_chunk_size);
                    start..size.map_or(end, |s| end.min(s)).max(start)
                })
                .collect();
            let pieces = self
                .read_ranges(&name, &ranges, &mut fetched.chunks)
                .await?;
            for ((i, range), mut bytes) in members.into_iter().zip(ranges).zip(pieces) {
                let needed = rthanos_tsdb::chunks::chunk_len(&bytes).ok_or_else(|| {
                    StoreError::Block(format!("block {}: chunk unreadable", self.id))
                })?;
                if needed > bytes.len() {
                    let exact = self.exact_range(&range, needed, "chunk")?;
                    let mut more = self
                        .read_ranges(&name, &[exact], &mut fetched.chunks)
                        .await?;
                    bytes = more.pop().unwrap_or_default();
                }
                out[i] = bytes.slice(..needed.min(bytes.len()));
            }
        }
        Ok(out)
    }

    /// The bucket name of chunk segment `segment` (0-based: `chunks/000001` is 0).
    fn segment_name(&self, segment: usize) -> Result<String, StoreError> {
        let file = match self.meta.thanos.as_ref().map(|t| &t.segment_files) {
            Some(files) if !files.is_empty() => files.get(segment).cloned().ok_or_else(|| {
                StoreError::Block(format!(
                    "block {}: chunk reference to segment {} of {}",
                    self.id,
                    segment + 1,
                    files.len()
                ))
            })?,
            _ => format!("{:06}", segment + 1),
        };
        Ok(format!("chunks/{file}"))
    }

    /// Reads `ranges` of the block's file `file`, coalesced; one piece per range, in order.
    async fn read_ranges(
        &self,
        file: &str,
        ranges: &[Range<u64>],
        counter: &mut u64,
    ) -> Result<Vec<Bytes>, StoreError> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let object = format!("{}/{file}", self.id);
        // Local reads are not charged per request; but a page more costs less than a
        // system call more.
        let gap = if self.bucket.is_local() {
            LOCAL_MAX_GAP
        } else {
            MAX_GAP
        };
        let parts = partition(ranges, gap);
        let part_ranges: Vec<Range<u64>> = parts.iter().map(|p| p.range.clone()).collect();
        let read = self
            .bucket
            .get_ranges(&object, &part_ranges)
            .await
            .map_err(|e| StoreError::Bucket(e.to_string()))?;
        let mut out = vec![Bytes::new(); ranges.len()];
        for (part, bytes) in parts.iter().zip(read) {
            *counter += bytes.len() as u64;
            self.metrics.bucket_bytes_fetched.inc_by(bytes.len() as u64);
            for &i in &part.members {
                let r = &ranges[i];
                let from = usize::try_from(r.start.saturating_sub(part.range.start))
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let to = usize::try_from(r.end.saturating_sub(part.range.start))
                    .unwrap_or(usize::MAX)
                    .clamp(from, bytes.len());
                // A read may come back short at the end of the object.
                out[i] = bytes.slice(from..to);
            }
        }
        Ok(out)
    }

    /// The range of an item whose length prefix says `needed` bytes, when that is believable
    /// (at most 64 MiB): a corrupt prefix must not make the store read gigabytes.
    fn exact_range(
        &self,
        range: &Range<u64>,
        needed: usize,
        what: &str,
    ) -> Result<Range<u64>, StoreError> {
        const LIMIT: usize = 64 << 20;
        let end = u64::try_from(needed)
            .ok()
            .filter(|_| needed <= LIMIT)
            .and_then(|n| range.start.checked_add(n));
        end.map(|end| range.start..end).ok_or_else(|| {
            self.metrics.corrupt_reads.inc();
            StoreError::Block(format!("block {}: {what} claims {needed} bytes", self.id))
        })
    }

    fn corrupt(&self, e: &rthanos_tsdb::TsdbError) -> StoreError {
        self.metrics.corrupt_reads.inc();
        StoreError::Block(format!("block {}: {e}", self.id))
    }
}

/// The first read of an entry whose largest size is `max`: all of it from a remote bucket (a
/// second request costs a round trip), at most [`LOCAL_FIRST_READ`] from a local one.
fn first_read(bucket: &Bucket, max: u64) -> u64 {
    if bucket.is_local() {
        max.min(LOCAL_FIRST_READ)
    } else {
        max
    }
}

/// A block whose chunk files are not all in the bucket cannot answer: it is not loaded
/// (one listing of its `chunks/`, against meta.json's segment files when it lists them).
async fn check_chunk_files(
    bucket: &Bucket,
    id: ulid::Ulid,
    meta: &BlockMeta,
) -> Result<(), StoreError> {
    let listed = bucket
        .iter(&format!("{id}/chunks"), false)
        .await
        .map_err(|e| StoreError::Bucket(e.to_string()))?;
    let present: std::collections::HashSet<&str> = listed
        .iter()
        .filter_map(|name| name.rsplit('/').next())
        .collect();
    let expected = meta
        .thanos
        .as_ref()
        .map(|t| t.segment_files.as_slice())
        .unwrap_or_default();
    if let Some(missing) = expected.iter().find(|f| !present.contains(f.as_str())) {
        return Err(StoreError::Block(format!(
            "block {id}: chunk file chunks/{missing} missing"
        )));
    }
    if expected.is_empty() && meta.stats.num_chunks > 0 && present.is_empty() {
        return Err(StoreError::Block(format!("block {id}: no chunk files")));
    }
    Ok(())
}

async fn open_header(path: PathBuf) -> Result<IndexHeader, StoreError> {
    tokio::task::spawn_blocking(move || IndexHeader::open(&path))
        .await
        .map_err(|e| StoreError::Block(e.to_string()))?
        .map_err(|e| StoreError::Block(e.to_string()))
}

/// Builds the index-header of block `id` at `path` from three ranged reads of its index: the
/// TOC at its end, then the symbol table and the postings offset table.
async fn build_header(bucket: &Bucket, id: ulid::Ulid, path: &Path) -> Result<(), StoreError> {
    let index = format!("{id}/index");
    let bucket_error = |e: rthanos_objstore::BucketError| StoreError::Bucket(e.to_string());
    let size = bucket.attributes(&index).await.map_err(bucket_error)?.size;
    let toc_bytes = bucket
        .get_range(&index, index_header::toc_range(size))
        .await
        .map_err(bucket_error)?;
    let toc = Toc::parse(&toc_bytes).map_err(|e| StoreError::Block(format!("block {id}: {e}")))?;
    let [symbols, postings] = index_header::ranges_to_fetch(&toc, size)
        .map_err(|e| StoreError::Block(format!("block {id}: {e}")))?;
    let (symbols, postings) = futures::future::try_join(
        bucket.get_range(&index, symbols),
        bucket.get_range(&index, postings),
    )
    .await
    .map_err(bucket_error)?;
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Local(e.to_string()))?;
        }
        index_header::write(&path, &toc, &symbols, &postings)
            .map_err(|e| StoreError::Block(format!("block {id}: {e}")))
    })
    .await
    .map_err(|e| StoreError::Block(e.to_string()))?
}
