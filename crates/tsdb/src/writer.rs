//! Writing a block: series go in label order, their chunks straight to segment files and their
//! entries straight to the index, so memory holds no chunk data; only the postings (4 bytes per
//! label of each series) are kept until the end. meta.json is written last, and the block
//! directory appears under its final name only once complete.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rthanos_chunkenc::Encoding;
use rthanos_model::Labels;

use crate::TsdbError;
use crate::chunks::{SEGMENT_HEADER_LEN, SEGMENT_MAGIC};
use crate::encoding::{put_uvarint, put_uvarint_str, put_varint};
use crate::index::{INDEX_MAGIC, INDEX_VERSION_2};
use crate::meta::{BlockMeta, BlockStats, Compaction};

/// Largest segment file before a new one is started (Prometheus's default, 512MiB).
pub const SEGMENT_MAX_SIZE: u64 = 512 * 1024 * 1024;

/// A chunk to write: its encoding, bytes, and time span (inclusive).
#[derive(Clone, Copy, Debug)]
pub struct ChunkToWrite<'a> {
    /// First sample's timestamp.
    pub min_time: i64,
    /// Last sample's timestamp.
    pub max_time: i64,
    /// Encoding of `data`.
    pub encoding: Encoding,
    /// The encoded chunk.
    pub data: &'a [u8],
    /// Samples in the chunk (for meta.json's stats).
    pub samples: u64,
}

/// A writer tracking its offset, for section alignment and references.
struct Counted<W: Write> {
    out: W,
    pos: u64,
    path: PathBuf,
}

impl<W: Write> Counted<W> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), TsdbError> {
        self.out
            .write_all(bytes)
            .map_err(|e| TsdbError::io(&self.path, e))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn pad_to(&mut self, align: u64) -> Result<(), TsdbError> {
        let pad = (align - self.pos % align) % align;
        self.write(&vec![0u8; pad as usize])
    }

    /// Writes `len <4b> | body | CRC32-C <4b>`.
    fn write_crc_section(&mut self, body: &[u8]) -> Result<(), TsdbError> {
        let len = u32::try_from(body.len())
            .map_err(|_| TsdbError::corrupt("index writer", "section over 4GiB"))?;
        self.write(&len.to_be_bytes())?;
        self.write(body)?;
        self.write(&crc32c::crc32c(body).to_be_bytes())
    }
}

fn create(path: &Path) -> Result<Counted<BufWriter<File>>, TsdbError> {
    let file = File::create(path).map_err(|e| TsdbError::io(path, e))?;
    Ok(Counted {
        out: BufWriter::with_capacity(1 << 20, file),
        pos: 0,
        path: path.to_path_buf(),
    })
}

fn finish_file(w: Counted<BufWriter<File>>) -> Result<(), TsdbError> {
    let path = w.path;
    let file = w
        .out
        .into_inner()
        .map_err(|e| TsdbError::io(&path, e.into_error()))?;
    file.sync_all().map_err(|e| TsdbError::io(&path, e))
}

/// Where a block made from other blocks comes from, for its meta.json.
#[derive(Clone, Debug, Default)]
pub struct Lineage {
    /// Level, sources and parents.
    pub compaction: Compaction,
    /// Start of the block's range (ms, inclusive): its sources' first.
    pub min_time: i64,
    /// End of the block's range (ms, exclusive): its sources' last.
    pub max_time: i64,
}

/// Writes one block. Call [`BlockWriter::add_series`] in label order, then
/// [`BlockWriter::finish`].
pub struct BlockWriter {
    tmp_dir: PathBuf,
    final_dir: PathBuf,
    ulid: ulid::Ulid,
    segment: Option<Counted<BufWriter<File>>>,
    segment_index: u64,
    index: Counted<BufWriter<File>>,
    /// Symbol → its number in the symbol table.
    symbols: HashMap<String, u32>,
    /// Symbol numbers → symbols, for writing the tables at the end.
    symbol_names: Vec<String>,
    /// (name, value) symbol numbers → series IDs having that label. Symbols are numbered in
    /// sorted order, so this map iterates in the (name, value) order the index needs.
    postings: BTreeMap<(u32, u32), Vec<u32>>,
    all_series: Vec<u32>,
    /// The previous series' labels as (name, value) symbol numbers, for the order check:
    /// comparing numbers compares the strings.
    last_refs: Vec<(u32, u32)>,
    refs: Vec<(u32, u32)>,
    stats: BlockStats,
    min_time: i64,
    max_time: i64,
    entry: Vec<u8>,
    /// Largest series entry body and chunk data written, for Thanos's `index_stats`.
    max_series_size: usize,
    max_chunk_size: usize,
}

