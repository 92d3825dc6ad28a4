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

/// Reads bits from a byte slice. Position is a bit offset; every read is one unaligned 64-bit
/// big-endian load shifted into place, so decoding has no refill state and few branches. Bits
/// past the end read as zeros; [`BitReader::check`] turns having read past the end into an
/// error, so a truncated chunk is reported, never decoded from invented bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// How many of [`BitReader::peek`]'s bits are always the stream's.
    pub(crate) const PEEKED: u32 = 57;

    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// The next 64 bits from the current position, of which at least 57 are the stream's.
    #[inline(always)]
    pub(crate) fn peek(&self) -> u64 {
        let byte = self.pos >> 3;
        let word = match self.data.get(byte..byte + 8) {
            Some(w) => u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]),
            None => self.tail_word(byte),
        };
        word << (self.pos & 7)
    }

    #[cold]
    fn tail_word(&self, byte: usize) -> u64 {
        let mut buf = [0u8; 8];
        if let Some(rest) = self.data.get(byte..) {
            buf[..rest.len()].copy_from_slice(rest);
        }
        u64::from_be_bytes(buf)
    }

    #[inline(always)]
    pub(crate) fn consume(&mut self, n: u32) {
        self.pos += n as usize;
    }

    /// Errors if reads went past the end of the data.
    #[inline(always)]
    pub(crate) fn check(&self) -> Result<(), ChunkError> {
        if self.pos > self.data.len() * 8 {
            Err(ChunkError::Truncated)
        } else {
            Ok(())
        }
    }

    /// Reads `n` bits (0 ≤ n ≤ 64).
    #[inline(always)]
    pub(crate) fn read_bits(&mut self, n: u32) -> u64 {
        if n == 0 {
            return 0;
        }
        if n <= 57 {
            let v = self.peek() >> (64 - n);
            self.consume(n);
            v
        } else {
            let high = self.peek() >> (64 - (n - 32));
            self.consume(n - 32);
            let low = self.peek() >> 32;
            self.consume(32);
            (high << 32) | low
        }
    }

    /// Reads a Go `binary.Uvarint` at the current bit position.
    pub(crate) fn read_uvarint(&mut self) -> Result<u64, ChunkError> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.read_bits(8);
            self.check()?;
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
            assert_eq!(r.read_bits(n), v, "{n} bits");
        }
        r.check().expect("within the data");
        assert_eq!(r.read_varint().expect("varint"), -123_456_789);
        assert_eq!(r.read_uvarint().expect("uvarint"), u64::MAX);
    }

    #[test]
    fn reading_past_the_end_is_an_error() {
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.read_bits(8), 0xff);
        r.check().expect("exactly the data");
        assert_eq!(r.read_bits(1), 0, "past the end reads zeros");
        assert!(matches!(r.check(), Err(ChunkError::Truncated)));
    }
}
