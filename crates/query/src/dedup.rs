//! Deduplication of HA replicas, with Thanos's penalty algorithm (pkg/dedup).
//!
//! Replicas of one series (equal labels once the replica labels are dropped) are merged into
//! one stream of samples. The merge follows one replica. It switches to another only when that
//! one has a sample more than a penalty past the last sample taken. The penalty is twice the
//! last gap, or 5 s before any sample is taken. So a gap in one replica is filled from the
//! other, and sampling never becomes denser than one replica's. A sample or two next to a
//! switch may be skipped; Thanos does the same. With more than two replicas the merge folds
//! pairwise: the first two, then that result with the third, and so on.
//!
//! For counters (queries using `rate` or `increase`), a replica switched to may be behind the
//! one left. Its values are then raised by the difference, so a switch never looks like a
//! counter reset.

use rthanos_model::Labels;
use rthanos_promql::{DeferredSamples, Sample, Series, XorChunk};

/// Penalty before any sample is taken, in ms (scrape intervals are seconds).
const INITIAL_PENALTY: i64 = 5000;

/// A replica's samples being merged: a cursor, and for counters the amount added to its
/// values.
struct Cursor<'a> {
    samples: &'a [Sample],
    at: usize,
    adjust: f64,
}

impl Cursor<'_> {
    /// The first sample at or after `t`, moving forward only (Prometheus iterator `Seek`).
    fn seek(&mut self, t: i64) -> Option<Sample> {
        while self.at < self.samples.len() && self.samples[self.at].t < t {
            self.at += 1;
        }
        self.samples.get(self.at).map(|s| Sample {
            t: s.t,
            v: s.v + self.adjust,
        })
    }

    /// For counters: a replica switched to whose value is below the last value taken is
    /// raised to it.
    fn adjust_to(&mut self, last: f64) {
        if let Some(s) = self.samples.get(self.at) {
            let v = s.v + self.adjust;
            if last > v {
                self.adjust += last - v;
            }
        }
    }
}

/// Merges two replicas of a series.
pub fn merge_pair(a: &[Sample], b: &[Sample], counter: bool) -> Vec<Sample> {
    let mut a = Cursor {
        samples: a,
        at: 0,
        adjust: 0.0,
    };
    let mut b = Cursor {
        samples: b,
        at: 0,
        adjust: 0.0,
    };
    let mut out = Vec::with_capacity(a.samples.len().max(b.samples.len()));
    let (mut pen_a, mut pen_b) = (0i64, 0i64);
    let mut last_t = i64::MIN;
    let mut using_a: Option<bool> = None;
    loop {
        let next = |pen: i64| last_t.saturating_add(1).saturating_add(pen);
        let sa = a.seek(next(pen_a));
        let sb = b.seek(next(pen_b));
        let take_a = match (sa, sb) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(x), Some(y)) => x.t <= y.t,
        };
        // Switching replicas: for counters, continue from the value left.
        if counter && using_a.is_some_and(|was_a| was_a != take_a) {
            if let Some(last) = out.last().map(|s: &Sample| s.v) {
                if take_a {
                    a.adjust_to(last);
                } else {
                    b.adjust_to(last);
                }
            }
        }
        let taken = if take_a {
            a.seek(next(pen_a))
        } else {
            b.seek(next(pen_b))
        };
        let Some(taken) = taken else { break };
        // The replica not taken waits twice the last gap (5 s before any sample), whether or
        // not it has samples left: Thanos's rule, which may drop a replica's last samples.
        let penalty = if last_t == i64::MIN {
            INITIAL_PENALTY
        } else {
            2 * (taken.t - last_t)
        };
        if take_a {
            pen_a = 0;
            pen_b = penalty;
        } else {
            pen_b = 0;
            pen_a = penalty;
        }
        last_t = taken.t;
        using_a = Some(take_a);
        out.push(taken);
    }
    out
}

/// Merges any number of replicas, pairwise in order.
pub fn merge_replicas(replicas: &[&[Sample]], counter: bool) -> Vec<Sample> {
    let Some((first, rest)) = replicas.split_first() else {
        return Vec::new();
    };
    let mut merged = first.to_vec();
    for other in rest {
        merged = merge_pair(&merged, other, counter);
    }
    merged
}

/// One replica's data for a series: raw chunks, or samples read from downsampled aggregates.
pub(crate) enum Replica {
    Raw(Vec<XorChunk>),
    Decoded(Vec<Sample>),
}

