//! The write-ahead log, in Prometheus 2.42's format (`tsdb/wlog`, FORMAT.md "WAL"): numbered
//! segment files of 32 KiB pages, each record split into fragments that never cross a page,
//! each fragment with a 7-byte header (type, length, CRC32-C). A record never crosses a
//! segment. The head writes a series record before the first sample of a series and a
//! samples record per commit; on start the log is read back (`reader`), and a torn or
//! corrupt tail is cut off where the last whole record ends (`repair`), as Prometheus does.

pub mod checkpoint;
mod reader;
pub mod record;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub use reader::{SegmentRange, read_records, read_segment_bytes, read_segment_range};

/// Bytes of a page: fragments never cross one.
pub const PAGE_SIZE: usize = 32 * 1024;
/// Bytes of a fragment's header: type, length (2), CRC32-C (4).
pub const FRAGMENT_HEADER_SIZE: usize = 7;
/// Prometheus's default segment size, 128 MiB.
pub const DEFAULT_SEGMENT_SIZE: usize = 128 * 1024 * 1024;

/// The header's flag for a snappy-compressed record (block format).
const SNAPPY_FLAG: u8 = 1 << 3;
const TYPE_MASK: u8 = SNAPPY_FLAG - 1;

/// Fragment types (the header's low 3 bits).
const PAGE_TERM: u8 = 0;
const FULL: u8 = 1;
const FIRST: u8 = 2;
const MIDDLE: u8 = 3;
const LAST: u8 = 4;

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A segment's bytes are not a valid log from `offset` on.
    #[error("WAL segment {segment} at offset {offset}: {detail}")]
    Corrupt {
        /// The segment's number.
        segment: u32,
        /// Where the record that failed begins.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// Segments are missing between two present ones: nothing to cut, the log cannot be
    /// read (Prometheus refuses it too).
    #[error("WAL segments are not consecutive: {after} follows {before}")]
    Gap {
        /// The segment before the gap.
        before: u32,
        /// The segment after it.
        after: u32,
    },
}

impl WalError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        WalError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The file of segment `index` in `dir`: eight digits, as Prometheus names them.
pub fn segment_path(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("{index:08}"))
}

/// The segments in `dir`, as their numbers in order. Names that are not numbers (checkpoints,
/// temporary files) are left out; a gap in the sequence is an error, as in Prometheus.
///
/// # Errors
/// The directory cannot be read, or its segments are not consecutive.
pub fn segments(dir: &Path) -> Result<Vec<u32>, WalError> {
    let entries = std::fs::read_dir(dir).map_err(|e| WalError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| WalError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(index) = name.parse::<u32>() {
            out.push(index);
        }
    }
    out.sort_unstable();
    if let Some(gap) = out.windows(2).find(|w| w[1] != w[0] + 1) {
        return Err(WalError::Gap {
            before: gap[0],
            after: gap[1],
        });
    }
    Ok(out)
}

/// The log being written. Records go into an in-memory page; a batch's last record writes
/// the page out (a `write` system call), so a committed record survives the process being
/// killed; segments are fsynced when they are finished and on [`Wal::sync`].
pub struct Wal {
    dir: PathBuf,
    segment_size: usize,
    compress: bool,
    file: File,
    segment: u32,
    /// Whole pages written to the current segment.
    done_pages: usize,
    page: Box<[u8; PAGE_SIZE]>,
    /// Bytes of the page in use.
    alloc: usize,
    /// Bytes of the page already written out.
    flushed: usize,
    compressed: Vec<u8>,
    encoder: snap::raw::Encoder,
}

impl Wal {
    /// Opens the log in `dir` (created if absent) with Prometheus's 128 MiB segments. Writing
    /// starts a new segment after the last one, as Prometheus does: existing segments are
    /// only read.
    ///
    /// # Errors
    /// The directory or the new segment cannot be created.
    pub fn open(dir: &Path, compress: bool) -> Result<Self, WalError> {
        Self::open_sized(dir, DEFAULT_SEGMENT_SIZE, compress)
    }

