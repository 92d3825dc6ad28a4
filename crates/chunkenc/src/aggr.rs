//! Thanos's AggrChunk: the five aggregates of a downsampled series window (count, sum, min,
//! max, counter), each an XOR chunk, packed in one chunk of encoding 0xff. See FORMAT.md.

use crate::{ChunkError, Encoding};

/// An aggregate of downsampled data, in the order AggrChunk stores them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggrType {
    /// Number of raw samples in the window.
    Count = 0,
    /// Sum of the raw samples.
    Sum = 1,
    /// Smallest raw sample.
    Min = 2,
    /// Largest raw sample.
    Max = 3,
    /// Counter value with resets removed, for rate() and friends.
    Counter = 4,
}

impl AggrType {
    /// All aggregates, in storage order.
    pub const ALL: [AggrType; 5] = [
        AggrType::Count,
        AggrType::Sum,
        AggrType::Min,
        AggrType::Max,
        AggrType::Counter,
    ];
}

/// A borrowed AggrChunk payload (the bytes after the 0xff encoding byte).
#[derive(Clone, Copy, Debug)]
pub struct AggrChunk<'a> {
    parts: [Option<(Encoding, &'a [u8])>; 5],
}

impl<'a> AggrChunk<'a> {
    /// Splits a payload into its aggregates, checking every length against the bytes present.
    pub fn parse(payload: &'a [u8]) -> Result<Self, ChunkError> {
        let mut parts = [None; 5];
        let mut rest = payload;
        for part in &mut parts {
            let (len, used) = uvarint(rest).ok_or(ChunkError::Corrupt("AggrChunk: bad length"))?;
            rest = &rest[used..];
            if len == 0 {
                continue;
            }
            let (&encoding, body) = rest
                .split_first()
                .ok_or(ChunkError::Corrupt("AggrChunk: missing encoding"))?;
            let len = usize::try_from(len).map_err(|_| ChunkError::Truncated)?;
            if body.len() < len {
                return Err(ChunkError::Truncated);
            }
            let encoding = Encoding::try_from(encoding)?;
            if encoding == Encoding::Aggr {
                return Err(ChunkError::Corrupt("AggrChunk: nested aggregate chunk"));
            }
            *part = Some((encoding, &body[..len]));
            rest = &body[len..];
        }
        Ok(Self { parts })
    }

    /// The chunk of one aggregate, if present.
    pub fn get(&self, aggr: AggrType) -> Option<(Encoding, &'a [u8])> {
        self.parts[aggr as usize]
    }
}

/// Thanos's reading of counter aggregates across chunks (its ApplyCounterResets iterator): a
/// running total with resets removed. A sample at the previous sample's timestamp is a chunk's
/// true last raw value: it is not emitted, but the next chunk's first value is compared with
/// it, so a reset between chunks is seen. Samples that go back in time and NaNs are skipped.
#[derive(Clone, Copy, Debug, Default)]
pub struct CounterResets {
    started: bool,
    last_t: i64,
    last_v: f64,
    total: f64,
}

impl CounterResets {
    /// Feeds the next sample; returns the sample to emit (timestamp, total), if any.
    pub fn push(&mut self, t: i64, v: f64) -> Option<(i64, f64)> {
        if v.is_nan() {
            return None;
        }
        if !self.started {
            self.started = true;
            (self.last_t, self.last_v, self.total) = (t, v, v);
            return Some((t, v));
        }
        if t > self.last_t {
            self.total += if v >= self.last_v { v - self.last_v } else { v };
            (self.last_t, self.last_v) = (t, v);
            return Some((t, self.total));
        }
        if t == self.last_t {
            self.last_v = v;
        }
        None
    }

    /// The last raw value seen: a chunk's repeated last sample counts.
    pub fn last_value(&self) -> f64 {
        self.last_v
    }
}

/// Packs the aggregates' XOR chunks into an AggrChunk payload; `None` marks an absent one.
pub fn encode_aggr(parts: [Option<&[u8]>; 5]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().flatten().map(|p| p.len() + 4).sum());
    for part in parts {
        match part {
            // An empty chunk cannot be told from an absent one: both are length 0.
            None | Some([]) => out.push(0),
            Some(data) => {
                put_uvarint(&mut out, data.len() as u64);
                out.push(Encoding::Xor as u8);
                out.extend_from_slice(data);
            }
        }
    }
    out
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Go's `binary.Uvarint`: the value and the bytes used, or None if malformed or truncated.
pub(crate) fn uvarint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        if i == 9 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_absent_aggregates() {
        let count = crate::xor::encode([(300_000, 4.0), (600_000, 5.0)]).expect("count");
        let sum = crate::xor::encode([(300_000, 10.0), (600_000, 12.5)]).expect("sum");
        let payload = encode_aggr([Some(&count), Some(&sum), None, None, Some(&count)]);
        let aggr = AggrChunk::parse(&payload).expect("parse");
        assert_eq!(aggr.get(AggrType::Count), Some((Encoding::Xor, &count[..])));
        assert_eq!(aggr.get(AggrType::Sum), Some((Encoding::Xor, &sum[..])));
        assert_eq!(aggr.get(AggrType::Min), None);
        assert_eq!(aggr.get(AggrType::Max), None);
        assert_eq!(
            aggr.get(AggrType::Counter),
            Some((Encoding::Xor, &count[..]))
        );
    }

    proptest::proptest! {
        #[test]
        fn any_combination_round_trips(
            present in proptest::array::uniform5(proptest::bool::ANY),
            values in proptest::collection::vec(proptest::num::f64::ANY, 1..200),
        ) {
            let chunk = crate::xor::encode(values.iter().enumerate().map(|(i, &v)| (i as i64 * 300_000, v))).expect("encode");
            let parts = present.map(|p| p.then_some(chunk.as_slice()));
            let payload = encode_aggr(parts);
            let aggr = AggrChunk::parse(&payload).expect("parse");
            for (i, kind) in AggrType::ALL.into_iter().enumerate() {
                proptest::prop_assert_eq!(aggr.get(kind), present[i].then_some((Encoding::Xor, chunk.as_slice())));
            }
        }
    }

    #[test]
    fn lengths_are_checked() {
        // Claims 200 bytes of data but has 3.
        assert!(matches!(
            AggrChunk::parse(&[200, 1, 0x01, 1, 2, 3]),
            Err(ChunkError::Corrupt(_) | ChunkError::Truncated)
        ));
        assert!(AggrChunk::parse(&[]).is_err());
        assert!(AggrChunk::parse(&[0xff; 11]).is_err());
    }
}
