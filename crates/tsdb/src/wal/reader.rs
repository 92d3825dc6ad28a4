//! Reading the log back: segment by segment, page by page, fragment by fragment, every CRC
//! checked. A record that is torn (the process died while writing it), fails its CRC or
//! cannot be decoded is a [`WalError::Corrupt`] that names its segment and the offset where
//! it begins, which is where [`super::repair`] cuts.

use std::path::{Path, PathBuf};

use super::{
    FIRST, FRAGMENT_HEADER_SIZE, FULL, LAST, MIDDLE, PAGE_SIZE, PAGE_TERM, SNAPPY_FLAG, TYPE_MASK,
    WalError, segment_path, segments,
};

/// Segments `first..=last` of the log in `dir`.
#[derive(Clone, Debug)]
pub struct SegmentRange {
    /// The directory (the WAL, or a checkpoint in it).
    pub dir: PathBuf,
    /// First segment read.
    pub first: u32,
    /// Last segment read ([`u32::MAX`]: through the last one present).
    pub last: u32,
}

impl SegmentRange {
    /// Every segment of `dir`.
    pub fn all(dir: &Path) -> Self {
        SegmentRange {
            dir: dir.to_path_buf(),
            first: 0,
            last: u32::MAX,
        }
    }
}

/// Calls `each` with every record of `ranges`, in order, with the segment it is in. `each`
/// returns why a record is not valid, if it is not: that is a corruption at the record.
///
/// # Errors
/// A segment cannot be read, or is corrupt from some record on (nothing after that record is
/// passed to `each`).
pub fn read_records(
    ranges: &[SegmentRange],
    mut each: impl FnMut(u32, &[u8]) -> Result<(), String>,
) -> Result<(), WalError> {
    let mut decoder = snap::raw::Decoder::new();
    let mut scratch = Scratch::default();
    for range in ranges {
        for segment in segments(&range.dir)?
            .into_iter()
            .filter(|s| (range.first..=range.last).contains(s))
        {
            let path = segment_path(&range.dir, segment);
            let bytes = std::fs::read(&path).map_err(|e| WalError::io(&path, e))?;
            read_segment(&bytes, 0, &mut scratch, &mut decoder, |_, record| {
                each(segment, record)
            })
            .map_err(|(offset, detail)| WalError::Corrupt {
                segment,
                offset: offset as u64,
                detail,
            })?;
        }
    }
    Ok(())
}

