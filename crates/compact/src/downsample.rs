//! Downsampling as Thanos does it: a raw block spanning 40h or more becomes a 5m block, a 5m
//! block spanning 10 days or more a 1h block. Each series' samples are cut into batches of
//! about 140 output windows, and each batch becomes one AggrChunk holding, per window (stamped
//! with the window's last millisecond, or the batch's last sample), the count, sum, min and max
//! of the samples and the counter with resets removed. The counter chunk also holds the batch's
//! first raw value before the windows and its last raw value again at the last timestamp, so
//! rate() over downsampled data finds resets between chunks (see
//! [`rthanos_chunkenc::CounterResets`]). Downsampling 5m to 1h goes along the 5m chunks'
//! boundaries, so those first and last raw values survive.

use std::path::Path;

use rayon::prelude::*;
use rthanos_chunkenc::{AggrChunk, AggrType, CounterResets, Encoding, XorEncoder, encode_aggr};
use rthanos_model::Labels;
use rthanos_tsdb::meta::ThanosMeta;
use rthanos_tsdb::writer::{BlockWriter, ChunkToWrite, Lineage};
use rthanos_tsdb::{Block, BlockMeta};

use crate::CompactError;

/// 5 minutes, in milliseconds.
pub const RES_5M: i64 = 300_000;
/// 1 hour, in milliseconds.
pub const RES_1H: i64 = 3_600_000;
/// A raw block this long or longer is downsampled to 5m.
pub const RANGE_FOR_5M: i64 = 40 * 3_600_000;
/// A 5m block this long or longer is downsampled to 1h.
pub const RANGE_FOR_1H: i64 = 10 * 24 * 3_600_000;

/// The resolution block `meta` is downsampled to, if it is due: raw blocks of 40h or more
/// go to 5m, 5m blocks of 10 days or more to 1h.
pub fn target_resolution(meta: &BlockMeta) -> Option<i64> {
    let span = meta.max_time.saturating_sub(meta.min_time);
    match meta.resolution() {
        0 if span >= RANGE_FOR_5M => Some(RES_5M),
        RES_5M if span >= RANGE_FOR_1H => Some(RES_1H),
        _ => None,
    }
}

/// A downsampled chunk: an AggrChunk payload and its time span.
#[derive(Clone, Debug, PartialEq)]
pub struct AggrOut {
    /// First window's timestamp.
    pub min_time: i64,
    /// Last window's timestamp.
    pub max_time: i64,
    /// The AggrChunk payload (encoding 0xff).
    pub data: Vec<u8>,
    /// Windows in the chunk (the count aggregate's samples).
    pub windows: u64,
}

/// The end (last millisecond) of the window of `resolution` that `t` falls in.
fn window_end(t: i64, resolution: i64) -> i64 {
    let resolution = resolution.max(1);
    t.saturating_sub(t % resolution)
        .saturating_add(resolution - 1)
}

/// How many chunks a series should become: about 140 windows each, the windows expected from
/// how densely `count` samples of `in_res` fill `min..max`.
fn target_chunk_count(min: i64, max: i64, in_res: i64, out_res: i64, count: usize) -> usize {
    let span = max.saturating_sub(min);
    let max_windows = (span / out_res.max(1)) as f64;
    let fullness = (count as f64 / (span as f64 / in_res.max(1) as f64)).min(1.0);
    let expected = (max_windows * fullness) as usize + 1;
    let mut chunks = 1;
    while expected / chunks > 140 {
        chunks += 1;
    }
    chunks
}

/// Running aggregates of one window, and the counter since the first sample.
#[derive(Clone, Copy, Debug)]
struct Aggregator {
    total: usize,
    count: usize,
    sum: f64,
    min: f64,
    max: f64,
    counter: f64,
    last: f64,
}

impl Default for Aggregator {
    fn default() -> Self {
        Self {
            total: 0,
            count: 0,
            sum: 0.0,
            min: f64::MAX,
            max: -f64::MAX,
            counter: 0.0,
            last: 0.0,
        }
    }
}