    /// As [`Wal::open`], with segments of `segment_size` bytes (a multiple of the page size;
    /// smaller segments for tests).
    ///
    /// # Errors
    /// As [`Wal::open`]; a segment size that is not a positive multiple of the page size.
    pub fn open_sized(dir: &Path, segment_size: usize, compress: bool) -> Result<Self, WalError> {
        if segment_size == 0 || segment_size % PAGE_SIZE != 0 {
            return Err(WalError::io(
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("segment size {segment_size} is not a multiple of {PAGE_SIZE}"),
                ),
            ));
        }
        rthanos_durable::create_dir_all(dir).map_err(|e| WalError::io(&e.path, e.source))?;
        let next = segments(dir)?.last().map_or(0, |last| last + 1);
        let file = create_segment(dir, next)?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            segment_size,
            compress,
            file,
            segment: next,
            done_pages: 0,
            page: Box::new([0; PAGE_SIZE]),
            alloc: 0,
            flushed: 0,
            compressed: Vec::new(),
            encoder: snap::raw::Encoder::new(),
        })
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segment being written.
    pub fn current_segment(&self) -> u32 {
        self.segment
    }

    /// The segment being written and how many of its bytes are written out: every record
    /// logged so far ends at or before it, whole (a tailer reads up to here).
    pub fn written(&self) -> (u32, u64) {
        (
            self.segment,
            (self.done_pages * PAGE_SIZE + self.flushed) as u64,
        )
    }

    /// Whether records are snappy-compressed.
    pub fn compressed(&self) -> bool {
        self.compress
    }

    /// Appends `records` and writes them out: when this returns, they survive the process
    /// being killed (not yet a power cut: see [`Wal::sync`]).
    ///
    /// # Errors
    /// Writing failed; the records may be partly written (a torn tail, cut on the next start).
    pub fn log(&mut self, records: &[&[u8]]) -> Result<(), WalError> {
        for (i, record) in records.iter().enumerate() {
            self.log_one(record, i + 1 == records.len())?;
        }
        Ok(())
    }

    fn page_full(&self) -> bool {
        PAGE_SIZE - self.alloc < FRAGMENT_HEADER_SIZE
    }

    fn pages_per_segment(&self) -> usize {
        self.segment_size / PAGE_SIZE
    }

    fn log_one(&mut self, record: &[u8], last_of_batch: bool) -> Result<(), WalError> {
        if self.page_full() {
            self.flush_page(true)?;
        }
        let mut compressed = false;
        let mut data = record;
        if self.compress && !record.is_empty() {
            self.compressed
                .resize(snap::raw::max_compress_len(record.len()), 0);
            if let Ok(n) = self.encoder.compress(record, &mut self.compressed)
                && n < record.len()
            {
                self.compressed.truncate(n);
                compressed = true;
            }
        }
        let compressed_bytes = std::mem::take(&mut self.compressed);
        if compressed {
            data = &compressed_bytes;
        }
        let result = self.write_fragments(data, compressed, last_of_batch);
        self.compressed = compressed_bytes;
        result
    }

    fn write_fragments(
        &mut self,
        mut data: &[u8],
        compressed: bool,
        last_of_batch: bool,
    ) -> Result<(), WalError> {
        // A record never crosses segments: start a new one when it does not fit.
        let left_in_page = PAGE_SIZE - self.alloc - FRAGMENT_HEADER_SIZE;
        let free_pages = self.pages_per_segment().saturating_sub(self.done_pages + 1);
        if data.len() > left_in_page + (PAGE_SIZE - FRAGMENT_HEADER_SIZE) * free_pages {
            self.next_segment()?;
        }
        let mut first = true;
        // One pass at least, so an empty record is written too.
        while first || !data.is_empty() {
            let room = PAGE_SIZE - self.alloc - FRAGMENT_HEADER_SIZE;
            let (part, rest) = data.split_at(data.len().min(room));
            let kind = match (first, rest.is_empty()) {
                (true, true) => FULL,
                (true, false) => FIRST,
                (false, true) => LAST,
                (false, false) => MIDDLE,
            };
            let header = if compressed { kind | SNAPPY_FLAG } else { kind };
            let at = self.alloc;
            self.page[at] = header;
            // `part` fits a page, so its length fits 16 bits.
            self.page[at + 1..at + 3].copy_from_slice(&(part.len() as u16).to_be_bytes());
            self.page[at + 3..at + 7].copy_from_slice(&crc32c::crc32c(part).to_be_bytes());
            self.page[at + FRAGMENT_HEADER_SIZE..at + FRAGMENT_HEADER_SIZE + part.len()]
                .copy_from_slice(part);
            self.alloc += FRAGMENT_HEADER_SIZE + part.len();
            if self.page_full() {
                self.flush_page(true)?;
            }
            data = rest;
            first = false;
        }
        if last_of_batch && self.alloc > 0 {
            self.flush_page(false)?;
        }
        Ok(())
    }

    /// Writes the page's unwritten bytes; with `clear` (or a full page) the rest of the page
    /// as zeros too, and a new page begins.
    fn flush_page(&mut self, clear: bool) -> Result<(), WalError> {
        let clear = clear || self.page_full();
        if clear {
            self.alloc = PAGE_SIZE;
        }
        let path = segment_path(&self.dir, self.segment);
        self.file
            .write_all(&self.page[self.flushed..self.alloc])
            .map_err(|e| WalError::io(&path, e))?;
        self.flushed = self.alloc;
        if clear {
            self.page.fill(0);
            self.alloc = 0;
            self.flushed = 0;
            self.done_pages += 1;
        }
        Ok(())
    }

    /// Finishes the current segment (its last page padded, fsynced) and starts the next one.
    /// Returns the new segment's number.
    ///
    /// # Errors
    /// Writing, syncing or creating failed.
    pub fn next_segment(&mut self) -> Result<u32, WalError> {
        if self.alloc > 0 {
            self.flush_page(true)?;
        }
        self.sync()?;
        let next = self.segment + 1;
        self.file = create_segment(&self.dir, next)?;
        self.segment = next;
        self.done_pages = 0;
        Ok(next)
    }

    /// Fsyncs the current segment: what was logged survives a power cut too.
    ///
    /// # Errors
    /// The sync failed.
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.file
            .sync_all()
            .map_err(|e| WalError::io(&segment_path(&self.dir, self.segment), e))
    }

    /// Deletes the segments before `index` (they are in a checkpoint now).
    ///
    /// # Errors
    /// Listing or deleting failed.
    pub fn truncate_before(&mut self, index: u32) -> Result<(), WalError> {
        delete_segments_before(&self.dir, index.min(self.segment))
    }

    /// Flushes the page and fsyncs the segment.
    ///
    /// # Errors
    /// Writing or syncing failed.
    pub fn close(mut self) -> Result<(), WalError> {
        if self.alloc > self.flushed {
            self.flush_page(false)?;
        }
        self.sync()
    }
}

