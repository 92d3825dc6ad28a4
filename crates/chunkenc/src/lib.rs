//! Chunk encodings shared by the sidecar, the store gateway and the compactor: Prometheus's XOR
//! ("Gorilla") chunk, bit-compatible both ways (every chunk Prometheus writes decodes, and a
//! chunk encoded here from the same samples is byte-identical), and Thanos's AggrChunk for
//! downsampled data. Native-histogram encodings are recognised, so their chunks can be passed
//! through as bytes; decoding them is refused with [`ChunkError::Unsupported`], never a panic.
//!
//! Every decoder takes untrusted bytes: a malformed chunk is an error, and no length read from
//! the input sizes an allocation unchecked. Byte layouts are documented in `FORMAT.md`, beside
//! this crate.
//!
//! ```
//! use rthanos_chunkenc::{xor, Chunk, Encoding};
//! let bytes = xor::encode([(1000, 1.0), (16_000, 2.0), (31_000, 2.5)])?;
//! let chunk = Chunk::new(Encoding::Xor, &bytes);
//! let mut it = chunk.xor_samples()?;
//! assert_eq!(it.seek(16_000)?, Some((16_000, 2.0)));
//! let (mut ts, mut vs) = ([0i64; 8], [0f64; 8]);
//! assert_eq!(it.decode_batch(&mut ts, &mut vs)?, 1);
//! assert_eq!((ts[0], vs[0]), (31_000, 2.5));
//! # Ok::<(), rthanos_chunkenc::ChunkError>(())
//! ```

mod aggr;
mod bstream;
pub mod xor;

pub use aggr::{AggrChunk, AggrType, CounterResets, encode_aggr};
pub use xor::{XorEncoder, XorIterator};

/// The bit pattern of Prometheus's staleness marker, a NaN that means "series ended".
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is Prometheus's staleness marker (not any NaN: only this bit pattern).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Errors of decoding and encoding chunks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The bytes end before the chunk does.
    #[error("chunk truncated")]
    Truncated,
    /// The bytes cannot be a chunk of this encoding.
    #[error("chunk corrupt: {0}")]
    Corrupt(&'static str),
    /// An encoding byte no Prometheus or Thanos version writes.
    #[error("unknown chunk encoding {0}")]
    UnknownEncoding(u8),
    /// A known encoding whose decoding is not supported here.
    #[error("decoding {0} chunks is not supported")]
    Unsupported(&'static str),
    /// More samples than a chunk header can count.
    #[error("a chunk holds at most {} samples", xor::MAX_SAMPLES)]
    TooManySamples,
}

/// Chunk encodings, with the byte Prometheus and Thanos store them under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Encoding {
    /// No encoding (never written in blocks).
    None = 0,
    /// Float samples, XOR-compressed.
    Xor = 1,
    /// Native histograms (Prometheus 2.40+).
    Histogram = 2,
    /// Native float histograms.
    FloatHistogram = 3,
    /// Thanos's downsampled aggregates.
    Aggr = 0xff,
}

impl Encoding {
    /// The name used in errors and dumps.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::None => "none",
            Encoding::Xor => "XOR",
            Encoding::Histogram => "histogram",
            Encoding::FloatHistogram => "float histogram",
            Encoding::Aggr => "aggregate",
        }
    }
}

impl TryFrom<u8> for Encoding {
    type Error = ChunkError;

    fn try_from(b: u8) -> Result<Self, ChunkError> {
        match b {
            0 => Ok(Encoding::None),
            1 => Ok(Encoding::Xor),
            2 => Ok(Encoding::Histogram),
            3 => Ok(Encoding::FloatHistogram),
            0xff => Ok(Encoding::Aggr),
            other => Err(ChunkError::UnknownEncoding(other)),
        }
    }
}

/// A chunk as stored: its encoding and its bytes, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// How `data` is encoded.
    pub encoding: Encoding,
    /// The encoded bytes.
    pub data: &'a [u8],
}

impl<'a> Chunk<'a> {
    /// A chunk of `encoding` over `data`.
    pub fn new(encoding: Encoding, data: &'a [u8]) -> Self {
        Self { encoding, data }
    }

    /// The float samples of an XOR chunk.
    pub fn xor_samples(&self) -> Result<XorIterator<'a>, ChunkError> {
        match self.encoding {
            Encoding::Xor => XorIterator::new(self.data),
            other => Err(ChunkError::Unsupported(other.name())),
        }
    }

    /// The aggregates of a downsampled chunk.
    pub fn aggregates(&self) -> Result<AggrChunk<'a>, ChunkError> {
        match self.encoding {
            Encoding::Aggr => AggrChunk::parse(self.data),
            other => Err(ChunkError::Unsupported(other.name())),
        }
    }

    /// Number of samples, from the chunk header where the encoding has one.
    pub fn num_samples(&self) -> Result<usize, ChunkError> {
        match self.encoding {
            Encoding::Xor | Encoding::Histogram | Encoding::FloatHistogram => {
                // All three start with the same 2-byte big-endian sample count.
                let header = self.data.first_chunk::<2>().ok_or(ChunkError::Truncated)?;
                Ok(usize::from(u16::from_be_bytes(*header)))
            }
            Encoding::Aggr => {
                let count = self
                    .aggregates()?
                    .get(AggrType::Count)
                    .ok_or(ChunkError::Corrupt("AggrChunk without count"))?;
                Chunk::new(count.0, count.1).num_samples()
            }
            Encoding::None => Err(ChunkError::Unsupported(Encoding::None.name())),
        }
    }
}
