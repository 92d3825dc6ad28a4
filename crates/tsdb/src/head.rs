//! The head: the series being written, in memory, as Prometheus 2.42's head keeps them
//! (`tsdb/head.go`, `head_append.go`). Each series holds XOR chunks of about 120 samples,
//! cut where Prometheus cuts them (at the chunk range's end, at a predicted time once a
//! quarter full, or at 240 samples), so a block made from the head has Prometheus's chunks.
//! Samples come through an [`Appender`]: checked as Prometheus checks them (out of bounds,
//! out of order, duplicate timestamp), logged to the WAL on commit, then added.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use rthanos_chunkenc::XorEncoder;
use rthanos_model::Labels;

use crate::wal::record::{self, RefSample, RefSeries};
use crate::wal::{Wal, WalError};

/// Samples a chunk aims at (Prometheus's `samplesPerChunk`).
pub const SAMPLES_PER_CHUNK: usize = 120;

/// Why a sample was not appended: Prometheus's errors, with its messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// Older than the head accepts (before the last block's end, or half a chunk range
    /// behind the newest sample).
    #[error("out of bounds")]
    OutOfBounds,
    /// Older than the series' newest sample.
    #[error("out of order sample")]
    OutOfOrder,
    /// At the series' newest timestamp with another value.
    #[error("duplicate sample for timestamp")]
    DuplicateSampleForTimestamp,
    /// A series without labels.
    #[error("invalid sample: empty labelset")]
    EmptyLabels,
}

/// A chunk of the head: its time span (inclusive) and, for a finished chunk, its bytes.
#[derive(Debug, Clone)]
pub struct HeadChunk {
    /// First sample's timestamp.
    pub min_time: i64,
    /// Last sample's timestamp.
    pub max_time: i64,
    /// Samples in it.
    pub samples: usize,
    /// The XOR chunk's bytes (shared: a finished chunk is read without a copy).
    pub data: Arc<[u8]>,
}

struct OpenChunk {
    encoder: XorEncoder,
    min_time: i64,
    max_time: i64,
}

/// One series of the head.
pub(crate) struct MemSeries {
    pub(crate) reference: u64,
    pub(crate) labels: Labels,
    finished: Vec<HeadChunk>,
    open: Option<OpenChunk>,
    /// When the open chunk is cut at the latest.
    next_at: i64,
    last_value: f64,
    /// Whether the series record is in the WAL (a series made by an appender that has not
    /// committed is not).
    pub(crate) logged: bool,
    /// Appenders holding samples of it: it is not removed while any does.
    appenders: usize,
    /// The newest sample an appender holds for it, not committed yet: (appender, its slot
    /// for this series, t, v). Checks within one appender use it.
    pending: Option<(u64, u32, i64, f64)>,
}

impl MemSeries {
    fn new(reference: u64, labels: Labels) -> Self {
        MemSeries {
            reference,
            labels,
            finished: Vec::new(),
            open: None,
            next_at: i64::MIN,
            last_value: 0.0,
            logged: false,
            appenders: 0,
            pending: None,
        }
    }

    /// The newest sample's timestamp; `None` with no sample.
    fn max_time(&self) -> Option<i64> {
        match &self.open {
            Some(open) if !open.encoder.is_empty() => Some(open.max_time),
            _ => self.finished.last().map(|c| c.max_time),
        }
    }

    fn min_time(&self) -> Option<i64> {
        self.finished
            .first()
            .map(|c| c.min_time)
            .or_else(|| self.open.as_ref().map(|o| o.min_time))
    }

    fn is_empty(&self) -> bool {
        self.finished.is_empty() && self.open.as_ref().is_none_or(|o| o.encoder.is_empty())
    }

    /// Prometheus's `appendable` (out-of-order ingestion off).
    fn appendable(&self, t: i64, v: f64, min_valid_time: i64) -> Result<(), AppendError> {
        if t < min_valid_time {
            return Err(AppendError::OutOfBounds);
        }
        match self.max_time() {
            None => Ok(()),
            Some(max) if t > max => Ok(()),
            // An exact duplicate is allowed (federation produces them); another value is not.
            Some(max) if t == max && v.to_bits() == self.last_value.to_bits() => Ok(()),
            Some(max) if t == max => Err(AppendError::DuplicateSampleForTimestamp),
            Some(_) => Err(AppendError::OutOfOrder),
        }
    }

