//! Reading the index's primitive encodings from untrusted bytes: big-endian fixed-width
//! integers, Go varints, length-prefixed strings, CRC32-C checked sections. Every read is
//! bounds-checked; a length from the input is compared with the bytes present before use.

use crate::TsdbError;

/// A cursor over bytes of one index section.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decbuf<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Decbuf<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, what }
    }

    fn short(&self) -> TsdbError {
        TsdbError::corrupt(self.what, "unexpected end of data")
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], TsdbError> {
        if n > self.buf.len() {
            return Err(self.short());
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, TsdbError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn be32(&mut self) -> Result<u32, TsdbError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn be64(&mut self) -> Result<u64, TsdbError> {
        let b = self.take(8)?;
        Ok(u64::from_be_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }

    pub(crate) fn uvarint(&mut self) -> Result<u64, TsdbError> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.u8()?;
            if i == 9 && byte > 1 {
                return Err(TsdbError::corrupt(self.what, "varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(TsdbError::corrupt(self.what, "varint overflows 64 bits"))
    }

    pub(crate) fn varint(&mut self) -> Result<i64, TsdbError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    pub(crate) fn uvarint32(&mut self) -> Result<u32, TsdbError> {
        u32::try_from(self.uvarint()?)
            .map_err(|_| TsdbError::corrupt(self.what, "value overflows 32 bits"))
    }

    /// A string prefixed by its uvarint length.
    pub(crate) fn uvarint_bytes(&mut self) -> Result<&'a [u8], TsdbError> {
        let len = usize::try_from(self.uvarint()?).map_err(|_| self.short())?;
        self.take(len)
    }

    pub(crate) fn uvarint_str(&mut self) -> Result<&'a str, TsdbError> {
        let bytes = self.uvarint_bytes()?;
        std::str::from_utf8(bytes).map_err(|_| TsdbError::corrupt(self.what, "string is not UTF-8"))
    }
}

/// The body of a section laid out as `len <4b> | body <len> | CRC32-C <4b>`, checked.
pub(crate) fn crc_section<'a>(
    file: &'a [u8],
    offset: u64,
    what: &'static str,
) -> Result<&'a [u8], TsdbError> {
    let start =
        usize::try_from(offset).map_err(|_| TsdbError::corrupt(what, "offset out of range"))?;
    let mut d = Decbuf::new(
        file.get(start..)
            .ok_or_else(|| TsdbError::corrupt(what, "offset past the end"))?,
        what,
    );
    let len = d.be32()? as usize;
    let body = d.take(len)?;
    let crc = d.be32()?;
    if crc32c::crc32c(body) != crc {
        return Err(TsdbError::corrupt(what, "CRC32 mismatch"));
    }
    Ok(body)
}

/// Writes a Go uvarint.
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Writes a Go (zig-zag) varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Writes a string prefixed by its uvarint length.
pub(crate) fn put_uvarint_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}
