//! Reading index v2 (see FORMAT.md): the TOC, the symbol table, the postings offset table,
//! postings lists and series entries. The decoders work on byte slices, so the same code reads
//! a local mmapped index and byte ranges fetched from object storage.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rthanos_model::{Label, Labels};

use crate::TsdbError;
use crate::encoding::{Decbuf, crc_section};

/// Magic number at the start of an index file.
pub const INDEX_MAGIC: u32 = 0xBAAA_D700;
/// The index format version read and written here.
pub const INDEX_VERSION_2: u8 = 2;
/// Size of the TOC at the end of the file: six 8-byte offsets and a CRC32.
pub const TOC_LEN: usize = 6 * 8 + 4;

/// The table of contents: where each section starts (0 = absent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Toc {
    /// Symbol table.
    pub symbols: u64,
    /// First series entry.
    pub series: u64,
    /// Label indices (unused since Prometheus 2.x, still written).
    pub label_indices: u64,
    /// Label offset table (unused, still written).
    pub label_indices_table: u64,
    /// First postings list.
    pub postings: u64,
    /// Postings offset table.
    pub postings_table: u64,
}

impl Toc {
    /// Reads the TOC from the last [`TOC_LEN`] bytes of an index.
    pub fn parse(tail: &[u8]) -> Result<Self, TsdbError> {
        let at = tail
            .len()
            .checked_sub(TOC_LEN)
            .ok_or_else(|| TsdbError::corrupt("index TOC", "index shorter than its TOC"))?;
        let toc = &tail[at..];
        let (body, crc) = toc.split_at(6 * 8);
        if crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(TsdbError::corrupt("index TOC", "CRC32 mismatch"));
        }
        let mut d = Decbuf::new(body, "index TOC");
        Ok(Toc {
            symbols: d.be64()?,
            series: d.be64()?,
            label_indices: d.be64()?,
            label_indices_table: d.be64()?,
            postings: d.be64()?,
            postings_table: d.be64()?,
        })
    }
}

/// The symbol table: every string of the index, referenced by position.
///
/// Where each symbol starts is kept for every `step`-th symbol: every one for an index being
/// read through (compaction, block checks), every 32nd for a store's long-lived index-headers
/// (as Prometheus and Thanos keep them), where a lookup then skips up to 31 strings.
#[derive(Clone, Debug, Default)]
pub struct Symbols {
    /// Byte offset, inside the table, of symbols 0, step, 2·step, …
    offsets: Vec<u32>,
    step: u32,
    count: usize,
    table_start: usize,
    /// For a sampled table: where symbols looked up lately start.
    memo: Option<Memo>,
}

/// Where recently looked-up symbols start, for a sampled table: a direct-mapped table of
/// (reference, offset) pairs. The labels of a store's series repeat (every series has the
/// same few names, and many share their values), so most lookups jump straight to their
/// symbol instead of skipping up to 31 strings. Shared by concurrent readers without a lock:
/// a slot is one atomic word, and a stale or overwritten slot only costs a scan.
struct Memo(Box<[AtomicU64]>);

/// Slots of a [`Memo`]: 8 KiB per block.
const MEMO_SLOTS: u32 = 1024;

impl Memo {
    fn new() -> Self {
        Self((0..MEMO_SLOTS).map(|_| AtomicU64::new(0)).collect())
    }

    fn slot(&self, reference: u32) -> &AtomicU64 {
        // Fibonacci hashing spreads neighbouring references over the slots.
        let at = reference.wrapping_mul(0x9E37_79B9) >> (32 - MEMO_SLOTS.trailing_zeros());
        &self.0[at as usize % self.0.len()]
    }

    /// The offset of symbol `reference`, if remembered. A slot holds `reference + 1` in its
    /// high half (0 is an empty slot) and the offset in its low half.
    fn get(&self, reference: u32) -> Option<u32> {
        let entry = self.slot(reference).load(Ordering::Relaxed);
        (entry >> 32 == u64::from(reference) + 1).then_some(entry as u32)
    }

