//! The log's records, as Prometheus 2.42's `tsdb/record` encodes them: a type byte, then
//! series (reference, labels), samples (reference and timestamp as deltas from the first
//! sample's) or tombstones (reference, time interval). Other types (exemplars, metadata,
//! histograms, written by a Prometheus) are recognised and passed over.

use rthanos_model::{Label, Labels};

use crate::encoding::{Decbuf, put_uvarint, put_uvarint_str, put_varint};

/// Record type: series.
pub const SERIES: u8 = 1;
/// Record type: float samples.
pub const SAMPLES: u8 = 2;
/// Record type: tombstones.
pub const TOMBSTONES: u8 = 3;

/// A series and the reference its samples use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefSeries {
    /// The head's series reference.
    pub reference: u64,
    /// Its labels.
    pub labels: Labels,
}

/// A float sample of a series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefSample {
    /// The series reference.
    pub reference: u64,
    /// Timestamp, ms.
    pub t: i64,
    /// Value.
    pub v: f64,
}

/// Samples of a series deleted in `[min_time, max_time]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefStone {
    /// The series reference.
    pub reference: u64,
    /// First deleted timestamp.
    pub min_time: i64,
    /// Last deleted timestamp.
    pub max_time: i64,
}

/// A decoded record.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// New series.
    Series(Vec<RefSeries>),
    /// Samples of known series.
    Samples(Vec<RefSample>),
    /// Deletions.
    Tombstones(Vec<RefStone>),
    /// A type this log does not use (exemplars, metadata, histograms): its type byte.
    Other(u8),
}

/// Appends a series record to `out`.
pub fn encode_series(series: &[RefSeries], out: &mut Vec<u8>) {
    out.push(SERIES);
    for s in series {
        out.extend_from_slice(&s.reference.to_be_bytes());
        put_uvarint(out, s.labels.len() as u64);
        for label in &s.labels {
            put_uvarint_str(out, &label.name);
            put_uvarint_str(out, &label.value);
        }
    }
}

/// Appends a samples record to `out`.
pub fn encode_samples(samples: &[RefSample], out: &mut Vec<u8>) {
    out.push(SAMPLES);
    let Some(first) = samples.first() else {
        return;
    };
    out.extend_from_slice(&first.reference.to_be_bytes());
    out.extend_from_slice(&first.t.to_be_bytes());
    for s in samples {
        put_varint(
            out,
            (s.reference as i64).wrapping_sub(first.reference as i64),
        );
        put_varint(out, s.t.wrapping_sub(first.t));
        out.extend_from_slice(&s.v.to_bits().to_be_bytes());
    }
}

/// Appends a tombstones record to `out`.
pub fn encode_tombstones(stones: &[RefStone], out: &mut Vec<u8>) {
    out.push(TOMBSTONES);
    for s in stones {
        out.extend_from_slice(&s.reference.to_be_bytes());
        put_varint(out, s.min_time);
        put_varint(out, s.max_time);
    }
}