    /// Adds a sample in order; false when it is not newer than the series' newest (an exact
    /// duplicate, or one that lost a race), as Prometheus's `append`.
    fn append(&mut self, t: i64, v: f64, chunk_range: i64) -> bool {
        if self.max_time().is_some_and(|max| t <= max) {
            return false;
        }
        let needs_cut = match &self.open {
            None => true,
            Some(open) => {
                let n = open.encoder.len();
                if n == SAMPLES_PER_CHUNK / 4 {
                    self.next_at = chunk_end_time(open.min_time, open.max_time, self.next_at);
                }
                t >= self.next_at || n >= SAMPLES_PER_CHUNK * 2
            }
        };
        if needs_cut {
            self.cut(t, chunk_range);
        }
        let Some(open) = self.open.as_mut() else {
            return false;
        };
        if open.encoder.append(t, v).is_err() {
            return false;
        }
        open.max_time = t;
        self.last_value = v;
        true
    }

    fn cut(&mut self, t: i64, chunk_range: i64) {
        if let Some(open) = self.open.take()
            && !open.encoder.is_empty()
        {
            let samples = open.encoder.len();
            self.finished.push(HeadChunk {
                min_time: open.min_time,
                max_time: open.max_time,
                samples,
                data: open.encoder.finish().into(),
            });
        }
        self.open = Some(OpenChunk {
            encoder: XorEncoder::new(),
            min_time: t,
            max_time: i64::MIN,
        });
        self.next_at = range_end(t, chunk_range);
    }

    /// The chunks overlapping `[min_time, max_time]`, the open one as it is now.
    pub(crate) fn chunks_in(&self, min_time: i64, max_time: i64) -> Vec<HeadChunk> {
        let mut out: Vec<HeadChunk> = self
            .finished
            .iter()
            .filter(|c| c.max_time >= min_time && c.min_time <= max_time)
            .cloned()
            .collect();
        if let Some(open) = &self.open
            && !open.encoder.is_empty()
            && open.max_time >= min_time
            && open.min_time <= max_time
        {
            out.push(HeadChunk {
                min_time: open.min_time,
                max_time: open.max_time,
                samples: open.encoder.len(),
                data: open.encoder.bytes().into(),
            });
        }
        out
    }

    /// Drops the chunks that end before `min_time`; returns how many.
    fn truncate_before(&mut self, min_time: i64) -> usize {
        let before = self.finished.len();
        self.finished.retain(|c| c.max_time >= min_time);
        let mut dropped = before - self.finished.len();
        if self
            .open
            .as_ref()
            .is_some_and(|o| !o.encoder.is_empty() && o.max_time < min_time)
        {
            self.open = None;
            dropped += 1;
        }
        dropped
    }
}

/// The end of the chunk range `t` is in: `(t / range + 1) * range` (Prometheus's
/// `rangeForTimestamp`).
pub fn range_end(t: i64, range: i64) -> i64 {
    t.div_euclid(range).saturating_add(1).saturating_mul(range)
}

/// Prometheus's `computeChunkEndTime`: with a chunk a quarter full, the end that spreads
/// the rest of the range evenly over chunks of the same size.
fn chunk_end_time(start: i64, current: i64, max: i64) -> i64 {
    let quarter = current
        .saturating_sub(start)
        .saturating_add(1)
        .saturating_mul(4);
    let n = max.saturating_sub(start) / quarter.max(1);
    if n <= 1 {
        return max;
    }
    start + (max - start) / n
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a series' lock leaves it consistent enough to read.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

type Hasher = foldhash::fast::RandomState;

#[derive(Default)]
struct SeriesIndex {
    by_labels: HashMap<Labels, Arc<Mutex<MemSeries>>, Hasher>,
    by_ref: HashMap<u64, Arc<Mutex<MemSeries>>, Hasher>,
}

/// What a commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    /// Samples added.
    pub samples: usize,
    /// Samples dropped at commit (another appender's newer sample came first).
    pub dropped: usize,
    /// Series created.
    pub series: usize,
}

