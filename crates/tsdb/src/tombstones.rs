//! The `tombstones` file: deleted time ranges per series, applied on read.
//! Layout: magic 0x0130BA30 <4b>, version 1 <1b>, then per range: series ID <uvarint>,
//! mint <varint>, maxt <varint>; a CRC32-C of the ranges closes the file.

use std::collections::HashMap;
use std::path::Path;

use crate::TsdbError;
use crate::encoding::Decbuf;

/// Magic number of a tombstones file.
pub const TOMBSTONES_MAGIC: u32 = 0x0130_BA30;

/// Deleted intervals (both ends inclusive) per series ID.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tombstones {
    ranges: HashMap<u64, Vec<(i64, i64)>>,
}

impl Tombstones {
    /// Reads a tombstones file; a missing file means no tombstones.
    pub fn read(path: &Path) -> Result<Self, TsdbError> {
        match std::fs::read(path) {
            Ok(bytes) => Self::parse(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(TsdbError::io(path, e)),
        }
    }

    /// Parses the bytes of a tombstones file.
    pub fn parse(bytes: &[u8]) -> Result<Self, TsdbError> {
        const WHAT: &str = "tombstones";
        let mut d = Decbuf::new(bytes, WHAT);
        if d.be32()? != TOMBSTONES_MAGIC {
            return Err(TsdbError::corrupt(WHAT, "bad magic number"));
        }
        if d.u8()? != 1 {
            return Err(TsdbError::corrupt(WHAT, "unsupported version"));
        }
        let body_len = d
            .remaining()
            .checked_sub(4)
            .ok_or_else(|| TsdbError::corrupt(WHAT, "missing CRC32"))?;
        let body = d.take(body_len)?;
        if crc32c::crc32c(body) != d.be32()? {
            return Err(TsdbError::corrupt(WHAT, "CRC32 mismatch"));
        }
        let mut d = Decbuf::new(body, WHAT);
        let mut ranges: HashMap<u64, Vec<(i64, i64)>> = HashMap::new();
        while d.remaining() > 0 {
            let id = d.uvarint()?;
            let (min, max) = (d.varint()?, d.varint()?);
            ranges.entry(id).or_default().push((min, max));
        }
        for intervals in ranges.values_mut() {
            intervals.sort_unstable();
        }
        Ok(Self { ranges })
    }

    /// The bytes of a tombstones file deleting `intervals` (series ID, first and last
    /// timestamp, both inclusive).
    pub fn encode(intervals: &[(u64, i64, i64)]) -> Vec<u8> {
        let mut body = Vec::new();
        for &(id, min, max) in intervals {
            crate::encoding::put_uvarint(&mut body, id);
            crate::encoding::put_varint(&mut body, min);
            crate::encoding::put_varint(&mut body, max);
        }
        let mut out = Vec::with_capacity(body.len() + 9);
        out.extend_from_slice(&TOMBSTONES_MAGIC.to_be_bytes());
        out.push(1);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out
    }

    /// The deleted intervals of series `id`, sorted.
    pub fn get(&self, id: u64) -> &[(i64, i64)] {
        self.ranges.get(&id).map_or(&[], Vec::as_slice)
    }

    /// Whether the sample at `t` of series `id` is deleted.
    pub fn is_deleted(&self, id: u64, t: i64) -> bool {
        self.get(id).iter().any(|&(min, max)| min <= t && t <= max)
    }

    /// Number of deleted intervals.
    pub fn len(&self) -> usize {
        self.ranges.values().map(Vec::len).sum()
    }

    /// Whether nothing is deleted.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}