    fn put(&self, reference: u32, offset: u32) {
        if reference < u32::MAX {
            let entry = ((u64::from(reference) + 1) << 32) | u64::from(offset);
            self.slot(reference).store(entry, Ordering::Relaxed);
        }
    }
}

impl Clone for Memo {
    /// An empty memo: what it remembers is only a shortcut.
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Memo({} slots)", self.0.len())
    }
}

impl Symbols {
    /// Indexes the symbol table section of `index` (checked against its CRC), keeping where
    /// every symbol starts.
    pub fn parse(index: &[u8], offset: u64) -> Result<Self, TsdbError> {
        Self::parse_sampled(index, offset, 1)
    }

    /// As [`Self::parse`], keeping where every `step`-th symbol starts.
    pub fn parse_sampled(index: &[u8], offset: u64, step: u32) -> Result<Self, TsdbError> {
        let body = crc_section(index, offset, "index symbol table")?;
        let mut d = Decbuf::new(body, "index symbol table");
        let count = d.be32()? as usize;
        // Each symbol takes at least one byte: a count beyond that is corrupt, not an allocation.
        if count > d.remaining() {
            return Err(TsdbError::corrupt(
                "index symbol table",
                "more symbols than bytes",
            ));
        }
        let step = step.max(1);
        let table_start = offset as usize + 4;
        let mut offsets = Vec::with_capacity(count.div_ceil(step as usize));
        for i in 0..count {
            if i % step as usize == 0 {
                let at = body.len() - d.remaining();
                offsets
                    .push(u32::try_from(at).map_err(|_| {
                        TsdbError::corrupt("index symbol table", "table over 4GiB")
                    })?);
            }
            d.uvarint_str()?;
        }
        Ok(Self {
            offsets,
            step,
            count,
            table_start,
            memo: (step > 1).then(Memo::new),
        })
    }

    /// The symbol at `index`, read from the index bytes the table was parsed from.
    pub fn lookup<'a>(&self, index: &'a [u8], reference: u32) -> Result<&'a str, TsdbError> {
        let at = *self
            .offsets
            .get((reference / self.step) as usize)
            .filter(|_| (reference as usize) < self.count)
            .ok_or_else(|| TsdbError::corrupt("index series", "symbol reference out of range"))?;
        let symbol_at = |offset: u32| {
            let start = self.table_start + offset as usize;
            Decbuf::new(index.get(start..).unwrap_or_default(), "index symbol table")
        };
        let skip = reference % self.step;
        if skip == 0 {
            return symbol_at(at).uvarint_str();
        }
        if let Some(offset) = self.memo.as_ref().and_then(|m| m.get(reference)) {
            return symbol_at(offset).uvarint_str();
        }
        let mut d = symbol_at(at);
        let before = d.remaining();
        for _ in 0..skip {
            d.uvarint_bytes()?;
        }
        if let (Some(memo), Ok(skipped)) = (&self.memo, u32::try_from(before - d.remaining())) {
            memo.put(reference, at.saturating_add(skipped));
        }
        d.uvarint_str()
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// The postings offset table: for every label name, its values (sorted) and where each value's
/// postings list starts. The entry `"" = ""` is the list of all series.
///
/// Only every 32nd entry of each name is kept in memory, as a position in the table (as
/// Thanos's index-header reader does); a lookup searches those, then reads at most 32 entries
/// from the table bytes. A block with millions of label values costs a few bytes per 32 values
/// instead of a string and an offset each. Lookups take the bytes given to [`Self::parse`].
#[derive(Clone, Debug, Default)]
pub struct PostingsOffsets {
    names: Vec<NameOffsets>,
}

#[derive(Clone, Debug)]
struct NameOffsets {
    name: Box<str>,
    /// Positions, in the parsed bytes, of this name's entries 0, 32, 64, …
    sampled: Vec<usize>,
    /// Position just past this name's last entry.
    end: usize,
    /// Postings offset of this name's first value.
    first_postings: u64,
}

/// Entries of one label name kept per sampled position.
const POSTINGS_OFFSETS_SAMPLING: usize = 32;
const POSTINGS_TABLE: &str = "index postings offset table";

