//! Chunk segment files (`chunks/000001`, …): an 8-byte header, then chunks as
//! `len <uvarint> | encoding <1b> | data | CRC32-C of encoding and data`. A chunk reference is
//! the segment's index in the upper 32 bits and the chunk's offset in the lower 32.

use std::path::{Path, PathBuf};

use rthanos_chunkenc::{Chunk, Encoding};

use crate::TsdbError;
use crate::encoding::Decbuf;

/// Magic number at the start of a segment file.
pub const SEGMENT_MAGIC: u32 = 0x85BD_40DD;
/// Size of a segment file's header: magic, version, 3 bytes of padding.
pub const SEGMENT_HEADER_LEN: usize = 8;

/// Reads one chunk at `offset` of a segment file's bytes, checking its CRC.
pub fn read_chunk(segment: &[u8], offset: usize) -> Result<Chunk<'_>, TsdbError> {
    if offset < SEGMENT_HEADER_LEN {
        return Err(TsdbError::corrupt(
            "chunk",
            "reference points into the segment header",
        ));
    }
    chunk_at(segment.get(offset..).unwrap_or_default())
}

/// How many bytes the chunk starting `bytes` takes (length, encoding, data, CRC), once its
/// length prefix is there: a reader of ranges knows whether it fetched enough.
pub fn chunk_len(bytes: &[u8]) -> Option<usize> {
    let mut d = Decbuf::new(bytes, "chunk");
    let len = usize::try_from(d.uvarint().ok()?).ok()?;
    let prefix = bytes.len() - d.remaining();
    prefix.checked_add(len)?.checked_add(1 + 4)
}

/// The chunk that starts `bytes` (a segment file from a chunk's offset, or a range of one
/// fetched from a bucket), its CRC checked.
pub fn chunk_at(bytes: &[u8]) -> Result<Chunk<'_>, TsdbError> {
    const WHAT: &str = "chunk";
    let mut d = Decbuf::new(bytes, WHAT);
    let len = usize::try_from(d.uvarint()?)
        .map_err(|_| TsdbError::corrupt(WHAT, "length out of range"))?;
    let encoded = d.take(
        len.checked_add(1)
            .ok_or_else(|| TsdbError::corrupt(WHAT, "length out of range"))?,
    )?;
    let crc = d.be32()?;
    if crc32c::crc32c(encoded) != crc {
        return Err(TsdbError::corrupt(WHAT, "CRC32 mismatch"));
    }
    let encoding =
        Encoding::try_from(encoded[0]).map_err(|e| TsdbError::corrupt(WHAT, &e.to_string()))?;
    Ok(Chunk::new(encoding, &encoded[1..]))
}

/// The segment files of one block, mmapped.
pub struct ChunkReader {
    segments: Vec<(PathBuf, memmap2::Mmap)>,
}

impl ChunkReader {
    /// Maps every segment file of a block's `chunks` directory, in name order.
    pub fn open(dir: &Path) -> Result<Self, TsdbError> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| TsdbError::io(dir, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.len() == 6 && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        paths.sort();
        let mut segments = Vec::with_capacity(paths.len());
        for path in paths {
            let file = std::fs::File::open(&path).map_err(|e| TsdbError::io(&path, e))?;
            // SAFETY: segment files of a complete block are never modified or truncated.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| TsdbError::io(&path, e))?;
            let mut d = Decbuf::new(&map, "chunk segment header");
            if d.be32()? != SEGMENT_MAGIC || d.u8()? != 1 {
                return Err(TsdbError::corrupt(
                    "chunk segment header",
                    &format!("{}: bad magic or version", path.display()),
                ));
            }
            segments.push((path, map));
        }
        Ok(Self { segments })
    }

    /// The chunk a series entry references.
    pub fn chunk(&self, reference: u64) -> Result<Chunk<'_>, TsdbError> {
        let segment = (reference >> 32) as usize;
        let offset = (reference & 0xffff_ffff) as usize;
        let (_, map) = self
            .segments
            .get(segment)
            .ok_or_else(|| TsdbError::corrupt("chunk", "reference to a missing segment file"))?;
        read_chunk(map, offset)
    }
}
