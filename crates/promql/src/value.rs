//! What queries return and what storage holds: samples, series, and query values.

use std::sync::Arc;

use rthanos_model::Labels;

/// Prometheus's staleness marker: a NaN with this exact bit pattern ends a series.
pub(crate) const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is the staleness marker.
pub(crate) fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One sample: time in ms, value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Unix milliseconds.
    pub t: i64,
    /// Value.
    pub v: f64,
}

/// A series: labels and samples in time order. A store may hand over XOR chunks, or samples
/// to compute later, instead of (or besides) decoded samples; the engine decodes or computes
/// them only when it evaluates the series, so a query holds encoded data until then.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Labels, sorted by name.
    pub labels: Labels,
    /// Samples, in increasing time order.
    pub samples: Vec<Sample>,
    /// Encoded samples, in time order (may overlap each other: a sample seen twice counts once).
    pub chunks: Vec<XorChunk>,
    /// Samples computed when the series is evaluated (the querier's merge of HA replicas).
    pub deferred: Option<DeferredSamples>,
}

/// Samples computed on demand, in time order, from data the store keeps encoded.
#[derive(Clone)]
pub struct DeferredSamples(Arc<DeferredFn>, usize);

type DeferredFn = dyn Fn(i64) -> Result<Vec<Sample>, String> + Send + Sync;

impl DeferredSamples {
    /// Samples that `compute` makes, each time they are needed. `compute(max_t)` makes at
    /// least every sample up to `max_t` (those after it may be left out).
    pub fn new(
        compute: impl Fn(i64) -> Result<Vec<Sample>, String> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(compute), 0)
    }

    /// The same, holding `bytes` of encoded data (what its computation reads).
    pub fn with_encoded_bytes(self, bytes: usize) -> Self {
        Self(self.0, bytes)
    }

    /// The encoded data its computation reads, in bytes, as given.
    pub fn encoded_bytes(&self) -> usize {
        self.1
    }

    /// The samples.
    pub fn compute(&self) -> Result<Vec<Sample>, String> {
        (self.0)(i64::MAX)
    }

    /// The samples up to `max_t` (and maybe some after).
    pub fn compute_until(&self, max_t: i64) -> Result<Vec<Sample>, String> {
        (self.0)(max_t)
    }
}

impl std::fmt::Debug for DeferredSamples {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeferredSamples")
    }
}

/// The same computation, not equal samples: comparing would mean computing both.
impl PartialEq for DeferredSamples {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Series {
    /// All samples: the decoded ones, those of the chunks and the deferred ones, in time
    /// order, a sample repeated by overlapping chunks kept once.
    pub fn all_samples(&self) -> Result<std::borrow::Cow<'_, [Sample]>, String> {
        if self.chunks.is_empty() && self.deferred.is_none() {
            return Ok(std::borrow::Cow::Borrowed(&self.samples));
        }
        let mut out = match &self.deferred {
            Some(deferred) => deferred.compute()?,
            None => Vec::new(),
        };
        out.reserve(self.samples.len() + self.chunks.iter().map(XorChunk::samples).sum::<usize>());
        out.extend_from_slice(&self.samples);
        for chunk in &self.chunks {
            chunk.decode_into(&mut out)?;
        }
        sort_unique(&mut out);
        Ok(std::borrow::Cow::Owned(out))
    }

    /// The data this series holds, in bytes (decoded samples at 16 bytes each, chunks and
    /// deferred data as encoded): what evaluating it costs, roughly.
    pub fn encoded_bytes(&self) -> usize {
        self.samples.len() * 16
            + self.chunks.iter().map(|c| c.data.len()).sum::<usize>()
            + self
                .deferred
                .as_ref()
                .map_or(0, DeferredSamples::encoded_bytes)
    }

    /// The samples in [`min_t`, `max_t`], as [`Series::all_samples`]; a chunk is decoded only
    /// as far as `max_t` (an instant query's selector reads a chunk's first part only) and
    /// samples before `min_t` are not kept.
    pub fn samples_between(
        &self,
        min_t: i64,
        max_t: i64,
    ) -> Result<std::borrow::Cow<'_, [Sample]>, String> {
        let within = |samples: &[Sample]| {
            let from = samples.partition_point(|s| s.t < min_t);
            let to = from + samples[from..].partition_point(|s| s.t <= max_t);
            from..to
        };
        if self.chunks.is_empty() && self.deferred.is_none() {
            return Ok(std::borrow::Cow::Borrowed(
                &self.samples[within(&self.samples)],
            ));
        }
        let mut out = match &self.deferred {
            Some(deferred) => {
                let mut computed = deferred.compute_until(max_t)?;
                let range = within(&computed);
                computed.truncate(range.end);
                computed.drain(..range.start);
                computed
            }
            None => Vec::new(),
        };
        out.extend_from_slice(&self.samples[within(&self.samples)]);
        for chunk in &self.chunks {
            chunk.decode_between(min_t, max_t, &mut out)?;
        }
        sort_unique(&mut out);
        Ok(std::borrow::Cow::Owned(out))
    }

    /// A series of decoded samples.
    pub fn new(labels: Labels, samples: Vec<Sample>) -> Self {
        Self {
            labels,
            samples,
            chunks: Vec::new(),
            deferred: None,
        }
    }
}

/// A Prometheus XOR chunk as a store keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct XorChunk {
    /// The chunk's bytes (the 2-byte sample count, then the bit stream). A copy: sharing the
    /// gRPC frame's buffer instead kept whole frames alive until their series were
    /// evaluated, and raised the querier's peak memory by a third (docs/performance.md).
    pub data: Vec<u8>,
}