/// One entry of the postings offset table: `2 <1b> | name | value | postings offset <uvarint>`.
fn postings_entry<'a>(d: &mut Decbuf<'a>) -> Result<(&'a str, &'a str, u64), TsdbError> {
    if d.u8()? != 2 {
        return Err(TsdbError::corrupt(
            POSTINGS_TABLE,
            "entry is not a name/value pair",
        ));
    }
    Ok((d.uvarint_str()?, d.uvarint_str()?, d.uvarint()?))
}

/// An entry already checked by [`PostingsOffsets::parse`], read for a lookup: the name is
/// skipped and the value left as bytes (UTF-8 order is byte order), which halves the cost.
fn checked_postings_entry<'a>(d: &mut Decbuf<'a>) -> Result<(&'a [u8], u64), TsdbError> {
    d.u8()?;
    d.uvarint_bytes()?;
    Ok((d.uvarint_bytes()?, d.uvarint()?))
}

impl PostingsOffsets {
    /// Reads the postings offset table section of `index`: checks it whole (CRC, every entry,
    /// names and values in order) and keeps the sampled positions.
    pub fn parse(index: &[u8], offset: u64) -> Result<Self, TsdbError> {
        let body = crc_section(index, offset, POSTINGS_TABLE)?;
        // The body lies at `offset + 4` of `index`: positions are kept relative to `index`.
        let body_at = offset as usize + 4;
        let mut d = Decbuf::new(body, POSTINGS_TABLE);
        let count = d.be32()? as usize;
        let mut names: Vec<NameOffsets> = Vec::new();
        let mut in_name = 0usize;
        let mut last_value: &str = "";
        for _ in 0..count {
            let at = body_at + body.len() - d.remaining();
            let (name, value, postings) = postings_entry(&mut d)?;
            let end = body_at + body.len() - d.remaining();
            match names.last_mut() {
                Some(current) if *current.name == *name => {
                    if value <= last_value {
                        return Err(TsdbError::corrupt(POSTINGS_TABLE, "values out of order"));
                    }
                    if in_name % POSTINGS_OFFSETS_SAMPLING == 0 {
                        current.sampled.push(at);
                    }
                    current.end = end;
                }
                last => {
                    if last.is_some_and(|l| *l.name > *name) {
                        return Err(TsdbError::corrupt(POSTINGS_TABLE, "names out of order"));
                    }
                    in_name = 0;
                    names.push(NameOffsets {
                        name: name.into(),
                        sampled: vec![at],
                        end,
                        first_postings: postings,
                    });
                }
            }
            last_value = value;
            in_name += 1;
        }
        for name in &mut names {
            name.sampled.shrink_to_fit();
        }
        names.shrink_to_fit();
        Ok(Self { names })
    }

    fn name(&self, name: &str) -> Option<&NameOffsets> {
        self.names
            .binary_search_by(|n| (*n.name).cmp(name))
            .ok()
            .map(|i| &self.names[i])
    }

    /// Label names, sorted, without the all-postings entry.
    pub fn label_names(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .map(|n| &*n.name)
            .filter(|n| !n.is_empty())
    }

