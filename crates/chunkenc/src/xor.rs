//! Prometheus's XOR ("Gorilla") chunk: a 2-byte big-endian sample count, then a bit stream of
//! delta-of-delta timestamps and XOR-compressed values. See FORMAT.md beside this crate.

use crate::ChunkError;
use crate::bstream::{BitReader, BitWriter};

/// The most samples one chunk can count (the header is 16 bits).
pub const MAX_SAMPLES: usize = u16::MAX as usize;

/// Encodes samples into an XOR chunk, byte for byte as Prometheus's appender does.
#[derive(Debug, Clone)]
pub struct XorEncoder {
    bits: BitWriter,
    count: u16,
    t: i64,
    t_delta: u64,
    v_bits: u64,
    /// Leading zeros of the last written XOR window; 0xff until the first window is written.
    leading: u8,
    trailing: u8,
}

impl Default for XorEncoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `x` fits Prometheus's `bitRange(x, nbits)`: -(2^(n-1) - 1) ≤ x ≤ 2^(n-1).
#[inline]
fn bit_range(x: i64, nbits: u32) -> bool {
    let half = 1i64 << (nbits - 1);
    -(half - 1) <= x && x <= half
}

impl XorEncoder {
    /// An empty chunk.
    pub fn new() -> Self {
        Self {
            bits: BitWriter::with_bytes(vec![0, 0]),
            count: 0,
            t: 0,
            t_delta: 0,
            v_bits: 0,
            leading: 0xff,
            trailing: 0,
        }
    }

    /// Number of samples appended.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether no sample was appended.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends a sample. Timestamps are expected in increasing order (as in a TSDB series);
    /// the encoding itself accepts any order, as Prometheus's does.
    pub fn append(&mut self, t: i64, v: f64) -> Result<(), ChunkError> {
        if self.count == u16::MAX {
            return Err(ChunkError::TooManySamples);
        }
        let v_bits = v.to_bits();
        match self.count {
            0 => {
                self.bits.write_varint(t);
                self.bits.write_bits(v_bits, 64);
            }
            1 => {
                let t_delta = t.wrapping_sub(self.t) as u64;
                self.bits.write_uvarint(t_delta);
                self.write_value(v_bits);
                self.t_delta = t_delta;
            }
            _ => {
                let t_delta = t.wrapping_sub(self.t) as u64;
                let dod = t_delta.wrapping_sub(self.t_delta) as i64;
                if dod == 0 {
                    self.bits.write_bit(false);
                } else if bit_range(dod, 14) {
                    self.bits.write_bits(0b10, 2);
                    self.bits.write_bits(dod as u64, 14);
                } else if bit_range(dod, 17) {
                    self.bits.write_bits(0b110, 3);
                    self.bits.write_bits(dod as u64, 17);
                } else if bit_range(dod, 20) {
                    self.bits.write_bits(0b1110, 4);
                    self.bits.write_bits(dod as u64, 20);
                } else {
                    self.bits.write_bits(0b1111, 4);
                    self.bits.write_bits(dod as u64, 64);
                }
                self.write_value(v_bits);
                self.t_delta = t_delta;
            }
        }
        self.t = t;
        self.v_bits = v_bits;
        self.count += 1;
        Ok(())
    }

    #[inline]
    fn write_value(&mut self, v_bits: u64) {
        let delta = v_bits ^ self.v_bits;
        if delta == 0 {
            self.bits.write_bit(false);
            return;
        }
        self.bits.write_bit(true);
        // Leading zeros are written in 5 bits: at most 31.
        let leading = (delta.leading_zeros() as u8).min(31);
        let trailing = delta.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            // The new value's meaningful bits fit the previous window: reuse it.
            self.bits.write_bit(false);
            let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
            self.bits.write_bits(delta >> self.trailing, sig);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        self.bits.write_bit(true);
        self.bits.write_bits(u64::from(leading), 5);
        let sig = 64 - u32::from(leading) - u32::from(trailing);
        // 64 significant bits do not fit 6 bits: they are written as 0 and read back as 64.
        self.bits.write_bits(u64::from(sig), 6);
        self.bits.write_bits(delta >> trailing, sig);
    }

    /// The chunk's bytes: the sample count, then the bit stream.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = self.bits.to_bytes();
        out[..2].copy_from_slice(&self.count.to_be_bytes());
        out
    }

    /// Finishes the chunk, returning its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let count = self.count.to_be_bytes();
        self.bits.bytes_mut()[..2].copy_from_slice(&count);
        self.bits.to_bytes()
    }
}

