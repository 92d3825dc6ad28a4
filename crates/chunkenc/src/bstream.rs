//! Bit streams, most significant bit first, as Prometheus's `bstream` lays them out: the writer
//! appends bits, the reader returns them in order and reports a truncated stream as an error.

use crate::ChunkError;

/// Appends bits to a byte vector. Bits not yet forming a whole byte wait in `acc`.
///
/// Byte-identical output needs one quirk of Prometheus's `bstream`: its `writeByte` always
/// appends a fresh byte after the one it fills, so a stream whose last write was a whole byte
/// at a byte boundary ends with an extra zero byte (`writeBits` writes whole bytes first, then
/// single bits). `last_write_was_byte` tracks that.
#[derive(Debug, Default, Clone)]
pub(crate) struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    pending: u32,
    last_write_was_byte: bool,
}

impl BitWriter {
    pub(crate) fn with_bytes(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            acc: 0,
            pending: 0,
            last_write_was_byte: false,
        }
    }

    /// Appends the low `n` bits of `value` (n ≤ 32), most significant first.
    #[inline]
    fn write_small(&mut self, value: u64, n: u32) {
        debug_assert!(n <= 32);
        let mask = (1u64 << n) - 1;
        self.acc = (self.acc << n) | (value & mask);
        self.pending += n;
        while self.pending >= 8 {
            self.pending -= 8;
            self.bytes.push((self.acc >> self.pending) as u8);
        }
    }

    /// Appends the low `n` bits of `value` (n ≤ 64), most significant first.
    #[inline]
    pub(crate) fn write_bits(&mut self, value: u64, n: u32) {
        if n > 32 {
            self.write_small(value >> 32, n - 32);
            self.write_small(value, 32);
        } else if n > 0 {
            self.write_small(value, n);
        } else {
            return;
        }
        self.last_write_was_byte = n % 8 == 0;
    }

    #[inline]
    pub(crate) fn write_bit(&mut self, bit: bool) {
        self.write_small(u64::from(bit), 1);
        self.last_write_was_byte = false;
    }

    pub(crate) fn write_byte(&mut self, byte: u8) {
        self.write_small(u64::from(byte), 8);
        self.last_write_was_byte = true;
    }

    /// Appends `value` as Go's `binary.PutUvarint` does, at the current bit position.
    pub(crate) fn write_uvarint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.write_byte((value as u8) | 0x80);
            value >>= 7;
        }
        self.write_byte(value as u8);
    }

    /// Appends `value` as Go's `binary.PutVarint` (zig-zag) does.
    pub(crate) fn write_varint(&mut self, value: i64) {
        self.write_uvarint(((value << 1) ^ (value >> 63)) as u64);
    }

    /// The bytes written so far, with a partial last byte padded by zero bits.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len() + 1);
        out.extend_from_slice(&self.bytes);
        if self.pending > 0 {
            out.push((self.acc << (8 - self.pending)) as u8);
        } else if self.last_write_was_byte {
            out.push(0);
        }
        out
    }

    /// Mutable access to the whole bytes (used to patch the sample count header).
    pub(crate) fn bytes_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

/// Reads bits from a byte slice through a 64-bit window.
#[derive(Debug, Clone)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Next byte of `data` to load into the window.
    pos: usize,
    /// Window: the next `valid` bits of the stream, left-aligned.
    window: u64,
    valid: u32,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            window: 0,
            valid: 0,
        }
    }

    #[inline]
    fn refill(&mut self) {
        if let Some(word) = self.data.get(self.pos..self.pos + 8) {
            // Fast path: load 8 bytes at once and keep as many whole bytes as fit.
            let word = u64::from_be_bytes([
                word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
            ]);
            let take = (64 - self.valid) / 8;
            if take > 0 {
                self.window |= word >> self.valid;
                // Bits of `word` beyond the whole bytes taken must not leak into the window.
                let kept = self.valid + take * 8;
                if kept < 64 {
                    self.window &= !(u64::MAX >> kept);
                }
                self.valid = kept;
                self.pos += take as usize;
            }
        } else {
            while self.valid <= 56 && self.pos < self.data.len() {
                self.window |= u64::from(self.data[self.pos]) << (56 - self.valid);
                self.valid += 8;
                self.pos += 1;
            }
        }
    }

    /// Reads `n` bits (1 ≤ n ≤ 56).
    #[inline]
    fn read_small(&mut self, n: u32) -> Result<u64, ChunkError> {
        debug_assert!((1..=56).contains(&n));
        if self.valid < n {
            self.refill();
            if self.valid < n {
                return Err(ChunkError::Truncated);
            }
        }
        let value = self.window >> (64 - n);
        self.window <<= n;
        self.valid -= n;
        Ok(value)
    }

    /// Reads `n` bits (0 ≤ n ≤ 64).
    #[inline]
    pub(crate) fn read_bits(&mut self, n: u32) -> Result<u64, ChunkError> {
        match n {
            0 => Ok(0),
            1..=56 => self.read_small(n),
            _ => {
                let high = self.read_small(n - 32)?;
                let low = self.read_small(32)?;
                Ok((high << 32) | low)
            }
        }
    }

    #[inline]
    pub(crate) fn read_bit(&mut self) -> Result<bool, ChunkError> {
        self.read_small(1).map(|b| b == 1)
    }

    /// Reads a Go `binary.Uvarint` at the current bit position.
    pub(crate) fn read_uvarint(&mut self) -> Result<u64, ChunkError> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.read_small(8)?;
            if shift == 63 && byte > 1 {
                return Err(ChunkError::Corrupt("varint overflows 64 bits"));
            }
            value |= (byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(ChunkError::Corrupt("varint overflows 64 bits"))
    }

    /// Reads a Go `binary.Varint` (zig-zag).
    pub(crate) fn read_varint(&mut self) -> Result<i64, ChunkError> {
        let u = self.read_uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_at_every_alignment() {
        let mut w = BitWriter::default();
        let items: Vec<(u64, u32)> = (0..200u32)
            .map(|i| {
                let n = i % 65;
                let v = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(u64::from(i) + 1);
                (if n == 64 { v } else { v & ((1u64 << n) - 1) }, n)
            })
            .collect();
        for &(v, n) in &items {
            w.write_bits(v, n);
        }
        w.write_varint(-123_456_789);
        w.write_uvarint(u64::MAX);
        let bytes = w.to_bytes();
        let mut r = BitReader::new(&bytes);
        for &(v, n) in &items {
            assert_eq!(r.read_bits(n).expect("bits"), v, "{n} bits");
        }
        assert_eq!(r.read_varint().expect("varint"), -123_456_789);
        assert_eq!(r.read_uvarint().expect("uvarint"), u64::MAX);
    }

    #[test]
    fn reading_past_the_end_is_an_error() {
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.read_bits(8).expect("8 bits"), 0xff);
        assert!(matches!(r.read_bit(), Err(ChunkError::Truncated)));
    }
}