    /// Values of `name`, sorted, each with its postings offset, read from `index` (the bytes
    /// given to [`Self::parse`]).
    pub fn values<'a>(&self, index: &'a [u8], name: &str) -> PostingsOffsetEntries<'a> {
        let bytes = self
            .name(name)
            .and_then(|n| index.get(*n.sampled.first()?..n.end))
            .unwrap_or_default();
        PostingsOffsetEntries {
            d: Decbuf::new(bytes, POSTINGS_TABLE),
        }
    }

    /// Postings offset of the first value of the label name after `name`.
    pub fn next_name_offset(&self, name: &str) -> Option<u64> {
        let after = self.names.partition_point(|n| *n.name <= *name);
        self.names.get(after).map(|n| n.first_postings)
    }

    /// Postings offset of `name="value"` and of the value after it of the same name (`None`
    /// when it is the last one), read from `index`.
    pub fn find(&self, index: &[u8], name: &str, value: &str) -> Option<(u64, Option<u64>)> {
        let n = self.name(name)?;
        let value = value.as_bytes();
        let value_at = |at: usize| {
            let mut d = Decbuf::new(index.get(at..n.end).unwrap_or_default(), POSTINGS_TABLE);
            checked_postings_entry(&mut d).map_or(&[][..], |(v, _)| v)
        };
        // The last sampled entry at or before `value`; the value, if present, is within the
        // next 32 entries.
        let after = n.sampled.partition_point(|&at| value_at(at) <= value);
        let start = *n.sampled.get(after.checked_sub(1)?)?;
        let mut d = Decbuf::new(index.get(start..n.end)?, POSTINGS_TABLE);
        while let Ok((v, postings)) = checked_postings_entry(&mut d) {
            match v.cmp(value) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => {
                    let next = checked_postings_entry(&mut d).ok().map(|(_, next)| next);
                    return Some((postings, next));
                }
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }

    /// Postings offset of `name="value"`, read from `index`.
    pub fn offset(&self, index: &[u8], name: &str, value: &str) -> Option<u64> {
        self.find(index, name, value).map(|(offset, _)| offset)
    }
}

/// Values of one label name with their postings offsets, read from the table bytes.
#[derive(Debug, Clone)]
pub struct PostingsOffsetEntries<'a> {
    d: Decbuf<'a>,
}

impl<'a> Iterator for PostingsOffsetEntries<'a> {
    type Item = (&'a str, u64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.d.remaining() == 0 {
            return None;
        }
        // Every entry was checked by `parse`: an error here cannot happen, and ends the values.
        let entry = checked_postings_entry(&mut self.d).and_then(|(value, postings)| {
            let value = std::str::from_utf8(value)
                .map_err(|_| TsdbError::corrupt(POSTINGS_TABLE, "value is not UTF-8"))?;
            Ok((value, postings))
        });
        match entry {
            Ok(entry) => Some(entry),
            Err(_) => {
                self.d = Decbuf::new(&[], POSTINGS_TABLE);
                None
            }
        }
    }
}

/// The postings list (`len | #entries | refs… | CRC`) at `offset` of `index`, checked and left
/// encoded: series IDs (series entry offset / 16), ascending.
pub fn postings_at(index: &[u8], offset: u64) -> Result<crate::postings::Postings<'_>, TsdbError> {
    const WHAT: &str = "index postings";
    let body = crc_section(index, offset, WHAT)?;
    let mut d = Decbuf::new(body, WHAT);
    let count = d.be32()? as usize;
    if count.checked_mul(4) != Some(d.remaining()) {
        return Err(TsdbError::corrupt(
            WHAT,
            "entry count does not match length",
        ));
    }
    Ok(crate::postings::Postings::Encoded(d.rest()))
}

/// The postings list at `offset` of `index`, decoded.
pub fn read_postings(index: &[u8], offset: u64) -> Result<Vec<u64>, TsdbError> {
    postings_at(index, offset).map(crate::postings::Postings::into_vec)
}

/// Where one chunk of a series is, and the time it spans (both ends inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkMeta {
    /// First sample's timestamp.
    pub min_time: i64,
    /// Last sample's timestamp.
    pub max_time: i64,
    /// Segment file index (0 for `chunks/000001`) in the upper 32 bits, offset in the lower.
    pub reference: u64,
}

/// A series entry: its labels and chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesEntry {
    /// The series' labels.
    pub labels: Labels,
    /// Its chunks, in time order.
    pub chunks: Vec<ChunkMeta>,
}

/// Decodes the series entry at byte `offset` of `index` (`len <uvarint> | body | CRC32`).
pub fn read_series(index: &[u8], offset: u64, symbols: &Symbols) -> Result<SeriesEntry, TsdbError> {
    read_series_with(index, offset, |reference| symbols.lookup(index, reference))
}