/// Calls `each` with every record of one segment's `bytes` (segment 0 in errors): the
/// reader of [`read_records`] without the files, for checks of untrusted bytes.
///
/// # Errors
/// The bytes are corrupt from some record on, or `each` refused a record.
pub fn read_segment_bytes(
    bytes: &[u8],
    each: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<(), WalError> {
    let mut decoder = snap::raw::Decoder::new();
    let mut each = each;
    read_segment(
        bytes,
        0,
        &mut Scratch::default(),
        &mut decoder,
        |_, record| each(record),
    )
    .map_err(|(offset, detail)| WalError::Corrupt {
        segment: 0,
        offset: offset as u64,
        detail,
    })
}

/// Calls `each` with every record of segment `segment` of the log in `dir` that lies in
/// bytes `from..to` (`to` [`u64::MAX`]: to the end of the file), with the offset where the
/// record ends. `from` must be a record boundary (0, or an offset `each` was given), and
/// `to` one too, or the end of what the writer has written out ([`super::Wal::written`]):
/// a tailer follows the log this way while it is written.
///
/// Returns how many bytes were read (fewer than `to - from` at the end of the file).
///
/// # Errors
/// The segment cannot be read, or is corrupt from some record on ([`WalError::Corrupt`]
/// names the offset where that record begins; `each` has seen every record before it). A
/// range that ends inside a record reports that record as torn.
pub fn read_segment_range(
    dir: &Path,
    segment: u32,
    from: u64,
    to: u64,
    mut each: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> Result<u64, WalError> {
    use std::io::{Read, Seek, SeekFrom};
    let path = segment_path(dir, segment);
    let mut file = std::fs::File::open(&path).map_err(|e| WalError::io(&path, e))?;
    file.seek(SeekFrom::Start(from))
        .map_err(|e| WalError::io(&path, e))?;
    let mut bytes = Vec::new();
    let read = if to == u64::MAX {
        file.read_to_end(&mut bytes)
    } else {
        file.take(to.saturating_sub(from)).read_to_end(&mut bytes)
    };
    read.map_err(|e| WalError::io(&path, e))?;
    let base = usize::try_from(from).map_err(|_| {
        WalError::io(
            &path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "offset beyond memory"),
        )
    })?;
    let mut decoder = snap::raw::Decoder::new();
    read_segment(
        &bytes,
        base,
        &mut Scratch::default(),
        &mut decoder,
        |end, record| each(end as u64, record),
    )
    .map_err(|(offset, detail)| WalError::Corrupt {
        segment,
        offset: offset as u64,
        detail,
    })?;
    Ok(bytes.len() as u64)
}

#[derive(Default)]
struct Scratch {
    record: Vec<u8>,
    decompressed: Vec<u8>,
}

/// The records of one segment's `bytes`, which begin at offset `base` of the segment (a
/// record boundary); `each` gets the offset where each record ends. An error is (offset of
/// the record that failed, why); offsets are the segment's.
fn read_segment(
    bytes: &[u8],
    base: usize,
    scratch: &mut Scratch,
    decoder: &mut snap::raw::Decoder,
    mut each: impl FnMut(usize, &[u8]) -> Result<(), String>,
) -> Result<(), (usize, String)> {
    read_relative(bytes, base, scratch, decoder, &mut each)
        .map_err(|(offset, detail)| (base + offset, detail))
}

/// [`read_segment`] with offsets relative to `bytes` in its errors.
fn read_relative(
    bytes: &[u8],
    base: usize,
    scratch: &mut Scratch,
    decoder: &mut snap::raw::Decoder,
    each: &mut impl FnMut(usize, &[u8]) -> Result<(), String>,
) -> Result<(), (usize, String)> {
    let mut pos = 0;
    let mut record_start = 0;
    let mut fragments = 0usize;
    let mut compressed = false;
    scratch.record.clear();
    while pos < bytes.len() {
        let page_left = PAGE_SIZE - (base + pos) % PAGE_SIZE;
        let kind = bytes[pos] & TYPE_MASK;
        if page_left < FRAGMENT_HEADER_SIZE || kind == PAGE_TERM {
            // The rest of the page is padding, all zeros (a short segment ends early).
            let end = bytes.len().min(pos + page_left);
            if bytes[pos..end].iter().any(|&b| b != 0) {
                let at = if fragments > 0 { record_start } else { pos };
                return Err((at, "non-zero byte in a padded page".into()));
            }
            pos = end;
            continue;
        }
        let at = if fragments > 0 { record_start } else { pos };
        let Some(header) = bytes.get(pos..pos + FRAGMENT_HEADER_SIZE) else {
            return Err((at, "torn record: header cut short".into()));
        };
        let length = usize::from(u16::from_be_bytes([header[1], header[2]]));
        let crc = u32::from_be_bytes([header[3], header[4], header[5], header[6]]);
        if length > page_left - FRAGMENT_HEADER_SIZE {
            return Err((at, format!("fragment of {length} bytes crosses its page")));
        }
        let data_start = pos + FRAGMENT_HEADER_SIZE;
        let Some(data) = bytes.get(data_start..data_start + length) else {
            return Err((at, "torn record: data cut short".into()));
        };
        if crc32c::crc32c(data) != crc {
            return Err((at, "fragment CRC32 mismatch".into()));
        }
        match (kind, fragments) {
            (FULL | FIRST, 0) => {
                record_start = pos;
                compressed = header[0] & SNAPPY_FLAG != 0;
            }
            (MIDDLE | LAST, n) if n > 0 => {}
            (kind, n) => {
                return Err((
                    at,
                    format!("fragment of type {kind} after {n} fragments of a record"),
                ));
            }
        }
        scratch.record.extend_from_slice(data);
        pos = data_start + length;
        if kind == FULL || kind == LAST {
            let record: &[u8] = if compressed {
                let len = snap::raw::decompress_len(&scratch.record)
                    .map_err(|e| (record_start, format!("snappy: {e}")))?;
                // Snappy expands at most ~21 times: a larger claimed length is corrupt, and
                // must not size an allocation.
                if len > scratch.record.len().saturating_mul(32) {
                    return Err((record_start, format!("snappy: {len} bytes claimed")));
                }
                scratch.decompressed.resize(len, 0);
                decoder
                    .decompress(&scratch.record, &mut scratch.decompressed)
                    .map_err(|e| (record_start, format!("snappy: {e}")))?;
                &scratch.decompressed
            } else {
                &scratch.record
            };
            each(base + pos, record).map_err(|detail| (record_start, detail))?;
            scratch.record.clear();
            fragments = 0;
        } else {
            fragments += 1;
        }
    }
    if fragments > 0 {
        return Err((
            record_start,
            "torn record: its last fragment is missing".into(),
        ));
    }
    Ok(())
}