/// The head's series and time range.
pub struct Head {
    chunk_range: i64,
    series: RwLock<SeriesIndex>,
    /// Time range of the samples held; `i64::MAX` / `i64::MIN` while empty.
    min_time: AtomicI64,
    max_time: AtomicI64,
    /// No sample before this is accepted (the newest block's end).
    min_valid_time: AtomicI64,
    last_ref: AtomicU64,
    last_appender: AtomicU64,
    /// Series removed from memory while their records may still be in WAL segments that a
    /// checkpoint will read: reference → the segment current when they were removed.
    deleted: Mutex<HashMap<u64, u32>>,
}

impl Head {
    /// An empty head cutting chunks at `chunk_range` (ms; the block range) boundaries; no
    /// sample before `min_valid_time` is accepted.
    pub fn new(chunk_range: i64, min_valid_time: i64) -> Self {
        Head {
            chunk_range: chunk_range.max(1),
            series: RwLock::new(SeriesIndex::default()),
            min_time: AtomicI64::new(i64::MAX),
            max_time: AtomicI64::new(i64::MIN),
            min_valid_time: AtomicI64::new(min_valid_time),
            last_ref: AtomicU64::new(0),
            last_appender: AtomicU64::new(0),
            deleted: Mutex::new(HashMap::new()),
        }
    }

    /// The chunk range (ms).
    pub fn chunk_range(&self) -> i64 {
        self.chunk_range
    }

    /// Oldest timestamp held (`i64::MAX` when empty).
    pub fn min_time(&self) -> i64 {
        self.min_time.load(Ordering::Acquire)
    }

    /// Newest timestamp held (`i64::MIN` when empty).
    pub fn max_time(&self) -> i64 {
        self.max_time.load(Ordering::Acquire)
    }

    /// No sample before this is accepted.
    pub fn min_valid_time(&self) -> i64 {
        self.min_valid_time.load(Ordering::Acquire)
    }