/// Decodes a record.
///
/// # Errors
/// The bytes are not a record of the type they claim (the reason, for the log's corruption
/// error).
pub fn decode(record: &[u8]) -> Result<Record, String> {
    let Some((&kind, body)) = record.split_first() else {
        return Err("empty record".into());
    };
    let mut d = Decbuf::new(body, "WAL record");
    let err = |e: crate::TsdbError| e.to_string();
    match kind {
        SERIES => {
            let mut out = Vec::new();
            while d.remaining() > 0 {
                let reference = d.be64().map_err(err)?;
                let n = d.uvarint().map_err(err)?;
                // Each label takes two bytes at least: a count past that is corrupt.
                if n > d.remaining() as u64 / 2 {
                    return Err(format!("series {reference}: {n} labels claimed"));
                }
                let mut labels = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let name = d.uvarint_str().map_err(err)?.to_string();
                    let value = d.uvarint_str().map_err(err)?.to_string();
                    labels.push(Label { name, value });
                }
                if !labels.windows(2).all(|w| w[0].name < w[1].name) {
                    return Err(format!("series {reference}: labels not sorted"));
                }
                out.push(RefSeries {
                    reference,
                    labels: Labels::from_sorted(labels),
                });
            }
            Ok(Record::Series(out))
        }
        SAMPLES => {
            let mut out = Vec::new();
            if d.remaining() == 0 {
                return Ok(Record::Samples(out));
            }
            let base_ref = d.be64().map_err(err)? as i64;
            let base_t = d.be64().map_err(err)? as i64;
            while d.remaining() > 0 {
                let reference = base_ref.wrapping_add(d.varint().map_err(err)?) as u64;
                let t = base_t.wrapping_add(d.varint().map_err(err)?);
                let v = f64::from_bits(d.be64().map_err(err)?);
                out.push(RefSample { reference, t, v });
            }
            Ok(Record::Samples(out))
        }
        TOMBSTONES => {
            let mut out = Vec::new();
            while d.remaining() > 0 {
                out.push(RefStone {
                    reference: d.be64().map_err(err)?,
                    min_time: d.varint().map_err(err)?,
                    max_time: d.varint().map_err(err)?,
                });
            }
            Ok(Record::Tombstones(out))
        }
        // Exemplars, mmap markers, metadata, histogram and float histogram samples.
        4..=8 => Ok(Record::Other(kind)),
        other => Err(format!("unknown record type {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let series = vec![
            RefSeries {
                reference: 1,
                labels: Labels::from_pairs([("__name__", "up"), ("job", "a")]),
            },
            RefSeries {
                reference: 7,
                labels: Labels::default(),
            },
        ];
        let samples = vec![
            RefSample {
                reference: 7,
                t: 1000,
                v: 1.5,
            },
            RefSample {
                reference: 1,
                t: 900,
                v: f64::from_bits(rthanos_chunkenc::STALE_NAN_BITS),
            },
        ];
        let stones = vec![RefStone {
            reference: 1,
            min_time: -5,
            max_time: 10,
        }];
        let mut out = Vec::new();
        encode_series(&series, &mut out);
        assert_eq!(decode(&out), Ok(Record::Series(series)));
        out.clear();
        encode_samples(&samples, &mut out);
        let Ok(Record::Samples(back)) = decode(&out) else {
            panic!("samples");
        };
        assert_eq!(back.len(), 2);
        assert_eq!((back[0].reference, back[0].t, back[0].v), (7, 1000, 1.5));
        assert_eq!(back[1].v.to_bits(), rthanos_chunkenc::STALE_NAN_BITS);
        out.clear();
        encode_tombstones(&stones, &mut out);
        assert_eq!(decode(&out), Ok(Record::Tombstones(stones)));
        out.clear();
        encode_samples(&[], &mut out);
        assert_eq!(decode(&out), Ok(Record::Samples(Vec::new())));
    }

    /// The bytes Prometheus 2.42's encoder gives for one sample of series 3 at t=5, v=2:
    /// type, ref (8 bytes), t (8 bytes), then varint deltas 0, 0 and the value's bits.
    #[test]
    fn samples_record_is_prometheus_bytes() {
        let mut out = Vec::new();
        encode_samples(
            &[RefSample {
                reference: 3,
                t: 5,
                v: 2.0,
            }],
            &mut out,
        );
        let mut want = vec![2u8];
        want.extend_from_slice(&3u64.to_be_bytes());
        want.extend_from_slice(&5i64.to_be_bytes());
        want.extend_from_slice(&[0, 0]);
        want.extend_from_slice(&2f64.to_bits().to_be_bytes());
        assert_eq!(out, want);
    }

    #[test]
    fn corrupt_records_are_errors() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[99]).is_err());
        assert!(decode(&[SERIES, 0, 0, 0]).is_err());
        let mut huge = vec![SERIES];
        huge.extend_from_slice(&1u64.to_be_bytes());
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(decode(&huge).is_err());
    }
}