impl Aggregator {
    fn reset(&mut self) {
        self.count = 0;
        self.sum = 0.0;
        self.min = f64::MAX;
        self.max = -f64::MAX;
    }

    fn add(&mut self, v: f64) {
        if self.total > 0 {
            // A drop is a counter reset: the new value is all that was added since.
            self.counter += if v < self.last { v } else { v - self.last };
        } else {
            self.counter = v;
        }
        self.last = v;
        self.sum += v;
        self.count += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }
}

/// Aggregates `data` per window of `resolution`, calling `emit` at each window's end (the
/// last window is stamped no later than the last sample); returns the last window's stamp.
fn aggregate_windows(
    data: &[(i64, f64)],
    resolution: i64,
    mut emit: impl FnMut(i64, &Aggregator),
) -> i64 {
    let mut aggr = Aggregator::default();
    let mut next = -1i64;
    let last = data.last().map_or(0, |s| s.0);
    for &(t, v) in data {
        if rthanos_chunkenc::is_stale_nan(v) {
            continue;
        }
        if t > next {
            if next != -1 {
                emit(next, &aggr);
            }
            aggr.reset();
            // Never past the batch: the next batch may start in the same window.
            next = window_end(t, resolution).min(last);
        }
        aggr.add(v);
    }
    emit(next, &aggr);
    next
}

/// Appends to an XOR chunk being built, keeping the first error.
struct Appender {
    encoder: XorEncoder,
    error: Option<rthanos_chunkenc::ChunkError>,
}

impl Appender {
    fn new() -> Self {
        Self {
            encoder: XorEncoder::new(),
            error: None,
        }
    }

    fn append(&mut self, t: i64, v: f64) {
        if let Err(e) = self.encoder.append(t, v)
            && self.error.is_none()
        {
            self.error = Some(e);
        }
    }

    fn finish(self) -> Result<Option<Vec<u8>>, rthanos_chunkenc::ChunkError> {
        match self.error {
            Some(e) => Err(e),
            None if self.encoder.is_empty() => Ok(None),
            None => Ok(Some(self.encoder.finish())),
        }
    }
}

fn pack(
    parts: [Appender; 5],
    span: Option<(i64, i64)>,
    windows: u64,
) -> Result<Option<AggrOut>, rthanos_chunkenc::ChunkError> {
    let [count, sum, min, max, counter] = parts.map(Appender::finish);
    let parts = [count?, sum?, min?, max?, counter?];
    let Some((min_time, max_time)) = span else {
        return Ok(None);
    };
    Ok(Some(AggrOut {
        min_time,
        max_time,
        data: encode_aggr([
            parts[0].as_deref(),
            parts[1].as_deref(),
            parts[2].as_deref(),
            parts[3].as_deref(),
            parts[4].as_deref(),
        ]),
        windows,
    }))
}

fn widen(span: &mut Option<(i64, i64)>, t: i64) {
    *span = Some(match *span {
        None => (t, t),
        Some((min, max)) => (min.min(t), max.max(t)),
    });
}

/// Downsamples one raw series (samples in time order, stale markers and samples going back in
/// time already dropped) to `resolution`.
pub fn downsample_raw(
    data: &[(i64, f64)],
    resolution: i64,
) -> Result<Vec<AggrOut>, rthanos_chunkenc::ChunkError> {
    let (Some(first), Some(last)) = (data.first(), data.last()) else {
        return Ok(Vec::new());
    };
    // Thanos assumes raw data at one sample a minute for sizing chunks.
    let chunks = target_chunk_count(first.0, last.0, 60_000, resolution, data.len());
    let batch_size = data.len() / chunks + 1;
    let mut out = Vec::with_capacity(chunks);
    let mut rest = data;
    while !rest.is_empty() {
        let mut j = batch_size.min(rest.len());
        // A batch ends at the end of a window, so windows are never split between chunks.
        let end = window_end(rest[j - 1].0, resolution);
        while j < rest.len() && rest[j].0 <= end {
            j += 1;
        }
        let batch: Vec<(i64, f64)> = rest[..j]
            .iter()
            .copied()
            .filter(|s| !s.1.is_nan())
            .collect();
        rest = &rest[j..];
        let Some(&(first_t, first_v)) = batch.first() else {
            continue;
        };
        let mut parts = [(); 5].map(|()| Appender::new());
        // The batch's first raw value opens the counter chunk.
        parts[AggrType::Counter as usize].append(first_t, first_v);
        let mut span = None;
        let mut windows = 0;
        let last_t = aggregate_windows(&batch, resolution, |t, a| {
            widen(&mut span, t);
            windows += 1;
            parts[AggrType::Count as usize].append(t, a.count as f64);
            parts[AggrType::Sum as usize].append(t, a.sum);
            parts[AggrType::Min as usize].append(t, a.min);
            parts[AggrType::Max as usize].append(t, a.max);
            parts[AggrType::Counter as usize].append(t, a.counter);
        });
        // And its last raw value closes it, at the last window's timestamp.
        if let Some(&(_, last_v)) = batch.last() {
            parts[AggrType::Counter as usize].append(last_t, last_v);
        }
        if let Some(chunk) = pack(parts, span, windows)? {
            out.push(chunk);
        }
    }
    Ok(out)
}