/// Encodes a whole series of samples into one chunk.
pub fn encode(samples: impl IntoIterator<Item = (i64, f64)>) -> Result<Vec<u8>, ChunkError> {
    let mut enc = XorEncoder::new();
    for (t, v) in samples {
        enc.append(t, v)?;
    }
    Ok(enc.finish())
}

/// The decoder's state between samples.
#[derive(Debug, Clone, Copy, Default)]
struct DecodeState {
    t: i64,
    t_delta: u64,
    v_bits: u64,
    leading: u32,
    trailing: u32,
}

impl DecodeState {
    /// Decodes a sample after the second one: a delta of deltas, then a value. Returns false
    /// if the stream holds an impossible XOR window (the state stays usable: it is clamped).
    #[inline(always)]
    fn step(&mut self, bits: &mut BitReader<'_>) -> bool {
        let w = bits.peek();
        let (dod, used) = match w.leading_ones() {
            0 => (0, 1),
            1 => (dod_field::<2, 14>(w), 16),
            2 => (dod_field::<3, 17>(w), 20),
            3 => (dod_field::<4, 20>(w), 24),
            _ => {
                bits.consume(4);
                let dod = bits.read_bits(64) as i64;
                self.advance(dod);
                return self.read_value(bits);
            }
        };
        bits.consume(used);
        self.advance(dod);
        // The value's bits usually follow within the word already loaded.
        self.read_value_from(bits, w << used, BitReader::PEEKED - used)
    }

    #[inline(always)]
    fn advance(&mut self, dod: i64) {
        self.t_delta = self.t_delta.wrapping_add(dod as u64);
        self.t = self.t.wrapping_add(self.t_delta as i64);
    }

    /// Reads a value's XOR with the previous one into `v_bits`; false if the window is invalid.
    #[inline(always)]
    fn read_value(&mut self, bits: &mut BitReader<'_>) -> bool {
        self.read_value_from(bits, bits.peek(), BitReader::PEEKED)
    }

    /// As [`DecodeState::read_value`], from `w`, whose top `avail` bits are the stream's
    /// next ones; bits beyond them are loaded again.
    #[inline(always)]
    fn read_value_from(&mut self, bits: &mut BitReader<'_>, w: u64, avail: u32) -> bool {
        // The control bits and the window's header take at most 13 bits.
        let (w, avail) = if avail < 13 {
            (bits.peek(), BitReader::PEEKED)
        } else {
            (w, avail)
        };
        if w >> 63 == 0 {
            bits.consume(1);
            return true;
        }
        let mut valid = true;
        let used = if (w >> 62) & 1 == 1 {
            // New window: 5 bits of leading zeros, 6 bits of meaningful bit count (0 means 64).
            self.leading = ((w >> 57) & 0x1f) as u32;
            let mut sig = ((w >> 51) & 0x3f) as u32;
            if sig == 0 {
                sig = 64;
            }
            valid = self.leading + sig <= 64;
            self.trailing = 64u32.saturating_sub(self.leading + sig);
            13
        } else {
            2
        };
        // At least 1: leading + trailing stays under 64 (see above).
        let sig = 64 - self.leading - self.trailing;
        let xor = if used + sig <= avail {
            bits.consume(used + sig);
            (w << used) >> (64 - sig)
        } else {
            bits.consume(used);
            bits.read_bits(sig)
        };
        self.v_bits ^= xor << self.trailing;
        valid
    }
}

/// A delta of deltas of `SIZE` bits after `CONTROL` control bits, from the peeked word `w`.
/// Values above 2^(SIZE-1) are negative, in SIZE-bit two's complement (Prometheus's rule).
#[inline(always)]
fn dod_field<const CONTROL: u32, const SIZE: u32>(w: u64) -> i64 {
    let raw = (w << CONTROL) >> (64 - SIZE);
    let negative = u64::from(raw > (1 << (SIZE - 1)));
    raw.wrapping_sub(negative << SIZE) as i64
}

const WIDE_WINDOW: ChunkError = ChunkError::Corrupt("XOR window wider than 64 bits");

/// Iterates the samples of an XOR chunk; also decodes them in batches into caller-owned slices.
#[derive(Debug, Clone)]
pub struct XorIterator<'a> {
    bits: BitReader<'a>,
    total: u16,
    read: u16,
    state: DecodeState,
    /// Set once a sample is current (after the first `next` or `seek`).
    current: bool,
}

