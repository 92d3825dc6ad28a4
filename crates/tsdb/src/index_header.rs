//! Thanos's binary index-header: the parts of a block's index a store gateway keeps on local
//! disk (mmapped) so that it never downloads whole indexes: a copy of the symbol table and of
//! the postings offset table, built from three ranged reads of the index in the bucket.
//!
//! ```text
//! magic 0xBAAAD792 <4b> | version 1 <1b> | index version <1b> | end of postings <8b>
//! symbol table (copied as is: len, symbols, CRC32)
//! postings offset table (copied as is: len, entries, CRC32)
//! TOC: symbols offset <8b> | postings offset table offset <8b> | CRC32 <4b>
//! ```
//! "End of postings" is where the index's postings section ends (its postings offset table
//! starts), so the byte range of the last postings list is known without the index.

use std::ops::Range;
use std::path::Path;

use crate::TsdbError;
use crate::encoding::Decbuf;
use crate::index::{INDEX_VERSION_2, PostingsOffsets, Symbols, TOC_LEN, Toc};

/// Magic number of an index-header file.
pub const INDEX_HEADER_MAGIC: u32 = 0xBAAA_D792;
/// The index-header format written and read here (Thanos's binary format v1).
pub const INDEX_HEADER_VERSION: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 1 + 8;
const HEADER_TOC_LEN: usize = 2 * 8 + 4;
/// Symbols whose start is kept in memory: one in 32, as Thanos's reader keeps them.
const SYMBOLS_SAMPLING: u32 = 32;

/// The byte ranges of an index that an index-header is made of, given its TOC and size.
pub fn ranges_to_fetch(toc: &Toc, index_size: u64) -> Result<[Range<u64>; 2], TsdbError> {
    let toc_start = index_size
        .checked_sub(TOC_LEN as u64)
        .ok_or_else(|| TsdbError::corrupt("index TOC", "index shorter than its TOC"))?;
    if toc.symbols == 0 || toc.symbols >= toc.series || toc.postings_table >= toc_start {
        return Err(TsdbError::corrupt("index TOC", "sections out of order"));
    }
    // Symbols run to the first series (padding included); the offset table to the TOC.
    Ok([toc.symbols..toc.series, toc.postings_table..toc_start])
}

/// The range to read first: the index's TOC, at its end.
pub fn toc_range(index_size: u64) -> Range<u64> {
    index_size.saturating_sub(TOC_LEN as u64)..index_size
}

/// Writes an index-header to `path` from the index's TOC and the bytes of the two ranges of
/// [`ranges_to_fetch`]. Sections are checked (CRC) before anything is written.
pub fn write(
    path: &Path,
    toc: &Toc,
    symbols: &[u8],
    postings_table: &[u8],
) -> Result<(), TsdbError> {
    use std::io::Write;
    let symbols = section_prefix(symbols, "index symbol table")?;
    let postings_table = section_prefix(postings_table, "index postings offset table")?;
    let mut head = Vec::with_capacity(HEADER_LEN);
    head.extend_from_slice(&INDEX_HEADER_MAGIC.to_be_bytes());
    head.push(INDEX_HEADER_VERSION);
    head.push(INDEX_VERSION_2);
    head.extend_from_slice(&toc.postings_table.to_be_bytes());
    let symbols_at = head.len() as u64;
    let postings_at = symbols_at + symbols.len() as u64;
    let mut tail = Vec::with_capacity(HEADER_TOC_LEN);
    tail.extend_from_slice(&symbols_at.to_be_bytes());
    tail.extend_from_slice(&postings_at.to_be_bytes());
    let crc = crc32c::crc32c(&tail);
    tail.extend_from_slice(&crc.to_be_bytes());
    // Written aside and renamed: a crash never leaves a half-written header to be mmapped.
    // The sections go straight to the file, never copied into one buffer.
    let tmp = path.with_extension("tmp");
    let io = |e| TsdbError::io(&tmp, e);
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
    for part in [&head[..], symbols, postings_table, &tail[..]] {
        file.write_all(part).map_err(io)?;
    }
    file.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| TsdbError::io(path, e))
}