/// Samples of one aggregate over chunks, skipping stale markers and samples going back.
fn expand(
    chunks: &[AggrChunk<'_>],
    aggr: AggrType,
) -> Result<Vec<(i64, f64)>, rthanos_chunkenc::ChunkError> {
    let mut out = Vec::new();
    let mut last_t = 0i64;
    for chunk in chunks {
        let Some((encoding, data)) = chunk.get(aggr) else {
            continue;
        };
        for sample in rthanos_chunkenc::Chunk::new(encoding, data).xor_samples()? {
            let (t, v) = sample?;
            if !rthanos_chunkenc::is_stale_nan(v) && t >= last_t {
                out.push((t, v));
                last_t = t;
            }
        }
    }
    Ok(out)
}

/// Downsamples one series of AggrChunks (in time order, spanning `min..max` at `in_res`) to
/// `out_res`, along chunk boundaries.
pub fn downsample_aggr(
    chunks: &[AggrChunk<'_>],
    (min, max): (i64, i64),
    in_res: i64,
    out_res: i64,
) -> Result<Vec<AggrOut>, rthanos_chunkenc::ChunkError> {
    let mut windows_in = 0;
    for chunk in chunks {
        windows_in += expand(std::slice::from_ref(chunk), AggrType::Count)?.len();
    }
    let target = target_chunk_count(min, max, in_res, out_res, windows_in);
    let batch = (chunks.len() / target).max(1);
    chunks
        .chunks(batch)
        .map(|part| downsample_aggr_batch(part, out_res))
        .filter_map(Result::transpose)
        .collect()
}

fn downsample_aggr_batch(
    chunks: &[AggrChunk<'_>],
    resolution: i64,
) -> Result<Option<AggrOut>, rthanos_chunkenc::ChunkError> {
    let mut parts = [(); 5].map(|()| Appender::new());
    let mut span = None;
    let mut windows = 0;
    // Counts add up; sums add up; min of mins; max of maxes.
    for (aggr, pick) in [
        (
            AggrType::Count,
            (|a: &Aggregator| a.sum) as fn(&Aggregator) -> f64,
        ),
        (AggrType::Sum, |a: &Aggregator| a.sum),
        (AggrType::Min, |a: &Aggregator| a.min),
        (AggrType::Max, |a: &Aggregator| a.max),
    ] {
        let samples = expand(chunks, aggr)?;
        if samples.is_empty() {
            continue;
        }
        aggregate_windows(&samples, resolution, |t, a| {
            widen(&mut span, t);
            if aggr == AggrType::Count {
                windows += 1;
            }
            parts[aggr as usize].append(t, pick(a));
        });
    }
    // Counters: resets removed across the chunks first (the chunks' first and last raw
    // values find those between chunks), then aggregated like raw values.
    let mut resets = CounterResets::default();
    let mut counter = Vec::new();
    for chunk in chunks {
        let Some((encoding, data)) = chunk.get(AggrType::Counter) else {
            continue;
        };
        for sample in rthanos_chunkenc::Chunk::new(encoding, data).xor_samples()? {
            let (t, v) = sample?;
            if let Some(s) = resets.push(t, v)
                && !rthanos_chunkenc::is_stale_nan(s.1)
            {
                counter.push(s);
            }
        }
    }
    if let Some(&(first_t, first_v)) = counter.first() {
        let app = &mut parts[AggrType::Counter as usize];
        app.append(first_t, first_v);
        let last_t = aggregate_windows(&counter, resolution, |t, a| {
            widen(&mut span, t);
            app.append(t, a.counter);
        });
        app.append(last_t, resets.last_value());
    }
    pack(parts, span, windows)
}

/// Series downsampled in parallel before they are written.
const BATCH: usize = 1024;

/// The samples of a raw series' chunks, as Thanos expands them: stale markers dropped, and
/// samples that go back in time (or before 0) skipped.
fn raw_samples(
    block: &Block,
    labels: &Labels,
    chunks: &[rthanos_tsdb::index::ChunkMeta],
) -> Result<Vec<(i64, f64)>, CompactError> {
    let error = |e: rthanos_chunkenc::ChunkError| CompactError::Chunk {
        block: block.meta().ulid.clone(),
        series: labels.to_string(),
        detail: e.to_string(),
    };
    let mut out = Vec::new();
    let mut last_t = 0i64;
    for meta in chunks {
        let chunk = block.chunks().chunk(meta.reference)?;
        for sample in chunk.xor_samples().map_err(error)? {
            let (t, v) = sample.map_err(error)?;
            if !rthanos_chunkenc::is_stale_nan(v) && t >= last_t {
                out.push((t, v));
                last_t = t;
            }
        }
    }
    Ok(out)
}

/// Downsamples the block `source` to `resolution` into a new block under `parent`, with the
/// source's meta.json (labels, lineage, time range) at the new resolution (an empty block when
/// the source has no samples left).
pub fn downsample_block(
    source: &Block,
    parent: &Path,
    resolution: i64,
) -> Result<Option<BlockMeta>, CompactError> {
    let meta = source.meta();
    let in_res = meta.resolution();
    if resolution <= 0 || in_res >= resolution {
        return Err(CompactError::Check {
            block: meta.ulid.clone(),
            detail: format!("resolution {in_res} is not lower than {resolution}"),
        });
    }
    let index = source.index();
    let symbols = crate::symbols([source])?;
    let mut writer = BlockWriter::create(parent, &symbols)?;
    drop(symbols);
    let ids = index.all_postings()?;
    let mut written = 0;
    for batch in ids.chunks(BATCH) {
        let series: Vec<rthanos_tsdb::index::SeriesEntry> = batch
            .iter()
            .map(|&id| index.series(id))
            .collect::<Result<_, _>>()?;
        let downsampled: Vec<Result<Vec<AggrOut>, CompactError>> = series
            .par_iter()
            .map(|s| downsample_series(source, s, in_res, resolution))
            .collect();
        for (s, chunks) in series.iter().zip(downsampled) {
            let chunks = chunks?;
            if chunks.is_empty() {
                continue;
            }
            let to_write: Vec<ChunkToWrite<'_>> = chunks
                .iter()
                .map(|c| ChunkToWrite {
                    min_time: c.min_time,
                    max_time: c.max_time,
                    encoding: Encoding::Aggr,
                    data: &c.data,
                    samples: c.windows,
                })
                .collect();
            writer.add_series(&s.labels, &to_write)?;
            written += 1;
        }
    }
    let mut thanos: ThanosMeta = meta.thanos.clone().unwrap_or_default();
    thanos.downsample.resolution = resolution;
    thanos.index_stats = None;
    thanos.files.clear();
    thanos.segment_files.clear();
    let lineage = Lineage {
        compaction: meta.compaction.clone(),
        min_time: meta.min_time,
        max_time: meta.max_time,
    };
    crate::finish_block(writer, parent, thanos, lineage, written, true)
}

fn downsample_series(
    block: &Block,
    series: &rthanos_tsdb::index::SeriesEntry,
    in_res: i64,
    out_res: i64,
) -> Result<Vec<AggrOut>, CompactError> {
    let error = |e: rthanos_chunkenc::ChunkError| CompactError::Chunk {
        block: block.meta().ulid.clone(),
        series: series.labels.to_string(),
        detail: e.to_string(),
    };
    if in_res == 0 {
        let samples = raw_samples(block, &series.labels, &series.chunks)?;
        return downsample_raw(&samples, out_res).map_err(error);
    }
    // Raw chunks in a downsampled block (Thanos has seen them) are aggregated to 5m first.
    let mut owned: Vec<Vec<u8>> = Vec::new();
    let mut order: Vec<Result<usize, usize>> = Vec::new();
    for (i, meta) in series.chunks.iter().enumerate() {
        let chunk = block.chunks().chunk(meta.reference)?;
        match chunk.encoding {
            Encoding::Aggr => order.push(Ok(i)),
            Encoding::Xor => {
                let samples = raw_samples(block, &series.labels, std::slice::from_ref(meta))?;
                for c in downsample_raw(&samples, RES_5M).map_err(error)? {
                    order.push(Err(owned.len()));
                    owned.push(c.data);
                }
            }
            other => {
                return Err(error(rthanos_chunkenc::ChunkError::Unsupported(
                    other.name(),
                )));
            }
        }
    }
    let mut chunks = Vec::with_capacity(order.len());
    for entry in order {
        let payload = match entry {
            Ok(i) => block.chunks().chunk(series.chunks[i].reference)?.data,
            Err(j) => owned[j].as_slice(),
        };
        chunks.push(AggrChunk::parse(payload).map_err(error)?);
    }
    let (Some(first), Some(last)) = (series.chunks.first(), series.chunks.last()) else {
        return Ok(Vec::new());
    };
    downsample_aggr(&chunks, (first.min_time, last.max_time), in_res, out_res).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(out: &AggrOut, aggr: AggrType) -> Vec<(i64, f64)> {
        let chunk = AggrChunk::parse(&out.data).unwrap_or_else(|e| panic!("{e}"));
        let Some((encoding, data)) = chunk.get(aggr) else {
            return Vec::new();
        };
        rthanos_chunkenc::Chunk::new(encoding, data)
            .xor_samples()
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|s| s.unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    /// A counter scraped every 15s for 20 minutes, +1 per scrape, reset to 0 at 7m30s.
    fn counter() -> Vec<(i64, f64)> {
        let mut v = 10.0;
        (0..80)
            .map(|i| {
                let t = i * 15_000;
                v = if t == 450_000 { 0.0 } else { v + 1.0 };
                (t, v)
            })
            .collect()
    }

    #[test]
    fn raw_samples_become_windows_as_in_thanos() {
        let data = counter();
        let out = downsample_raw(&data, RES_5M).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.len(), 1);
        let chunk = &out[0];
        // Windows end at each 5m boundary's last millisecond; the last at the last sample.
        let ends = [299_999, 599_999, 899_999, 1_185_000];
        assert_eq!((chunk.min_time, chunk.max_time), (299_999, 1_185_000));
        assert_eq!(chunk.windows, 4);
        let count: Vec<(i64, f64)> = ends.iter().map(|&t| (t, 20.0)).collect();
        assert_eq!(decode(chunk, AggrType::Count), count);
        let window = |w: i64| -> Vec<f64> {
            data.iter()
                .filter(|s| s.0 / RES_5M == w)
                .map(|s| s.1)
                .collect()
        };
        for (aggr, f) in [
            (
                AggrType::Sum,
                (|v: &[f64]| v.iter().sum()) as fn(&[f64]) -> f64,
            ),
            (AggrType::Min, |v: &[f64]| {
                v.iter().copied().fold(f64::MAX, f64::min)
            }),
            (AggrType::Max, |v: &[f64]| {
                v.iter().copied().fold(-f64::MAX, f64::max)
            }),
        ] {
            let expected: Vec<(i64, f64)> =
                (0..4).map(|w| (ends[w as usize], f(&window(w)))).collect();
            assert_eq!(decode(chunk, aggr), expected, "{aggr:?}");
        }
        // Counter: the first raw value, then the total with the reset removed at each window
        // end (11 at 0, +1 per scrape, the reset adds 0), then the last raw value again.
        let mut resets = CounterResets::default();
        let totals: Vec<(i64, f64)> = data.iter().filter_map(|s| resets.push(s.0, s.1)).collect();
        let at = |t: i64| totals.iter().rev().find(|s| s.0 <= t).map_or(0.0, |s| s.1);
        let mut expected = vec![(0, 11.0)];
        expected.extend(ends.iter().map(|&t| (t, at(t))));
        expected.push((1_185_000, data[79].1));
        assert_eq!(decode(chunk, AggrType::Counter), expected);
    }

    #[test]
    fn five_minute_chunks_become_hourly_ones_with_the_same_totals() {
        // A day of a counter with resets, every minute: 288 5m windows, in 3 chunks.
        let mut v = 0.0;
        let data: Vec<(i64, f64)> = (0..1440)
            .map(|i| {
                let t = i * 60_000;
                v = if i % 200 == 199 { 1.0 } else { v + 2.0 };
                (t, v)
            })
            .collect();
        let five = downsample_raw(&data, RES_5M).unwrap_or_else(|e| panic!("{e}"));
        assert!(five.len() > 1, "several 5m chunks: {}", five.len());
        let parsed: Vec<AggrChunk<'_>> = five
            .iter()
            .map(|c| AggrChunk::parse(&c.data).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let span = (five[0].min_time, five[five.len() - 1].max_time);
        let hourly =
            downsample_aggr(&parsed, span, RES_5M, RES_1H).unwrap_or_else(|e| panic!("{e}"));
        let direct = downsample_raw(&data, RES_1H).unwrap_or_else(|e| panic!("{e}"));
        let all = |chunks: &[AggrOut], aggr| -> Vec<(i64, f64)> {
            chunks.iter().flat_map(|c| decode(c, aggr)).collect()
        };
        // Count, sum, min and max at each hour's end are those of the raw data.
        for aggr in [AggrType::Count, AggrType::Sum, AggrType::Min, AggrType::Max] {
            let from_five: Vec<(i64, f64)> = all(&hourly, aggr);
            let from_raw: Vec<(i64, f64)> = all(&direct, aggr);
            assert_eq!(from_five.len(), 24, "{aggr:?}");
            assert_eq!(from_five, from_raw, "{aggr:?}");
        }
        // The counter's total increase over the three hours is the raw one.
        let increase = |samples: Vec<(i64, f64)>| {
            let mut resets = CounterResets::default();
            let totals: Vec<f64> = samples
                .iter()
                .filter_map(|s| resets.push(s.0, s.1))
                .map(|s| s.1)
                .collect();
            totals[totals.len() - 1] - totals[0]
        };
        let raw_increase = increase(data);
        assert_eq!(increase(all(&hourly, AggrType::Counter)), raw_increase);
        assert_eq!(increase(all(&five, AggrType::Counter)), raw_increase);
    }

    #[test]
    fn stale_markers_and_nans_are_left_out() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let data = vec![(0, 1.0), (15_000, stale), (30_000, f64::NAN), (45_000, 3.0)];
        let out = downsample_raw(&data, RES_5M).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decode(&out[0], AggrType::Count), vec![(45_000, 2.0)]);
        assert_eq!(decode(&out[0], AggrType::Sum), vec![(45_000, 4.0)]);
    }

    #[test]
    fn due_resolutions_follow_block_spans() {
        let meta = |hours: i64, resolution: i64| BlockMeta {
            max_time: hours * 3_600_000,
            thanos: Some(ThanosMeta {
                downsample: rthanos_tsdb::meta::Downsample { resolution },
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(target_resolution(&meta(39, 0)), None);
        assert_eq!(target_resolution(&meta(48, 0)), Some(RES_5M));
        assert_eq!(target_resolution(&meta(48, RES_5M)), None);
        assert_eq!(target_resolution(&meta(240, RES_5M)), Some(RES_1H));
        assert_eq!(target_resolution(&meta(24 * 30, RES_1H)), None);
    }
}