/// How many bytes the series entry starting `bytes` takes (length prefix, body and CRC), once
/// its length prefix is there: a reader of ranges knows whether it fetched enough.
pub fn series_entry_len(bytes: &[u8]) -> Option<usize> {
    let mut d = Decbuf::new(bytes, "index series");
    let len = usize::try_from(d.uvarint().ok()?).ok()?;
    let prefix = bytes.len() - d.remaining();
    prefix.checked_add(len)?.checked_add(4)
}

/// The series entry at `offset` of `bytes` (a whole index, or a range of one fetched from a
/// bucket), its label references resolved by `symbol` (e.g. from an index-header).
pub fn read_series_with<'s>(
    bytes: &[u8],
    offset: u64,
    symbol: impl Fn(u32) -> Result<&'s str, TsdbError>,
) -> Result<SeriesEntry, TsdbError> {
    const WHAT: &str = "index series";

    let start =
        usize::try_from(offset).map_err(|_| TsdbError::corrupt(WHAT, "offset out of range"))?;
    let mut d = Decbuf::new(bytes.get(start..).unwrap_or_default(), WHAT);
    let len = usize::try_from(d.uvarint()?)
        .map_err(|_| TsdbError::corrupt(WHAT, "length out of range"))?;
    let body = d.take(len)?;
    let crc = d.be32()?;
    if crc32c::crc32c(body) != crc {
        return Err(TsdbError::corrupt(WHAT, "CRC32 mismatch"));
    }
    let mut d = Decbuf::new(body, WHAT);
    let label_count = d.uvarint()? as usize;
    if label_count > d.remaining() {
        return Err(TsdbError::corrupt(WHAT, "more labels than bytes"));
    }
    let mut labels = Vec::with_capacity(label_count);
    for _ in 0..label_count {
        let name = symbol(d.uvarint32()?)?;
        let value = symbol(d.uvarint32()?)?;
        labels.push(Label {
            name: name.to_string(),
            value: value.to_string(),
        });
    }
    if labels.windows(2).any(|w| w[0].name >= w[1].name) {
        return Err(TsdbError::corrupt(WHAT, "labels not sorted"));
    }
    let chunk_count = d.uvarint()? as usize;
    if chunk_count > d.remaining() {
        return Err(TsdbError::corrupt(WHAT, "more chunks than bytes"));
    }
    let mut chunks = Vec::with_capacity(chunk_count);
    let (mut prev_max, mut prev_ref) = (0i64, 0u64);
    for i in 0..chunk_count {
        // The first chunk stores mint, then deltas; later ones store deltas to the previous.
        let min_time = if i == 0 {
            d.varint()?
        } else {
            prev_max.wrapping_add(d.uvarint()? as i64)
        };
        let max_time = min_time.wrapping_add(d.uvarint()? as i64);
        let reference = if i == 0 {
            d.uvarint()?
        } else {
            prev_ref.wrapping_add(d.varint()? as u64)
        };
        chunks.push(ChunkMeta {
            min_time,
            max_time,
            reference,
        });
        (prev_max, prev_ref) = (max_time, reference);
    }
    Ok(SeriesEntry {
        labels: Labels::from_sorted(labels),
        chunks,
    })
}

/// Reads the label indices through the label offset table: every label name with its values.
/// Prometheus no longer reads these sections (the postings offset table answers the same), but
/// writes them; reading them checks an index whole.
pub fn read_label_indices(
    index: &[u8],
    toc: &Toc,
    symbols: &Symbols,
) -> Result<Vec<(String, Vec<String>)>, TsdbError> {
    const TABLE: &str = "index label offset table";
    const SECTION: &str = "index label index";
    if toc.label_indices_table == 0 {
        return Ok(Vec::new());
    }
    let body = crc_section(index, toc.label_indices_table, TABLE)?;
    let mut d = Decbuf::new(body, TABLE);
    let count = d.be32()? as usize;
    let mut out = Vec::with_capacity(count.min(d.remaining()));
    for _ in 0..count {
        if d.u8()? != 1 {
            return Err(TsdbError::corrupt(
                TABLE,
                "entry does not index exactly one name",
            ));
        }
        let name = d.uvarint_str()?.to_string();
        let section = crc_section(index, d.uvarint()?, SECTION)?;
        let mut s = Decbuf::new(section, SECTION);
        let (names, entries) = (s.be32()?, s.be32()? as usize);
        if names != 1 || entries.checked_mul(4) != Some(s.remaining()) {
            return Err(TsdbError::corrupt(
                SECTION,
                "entry count does not match length",
            ));
        }
        let mut values = Vec::with_capacity(entries);
        for _ in 0..entries {
            values.push(symbols.lookup(index, s.be32()?)?.to_string());
        }
        out.push((name, values));
    }
    Ok(out)
}