fn create_segment(dir: &Path, index: u32) -> Result<File, WalError> {
    let path = segment_path(dir, index);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| WalError::io(&path, e))?;
    // The new name must outlive a crash for what is logged into it to.
    rthanos_durable::sync_dir(dir).map_err(|e| WalError::io(&e.path, e.source))?;
    Ok(file)
}

/// Deletes the segments of the log in `dir` before `index`, oldest first (so a crash leaves
/// the log without a gap). `index` must not be past the segment being written.
///
/// # Errors
/// Listing or deleting failed.
pub fn delete_segments_before(dir: &Path, index: u32) -> Result<(), WalError> {
    for segment in segments(dir)? {
        if segment >= index {
            break;
        }
        let path = segment_path(dir, segment);
        std::fs::remove_file(&path).map_err(|e| WalError::io(&path, e))?;
    }
    Ok(())
}

/// Cuts the log at a corruption found by [`read_records`]: segment `segment` is truncated at
/// `offset` (where the failed record began; what precedes it is whole) and every later
/// segment is deleted, as Prometheus's `Repair` does. The next writer starts a new segment.
///
/// # Errors
/// The files cannot be changed.
pub fn repair(dir: &Path, segment: u32, offset: u64) -> Result<(), WalError> {
    for later in segments(dir)?.into_iter().filter(|&s| s > segment) {
        let path = segment_path(dir, later);
        std::fs::remove_file(&path).map_err(|e| WalError::io(&path, e))?;
    }
    let path = segment_path(dir, segment);
    let file = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| WalError::io(&path, e))?;
    file.set_len(offset)
        .and_then(|()| file.sync_all())
        .map_err(|e| WalError::io(&path, e))?;
    rthanos_durable::sync_dir(dir).map_err(|e| WalError::io(&e.path, e.source))
}