impl<'a> XorIterator<'a> {
    /// Starts iterating `chunk` (its bytes, from the 2-byte sample count on).
    pub fn new(chunk: &'a [u8]) -> Result<Self, ChunkError> {
        let (header, stream) = chunk
            .split_first_chunk::<2>()
            .ok_or(ChunkError::Truncated)?;
        Ok(Self {
            bits: BitReader::new(stream),
            total: u16::from_be_bytes(*header),
            read: 0,
            state: DecodeState::default(),
            current: false,
        })
    }

    /// Number of samples the chunk holds, from its header.
    pub fn num_samples(&self) -> usize {
        usize::from(self.total)
    }

    /// The current sample, after a successful `next_sample` or `seek`.
    pub fn at(&self) -> Option<(i64, f64)> {
        self.current
            .then(|| (self.state.t, f64::from_bits(self.state.v_bits)))
    }

    /// Decodes the next sample.
    #[inline]
    pub fn next_sample(&mut self) -> Result<Option<(i64, f64)>, ChunkError> {
        if self.read == self.total {
            self.current = false;
            return Ok(None);
        }
        let st = &mut self.state;
        let valid = match self.read {
            0 => {
                st.t = self.bits.read_varint()?;
                st.v_bits = self.bits.read_bits(64);
                true
            }
            1 => {
                st.t_delta = self.bits.read_uvarint()?;
                st.t = st.t.wrapping_add(st.t_delta as i64);
                st.read_value(&mut self.bits)
            }
            _ => st.step(&mut self.bits),
        };
        if !valid {
            return Err(WIDE_WINDOW);
        }
        self.bits.check()?;
        self.read += 1;
        self.current = true;
        Ok(self.at())
    }

    /// Advances to the first sample at or after `t`; stays if the current sample qualifies.
    pub fn seek(&mut self, t: i64) -> Result<Option<(i64, f64)>, ChunkError> {
        if self.current && self.state.t >= t {
            return Ok(self.at());
        }
        while let Some((ts, v)) = self.next_sample()? {
            if ts >= t {
                return Ok(Some((ts, v)));
            }
        }
        Ok(None)
    }

    /// Decodes up to `ts.len().min(vs.len())` next samples into the slices; returns how many.
    /// The hot path of queries: no allocation, no per-sample dispatch, state kept in locals.
    pub fn decode_batch(&mut self, ts: &mut [i64], vs: &mut [f64]) -> Result<usize, ChunkError> {
        let n = ts
            .len()
            .min(vs.len())
            .min(usize::from(self.total - self.read));
        let mut done = 0;
        // The first two samples carry varints: the general path.
        while done < n && self.read < 2 {
            let Some((t, v)) = self.next_sample()? else {
                break;
            };
            ts[done] = t;
            vs[done] = v;
            done += 1;
        }
        if done == n {
            return Ok(done);
        }
        let (mut bits, mut st) = (self.bits, self.state);
        let mut valid = true;
        for (t_out, v_out) in ts[done..n].iter_mut().zip(&mut vs[done..n]) {
            valid &= st.step(&mut bits);
            *t_out = st.t;
            *v_out = f64::from_bits(st.v_bits);
        }
        if !valid {
            return Err(WIDE_WINDOW);
        }
        // Bits past the end read as zeros: a truncated chunk shows up here, once per batch.
        bits.check()?;
        (self.bits, self.state) = (bits, st);
        self.read += (n - done) as u16;
        self.current = true;
        Ok(n)
    }
}