/// An index held in memory or mmapped: symbols and postings offsets parsed, the rest read on
/// demand.
pub struct IndexReader<B> {
    data: B,
    toc: Toc,
    symbols: Symbols,
    postings: PostingsOffsets,
}

impl IndexReader<memmap2::Mmap> {
    /// Maps the index file at `path`.
    pub fn open(path: &Path) -> Result<Self, TsdbError> {
        let file = std::fs::File::open(path).map_err(|e| TsdbError::io(path, e))?;
        // SAFETY: block files are immutable once written (a block is complete when its
        // meta.json exists); nothing truncates them while they are mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| TsdbError::io(path, e))?;
        Self::new(map)
    }
}

impl<B: AsRef<[u8]>> IndexReader<B> {
    /// Reads an index from its bytes.
    pub fn new(data: B) -> Result<Self, TsdbError> {
        let bytes = data.as_ref();
        let mut d = Decbuf::new(bytes, "index header");
        if d.be32()? != INDEX_MAGIC {
            return Err(TsdbError::corrupt("index header", "bad magic number"));
        }
        let version = d.u8()?;
        if version != INDEX_VERSION_2 {
            return Err(TsdbError::corrupt(
                "index header",
                "unsupported version (only v2 is read)",
            ));
        }
        let toc = Toc::parse(bytes)?;
        let symbols = Symbols::parse(bytes, toc.symbols)?;
        let postings = PostingsOffsets::parse(bytes, toc.postings_table)?;
        Ok(Self {
            data,
            toc,
            symbols,
            postings,
        })
    }

    /// The table of contents.
    pub fn toc(&self) -> &Toc {
        &self.toc
    }

    /// The label indices section (see [`read_label_indices`]).
    pub fn label_indices(&self) -> Result<Vec<(String, Vec<String>)>, TsdbError> {
        read_label_indices(self.data.as_ref(), &self.toc, &self.symbols)
    }

    /// Label names, sorted.
    pub fn label_names(&self) -> impl Iterator<Item = &str> {
        self.postings.label_names()
    }

    /// Every symbol of the index, in table (sorted) order.
    pub fn symbols(&self) -> impl Iterator<Item = Result<&str, TsdbError>> {
        (0..self.symbols.len()).map(|i| {
            let reference = u32::try_from(i)
                .map_err(|_| TsdbError::corrupt("index symbol table", "too many symbols"))?;
            self.symbols.lookup(self.data.as_ref(), reference)
        })
    }

    /// Values of label `name`, sorted.
    pub fn label_values(&self, name: &str) -> impl Iterator<Item = &str> {
        self.postings
            .values(self.data.as_ref(), name)
            .map(|(v, _)| v)
    }

    /// Series IDs with `name="value"`, ascending (empty if none).
    pub fn postings(&self, name: &str, value: &str) -> Result<Vec<u64>, TsdbError> {
        match self.postings.offset(self.data.as_ref(), name, value) {
            Some(offset) => read_postings(self.data.as_ref(), offset),
            None => Ok(Vec::new()),
        }
    }

    /// Every series ID, ascending.
    pub fn all_postings(&self) -> Result<Vec<u64>, TsdbError> {
        self.postings("", "")
    }

    /// The series with ID `id`.
    pub fn series(&self, id: u64) -> Result<SeriesEntry, TsdbError> {
        let offset = id
            .checked_mul(16)
            .ok_or_else(|| TsdbError::corrupt("index series", "ID out of range"))?;
        read_series(self.data.as_ref(), offset, &self.symbols)
    }