impl BlockWriter {
    /// Starts a block under `parent` with every string its series' labels use (names and
    /// values): the symbol table comes first in the index.
    pub fn create(parent: &Path, symbols: &BTreeSet<String>) -> Result<Self, TsdbError> {
        let ulid = ulid::Ulid::new();
        let final_dir = parent.join(ulid.to_string());
        let tmp_dir = parent.join(format!("{ulid}.tmp-for-creation"));
        rthanos_durable::create_dir_all(&tmp_dir.join("chunks"))?;
        let mut index = create(&tmp_dir.join("index"))?;
        index.write(&INDEX_MAGIC.to_be_bytes())?;
        index.write(&[INDEX_VERSION_2])?;
        let mut body = Vec::new();
        body.extend_from_slice(&(symbols.len() as u32).to_be_bytes());
        let mut numbers = HashMap::with_capacity(symbols.len());
        for (i, s) in symbols.iter().enumerate() {
            put_uvarint_str(&mut body, s);
            numbers.insert(s.clone(), i as u32);
        }
        let symbol_names: Vec<String> = symbols.iter().cloned().collect();
        index.write_crc_section(&body)?;
        Ok(Self {
            tmp_dir,
            final_dir,
            ulid,
            segment: None,
            segment_index: 0,
            index,
            symbols: numbers,
            symbol_names,
            postings: BTreeMap::new(),
            all_series: Vec::new(),
            last_refs: Vec::new(),
            refs: Vec::new(),
            stats: BlockStats::default(),
            min_time: i64::MAX,
            max_time: i64::MIN,
            entry: Vec::new(),
            max_series_size: 0,
            max_chunk_size: 0,
        })
    }

    /// The new block's ULID.
    pub fn ulid(&self) -> ulid::Ulid {
        self.ulid
    }

    /// Writes `chunk` to the current segment file (starting a new one when full); its reference.
    fn write_chunk(&mut self, chunk: &ChunkToWrite<'_>) -> Result<u64, TsdbError> {
        let len = chunk.data.len() as u64;
        self.max_chunk_size = self.max_chunk_size.max(chunk.data.len());
        let needed = 10 + 1 + len + 4;
        if self
            .segment
            .as_ref()
            .is_some_and(|s| s.pos + needed > SEGMENT_MAX_SIZE)
        {
            if let Some(done) = self.segment.take() {
                finish_file(done)?;
            }
        }
        if self.segment.is_none() {
            self.segment_index += 1;
            let path = self
                .tmp_dir
                .join("chunks")
                .join(format!("{:06}", self.segment_index));
            let mut seg = create(&path)?;
            let mut header = [0u8; SEGMENT_HEADER_LEN];
            header[..4].copy_from_slice(&SEGMENT_MAGIC.to_be_bytes());
            header[4] = 1;
            seg.write(&header)?;
            self.segment = Some(seg);
        }
        let seg = self
            .segment
            .as_mut()
            .ok_or_else(|| TsdbError::corrupt("block writer", "no segment"))?;
        let reference = ((self.segment_index - 1) << 32) | seg.pos;
        let mut head = Vec::with_capacity(11);
        put_uvarint(&mut head, len);
        head.push(chunk.encoding as u8);
        seg.write(&head)?;
        seg.write(chunk.data)?;
        let mut crc = crc32c::crc32c(&[chunk.encoding as u8]);
        crc = crc32c::crc32c_append(crc, chunk.data);
        seg.write(&crc.to_be_bytes())?;
        Ok(reference)
    }