impl Iterator for XorIterator<'_> {
    type Item = Result<(i64, f64), ChunkError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_sample().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(bytes: &[u8]) -> Vec<(i64, u64)> {
        XorIterator::new(bytes)
            .expect("header")
            .map(|s| s.map(|(t, v)| (t, v.to_bits())))
            .collect::<Result<_, _>>()
            .expect("decode")
    }

    /// Values that stress the XOR windows: special floats and bit patterns.
    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(f64::NAN),
            Just(f64::from_bits(crate::STALE_NAN_BITS)),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(0.0),
            Just(-0.0),
            Just(f64::MIN_POSITIVE),
            Just(f64::MAX),
            any::<f64>(),
            (0u32..1000).prop_map(f64::from),
            any::<u64>().prop_map(f64::from_bits),
        ]
    }

    /// Timestamp steps: regular scrapes with jitter, and huge and negative jumps.
    fn step() -> impl Strategy<Value = i64> {
        prop_oneof![
            Just(15_000i64),
            (14_000i64..16_000),
            (-9_000i64..9_000),
            (0i64..1 << 20),
            any::<i32>().prop_map(i64::from),
            any::<i64>().prop_map(|x| x >> 2),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn round_trip(start in any::<i64>().prop_map(|x| x >> 2), steps in prop::collection::vec((step(), value()), 1..1500)) {
            let mut t = start;
            let mut samples = Vec::new();
            for (dt, v) in steps {
                samples.push((t, v));
                t = t.wrapping_add(dt);
            }
            let bytes = encode(samples.iter().copied()).expect("encode");
            let back = decode_all(&bytes);
            let want: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
            prop_assert_eq!(back, want);
            // Batches of any size see the same samples.
            let mut it = XorIterator::new(&bytes).expect("header");
            let (mut ts, mut vs) = (vec![0i64; 7], vec![0f64; 7]);
            let mut got = Vec::new();
            loop {
                let n = it.decode_batch(&mut ts, &mut vs).expect("batch");
                if n == 0 { break; }
                got.extend(ts[..n].iter().zip(&vs[..n]).map(|(&t, v)| (t, v.to_bits())));
            }
            prop_assert_eq!(got.len(), samples.len());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(it) = XorIterator::new(&bytes) {
                for s in it { if s.is_err() { break; } }
            }
        }
    }

    #[test]
    fn one_sample_and_stale_markers() {
        let stale = f64::from_bits(crate::STALE_NAN_BITS);
        let bytes = encode([(-5, stale)]).expect("encode");
        assert_eq!(decode_all(&bytes), vec![(-5, crate::STALE_NAN_BITS)]);
        let bytes = encode([(0, 1.0), (15_000, stale), (30_000, 1.0)]).expect("encode");
        assert_eq!(decode_all(&bytes)[1].1, crate::STALE_NAN_BITS);
    }

    /// Prometheus's bstream leaves a zero byte after a whole byte written at a byte boundary:
    /// a one-sample chunk (varint time, 64-bit value) ends with one.
    #[test]
    fn one_sample_chunk_ends_with_prometheus_padding_byte() {
        let bytes = encode([(1000, 1.0)]).expect("encode");
        assert_eq!(
            bytes,
            vec![0, 1, 0xd0, 0x0f, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(decode_all(&bytes), vec![(1000, 1f64.to_bits())]);
    }

    #[test]
    fn empty_chunk_is_two_zero_bytes() {
        assert_eq!(XorEncoder::new().finish(), vec![0, 0]);
        assert_eq!(decode_all(&[0, 0]), vec![]);
    }

    /// Hand-checked bytes: t=1000, v=1.0; t=2000, v=1.0; t=3000, v=2.0.
    #[test]
    fn known_bytes() {
        let bytes = encode([(1000, 1.0), (2000, 1.0), (3000, 2.0)]).expect("encode");
        // count=3 | varint(1000)=d0 0f | 1.0 = 3ff0000000000000 | uvarint(1000)=e8 07 |
        // bit 0 (same value) | dod 0: bit 0 | xor 1.0^2.0 = 0x7ff0..: 1 1, leading 1 (00001),
        // sig 11 (001011), the 11 significant bits.
        let mut want = vec![
            0x00, 0x03, 0xd0, 0x0f, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0xe8, 0x07,
        ];
        // 0 0 1 1 00001 001011 11111111111, then 6 zero bits of padding.
        want.extend_from_slice(&[0b0011_0000, 0b1001_0111, 0b1111_1111, 0b1100_0000]);
        assert_eq!(bytes, want);
    }

    #[test]
    fn seek_moves_forward_only() {
        let bytes = encode((0..10).map(|i| (i * 10, i as f64))).expect("encode");
        let mut it = XorIterator::new(&bytes).expect("header");
        assert_eq!(it.seek(35).expect("seek"), Some((40, 4.0)));
        assert_eq!(it.seek(10).expect("seek back"), Some((40, 4.0)));
        assert_eq!(it.next_sample().expect("next"), Some((50, 5.0)));
        assert_eq!(it.seek(1000).expect("past end"), None);
    }

    #[test]
    fn too_many_samples() {
        let mut enc = XorEncoder::new();
        for i in 0..MAX_SAMPLES as i64 {
            enc.append(i, 0.0).expect("fits");
        }
        assert_eq!(enc.append(1 << 20, 0.0), Err(ChunkError::TooManySamples));
    }
}