impl Replica {
    /// Its samples up to `max_t` (decoded ones: all of them).
    fn samples(&self, max_t: i64) -> Result<std::borrow::Cow<'_, [Sample]>, String> {
        match self {
            Replica::Decoded(samples) => Ok(std::borrow::Cow::Borrowed(samples)),
            Replica::Raw(chunks) => {
                XorChunk::decode_all_until(chunks, max_t).map(std::borrow::Cow::Owned)
            }
        }
    }
}

/// The series of one or more replicas. Replicas are merged only when the engine evaluates
/// the series: until then the query holds their chunks (about 1.5 bytes a sample) instead
/// of merged samples (16 bytes).
pub(crate) fn deduplicated(labels: Labels, mut replicas: Vec<Replica>, counter: bool) -> Series {
    let mut series = Series::new(labels, Vec::new());
    if replicas.len() == 1 {
        match replicas.pop() {
            Some(Replica::Raw(chunks)) => series.chunks = chunks,
            Some(Replica::Decoded(samples)) => series.samples = samples,
            None => {}
        }
        return series;
    }
    let bytes = replicas
        .iter()
        .map(|r| match r {
            Replica::Raw(chunks) => chunks.iter().map(|c| c.data.len()).sum(),
            Replica::Decoded(samples) => samples.len() * 16,
        })
        .sum();
    series.deferred = Some(
        // Up to `max_t` only: the penalty algorithm looks forward, never back, so the merged
        // samples up to `max_t` are the same whatever follows (a candidate after `max_t` is
        // never taken before one at or before it).
        DeferredSamples::new(move |max_t| {
            let decoded = replicas
                .iter()
                .map(|r| r.samples(max_t))
                .collect::<Result<Vec<_>, _>>()?;
            let views: Vec<&[Sample]> = decoded.iter().map(AsRef::as_ref).collect();
            Ok(merge_replicas(&views, counter))
        })
        .with_encoded_bytes(bytes),
    );
    series
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(i64, f64)]) -> Vec<Sample> {
        points.iter().map(|&(t, v)| Sample { t, v }).collect()
    }

    #[test]
    fn a_merge_of_replicas_cut_at_a_time_is_the_full_merge_up_to_that_time() {
        // Two replicas with gaps at different places, 15 s scrapes 3 s apart.
        let mut a = scrape(0, 3_600_000, 15_000, 0);
        a.retain(|s| !(600_000..900_000).contains(&s.t));
        let mut b = scrape(0, 3_600_000, 15_000, 3_000);
        b.retain(|s| !(1_800_000..2_000_000).contains(&s.t));
        for counter in [false, true] {
            let full = merge_pair(&a, &b, counter);
            for max_t in [0, 7_000, 600_000, 612_000, 899_999, 1_803_000, 3_599_999] {
                let cut = |r: &[Sample]| -> Vec<Sample> {
                    r.iter().filter(|s| s.t <= max_t).copied().collect()
                };
                let merged = merge_pair(&cut(&a), &cut(&b), counter);
                let prefix: Vec<Sample> = full.iter().filter(|s| s.t <= max_t).copied().collect();
                assert_eq!(merged, prefix, "counter {counter}, cut at {max_t}");
            }
        }
    }

    fn scrape(from: i64, to: i64, every: i64, offset: i64) -> Vec<Sample> {
        (from..to)
            .step_by(every as usize)
            .map(|t| Sample {
                t: t + offset,
                v: t as f64,
            })
            .collect()
    }

    #[test]
    fn identical_replicas_give_one() {
        let a = scrape(0, 300_000, 15_000, 0);
        assert_eq!(merge_pair(&a, &a, false), a);
    }

    #[test]
    fn a_gap_in_one_replica_is_filled_from_the_other_without_doubling() {
        // A misses 100s..200s; B scrapes 3s later than A all along.
        let mut a = scrape(0, 100_000, 15_000, 0);
        a.extend(scrape(200_000, 400_000, 15_000, 0));
        let b = scrape(0, 400_000, 15_000, 3_000);
        let merged = merge_pair(&a, &b, false);
        // Sampling never gets denser than one replica's (15 s), give or take the offset.
        for w in merged.windows(2) {
            assert!(w[1].t - w[0].t >= 12_000, "{:?}", w);
        }
        // The gap is covered: no hole longer than the penalty (two scrapes) and the offset.
        for w in merged.windows(2) {
            assert!(w[1].t - w[0].t <= 33_000, "{:?}", w);
        }
        assert!(merged.iter().any(|s| s.t > 100_000 && s.t < 200_000));
        // It stays on B after the switch (A is penalised), as Thanos does.
        let after: Vec<i64> = merged.iter().map(|s| s.t % 15_000).collect();
        assert!(after.iter().rev().take(5).all(|&r| r == 3_000), "{after:?}");
    }

    #[test]
    fn penalties_as_thanos_applies_them() {
        // B's first sample is 4 s after A's: skipped (under the 5 s initial penalty). After
        // A's sample at 30 s, B must wait 2 × 30 s: its sample at 60 s is dropped too, as
        // Thanos drops it.
        let a = series(&[(0, 1.0), (30_000, 2.0)]);
        let b = series(&[(4_000, 10.0), (60_000, 20.0), (95_000, 30.0)]);
        let merged = merge_pair(&a, &b, false);
        assert_eq!(
            merged.iter().map(|s| s.t).collect::<Vec<_>>(),
            [0, 30_000, 95_000]
        );
    }

    #[test]
    fn counters_do_not_reset_at_a_switch() {
        // A stops at 40; B, behind, continues at 38, 39.
        let a = series(&[(0, 10.0), (15_000, 20.0), (30_000, 40.0)]);
        let b = series(&[(1_000, 9.0), (16_000, 19.0), (61_000, 38.0), (76_000, 39.0)]);
        let merged = merge_pair(&a, &b, true);
        for w in merged.windows(2) {
            assert!(w[1].v >= w[0].v, "a switch looks like a reset: {merged:?}");
        }
        let plain = merge_pair(&a, &b, false);
        assert!(plain.windows(2).any(|w| w[1].v < w[0].v));
    }

    fn xor(samples: &[Sample]) -> XorChunk {
        let mut encoder = rthanos_chunkenc::XorEncoder::new();
        for s in samples {
            encoder.append(s.t, s.v).expect("append");
        }
        XorChunk {
            data: encoder.bytes(),
        }
    }

    #[test]
    fn replicas_merge_when_the_series_is_evaluated() {
        let mut a = scrape(0, 100_000, 15_000, 0);
        a.extend(scrape(200_000, 400_000, 15_000, 0));
        let b = scrape(0, 400_000, 15_000, 3_000);
        let (a_chunks, b_chunks) = (
            vec![xor(&a[..4]), xor(&a[4..])],
            vec![xor(&b[..10]), xor(&b[10..])],
        );
        // Held as chunks; the merge equals the eager one, as often as it is asked for.
        let merged = deduplicated(
            Labels::default(),
            vec![Replica::Raw(a_chunks.clone()), Replica::Raw(b_chunks)],
            true,
        );
        assert!(merged.samples.is_empty() && merged.chunks.is_empty());
        let expected = merge_pair(&a, &b, true);
        for _ in 0..2 {
            assert_eq!(merged.all_samples().expect("merge").as_ref(), expected);
        }
        // Raw and decoded (downsampled) replicas together.
        let mixed = deduplicated(
            Labels::default(),
            vec![Replica::Raw(a_chunks.clone()), Replica::Decoded(b.clone())],
            false,
        );
        assert_eq!(
            mixed.all_samples().expect("merge").as_ref(),
            merge_pair(&a, &b, false)
        );
        // One replica: its chunks as they came, nothing deferred.
        let single = deduplicated(
            Labels::default(),
            vec![Replica::Raw(a_chunks.clone())],
            false,
        );
        assert_eq!(single.chunks, a_chunks);
        assert!(single.deferred.is_none());
        // A corrupt chunk is the query's error, not a panic.
        let corrupt = deduplicated(
            Labels::default(),
            vec![
                Replica::Raw(vec![XorChunk {
                    data: vec![0, 9, 1],
                }]),
                Replica::Decoded(b),
            ],
            false,
        );
        assert!(corrupt.all_samples().is_err());
    }

    #[test]
    fn three_replicas_fold_pairwise() {
        let a = scrape(0, 60_000, 15_000, 0);
        let b = scrape(60_000, 120_000, 15_000, 1_000);
        let c = scrape(120_000, 180_000, 15_000, 2_000);
        let merged = merge_replicas(&[&a, &b, &c], false);
        assert!(merged.first().is_some_and(|s| s.t == 0));
        assert!(merged.last().is_some_and(|s| s.t > 160_000));
        assert!(merge_replicas(&[], false).is_empty());
    }
}