/// The leading `len | body | CRC` section of `bytes` (trailing padding dropped), checked.
fn section_prefix<'a>(bytes: &'a [u8], what: &'static str) -> Result<&'a [u8], TsdbError> {
    let body = crate::encoding::crc_section(bytes, 0, what)?;
    Ok(&bytes[..body.len() + 8])
}

/// The bytes of an index-header: mapped from its file, or held (a header checked in memory).
enum HeaderBytes {
    Mapped(memmap2::Mmap),
    Held(Vec<u8>),
}

impl std::ops::Deref for HeaderBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Mapped(m) => m,
            Self::Held(v) => v,
        }
    }
}

/// An index-header, mmapped: symbols and postings offsets of one block's index.
pub struct IndexHeader {
    data: HeaderBytes,
    symbols: Symbols,
    postings: PostingsOffsets,
    postings_end: u64,
}

impl IndexHeader {
    /// Maps and checks the index-header at `path`.
    pub fn open(path: &Path) -> Result<Self, TsdbError> {
        let file = std::fs::File::open(path).map_err(|e| TsdbError::io(path, e))?;
        // SAFETY: index-headers are written aside and renamed into place, never modified.
        let data = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| TsdbError::io(path, e))?;
        Self::parse(HeaderBytes::Mapped(data))
    }

    /// Checks an index-header held in memory (the same checks as [`IndexHeader::open`]).
    pub fn from_bytes(data: Vec<u8>) -> Result<Self, TsdbError> {
        Self::parse(HeaderBytes::Held(data))
    }

    fn parse(data: HeaderBytes) -> Result<Self, TsdbError> {
        const WHAT: &str = "index-header";
        let mut d = Decbuf::new(&data, WHAT);
        if d.be32()? != INDEX_HEADER_MAGIC {
            return Err(TsdbError::corrupt(WHAT, "bad magic number"));
        }
        if d.u8()? != INDEX_HEADER_VERSION || d.u8()? != INDEX_VERSION_2 {
            return Err(TsdbError::corrupt(WHAT, "unsupported version"));
        }
        let postings_end = d.be64()?;
        let toc_at = data
            .len()
            .checked_sub(HEADER_TOC_LEN)
            .filter(|&at| at >= HEADER_LEN)
            .ok_or_else(|| TsdbError::corrupt(WHAT, "too short"))?;
        let (toc_body, crc) = data[toc_at..].split_at(16);
        if crc32c::crc32c(toc_body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(TsdbError::corrupt(WHAT, "TOC CRC32 mismatch"));
        }
        let mut toc = Decbuf::new(toc_body, WHAT);
        let (symbols_at, postings_at) = (toc.be64()?, toc.be64()?);
        let symbols = Symbols::parse_sampled(&data, symbols_at, SYMBOLS_SAMPLING)?;
        let postings = PostingsOffsets::parse(&data, postings_at)?;
        Ok(Self {
            data,
            symbols,
            postings,
            postings_end,
        })
    }

    /// The symbol at `reference`.
    pub fn symbol(&self, reference: u32) -> Result<&str, TsdbError> {
        self.symbols.lookup(&self.data, reference)
    }

    /// The symbol table (for decoding series entries fetched from the index).
    pub fn symbols(&self) -> (&Symbols, &[u8]) {
        (&self.symbols, &self.data)
    }

    /// Label names, sorted.
    pub fn label_names(&self) -> impl Iterator<Item = &str> {
        self.postings.label_names()
    }

    /// Values of `name`, sorted.
    pub fn label_values(&self, name: &str) -> impl Iterator<Item = &str> {
        self.postings.values(&self.data, name).map(|(v, _)| v)
    }

    /// Where the index's postings section ends: every series entry lies before it.
    pub fn postings_end(&self) -> u64 {
        self.postings_end
    }

    /// Byte range, in the index, of the postings list of `name="value"` (padding included).
    pub fn postings_range(&self, name: &str, value: &str) -> Option<Range<u64>> {
        let (start, next) = self.postings.find(&self.data, name, value)?;
        // Lists are written in table order: the next entry's list starts where this one ends.
        let end = next
            .or_else(|| self.postings.next_name_offset(name))
            .unwrap_or(self.postings_end);
        // Offsets out of order: a corrupt table, never a backwards range.
        (start <= end).then_some(start..end)
    }
}