    /// Adds a series with its chunks (in time order). Series must come in label order.
    pub fn add_series(
        &mut self,
        labels: &Labels,
        chunks: &[ChunkToWrite<'_>],
    ) -> Result<(), TsdbError> {
        let mut label_refs = std::mem::take(&mut self.refs);
        label_refs.clear();
        for label in labels {
            let symbol = |s: &str| {
                self.symbols.get(s).copied().ok_or_else(|| {
                    TsdbError::corrupt("block writer", &format!("{s:?} is not in the symbol table"))
                })
            };
            label_refs.push((symbol(&label.name)?, symbol(&label.value)?));
        }
        if !self.all_series.is_empty() && self.last_refs >= label_refs {
            return Err(TsdbError::corrupt(
                "block writer",
                &format!("series {labels} out of order"),
            ));
        }
        let mut refs = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            refs.push(self.write_chunk(chunk)?);
            self.min_time = self.min_time.min(chunk.min_time);
            self.max_time = self.max_time.max(chunk.max_time);
            self.stats.num_chunks += 1;
            self.stats.num_samples += chunk.samples;
        }
        // The series entry, at a 16-byte aligned offset: its ID is offset / 16.
        self.index.pad_to(16)?;
        let id = u32::try_from(self.index.pos / 16)
            .map_err(|_| TsdbError::corrupt("index writer", "index over 64GiB"))?;
        let entry = &mut self.entry;
        entry.clear();
        put_uvarint(entry, label_refs.len() as u64);
        for &(name, value) in &label_refs {
            put_uvarint(entry, u64::from(name));
            put_uvarint(entry, u64::from(value));
        }
        put_uvarint(entry, chunks.len() as u64);
        let (mut prev_max, mut prev_ref) = (0i64, 0u64);
        for (i, (chunk, &reference)) in chunks.iter().zip(&refs).enumerate() {
            if i == 0 {
                put_varint(entry, chunk.min_time);
                put_uvarint(entry, chunk.max_time.wrapping_sub(chunk.min_time) as u64);
                put_uvarint(entry, reference);
            } else {
                put_uvarint(entry, chunk.min_time.wrapping_sub(prev_max) as u64);
                put_uvarint(entry, chunk.max_time.wrapping_sub(chunk.min_time) as u64);
                put_varint(entry, reference.wrapping_sub(prev_ref) as i64);
            }
            (prev_max, prev_ref) = (chunk.max_time, reference);
        }
        let mut head = Vec::with_capacity(10);
        put_uvarint(&mut head, entry.len() as u64);
        self.max_series_size = self.max_series_size.max(entry.len());
        let crc = crc32c::crc32c(entry);
        let body = std::mem::take(&mut self.entry);
        self.index.write(&head)?;
        self.index.write(&body)?;
        self.index.write(&crc.to_be_bytes())?;
        self.entry = body;

        for &pair in &label_refs {
            self.postings.entry(pair).or_default().push(id);
        }
        self.all_series.push(id);
        self.stats.num_series += 1;
        // Keep this series' refs for the next order check; reuse the old buffer next time.
        self.refs = std::mem::replace(&mut self.last_refs, label_refs);
        Ok(())
    }

    /// Writes the index's remaining sections and meta.json, then moves the block into place.
    /// `thanos` is the meta.json section for Thanos, if any.
    pub fn finish(self, thanos: Option<crate::meta::ThanosMeta>) -> Result<BlockMeta, TsdbError> {
        self.finish_with(thanos, None)
    }