    /// Number of series.
    pub fn num_series(&self) -> usize {
        self.read().by_ref.len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, SeriesIndex> {
        self.series.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, SeriesIndex> {
        self.series.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the head spans more than 1.5 chunk ranges, so its oldest range can become a
    /// block (Prometheus's `compactable`).
    pub fn compactable(&self) -> bool {
        let (min, max) = (self.min_time(), self.max_time());
        min != i64::MAX && max.saturating_sub(min) > self.chunk_range / 2 * 3
    }

    /// The oldest time an appender accepts now (Prometheus's `appendableMinValidTime`).
    fn appendable_min_valid_time(&self) -> i64 {
        self.max_time()
            .saturating_sub(self.chunk_range / 2)
            .max(self.min_valid_time())
    }

    fn update_times(&self, min: i64, max: i64) {
        self.min_time.fetch_min(min, Ordering::AcqRel);
        self.max_time.fetch_max(max, Ordering::AcqRel);
    }

    /// The series with `labels`, made if absent (and then not yet logged).
    fn get_or_create(&self, labels: &Labels) -> (Arc<Mutex<MemSeries>>, bool) {
        if let Some(s) = self.read().by_labels.get(labels) {
            return (Arc::clone(s), false);
        }
        let mut index = self.write();
        if let Some(s) = index.by_labels.get(labels) {
            return (Arc::clone(s), false);
        }
        let reference = self.last_ref.fetch_add(1, Ordering::AcqRel) + 1;
        let series = Arc::new(Mutex::new(MemSeries::new(reference, labels.clone())));
        index.by_labels.insert(labels.clone(), Arc::clone(&series));
        index.by_ref.insert(reference, Arc::clone(&series));
        (series, true)
    }

    /// Replay: the series of a WAL series record. A label set seen before under another
    /// reference (the series was removed and made again) maps to the first.
    pub(crate) fn replay_series(&self, s: &RefSeries) -> u64 {
        let mut index = self.write();
        self.last_ref.fetch_max(s.reference, Ordering::AcqRel);
        if let Some(existing) = index.by_labels.get(&s.labels) {
            let existing = Arc::clone(existing);
            let reference = lock(&existing).reference;
            index.by_ref.entry(s.reference).or_insert(existing);
            return reference;
        }
        let mut series = MemSeries::new(s.reference, s.labels.clone());
        series.logged = true;
        let series = Arc::new(Mutex::new(series));
        index
            .by_labels
            .insert(s.labels.clone(), Arc::clone(&series));
        index.by_ref.insert(s.reference, series);
        s.reference
    }

    /// Replay: a WAL sample. Samples before the newest block's end, of unknown series, or
    /// out of order are passed over; returns whether it was added.
    pub(crate) fn replay_sample(&self, s: &RefSample) -> bool {
        if s.t < self.min_valid_time() {
            return false;
        }
        let Some(series) = self.read().by_ref.get(&s.reference).cloned() else {
            return false;
        };
        let added = lock(&series).append(s.t, s.v, self.chunk_range);
        if added {
            self.update_times(s.t, s.t);
        }
        added
    }

    /// An appender. Samples are checked as they are added and written by
    /// [`Appender::commit`].
    pub fn appender(&self) -> Appender<'_> {
        Appender {
            head: self,
            id: self.last_appender.fetch_add(1, Ordering::Relaxed) + 1,
            min_valid_time: None,
            samples: Vec::new(),
            created: 0,
            touched: Vec::new(),
        }
    }

    /// Every series overlapping `[min_time, max_time]` with its chunks there, in label order.
    pub fn series_in(&self, min_time: i64, max_time: i64) -> Vec<(Labels, Vec<HeadChunk>)> {
        self.select(&[], min_time, max_time)
    }

    /// The series matching every one of `matchers` (an absent label matches as the empty
    /// value) that have chunks overlapping `[min_time, max_time]`, with those chunks, in label
    /// order. Series are matched one by one: the head of a ruler holds its recorded series,
    /// thousands, not millions (an inverted index comes with a receiver's head).
    pub fn select(
        &self,
        matchers: &[rthanos_model::Matcher],
        min_time: i64,
        max_time: i64,
    ) -> Vec<(Labels, Vec<HeadChunk>)> {
        let all: Vec<Arc<Mutex<MemSeries>>> = self
            .read()
            .by_labels
            .iter()
            .filter(|(labels, _)| {
                matchers
                    .iter()
                    .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
            })
            .map(|(_, s)| Arc::clone(s))
            .collect();
        let mut out: Vec<(Labels, Vec<HeadChunk>)> = all
            .iter()
            .filter_map(|s| {
                let s = lock(s);
                let chunks = s.chunks_in(min_time, max_time);
                (!chunks.is_empty()).then(|| (s.labels.clone(), chunks))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Drops what ends before `min_time` (now in a block): chunks, then series left
    /// without any (noted with `segment`, the WAL segment being written, for checkpoints).
    /// No sample before `min_time` is accepted from now on.
    pub fn truncate(&self, min_time: i64, segment: u32) -> usize {
        self.min_valid_time.fetch_max(min_time, Ordering::AcqRel);
        let mut index = self.write();
        let mut removed = Vec::new();
        let mut actual_min = i64::MAX;
        for (reference, series) in &index.by_ref {
            let mut s = lock(series);
            if s.reference != *reference {
                // A second reference of a replayed series: removed with the first.
                continue;
            }
            s.truncate_before(min_time);
            if s.appenders > 0 {
                // Held by an appender: kept, empty or not, and its chunks count.
                if let Some(t) = s.min_time().filter(|_| !s.is_empty()) {
                    actual_min = actual_min.min(t);
                }
                continue;
            }
            match s.min_time() {
                Some(t) if !s.is_empty() => actual_min = actual_min.min(t),
                _ => removed.push((s.reference, s.labels.clone())),
            }
        }
        let mut deleted = lock(&self.deleted);
        for (reference, labels) in &removed {
            index.by_labels.remove(labels);
            deleted.insert(*reference, segment);
        }
        let gone: std::collections::HashSet<u64> = removed.iter().map(|(r, _)| *r).collect();
        index
            .by_ref
            .retain(|_, s| !gone.contains(&lock(s).reference));
        drop(index);
        // The head starts at `min_time`, or later where its oldest chunk starts.
        let new_min = if actual_min == i64::MAX {
            min_time
        } else {
            actual_min.max(min_time)
        };
        self.min_time.store(new_min, Ordering::Release);
        self.max_time.fetch_max(min_time, Ordering::AcqRel);
        removed.len()
    }

    /// Whether a checkpoint must keep series `reference`: it is in the head, or was removed
    /// after the segments being checkpointed began.
    pub(crate) fn keep_in_checkpoint(&self, reference: u64) -> bool {
        self.read().by_ref.contains_key(&reference) || lock(&self.deleted).contains_key(&reference)
    }

    /// Forgets removed series noted before segment `first` (checkpointed now).
    pub(crate) fn forget_deleted_before(&self, first: u32) {
        lock(&self.deleted).retain(|_, segment| *segment >= first);
    }
}

/// Samples added to the head together: checked one by one, then logged and added at
/// [`Appender::commit`], or dropped by [`Appender::rollback`] (or by dropping it).
pub struct Appender<'h> {
    head: &'h Head,
    id: u64,
    /// Fixed at the first sample, as Prometheus's appender fixes it when made.
    min_valid_time: Option<i64>,
    /// The samples, each with its series' slot in `touched`.
    samples: Vec<(u32, RefSample)>,
    /// Series this appender created.
    created: usize,
    /// Series it holds samples of (each once, unless another appender's samples of the
    /// same series came in between).
    touched: Vec<Arc<Mutex<MemSeries>>>,
}

impl Appender<'_> {
    /// Adds a sample of the series `labels` (labels with empty values are dropped, as
    /// Prometheus drops them). Returns the series reference, for [`Appender::append_ref`].
    ///
    /// # Errors
    /// The sample is out of bounds, out of order, a different value at the newest timestamp,
    /// or its series has no labels.
    pub fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<u64, AppendError> {
        let min_valid_time = self.min_valid_time(t);
        if t < min_valid_time {
            return Err(AppendError::OutOfBounds);
        }
        let owned;
        let labels = if labels.iter().any(|l| l.value.is_empty()) {
            owned = Labels::from_sorted(
                labels
                    .iter()
                    .filter(|l| !l.value.is_empty())
                    .cloned()
                    .collect(),
            );
            &owned
        } else {
            labels
        };
        if labels.is_empty() {
            return Err(AppendError::EmptyLabels);
        }
        let series = self.head.get_or_create(labels);
        let (series, created) = series;
        if created {
            self.created += 1;
        }
        self.add(&series, t, v, min_valid_time)
    }

    /// As [`Appender::append`], for a series known by the reference an earlier append
    /// returned; `labels` are used when the reference is no longer in the head.
    ///
    /// # Errors
    /// As [`Appender::append`].
    pub fn append_ref(
        &mut self,
        reference: u64,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> Result<u64, AppendError> {
        let known = self.head.read().by_ref.get(&reference).cloned();
        match known {
            Some(series) => {
                let min_valid_time = self.min_valid_time(t);
                if t < min_valid_time {
                    return Err(AppendError::OutOfBounds);
                }
                self.add(&series, t, v, min_valid_time)
            }
            None => self.append(labels, t, v),
        }
    }

    fn min_valid_time(&mut self, t: i64) -> i64 {
        let head = self.head;
        *self.min_valid_time.get_or_insert_with(|| {
            if head.min_time() == i64::MAX {
                // The first sample of an empty head starts its time range (initAppender).
                head.update_times(t, t);
            }
            head.appendable_min_valid_time()
        })
    }

    fn add(
        &mut self,
        series: &Arc<Mutex<MemSeries>>,
        t: i64,
        v: f64,
        min_valid_time: i64,
    ) -> Result<u64, AppendError> {
        let mut s = lock(series);
        let slot = match s.pending {
            Some((owner, slot, last_t, last_v)) if owner == self.id => {
                if t < last_t {
                    return Err(AppendError::OutOfOrder);
                }
                if t == last_t && v.to_bits() != last_v.to_bits() {
                    return Err(AppendError::DuplicateSampleForTimestamp);
                }
                slot
            }
            _ => {
                s.appendable(t, v, min_valid_time)?;
                // Hold the series until commit or rollback.
                s.appenders += 1;
                let slot = self.touched.len() as u32;
                self.touched.push(Arc::clone(series));
                slot
            }
        };
        s.pending = Some((self.id, slot, t, v));
        let reference = s.reference;
        drop(s);
        self.samples.push((slot, RefSample { reference, t, v }));
        Ok(reference)
    }

    /// Logs the new series and the samples to `wal` (when given) and adds the samples to the
    /// head. When this returns, the samples survive the process being killed.
    ///
    /// # Errors
    /// Writing the WAL failed: nothing was added.
    pub fn commit(self, wal: Option<&Mutex<Wal>>) -> Result<Committed, WalError> {
        let mut committed = Committed::default();
        if self.samples.is_empty() {
            return Ok(committed);
        }
        if let Some(wal) = wal {
            let mut buf = Vec::with_capacity(self.samples.len() * 12 + 32);
            let mut wal = lock(wal);
            // Series not in the WAL yet, whichever appender made them, go first.
            let mut new_series = Vec::new();
            let mut unlogged = Vec::new();
            for series in &self.touched {
                let s = lock(series);
                if !s.logged {
                    new_series.push(RefSeries {
                        reference: s.reference,
                        labels: s.labels.clone(),
                    });
                    unlogged.push(series);
                }
            }
            let mut series_end = 0;
            if !new_series.is_empty() {
                record::encode_series(&new_series, &mut buf);
                series_end = buf.len();
            }
            let samples: Vec<RefSample> = self.samples.iter().map(|(_, s)| *s).collect();
            record::encode_samples(&samples, &mut buf);
            if series_end > 0 {
                wal.log(&[&buf[..series_end], &buf[series_end..]])?;
            } else {
                wal.log(&[&buf])?;
            }
            for series in unlogged {
                lock(series).logged = true;
            }
        } else {
            for series in &self.touched {
                lock(series).logged = true;
            }
        }
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        for (slot, sample) in &self.samples {
            let added = self.touched.get(*slot as usize).is_some_and(|series| {
                lock(series).append(sample.t, sample.v, self.head.chunk_range)
            });
            if added {
                committed.samples += 1;
                min = min.min(sample.t);
                max = max.max(sample.t);
            } else {
                committed.dropped += 1;
            }
        }
        if committed.samples > 0 {
            self.head.update_times(min, max);
        }
        committed.series = self.created;
        Ok(committed)
    }

    /// Drops the samples (series it made stay, empty, until the head is truncated).
    pub fn rollback(self) {}
}

impl Drop for Appender<'_> {
    fn drop(&mut self) {
        for series in &self.touched {
            let mut s = lock(series);
            s.appenders = s.appenders.saturating_sub(1);
            if s.pending.is_some_and(|(owner, ..)| owner == self.id) {
                s.pending = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn labels(job: &str) -> Labels {
        Labels::from_pairs([("__name__", "up"), ("job", job)])
    }

    #[test]
    fn appends_are_checked_as_prometheus_checks_them() {
        let head = Head::new(2 * HOUR, i64::MIN);
        let mut app = head.appender();
        app.append(&labels("a"), 10 * HOUR, 1.0).expect("first");
        app.commit(None).expect("commit");
        let mut app = head.appender();
        // Half a chunk range behind the newest sample is the limit.
        assert_eq!(
            app.append(&labels("b"), 9 * HOUR - 1, 1.0),
            Err(AppendError::OutOfBounds)
        );
        app.append(&labels("b"), 9 * HOUR, 1.0)
            .expect("within bounds");
        assert_eq!(
            app.append(&labels("a"), 10 * HOUR - 1, 1.0),
            Err(AppendError::OutOfOrder)
        );
        assert_eq!(
            app.append(&labels("a"), 10 * HOUR, 2.0),
            Err(AppendError::DuplicateSampleForTimestamp)
        );
        app.append(&labels("a"), 10 * HOUR, 1.0)
            .expect("an exact duplicate is allowed");
        app.append(
            &labels("a"),
            10 * HOUR + 1,
            f64::from_bits(rthanos_chunkenc::STALE_NAN_BITS),
        )
        .expect("a staleness marker is a sample");
        assert_eq!(
            app.append(&labels("a"), 10 * HOUR, 1.0),
            Err(AppendError::OutOfOrder),
            "checked against this appender's own samples too"
        );
        assert_eq!(
            app.append(&Labels::from_pairs([("job", "")]), 10 * HOUR, 1.0),
            Err(AppendError::EmptyLabels)
        );
        let committed = app.commit(None).expect("commit");
        // The exact duplicate is dropped at commit, as in Prometheus.
        assert_eq!(committed.samples, 2);
        assert_eq!(committed.dropped, 1);
        assert_eq!(
            (head.min_time(), head.max_time()),
            (9 * HOUR, 10 * HOUR + 1)
        );
    }

    #[test]
    fn chunks_are_cut_where_prometheus_cuts_them() {
        let head = Head::new(2 * HOUR, i64::MIN);
        // 15s scrapes over 4h: 480 samples a 2h range, cut into 4 chunks of 120 each.
        for i in 0..960 {
            let mut app = head.appender();
            app.append(&labels("a"), i * 15_000, i as f64)
                .expect("append");
            app.commit(None).expect("commit");
        }
        let series = head.series_in(i64::MIN, i64::MAX);
        let chunks = &series[0].1;
        let spans: Vec<(i64, i64, usize)> = chunks
            .iter()
            .map(|c| (c.min_time, c.max_time, c.samples))
            .collect();
        assert_eq!(spans.len(), 8, "{spans:?}");
        assert!(spans.iter().all(|&(_, _, n)| n == 120), "{spans:?}");
        assert_eq!(
            spans[3].1,
            2 * HOUR - 15_000,
            "no chunk crosses the range end"
        );
        assert_eq!(spans[4].0, 2 * HOUR);
        // Every chunk decodes to its samples.
        let mut t = 0;
        for chunk in chunks {
            let mut it = rthanos_chunkenc::XorIterator::new(&chunk.data).expect("chunk");
            while let Some((st, v)) = it.next_sample().expect("sample") {
                assert_eq!((st, v), (t, (t / 15_000) as f64));
                t += 15_000;
            }
        }
        assert_eq!(t, 960 * 15_000);
    }

    #[test]
    fn truncation_drops_old_chunks_and_empty_series() {
        let head = Head::new(2 * HOUR, i64::MIN);
        let mut app = head.appender();
        app.append(&labels("old"), HOUR, 1.0).expect("append");
        app.append(&labels("both"), HOUR, 1.0).expect("append");
        app.commit(None).expect("commit");
        let mut app = head.appender();
        app.append(&labels("both"), 2 * HOUR + 5, 2.0)
            .expect("append");
        app.commit(None).expect("commit");
        assert!(!head.compactable());
        assert_eq!(head.truncate(2 * HOUR, 3), 1);
        assert_eq!(head.num_series(), 1);
        assert!(
            head.keep_in_checkpoint(1),
            "a removed series is kept until checkpointed"
        );
        head.forget_deleted_before(4);
        assert!(!head.keep_in_checkpoint(1));
        assert_eq!(head.min_time(), 2 * HOUR + 5);
        let mut app = head.appender();
        assert_eq!(
            app.append(&labels("new"), 2 * HOUR - 1, 1.0),
            Err(AppendError::OutOfBounds)
        );
    }

    #[test]
    fn select_matches_labels_and_time() {
        use rthanos_model::{MatchType, Matcher};
        let head = Head::new(2 * HOUR, i64::MIN);
        let mut app = head.appender();
        for (job, t) in [("a", HOUR), ("b", HOUR + 10), ("c", HOUR + 20)] {
            app.append(&labels(job), t, 1.0).expect("append");
        }
        app.commit(None).expect("commit");
        let jobs = |matchers: &[Matcher], min: i64, max: i64| -> Vec<String> {
            head.select(matchers, min, max)
                .iter()
                .map(|(l, _)| l.get("job").unwrap_or("").to_string())
                .collect()
        };
        let re = Matcher::new(MatchType::Regex, "job", "a|c").expect("regex");
        assert_eq!(jobs(&[re], i64::MIN, i64::MAX), ["a", "c"]);
        let absent = Matcher::new(MatchType::Equal, "env", "").expect("matcher");
        assert_eq!(jobs(&[absent], HOUR + 5, HOUR + 15), ["b"]);
        let not = Matcher::new(MatchType::NotEqual, "job", "a").expect("matcher");
        assert_eq!(jobs(&[not], i64::MIN, HOUR + 10), ["b"]);
    }

    #[test]
    fn chunk_end_time_is_prometheus() {
        // A chunk a quarter full after 30 samples at 15s over a 2h range: 4 chunks fit.
        assert_eq!(chunk_end_time(0, 29 * 15_000, 2 * HOUR), 1_800_000);
        assert_eq!(chunk_end_time(0, 2 * HOUR, 2 * HOUR), 2 * HOUR);
        assert_eq!(range_end(-1, 2 * HOUR), 0);
        assert_eq!(range_end(0, 2 * HOUR), 2 * HOUR);
    }
}