/// Reads the log in `wal_dir` back as a restart does: every record of the last checkpoint
/// (passed with the checkpoint's number), then of the segments after it (with their own).
/// A corrupt or torn record cuts the log there ([`repair`]); the corruption is returned.
///
/// # Errors
/// A checkpoint is corrupt (it was written whole, so that is the disk's doing), or the files
/// cannot be read or cut.
pub fn replay(
    wal_dir: &Path,
    mut apply: impl FnMut(u32, &[u8]) -> Result<(), String>,
) -> Result<Option<String>, WalError> {
    let mut first = 0;
    if let Some((index, path)) = checkpoint::last_checkpoint(wal_dir)? {
        read_records(&[SegmentRange::all(&path)], |_, r| apply(index, r))?;
        first = index + 1;
    }
    let range = SegmentRange {
        dir: wal_dir.to_path_buf(),
        first,
        last: u32::MAX,
    };
    match read_records(&[range], apply) {
        Ok(()) => Ok(None),
        Err(WalError::Corrupt {
            segment,
            offset,
            detail,
        }) => {
            repair(wal_dir, segment, offset)?;
            Ok(Some(format!(
                "WAL segment {segment} at offset {offset}: {detail}"
            )))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records of every size class: empty, small, page-sized, spanning several pages.
    fn records() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (i, len) in [
            0usize,
            1,
            100,
            PAGE_SIZE - 7,
            PAGE_SIZE,
            3 * PAGE_SIZE + 5,
            17,
        ]
        .into_iter()
        .cycle()
        .take(60)
        .enumerate()
        {
            // Odd records compress well, even ones not at all.
            let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            out.push(
                (0..len)
                    .map(|j| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        if i % 2 == 1 { (j / 64) as u8 } else { x as u8 }
                    })
                    .collect(),
            );
        }
        out
    }

    fn read_all(dir: &Path) -> Result<Vec<(u32, Vec<u8>)>, WalError> {
        let mut out = Vec::new();
        read_records(&[SegmentRange::all(dir)], |segment, r| {
            out.push((segment, r.to_vec()));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn records_come_back_in_order_across_pages_and_segments() {
        for compress in [false, true] {
            let tmp = tempfile::tempdir().expect("tmp");
            let dir = tmp.path().join("wal");
            let mut wal = Wal::open_sized(&dir, 4 * PAGE_SIZE, compress).expect("open");
            let written = records();
            for batch in written.chunks(3) {
                let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                wal.log(&refs).expect("log");
            }
            // Read before closing: what a commit logged is in the file already.
            let back = read_all(&dir).expect("read");
            assert_eq!(
                back.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
                written,
                "compress={compress}"
            );
            let used: std::collections::BTreeSet<u32> = back.iter().map(|(s, _)| *s).collect();
            assert!(used.len() > 5, "records spread over segments: {used:?}");
            for segment in &segments(&dir).expect("segments")[..used.len() - 1] {
                let len = std::fs::metadata(segment_path(&dir, *segment))
                    .expect("stat")
                    .len();
                // A finished segment is whole pages, within its size.
                assert!(
                    len % PAGE_SIZE as u64 == 0 && len <= 4 * PAGE_SIZE as u64,
                    "{len}"
                );
            }
            wal.close().expect("close");
            // A reopened log writes on in a new segment, after the old ones.
            let mut wal = Wal::open_sized(&dir, 4 * PAGE_SIZE, compress).expect("reopen");
            wal.log(&[b"after"]).expect("log");
            let back = read_all(&dir).expect("read");
            assert_eq!(back.last().map(|(_, r)| r.as_slice()), Some(&b"after"[..]));
            assert_eq!(back.len(), written.len() + 1);
        }
    }

    #[test]
    fn a_tailer_follows_the_log_from_record_boundaries_up_to_what_is_written() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("wal");
        let mut wal = Wal::open_sized(&dir, 4 * PAGE_SIZE, true).expect("open");
        let written = records();
        let mut back = Vec::new();
        // The tailer's position: a segment and an offset in it, always a record boundary.
        let (mut segment, mut offset) = wal.written();
        for batch in written.chunks(2) {
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            wal.log(&refs).expect("log");
            let (to_segment, to_offset) = wal.written();
            while (segment, offset) < (to_segment, to_offset) {
                let end = if segment < to_segment {
                    u64::MAX
                } else {
                    to_offset
                };
                read_segment_range(&dir, segment, offset, end, |at, r| {
                    back.push(r.to_vec());
                    offset = at;
                    Ok(())
                })
                .expect("tail");
                if segment < to_segment {
                    (segment, offset) = (segment + 1, 0);
                }
            }
        }
        assert_eq!(back, written);
        // A corrupt record is reported at its own offset in the segment.
        let (last, _) = wal.written();
        drop(wal);
        let path = segment_path(&dir, last - 1);
        let mut bytes = std::fs::read(&path).expect("read");
        let at = bytes.len() - PAGE_SIZE + 10;
        bytes[at] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        let mut ok = 0u64;
        let err = read_segment_range(&dir, last - 1, 0, u64::MAX, |end, _| {
            ok = end;
            Ok(())
        })
        .expect_err("corrupt");
        match err {
            WalError::Corrupt { offset, .. } => assert!(offset >= ok, "{offset} < {ok}"),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_torn_tail_is_cut_where_the_last_whole_record_ends() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("wal");
        let mut wal = Wal::open(&dir, false).expect("open");
        let written = records();
        for r in &written {
            wal.log(&[r]).expect("log");
        }
        drop(wal);
        let path = segment_path(&dir, 0);
        let full = std::fs::metadata(&path).expect("stat").len();
        // Cut the file inside the last record, as a process killed mid-write leaves it.
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        file.set_len(full - 3).expect("cut");
        let Err(WalError::Corrupt {
            segment, offset, ..
        }) = read_all(&dir)
        else {
            panic!("a torn record must be a corruption");
        };
        assert_eq!(segment, 0);
        repair(&dir, segment, offset).expect("repair");
        let back = read_all(&dir).expect("read after repair");
        assert_eq!(
            back.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
            written[..written.len() - 1]
        );
        // Writing goes on after the repaired segment.
        let mut wal = Wal::open(&dir, false).expect("reopen");
        wal.log(&[b"next"]).expect("log");
        assert_eq!(read_all(&dir).expect("read").len(), written.len());
    }

    #[test]
    fn a_flipped_byte_is_a_corruption_at_its_record() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("wal");
        let mut wal = Wal::open(&dir, false).expect("open");
        for r in [&b"one"[..], b"two", b"three"] {
            wal.log(&[r]).expect("log");
        }
        drop(wal);
        let path = segment_path(&dir, 0);
        let mut bytes = std::fs::read(&path).expect("read");
        // The second record starts at 7 + 3; its data at 17.
        bytes[18] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write");
        match read_all(&dir) {
            Err(WalError::Corrupt {
                segment: 0,
                offset: 10,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        // A garbage segment is a corruption too, never a panic.
        for seed in 0..200u64 {
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let garbage: Vec<u8> = (0..(seed as usize * 97 % 70_000))
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            std::fs::write(&path, &garbage).expect("write");
            let _ = read_all(&dir);
        }
    }

    #[test]
    fn segment_names_are_prometheus_eight_digits_and_gaps_are_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        assert_eq!(segment_path(tmp.path(), 3), tmp.path().join("00000003"));
        for name in [
            "00000000",
            "00000001",
            "00000003",
            "checkpoint.00000001",
            "x",
        ] {
            std::fs::write(tmp.path().join(name), b"").expect("write");
        }
        assert!(matches!(
            segments(tmp.path()),
            Err(WalError::Gap {
                before: 1,
                after: 3
            })
        ));
        std::fs::remove_file(tmp.path().join("00000003")).expect("rm");
        assert_eq!(segments(tmp.path()).expect("segments"), vec![0, 1]);
    }
}
