//! Reading downsampled series as Thanos's querier does. A downsampled chunk carries aggregates
//! (count, sum, min, max, counter) per window instead of raw samples; which one stands for the
//! series depends on the PromQL function around the selector:
//!
//! - `min`, `min_*` → min; `max`, `max_*` → max; `count`, `count_*` → count; `sum_*` → sum;
//! - `rate`, `increase`, `irate`, `resets` → counter, read with its resets removed
//!   (the counter chunks repeat each chunk's last raw value at its last timestamp, so a reset
//!   between two chunks is seen);
//! - anything else (and `sum`, which wants the samples themselves) → sum / count per window,
//!   the average.
//!
//! A chunk that has raw data is read as raw whatever the function.

use rthanos_promql::Sample;
use rthanos_promql::{Aggregation, Function, SelectFunc};
use rthanos_storeapi::thanos::{Aggr, AggrChunk, Chunk};

/// The aggregates to ask the stores for, given the function or aggregation around the
/// selector (Thanos's `aggrsFromFunc`).
pub fn aggregates_for(func: Option<SelectFunc>) -> Vec<Aggr> {
    match func {
        Some(SelectFunc::Aggregate(Aggregation::Min)) => vec![Aggr::Min],
        Some(SelectFunc::Aggregate(Aggregation::Max)) => vec![Aggr::Max],
        Some(SelectFunc::Aggregate(Aggregation::Count | Aggregation::CountValues)) => {
            vec![Aggr::Count]
        }
        Some(SelectFunc::Call(f)) => match f {
            Function::MinOverTime => vec![Aggr::Min],
            Function::MaxOverTime => vec![Aggr::Max],
            Function::CountOverTime => vec![Aggr::Count],
            Function::SumOverTime => vec![Aggr::Sum],
            f if f.is_counter() => vec![Aggr::Counter],
            _ => vec![Aggr::Count, Aggr::Sum],
        },
        _ => vec![Aggr::Count, Aggr::Sum],
    }
}

/// Whether every chunk has raw data (the series is not downsampled).
pub fn all_raw(chunks: &[AggrChunk]) -> bool {
    chunks.iter().all(|c| c.raw.is_some())
}

fn decode(chunk: &Chunk) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    rthanos_promql::XorChunk {
        data: chunk.data.to_vec(),
    }
    .decode_into(&mut out)?;
    Ok(out)
}

/// The chunk standing for `aggr`: its raw data if it has some, else that aggregate.
fn pick(chunk: &AggrChunk, aggr: Aggr) -> Option<&Chunk> {
    chunk.raw.as_ref().or(match aggr {
        Aggr::Count => chunk.count.as_ref(),
        Aggr::Sum => chunk.sum.as_ref(),
        Aggr::Min => chunk.min.as_ref(),
        Aggr::Max => chunk.max.as_ref(),
        Aggr::Counter => chunk.counter.as_ref(),
        Aggr::Raw => None,
    })
}

/// The samples of a series' chunks (sorted by time) read for `aggregates`, as
/// [`aggregates_for`] chose them.
pub fn samples(chunks: &[AggrChunk], aggregates: &[Aggr]) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    match aggregates {
        [Aggr::Counter] => {
            let mut counter = rthanos_chunkenc::CounterResets::default();
            for chunk in chunks {
                if let Some(c) = pick(chunk, Aggr::Counter) {
                    for s in decode(c)? {
                        if let Some((t, v)) = counter.push(s.t, s.v) {
                            out.push(Sample { t, v });
                        }
                    }
                }
            }
        }
        [aggr] => {
            for chunk in chunks {
                if let Some(c) = pick(chunk, *aggr) {
                    append_forward(&mut out, decode(c)?);
                }
            }
        }
        [Aggr::Count, Aggr::Sum] | [Aggr::Sum, Aggr::Count] => {
            for chunk in chunks {
                let decoded = match (&chunk.raw, &chunk.count, &chunk.sum) {
                    (Some(raw), _, _) => decode(raw)?,
                    (None, Some(count), Some(sum)) => {
                        let (count, sum) = (decode(count)?, decode(sum)?);
                        if count.len() != sum.len() {
                            return Err("sum and count iterator not aligned".into());
                        }
                        count
                            .iter()
                            .zip(&sum)
                            .map(|(c, s)| {
                                if c.t == s.t {
                                    Ok(Sample {
                                        t: c.t,
                                        v: s.v / c.v,
                                    })
                                } else {
                                    Err("sum and count timestamps not aligned".to_string())
                                }
                            })
                            .collect::<Result<_, _>>()?
                    }
                    _ => continue,
                };
                append_forward(&mut out, decoded);
            }
        }
        _ => return Err(format!("unexpected aggregates {aggregates:?}")),
    }
    Ok(out)
}

