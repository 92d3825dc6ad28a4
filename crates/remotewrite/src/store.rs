//! The WAL-only storage of stateless mode, as Prometheus's agent keeps one: series get a
//! reference and a series record the first time they are appended, every commit is one
//! samples record, and nothing is kept in memory but each series' reference and newest
//! timestamp. The queues read the log back; [`WalStore::truncate`] checkpoints and deletes
//! the segments every queue has sent.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use rthanos_model::Labels;
use rthanos_tsdb::wal::record::{self, Record, RefSample, RefSeries};
use rthanos_tsdb::wal::{Wal, WalError, checkpoint};
use tokio::sync::watch;

/// A place in the log: a segment, and a byte offset in it at a record boundary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPosition {
    /// The segment.
    pub segment: u32,
    /// Bytes into it.
    pub offset: u64,
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The log failed.
    #[error("WAL: {0}")]
    Wal(#[from] WalError),
    /// The directory could not be made.
    #[error(transparent)]
    Durable(#[from] rthanos_durable::DurableError),
    /// The metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Why one sample was not appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Older than the series' newest sample (Prometheus's agent refuses these too).
    OutOfOrder,
    /// Not a valid series (no labels, or a name twice).
    Invalid(String),
}

/// What opening found in the log.
#[derive(Clone, Debug, Default)]
pub struct Replayed {
    /// Series known again.
    pub series: usize,
    /// Samples read.
    pub samples: usize,
    /// The corruption the log was cut at, if any.
    pub repaired: Option<String>,
}

struct SeriesState {
    reference: u64,
    last_ts: i64,
    /// The segment holding the series' newest sample: once every queue is past it, the
    /// series is forgotten (a later sample makes it again, under a new reference).
    last_segment: u32,
}

struct Inner {
    wal: Wal,
    series: HashMap<Labels, SeriesState>,
    next_reference: u64,
    series_buf: Vec<u8>,
    samples_buf: Vec<u8>,
}

/// The log of stateless mode, in `<dir>/wal` (Prometheus's record format).
pub struct WalStore {
    wal_dir: PathBuf,
    inner: Mutex<Inner>,
    written: watch::Sender<LogPosition>,
    checkpoints: watch::Sender<Option<u32>>,
    highest_timestamp: prometheus::Gauge,
    samples_in: prometheus::IntCounter,
}

impl WalStore {
    /// Opens (or makes) the log in `<dir>/wal`: every series it holds is known again, a torn
    /// or corrupt tail is cut off, and writing starts a new segment.
    ///
    /// # Errors
    /// The directory cannot be made or read, a checkpoint is corrupt, or the metrics cannot
    /// be registered.
    pub fn open(
        dir: &Path,
        compress: bool,
        segment_size: usize,
        registry: &prometheus::Registry,
    ) -> Result<(WalStore, Replayed), StoreError> {
        let wal_dir = dir.join("wal");
        rthanos_durable::create_dir_all(&wal_dir)?;
        let mut replayed = Replayed::default();
        let mut by_reference: HashMap<u64, Labels> = HashMap::new();
        let mut series: HashMap<Labels, SeriesState> = HashMap::new();
        let mut next_reference = 1;
        let mut apply = |segment: u32, bytes: &[u8]| -> Result<(), String> {
            match record::decode(bytes)? {
                Record::Series(records) => {
                    for s in records {
                        next_reference = next_reference.max(s.reference + 1);
                        replayed.series += 1;
                        series.insert(
                            s.labels.clone(),
                            SeriesState {
                                reference: s.reference,
                                last_ts: i64::MIN,
                                last_segment: segment,
                            },
                        );
                        by_reference.insert(s.reference, s.labels);
                    }
                }
                Record::Samples(samples) => {
                    for s in samples {
                        replayed.samples += 1;
                        if let Some(state) = by_reference
                            .get(&s.reference)
                            .and_then(|labels| series.get_mut(labels))
                            .filter(|state| state.reference == s.reference)
                        {
                            state.last_ts = state.last_ts.max(s.t);
                            state.last_segment = segment;
                        }
                    }
                }
                Record::Tombstones(_) | Record::Other(_) => {}
            }
            Ok(())
        };
        // A checkpoint's series are from before every segment after it.
        let repaired = rthanos_tsdb::wal::replay(&wal_dir, &mut apply)?;
        replayed.repaired = repaired;
        let wal = Wal::open_sized(&wal_dir, segment_size, compress)?;
        let (written, _) = watch::channel(position(&wal));
        let (checkpoints, _) = watch::channel(None);
        let highest_timestamp = prometheus::Gauge::new(
            "prometheus_remote_storage_highest_timestamp_in_seconds",
            "Highest timestamp that has come into the remote storage via the Appender interface, in seconds since epoch.",
        )?;
        let samples_in = prometheus::IntCounter::new(
            "prometheus_remote_storage_samples_in_total",
            "Samples in to remote storage, compare to samples out for queue managers.",
        )?;
        registry.register(Box::new(highest_timestamp.clone()))?;
        registry.register(Box::new(samples_in.clone()))?;
        Ok((
            WalStore {
                wal_dir,
                inner: Mutex::new(Inner {
                    wal,
                    series,
                    next_reference,
                    series_buf: Vec::new(),
                    samples_buf: Vec::new(),
                }),
                written,
                checkpoints,
                highest_timestamp,
                samples_in,
            },
            replayed,
        ))
    }

    /// The log's directory.
    pub fn wal_dir(&self) -> &Path {
        &self.wal_dir
    }

    /// Follows the end of what is written out: every record before it is whole.
    pub fn subscribe(&self) -> watch::Receiver<LogPosition> {
        self.written.subscribe()
    }

    /// Follows the checkpoints written by [`WalStore::truncate`]: a queue forgets the series
    /// it no longer needs when a new one appears.
    pub fn subscribe_checkpoints(&self) -> watch::Receiver<Option<u32>> {
        self.checkpoints.subscribe()
    }

    /// The end of what is written out now.
    pub fn written(&self) -> LogPosition {
        *self.written.borrow()
    }

    /// Appends `samples` (labels, timestamp in ms, value) in one commit: for each, `None`
    /// (logged) or why it was refused. When this returns the samples survive the process
    /// being killed, and the queues are told.
    ///
    /// # Errors
    /// Writing the log failed: none of the samples was kept.
    pub fn append<'a>(
        &self,
        samples: impl IntoIterator<Item = (&'a Labels, i64, f64)>,
    ) -> Result<Vec<Option<Refusal>>, StoreError> {
        let samples = samples.into_iter();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let inner = &mut *inner;
        let mut refusals = Vec::with_capacity(samples.size_hint().0);
        let mut new_series: Vec<RefSeries> = Vec::new();
        // Series made or moved by this commit, applied only once it is logged.
        let mut pending: HashMap<&Labels, (u64, i64)> = HashMap::new();
        let mut refs = Vec::with_capacity(samples.size_hint().0);
        let mut next_reference = inner.next_reference;
        for (labels, t, v) in samples {
            if let Some(why) = invalid(labels) {
                refusals.push(Some(Refusal::Invalid(why)));
                continue;
            }
            let (reference, last_ts) = match pending.get(labels) {
                Some(&known) => known,
                None => match inner.series.get(labels) {
                    Some(state) => (state.reference, state.last_ts),
                    None => {
                        let reference = next_reference;
                        next_reference += 1;
                        new_series.push(RefSeries {
                            reference,
                            labels: labels.clone(),
                        });
                        (reference, i64::MIN)
                    }
                },
            };
            if t < last_ts {
                refusals.push(Some(Refusal::OutOfOrder));
                pending.insert(labels, (reference, last_ts));
                continue;
            }
            pending.insert(labels, (reference, t));
            refs.push(RefSample { reference, t, v });
            refusals.push(None);
        }
        inner.series_buf.clear();
        inner.samples_buf.clear();
        let mut batch: Vec<&[u8]> = Vec::with_capacity(2);
        if !new_series.is_empty() {
            record::encode_series(&new_series, &mut inner.series_buf);
            batch.push(&inner.series_buf);
        }
        if !refs.is_empty() {
            record::encode_samples(&refs, &mut inner.samples_buf);
            batch.push(&inner.samples_buf);
        }
        if batch.is_empty() {
            return Ok(refusals);
        }
        // Taken even if logging fails: a record cut short may still reach the disk whole
        // with the next write, and no reference may name two series.
        inner.next_reference = next_reference;
        inner.wal.log(&batch)?;
        let segment = inner.wal.current_segment();
        for (labels, (reference, last_ts)) in pending {
            let state = inner
                .series
                .entry(labels.clone())
                .or_insert_with(|| SeriesState {
                    reference,
                    last_ts,
                    last_segment: segment,
                });
            state.last_ts = last_ts;
            state.last_segment = segment;
        }
        if let Some(newest) = refs.iter().map(|s| s.t).max() {
            let seconds = newest as f64 / 1000.0;
            if seconds > self.highest_timestamp.get() {
                self.highest_timestamp.set(seconds);
            }
        }
        self.samples_in.inc_by(refs.len() as u64);
        self.written.send_replace(position(&inner.wal));
        Ok(refusals)
    }

    /// Drops what every queue has sent: a new segment is started (so a quiet log still
    /// moves on), series whose newest sample is in a segment before `sent_before` are
    /// forgotten, the series still known are written into a checkpoint of the segments
    /// before `sent_before`, and those segments and older checkpoints are deleted.
    /// `sent_before` is the lowest segment any queue still reads from.
    ///
    /// # Errors
    /// Writing the checkpoint or deleting failed; the log stays whole.
    pub fn truncate(&self, sent_before: u32) -> Result<(), StoreError> {
        // Under the lock only what must not move under an append; the checkpoint, which
        // reads whole segments, is written without holding appends up.
        let (first, last, live, compress) = {
            let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let inner = &mut *inner;
            if inner.wal.written().1 > 0 {
                inner.wal.next_segment()?;
                self.written.send_replace(position(&inner.wal));
            }
            let segments = rthanos_tsdb::wal::segments(&self.wal_dir)?;
            let Some(&first) = segments.first() else {
                return Ok(());
            };
            // The segment being written is never checkpointed.
            let Some(last) = sent_before.min(inner.wal.current_segment()).checked_sub(1) else {
                return Ok(());
            };
            if last < first {
                return Ok(());
            }
            inner.series.retain(|_, s| s.last_segment > last);
            let live: HashSet<u64> = inner.series.values().map(|s| s.reference).collect();
            (first, last, live, inner.wal.compressed())
        };
        // Samples are all sent: none is kept. A series made after `live` was taken is
        // declared in a segment after `last`, so it needs no place in the checkpoint.
        checkpoint::checkpoint_in(
            &self.wal_dir,
            compress,
            first,
            last,
            |r| live.contains(&r),
            i64::MAX,
        )?;
        rthanos_tsdb::wal::delete_segments_before(&self.wal_dir, last + 1)?;
        checkpoint::delete_checkpoints(&self.wal_dir, last)?;
        self.checkpoints.send_replace(Some(last));
        Ok(())
    }

    /// Fsyncs the segment being written.
    ///
    /// # Errors
    /// The sync failed.
    pub fn sync(&self) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.wal.sync()?;
        Ok(())
    }

    /// Series known now.
    pub fn series_count(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .series
            .len()
    }
}

fn position(wal: &Wal) -> LogPosition {
    let (segment, offset) = wal.written();
    LogPosition { segment, offset }
}

/// Why `labels` is no series, as Prometheus's agent checks (empty values are no labels).
fn invalid(labels: &Labels) -> Option<String> {
    if labels.iter().all(|l| l.value.is_empty()) {
        return Some("empty labelset".to_string());
    }
    None
}