    /// The postings offset table.
    pub fn postings_offsets(&self) -> &PostingsOffsets {
        &self.postings
    }

    /// Series IDs matching every matcher (see [`crate::postings::select`]).
    pub fn select(&self, matchers: &[rthanos_model::Matcher]) -> Result<Vec<u64>, TsdbError> {
        crate::postings::select(self, matchers)
    }

    /// Label names of the series matching `matchers`, sorted (all names when no matcher).
    pub fn label_names_matching(
        &self,
        matchers: &[rthanos_model::Matcher],
    ) -> Result<Vec<String>, TsdbError> {
        if matchers.is_empty() {
            return Ok(self.label_names().map(str::to_string).collect());
        }
        let mut names = std::collections::BTreeSet::new();
        for id in self.select(matchers)? {
            for label in &self.series(id)?.labels {
                if !names.contains(&label.name) {
                    names.insert(label.name.clone());
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Values of `name` among the series matching `matchers`, sorted.
    pub fn label_values_matching(
        &self,
        name: &str,
        matchers: &[rthanos_model::Matcher],
    ) -> Result<Vec<&str>, TsdbError> {
        if matchers.is_empty() {
            return Ok(self.label_values(name).collect());
        }
        let selected = crate::postings::Postings::Decoded(self.select(matchers)?);
        let mut values = Vec::new();
        for (value, offset) in self.postings.values(self.data.as_ref(), name) {
            let with_value = postings_at(self.data.as_ref(), offset)?;
            if crate::postings::intersects(&with_value, &selected) {
                values.push(value);
            }
        }
        Ok(values)
    }
}

impl<B: AsRef<[u8]>> crate::postings::PostingsSource for IndexReader<B> {
    fn label_values(&self, name: &str) -> Vec<&str> {
        IndexReader::label_values(self, name).collect()
    }

    fn postings(
        &self,
        name: &str,
        value: &str,
    ) -> Result<crate::postings::Postings<'_>, TsdbError> {
        match self.postings.offset(self.data.as_ref(), name, value) {
            Some(offset) => postings_at(self.data.as_ref(), offset),
            None => Ok(crate::postings::Postings::Decoded(Vec::new())),
        }
    }
}

#[cfg(test)]
mod symbol_tests {
    use super::*;
    use crate::encoding::put_uvarint;

    /// An index holding only a symbol table section at offset 0.
    fn table(symbols: &[String]) -> Vec<u8> {
        let mut body = (symbols.len() as u32).to_be_bytes().to_vec();
        for s in symbols {
            put_uvarint(&mut body, s.len() as u64);
            body.extend_from_slice(s.as_bytes());
        }
        let mut index = (body.len() as u32).to_be_bytes().to_vec();
        index.extend_from_slice(&body);
        index.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        index
    }

    #[test]
    fn sampled_lookups_remembered_or_not_find_every_symbol() {
        let symbols: Vec<String> = (0..5_000).map(|i| format!("symbol-{i:05}")).collect();
        let index = table(&symbols);
        let every = Symbols::parse(&index, 0).expect("table");
        let sampled = Symbols::parse_sampled(&index, 0, 32).expect("table");
        // Repeated references hit the memo; thousands of distinct ones overwrite its slots.
        let references = (0..5_000u32)
            .chain((0..20_000u32).map(|i| i * 7919 % 5_000))
            .chain((0..1_000u32).map(|i| i % 7));
        for reference in references {
            let want = symbols[reference as usize].as_str();
            assert_eq!(every.lookup(&index, reference).expect("symbol"), want);
            assert_eq!(sampled.lookup(&index, reference).expect("symbol"), want);
        }
        assert!(sampled.lookup(&index, 5_000).is_err());
        // A clone starts with an empty memo and finds the same symbols.
        let clone = sampled.clone();
        assert_eq!(clone.lookup(&index, 4_999).expect("symbol"), "symbol-04999");
        assert_eq!(
            sampled.lookup(&index, 4_998).expect("symbol"),
            "symbol-04998"
        );
    }
}