    /// As [`Self::finish`], for a block made from others: its compaction history (level,
    /// sources, parents) and its time range are `lineage`'s, not those of a new level-1 block
    /// spanning its samples.
    pub fn finish_with(
        mut self,
        thanos: Option<crate::meta::ThanosMeta>,
        lineage: Option<Lineage>,
    ) -> Result<BlockMeta, TsdbError> {
        if let Some(seg) = self.segment.take() {
            finish_file(seg)?;
        }
        let index = &mut self.index;
        // Label indices (no longer read by Prometheus, still written): one per label name.
        let symbol = |n: u32| self.symbol_names[n as usize].as_str();
        let mut names: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for &(name, value) in self.postings.keys() {
            names.entry(name).or_default().push(value);
        }
        index.pad_to(4)?;
        let label_indices = index.pos;
        let mut label_offsets = Vec::with_capacity(names.len());
        for (&name, values) in &names {
            index.pad_to(4)?;
            label_offsets.push((symbol(name), index.pos));
            let mut body = Vec::with_capacity(8 + values.len() * 4);
            body.extend_from_slice(&1u32.to_be_bytes());
            body.extend_from_slice(&(values.len() as u32).to_be_bytes());
            for value in values {
                body.extend_from_slice(&value.to_be_bytes());
            }
            index.write_crc_section(&body)?;
        }
        // Postings: all series first (the "" = "" entry), then each label pair in order.
        let mut postings_offsets: Vec<(&str, &str, u64)> =
            Vec::with_capacity(self.postings.len() + 1);
        let write_postings =
            |index: &mut Counted<BufWriter<File>>, ids: &[u32]| -> Result<u64, TsdbError> {
                index.pad_to(4)?;
                let at = index.pos;
                let mut body = Vec::with_capacity(4 + ids.len() * 4);
                body.extend_from_slice(&(ids.len() as u32).to_be_bytes());
                for id in ids {
                    body.extend_from_slice(&id.to_be_bytes());
                }
                index.write_crc_section(&body)?;
                Ok(at)
            };
        index.pad_to(4)?;
        let postings_start = index.pos;
        postings_offsets.push(("", "", write_postings(index, &self.all_series)?));
        for (&(name, value), ids) in &self.postings {
            postings_offsets.push((symbol(name), symbol(value), write_postings(index, ids)?));
        }
        // Label offset table.
        index.pad_to(4)?;
        let label_offset_table = index.pos;
        let mut body = Vec::new();
        body.extend_from_slice(&(label_offsets.len() as u32).to_be_bytes());
        for (name, offset) in &label_offsets {
            body.push(1);
            put_uvarint_str(&mut body, name);
            put_uvarint(&mut body, *offset);
        }
        index.write_crc_section(&body)?;
        // Postings offset table.
        index.pad_to(4)?;
        let postings_table = index.pos;
        let mut body = Vec::new();
        body.extend_from_slice(&(postings_offsets.len() as u32).to_be_bytes());
        for (name, value, offset) in &postings_offsets {
            body.push(2);
            put_uvarint_str(&mut body, name);
            put_uvarint_str(&mut body, value);
            put_uvarint(&mut body, *offset);
        }
        index.write_crc_section(&body)?;
        // TOC.
        let mut toc = Vec::with_capacity(52);
        let series_start = if self.all_series.is_empty() {
            0
        } else {
            u64::from(self.all_series[0]) * 16
        };
        for offset in [
            5,
            series_start,
            label_indices,
            label_offset_table,
            postings_start,
            postings_table,
        ] {
            toc.extend_from_slice(&offset.to_be_bytes());
        }
        let crc = crc32c::crc32c(&toc);
        index.write(&toc)?;
        index.write(&crc.to_be_bytes())?;
        finish_file(self.index)?;

        // An empty tombstones file, as Prometheus writes one for every block.
        let mut tombstones = create(&self.tmp_dir.join("tombstones"))?;
        let mut body = Vec::new();
        body.extend_from_slice(&crate::tombstones::TOMBSTONES_MAGIC.to_be_bytes());
        body.push(1);
        body.extend_from_slice(&crc32c::crc32c(&[]).to_be_bytes());
        tombstones.write(&body)?;
        finish_file(tombstones)?;

        let (min_time, max_time) = match &lineage {
            Some(l) => (l.min_time, l.max_time),
            None if self.stats.num_chunks == 0 => (0, 0),
            None => (self.min_time, self.max_time + 1),
        };
        let ulid = self.ulid.to_string();
        // Thanos's index_stats, so store gateways read series and chunks with no over-fetch.
        let thanos = thanos.map(|mut t| {
            if t.index_stats.is_none() {
                t.index_stats = Some(crate::meta::IndexStats {
                    series_max_size: i64::try_from(self.max_series_size).unwrap_or(i64::MAX),
                    chunk_max_size: i64::try_from(self.max_chunk_size).unwrap_or(i64::MAX),
                });
            }
            t
        });
        let meta = BlockMeta {
            ulid: ulid.clone(),
            min_time,
            max_time,
            stats: self.stats,
            compaction: match lineage {
                Some(l) => l.compaction,
                None => Compaction {
                    level: 1,
                    sources: vec![ulid],
                    ..Compaction::default()
                },
            },
            version: 1,
            thanos,
            extra: Default::default(),
        };
        // Every file on disk, then the names in the block's directories, then the block's
        // name: after a crash the block is whole under its name, or not there.
        rthanos_durable::write_synced(&self.tmp_dir.join("meta.json"), &meta.to_json()?)?;
        rthanos_durable::sync_dir(&self.tmp_dir.join("chunks"))?;
        rthanos_durable::sync_dir(&self.tmp_dir)?;
        rthanos_durable::rename(&self.tmp_dir, &self.final_dir)?;
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_out_of_order_or_with_unknown_symbols_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let symbols: BTreeSet<String> = ["__name__", "a", "b", "job"].map(String::from).into();
        let mut w = BlockWriter::create(dir.path(), &symbols).expect("create");
        w.add_series(&Labels::from_pairs([("__name__", "b")]), &[])
            .expect("first");
        let err = w
            .add_series(&Labels::from_pairs([("__name__", "a")]), &[])
            .expect_err("before the previous");
        assert!(err.to_string().contains("out of order"), "{err}");
        let err = w
            .add_series(&Labels::from_pairs([("__name__", "b")]), &[])
            .expect_err("same as previous");
        assert!(err.to_string().contains("out of order"), "{err}");
        w.add_series(&Labels::from_pairs([("__name__", "b"), ("job", "a")]), &[])
            .expect("longer set sorts after");
        let err = w
            .add_series(&Labels::from_pairs([("zone", "x")]), &[])
            .expect_err("unknown symbol");
        assert!(err.to_string().contains("not in the symbol table"), "{err}");
        let meta = w.finish(None).expect("finish");
        assert_eq!(meta.stats.num_series, 2);
    }
}