impl XorChunk {
    /// The number of samples, from the chunk's header.
    pub fn samples(&self) -> usize {
        self.data
            .get(..2)
            .map_or(0, |h| usize::from(u16::from_be_bytes([h[0], h[1]])))
    }

    /// The samples of `chunks` in time order, a sample repeated by overlapping chunks kept
    /// once.
    pub fn decode_all(chunks: &[XorChunk]) -> Result<Vec<Sample>, String> {
        let mut out = Vec::with_capacity(chunks.iter().map(XorChunk::samples).sum());
        for chunk in chunks {
            chunk.decode_into(&mut out)?;
        }
        sort_unique(&mut out);
        Ok(out)
    }

    /// As [`XorChunk::decode_all`], the samples up to `max_t` only, each chunk decoded no
    /// further than its first sample after it.
    pub fn decode_all_until(chunks: &[XorChunk], max_t: i64) -> Result<Vec<Sample>, String> {
        if max_t == i64::MAX {
            return Self::decode_all(chunks);
        }
        let mut out = Vec::new();
        for chunk in chunks {
            chunk.decode_between(i64::MIN, max_t, &mut out)?;
        }
        sort_unique(&mut out);
        Ok(out)
    }

    /// Appends the chunk's samples in [`min_t`, `max_t`] to `out`, decoding no further than
    /// the first sample after `max_t` (in batches of 32, so that little is decoded past it).
    pub fn decode_between(
        &self,
        min_t: i64,
        max_t: i64,
        out: &mut Vec<Sample>,
    ) -> Result<(), String> {
        self.decode_batches::<32>(min_t, max_t, out)
    }

    /// Appends the chunk's samples to `out`.
    pub fn decode_into(&self, out: &mut Vec<Sample>) -> Result<(), String> {
        self.decode_batches::<128>(i64::MIN, i64::MAX, out)
    }

    /// Decodes `N` samples at a time, keeping those in [`min_t`, `max_t`], until past `max_t`.
    fn decode_batches<const N: usize>(
        &self,
        min_t: i64,
        max_t: i64,
        out: &mut Vec<Sample>,
    ) -> Result<(), String> {
        let mut it = rthanos_chunkenc::XorIterator::new(&self.data).map_err(|e| e.to_string())?;
        let (mut ts, mut vs) = ([0i64; N], [0f64; N]);
        loop {
            let n = it
                .decode_batch(&mut ts, &mut vs)
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Ok(());
            }
            let from = ts[..n].partition_point(|&t| t < min_t);
            let to = from + ts[from..n].partition_point(|&t| t <= max_t);
            out.extend(
                ts[from..to]
                    .iter()
                    .zip(&vs[from..to])
                    .map(|(&t, &v)| Sample { t, v }),
            );
            if to < n {
                return Ok(());
            }
        }
    }
}

/// Sorts samples by time, keeping one of each time, unless they are in order already.
fn sort_unique(samples: &mut Vec<Sample>) {
    if samples.windows(2).any(|w| w[0].t >= w[1].t) {
        samples.sort_by_key(|s| s.t);
        samples.dedup_by_key(|s| s.t);
    }
}

/// An element of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct InstantSample {
    /// Labels.
    pub labels: Labels,
    /// Evaluation time (ms).
    pub t: i64,
    /// Value.
    pub v: f64,
}

/// The result of a query.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A number at a time.
    Scalar {
        /// Time (ms).
        t: i64,
        /// Value.
        v: f64,
    },
    /// A string at a time.
    String {
        /// Time (ms).
        t: i64,
        /// Value.
        s: String,
    },
    /// An instant vector (instant queries).
    Vector(Vec<InstantSample>),
    /// A range vector: series of points (range queries, or an instant query of a range).
    Matrix(Vec<Series>),
}

/// A value as Prometheus's API prints it (`strconv.FormatFloat(v, 'f', -1, 64)`, with `+Inf`,
/// `-Inf` and `NaN`).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Rust's Display is the shortest representation that reads back, without exponent,
        // as Go's 'f' format with precision -1.
        let s = format!("{v}");
        if s == "-0" { "-0".into() } else { s }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_between_keeps_the_range_of_every_source() {
        let chunk = |from: i64, to: i64| XorChunk {
            data: rthanos_chunkenc::xor::encode((from..to).map(|k| (k * 15_000, k as f64)))
                .expect("encode"),
        };
        // Two overlapping chunks of 0..100 and 50..150 (times k × 15 s), plus a sample.
        let series = Series {
            labels: Labels::default(),
            samples: vec![Sample {
                t: 75 * 15_000,
                v: 75.0,
            }],
            chunks: vec![chunk(0, 100), chunk(50, 150)],
            deferred: None,
        };
        let (min_t, max_t) = (40 * 15_000, 60 * 15_000 + 1);
        let got = series.samples_between(min_t, max_t).expect("decode");
        let want: Vec<Sample> = (40..=60)
            .map(|k| Sample {
                t: k * 15_000,
                v: k as f64,
            })
            .collect();
        assert_eq!(got.as_ref(), want.as_slice());
        let all = series.all_samples().expect("decode");
        assert_eq!(all.len(), 150);
        let within: Vec<Sample> = all
            .iter()
            .filter(|s| (min_t..=max_t).contains(&s.t))
            .copied()
            .collect();
        assert_eq!(within, want);
        // Decoded samples alone are borrowed, cut to the range.
        let decoded = Series::new(Labels::default(), want);
        assert_eq!(
            decoded
                .samples_between(45 * 15_000, 50 * 15_000)
                .expect("slice")
                .len(),
            6
        );
    }
}