/// Appends the samples after the last one already there (chunks may overlap).
fn append_forward(out: &mut Vec<Sample>, samples: Vec<Sample>) {
    let last = out.last().map_or(i64::MIN, |s| s.t);
    out.extend(samples.into_iter().filter(|s| s.t > last));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(samples: &[(i64, f64)]) -> Option<Chunk> {
        let data = rthanos_chunkenc::xor::encode(samples.iter().copied()).ok()?;
        Some(Chunk {
            r#type: 0,
            data: data.into(),
            hash: 0,
        })
    }

    fn points(samples: &[Sample]) -> Vec<(i64, f64)> {
        samples.iter().map(|s| (s.t, s.v)).collect()
    }

    #[test]
    fn functions_pick_thanos_aggregates() {
        let call = |name: &str| Function::from_name(name).map(SelectFunc::Call);
        let aggregate = |name: &str| Aggregation::from_name(name).map(SelectFunc::Aggregate);
        for (func, want) in [
            (call("min_over_time"), vec![Aggr::Min]),
            (aggregate("max"), vec![Aggr::Max]),
            (call("count_over_time"), vec![Aggr::Count]),
            (call("sum_over_time"), vec![Aggr::Sum]),
            (call("rate"), vec![Aggr::Counter]),
            (call("increase"), vec![Aggr::Counter]),
            (call("irate"), vec![Aggr::Counter]),
            (call("resets"), vec![Aggr::Counter]),
            (aggregate("sum"), vec![Aggr::Count, Aggr::Sum]),
            (aggregate("count_values"), vec![Aggr::Count]),
            (call("avg_over_time"), vec![Aggr::Count, Aggr::Sum]),
            (call("abs"), vec![Aggr::Count, Aggr::Sum]),
            (None, vec![Aggr::Count, Aggr::Sum]),
        ] {
            assert_eq!(aggregates_for(func), want, "{func:?}");
        }
    }

    #[test]
    fn averages_come_from_sum_and_count_and_raw_chunks_stay_raw() -> Result<(), String> {
        let chunks = vec![
            AggrChunk {
                min_time: 0,
                max_time: 600_000,
                count: chunk(&[(300_000, 10.0), (600_000, 5.0)]),
                sum: chunk(&[(300_000, 50.0), (600_000, 20.0)]),
                min: chunk(&[(300_000, 1.0), (600_000, 2.0)]),
                ..Default::default()
            },
            AggrChunk {
                min_time: 600_001,
                max_time: 700_000,
                raw: chunk(&[(650_000, 7.0)]),
                ..Default::default()
            },
        ];
        let avg = samples(&chunks, &aggregates_for(None))?;
        assert_eq!(
            points(&avg),
            [(300_000, 5.0), (600_000, 4.0), (650_000, 7.0)]
        );
        let min = samples(
            &chunks,
            &aggregates_for(Some(SelectFunc::Call(Function::MinOverTime))),
        )?;
        assert_eq!(
            points(&min),
            [(300_000, 1.0), (600_000, 2.0), (650_000, 7.0)]
        );
        Ok(())
    }

    #[test]
    fn counters_lose_their_resets_within_and_between_chunks() -> Result<(), String> {
        // Chunk 1: counter 10 → 30, its true last raw value (35) repeated at its last time.
        // Chunk 2 starts at 5: the counter was reset between the chunks.
        let chunks = vec![
            AggrChunk {
                counter: chunk(&[(0, 10.0), (300_000, 30.0), (300_000, 35.0)]),
                ..Default::default()
            },
            AggrChunk {
                counter: chunk(&[(300_001, 5.0), (600_000, 2.0), (900_000, 8.0)]),
                ..Default::default()
            },
        ];
        let read = samples(&chunks, &[Aggr::Counter])?;
        // 10, 30, then +5 (reset from 35), +2 (reset from 5), +6.
        assert_eq!(
            points(&read),
            [
                (0, 10.0),
                (300_000, 30.0),
                (300_001, 35.0),
                (600_000, 37.0),
                (900_000, 43.0)
            ]
        );
        Ok(())
    }
}
