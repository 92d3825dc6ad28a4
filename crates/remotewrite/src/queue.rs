//! One remote-write target's queue: it tails the log from its saved position, turns samples
//! records into remote write 1.0 requests (snappy-compressed `WriteRequest`s) and sends them
//! one at a time, in log order, retrying recoverable failures (network errors, 5xx, and 429
//! with `retry_on_http_429`) with Prometheus's backoff until they succeed. A request is never
//! given up for a target being down: the log holds what is not sent, and the position moves
//! only when a request is acknowledged (or refused for good, a 4xx, which Prometheus drops
//! too).
//!
//! A request holds at most one sample per series. So after a crash, the request resent from
//! the saved position (the one in flight, perhaps delivered) carries for each series a sample
//! no older than what the target holds: a Prometheus receiver takes an exact duplicate, where
//! an older sample would make it refuse the whole request as out of order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use rthanos_model::Labels;
use rthanos_storeapi::prometheus::{Label, Sample, TimeSeries, WriteRequest};
use rthanos_tsdb::wal::record::{self, Record, RefSample};
use rthanos_tsdb::wal::{SegmentRange, WalError, checkpoint, read_records, read_segment_range};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::RemoteWriteConfig;
use crate::metrics::QueueMetrics;
use crate::positions::{Positions, QueuePosition};
use crate::store::LogPosition;

/// One target's queue.
pub struct Queue {
    config: RemoteWriteConfig,
    external_labels: Labels,
    wal_dir: PathBuf,
    positions: Arc<Positions>,
    written: watch::Receiver<LogPosition>,
    checkpoints: watch::Receiver<Option<u32>>,
    metrics: QueueMetrics,
    start: QueuePosition,
}

/// How a request ended.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    /// Acknowledged, or refused for good: the position moves past it.
    Done,
    /// Shutting down before it was acknowledged: the position stays.
    Stopped,
}

/// Why a request failed.
enum SendError {
    /// Worth retrying (after the server's `Retry-After`, if it gave one).
    Recoverable(String, Option<Duration>),
    /// Not worth retrying: the request is dropped.
    Fatal(String),
}

impl Queue {
    /// A queue for `config`, starting from its saved position (see
    /// [`Queue::start_position`]), which is decided here, before anything more is appended.
    ///
    /// # Errors
    /// The log's directory cannot be read, or the position cannot be saved.
    pub(crate) fn new(
        config: RemoteWriteConfig,
        external_labels: Labels,
        wal_dir: PathBuf,
        positions: Arc<Positions>,
        (written, checkpoints): (watch::Receiver<LogPosition>, watch::Receiver<Option<u32>>),
        metrics: QueueMetrics,
    ) -> Result<Queue, String> {
        let mut queue = Queue {
            config,
            external_labels,
            wal_dir,
            positions,
            written,
            checkpoints,
            metrics,
            start: QueuePosition::default(),
        };
        queue.start = queue.start_position()?;
        Ok(queue)
    }

    /// The queue's name (`name`, or Prometheus's hash of its configuration).
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Where the queue starts: its saved position if the log still holds it, else the end of
    /// the log as it is now (a new queue sends what is written from now on, as Prometheus's
    /// does). The position is saved before returning, so the log is kept from there.
    ///
    /// # Errors
    /// The log's directory cannot be read, or the position cannot be saved.
    fn start_position(&self) -> Result<QueuePosition, String> {
        let end = *self.written.borrow();
        let at_end = QueuePosition {
            segment: end.segment,
            offset: end.offset,
            sent: 0,
        };
        let segments = rthanos_tsdb::wal::segments(&self.wal_dir).map_err(|e| e.to_string())?;
        let start = match (self.positions.get(&self.config.name), segments.first()) {
            (None, _) | (_, None) => at_end,
            (Some(saved), Some(&first)) if saved.segment < first => {
                tracing::warn!(
                    queue = %self.config.name, segment = saved.segment, first,
                    "the log no longer holds the queue's position: it resumes at the oldest segment"
                );
                QueuePosition {
                    segment: first,
                    offset: 0,
                    sent: 0,
                }
            }
            // Writing always starts a new segment: a position in it or beyond is from a log
            // that a repair cut short.
            (Some(saved), _) if saved.segment >= end.segment => at_end,
            (Some(saved), _) => saved,
        };
        self.positions
            .set(&self.config.name, start)
            .map_err(|e| e.to_string())?;
        Ok(start)
    }

    /// Sends until `shutdown`; what is not acknowledged by then stays in the log, and is
    /// sent from the saved position at the next start.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let start = self.start;
        let mut tail = Tail::new(
            self.wal_dir.clone(),
            start,
            self.external_labels.clone(),
            self.config.write_relabel.clone(),
        );
        // Series are learnt before anything is sent: a sample of a series not learnt would
        // be dropped as unknown. A truncation may delete segments under the reading (it
        // writes their series into a checkpoint first): read again from that checkpoint.
        let mut attempt = 0u32;
        let mut tail = loop {
            let replayed = tokio::task::spawn_blocking(move || {
                let result = tail.replay_series();
                (tail, result)
            })
            .await;
            let (back, result) = match replayed {
                Ok(done) => done,
                Err(e) => {
                    tracing::error!(queue = %self.config.name, err = %e, "reading the log's series panicked");
                    return;
                }
            };
            tail = back;
            match result {
                Ok(()) => break tail,
                Err(e) => {
                    attempt += 1;
                    tracing::error!(queue = %self.config.name, err = %e, attempt, "reading the log's series failed; reading again");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(u64::from(attempt.min(30)))) => {}
                        () = shutdown.cancelled() => return,
                    }
                }
            }
        };
        tracing::info!(
            queue = %self.config.name, url = %self.config.url,
            segment = start.segment, offset = start.offset,
            "remote write queue started"
        );
        let mut oldest_unsent: Option<Instant> = None;
        loop {
            let to = *self.written.borrow_and_update();
            let checkpoint = if self.checkpoints.has_changed().unwrap_or(false) {
                *self.checkpoints.borrow_and_update()
            } else {
                None
            };
            let capacity = self
                .config
                .queue
                .capacity
                .max(self.config.queue.max_samples_per_send);
            if (tail.cursor < to && tail.pending_count < capacity) || checkpoint.is_some() {
                let reading = tokio::task::spawn_blocking(move || {
                    if let Some(checkpoint) = checkpoint {
                        tail.forget_truncated(checkpoint);
                    }
                    let read = tail.read_to(to, capacity);
                    (tail, read)
                })
                .await;
                let (back, read) = match reading {
                    Ok(done) => done,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    // The runtime is shutting down: what is unsent stays in the log.
                    Err(_) => return,
                };
                tail = back;
                if let Err(e) = read {
                    self.metrics.decode_failures.inc();
                    tracing::error!(queue = %self.config.name, err = %e, "reading the log failed; retrying");
                }
            }
            self.metrics
                .current_segment
                .set(i64::from(tail.cursor.segment));
            self.metrics.samples_pending.set(tail.pending_count as i64);
            if tail.has_unsent() {
                oldest_unsent.get_or_insert_with(Instant::now);
            }
            let deadline_passed =
                oldest_unsent.is_some_and(|t| t.elapsed() >= self.config.queue.batch_send_deadline);
            let batch = tail.next_batch(self.config.queue.max_samples_per_send);
            // Samples that are all dropped need no request: they are passed at once.
            if batch.extent.is_some() && (batch.full || deadline_passed || batch.samples == 0) {
                if self.send_batch(&batch, &shutdown).await == Sent::Stopped {
                    return;
                }
                tail.consume(&batch, &self.metrics);
                if let Err(e) = self.positions.set(&self.config.name, tail.position()) {
                    tracing::error!(queue = %self.config.name, err = %e, "saving the queue's position failed");
                }
                oldest_unsent = tail.has_unsent().then(Instant::now);
                continue;
            }
            if shutdown.is_cancelled() {
                return;
            }
            let wait = oldest_unsent.map_or(Duration::from_secs(3600), |t| {
                self.config
                    .queue
                    .batch_send_deadline
                    .saturating_sub(t.elapsed())
            });
            tokio::select! {
                changed = self.written.changed() => {
                    if changed.is_err() {
                        // The store is gone: nothing more will be written.
                        return;
                    }
                }
                _ = self.checkpoints.changed() => {}
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Sends `batch` until it is acknowledged or refused for good, or shutdown comes.
    async fn send_batch(&self, batch: &Batch, shutdown: &CancellationToken) -> Sent {
        if batch.series.is_empty() {
            return Sent::Done;
        }
        let request = WriteRequest {
            timeseries: batch.series.clone(),
        };
        let encoded = request.encode_to_vec();
        let body = match snap::raw::Encoder::new().compress_vec(&encoded) {
            Ok(body) => bytes::Bytes::from(body),
            Err(e) => {
                tracing::error!(queue = %self.config.name, err = %e, "snappy compression failed");
                self.metrics.samples_failed.inc_by(batch.samples as u64);
                return Sent::Done;
            }
        };
        let mut backoff = self.config.queue.min_backoff;
        loop {
            self.metrics.samples_total.inc_by(batch.samples as u64);
            let started = Instant::now();
            let result = tokio::select! {
                result = self.post(body.clone()) => result,
                () = shutdown.cancelled() => return Sent::Stopped,
            };
            self.metrics
                .sent_batch_duration
                .observe(started.elapsed().as_secs_f64());
            match result {
                Ok(()) => {
                    self.metrics.bytes_total.inc_by(body.len() as u64);
                    // Whole seconds, as Prometheus sets it.
                    let seconds = batch.highest_timestamp.div_euclid(1000) as f64;
                    if seconds > self.metrics.highest_sent_timestamp.get() {
                        self.metrics.highest_sent_timestamp.set(seconds);
                    }
                    return Sent::Done;
                }
                Err(SendError::Fatal(e)) => {
                    tracing::error!(
                        queue = %self.config.name, url = %self.config.url, err = %e,
                        samples = batch.samples,
                        "non-recoverable error sending samples: they are dropped"
                    );
                    self.metrics.samples_failed.inc_by(batch.samples as u64);
                    return Sent::Done;
                }
                Err(SendError::Recoverable(e, retry_after)) => {
                    tracing::warn!(
                        queue = %self.config.name, url = %self.config.url, err = %e,
                        "failed to send batch, retrying"
                    );
                    self.metrics.samples_retried.inc_by(batch.samples as u64);
                    let sleep = retry_after.unwrap_or(backoff);
                    tokio::select! {
                        () = tokio::time::sleep(sleep) => {}
                        () = shutdown.cancelled() => return Sent::Stopped,
                    }
                    // Prometheus doubles the delay it slept, a Retry-After's included.
                    backoff = sleep.saturating_mul(2).min(self.config.queue.max_backoff);
                }
            }
        }
    }

    /// One POST, classified as Prometheus 2.42's remote-write client does.
    async fn post(&self, body: bytes::Bytes) -> Result<(), SendError> {
        let mut request = self
            .config
            .client
            .post(self.config.url.clone())
            .timeout(self.config.remote_timeout)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            // Prometheus's client, with rthanos's version, as Thanos's sends it with its own.
            .header(
                "User-Agent",
                concat!("Prometheus/", env!("CARGO_PKG_VERSION")),
            )
            .header("X-Prometheus-Remote-Write-Version", "0.1.0");
        for (name, value) in &self.config.headers {
            request = request.header(name, value);
        }
        let response = self
            .config
            .auth
            .apply(request.body(body))
            .send()
            .await
            .map_err(|e| SendError::Recoverable(e.to_string(), None))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, std::time::SystemTime::now()));
        let body = response.bytes().await.unwrap_or_default();
        // Prometheus quotes at most 1 KiB of the answer.
        let quoted = String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_BYTES)]);
        let message = format!("server returned HTTP status {status}: {quoted}");
        if status.is_server_error() {
            Err(SendError::Recoverable(message, None))
        } else if status == reqwest::StatusCode::TOO_MANY_REQUESTS
            && self.config.queue.retry_on_http_429
        {
            Err(SendError::Recoverable(message, retry_after))
        } else {
            Err(SendError::Fatal(message))
        }
    }
}

/// How much of an error answer is quoted (Prometheus's `maxErrMsgLen`).
const MAX_ERROR_BYTES: usize = 1024;

/// Bytes of the log read at a time.
const READ_CHUNK: u64 = 1 << 20;

/// A `Retry-After` value: seconds, or an HTTP date (one before `now` gives none).
fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds)).filter(|d| !d.is_zero());
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at =
        std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(at.timestamp_millis()).ok()?);
    at.duration_since(now).ok()
}

/// A samples record read from the log and not wholly sent.
struct PendingRecord {
    segment: u32,
    offset: u64,
    samples: Vec<RefSample>,
    sent: usize,
}

/// The next request: its series and how far into the pending records it reaches.
pub(crate) struct Batch {
    series: Vec<TimeSeries>,
    samples: usize,
    highest_timestamp: i64,
    /// Samples consumed (sent or dropped): the index of the last record reached and how many
    /// of its samples are consumed then; `None` when nothing is pending.
    extent: Option<(usize, usize)>,
    /// Samples skipped because their series is dropped or unknown.
    dropped: usize,
    /// Cut short by the size limit or a series seen twice: send at once.
    full: bool,
}

/// A series' labels as sent; `None` when relabelling drops it.
type SentLabels = Option<Arc<Vec<Label>>>;

/// The queue's reading of the log.
struct Tail {
    wal_dir: PathBuf,
    start: QueuePosition,
    cursor: LogPosition,
    external_labels: Labels,
    relabel: rthanos_model::relabel::Relabel,
    /// Series reference → the labels sent (`None` when relabelling drops the series) and
    /// the segment (or checkpoint) that declared it.
    series: HashMap<u64, (SentLabels, u32)>,
    pending: VecDeque<PendingRecord>,
    /// Samples in `pending` not sent yet.
    pending_count: usize,
    /// Bytes read at a time.
    read_chunk: u64,
}

impl Tail {
    fn new(
        wal_dir: PathBuf,
        start: QueuePosition,
        external_labels: Labels,
        relabel: rthanos_model::relabel::Relabel,
    ) -> Tail {
        Tail {
            wal_dir,
            start,
            cursor: LogPosition {
                segment: start.segment,
                offset: start.offset,
            },
            external_labels,
            relabel,
            series: HashMap::new(),
            pending: VecDeque::new(),
            pending_count: 0,
            read_chunk: READ_CHUNK,
        }
    }

    /// Learns the series written before the start position: the last checkpoint's and the
    /// log's up to it.
    fn replay_series(&mut self) -> Result<(), WalError> {
        let wal_dir = self.wal_dir.clone();
        self.series.clear();
        let mut first = 0;
        if let Some((index, path)) = checkpoint::last_checkpoint(&wal_dir)? {
            read_records(&[SegmentRange::all(&path)], |_, r| {
                self.learn(index, r);
                Ok(())
            })?;
            first = index + 1;
        }
        if self.start.segment > first {
            let range = SegmentRange {
                dir: wal_dir.clone(),
                first,
                last: self.start.segment - 1,
            };
            read_records(&[range], |segment, r| {
                self.learn(segment, r);
                Ok(())
            })?;
        }
        if self.start.offset > 0 {
            let (segment, to) = (self.start.segment, self.start.offset);
            read_segment_range(&wal_dir, segment, 0, to, |_, r| {
                self.learn(segment, r);
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Takes the series of a series record in `segment` (other records are passed over).
    fn learn(&mut self, segment: u32, bytes: &[u8]) {
        if bytes.first() != Some(&record::SERIES) {
            return;
        }
        if let Ok(Record::Series(series)) = record::decode(bytes) {
            for s in series {
                let labels = self.sent_labels(&s.labels);
                self.series.insert(s.reference, (labels, segment));
            }
        }
    }

    /// Forgets the series the store forgot when it wrote checkpoint `index`: those declared
    /// in the segments it covers and not in it (their samples are all sent: the store
    /// truncates only what every queue has passed), as Prometheus's `SeriesReset`.
    fn forget_truncated(&mut self, index: u32) {
        let path = checkpoint::checkpoint_dir(&self.wal_dir, index);
        let read = read_records(&[SegmentRange::all(&path)], |_, r| {
            self.learn(index, r);
            Ok(())
        });
        if read.is_ok() {
            self.series.retain(|_, (_, declared)| *declared >= index);
        }
    }

    /// The labels a series is sent with: the external labels it lacks added, then write
    /// relabelling (Prometheus's order); `None` when relabelling drops it.
    fn sent_labels(&self, labels: &Labels) -> SentLabels {
        let mut pairs: Vec<(String, String)> = labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        for l in self.external_labels.iter() {
            if labels.get(&l.name).is_none() {
                pairs.push((l.name.clone(), l.value.clone()));
            }
        }
        let labels = self.relabel.process(&Labels::from_pairs(pairs))?;
        if labels.is_empty() {
            return None;
        }
        Some(Arc::new(
            labels
                .iter()
                .map(|l| Label {
                    name: l.name.clone(),
                    value: l.value.clone(),
                })
                .collect(),
        ))
    }

    /// Reads the log from the cursor up to `to` (the end of what is written out), a chunk
    /// at a time, until `capacity` samples are pending.
    fn read_to(&mut self, to: LogPosition, capacity: usize) -> Result<(), WalError> {
        let mut chunk = self.read_chunk;
        while self.cursor < to && self.pending_count < capacity {
            let segment = self.cursor.segment;
            let end = if segment < to.segment {
                u64::MAX
            } else {
                to.offset
            };
            let from = self.cursor.offset;
            let limit = end.min(from.saturating_add(chunk));
            let mut at = from;
            let mut records: Vec<(u64, Vec<u8>)> = Vec::new();
            let read = read_segment_range(&self.wal_dir, segment, from, limit, |record_end, r| {
                records.push((record_end, r.to_vec()));
                Ok(())
            });
            let mut full = false;
            for (record_end, bytes) in records {
                if self.pending_count >= capacity {
                    // Left for a later read: the cursor stays at this record.
                    full = true;
                    break;
                }
                self.take(segment, at, &bytes);
                at = record_end;
            }
            self.cursor.offset = at;
            if full {
                break;
            }
            match read {
                // The chunk ended inside a record: it is read whole from its start next time
                // (with a larger chunk if it alone is larger).
                Err(WalError::Corrupt { offset, .. }) if limit < end && offset >= at => {
                    if at == from {
                        chunk = chunk.saturating_mul(2);
                    }
                }
                Err(WalError::Corrupt { offset, detail, .. }) if segment < to.segment => {
                    // A finished segment is whole unless the disk failed: what follows the
                    // corruption cannot be read; the next segment can.
                    tracing::error!(
                        segment,
                        offset,
                        detail,
                        "corrupt WAL record: the rest of the segment is skipped"
                    );
                    self.cursor = LogPosition {
                        segment: segment + 1,
                        offset: 0,
                    };
                    return Err(WalError::Corrupt {
                        segment,
                        offset,
                        detail,
                    });
                }
                Err(e) => return Err(e),
                Ok(bytes_read) if from + bytes_read < limit && segment < to.segment => {
                    // The end of a finished segment.
                    self.cursor = LogPosition {
                        segment: segment + 1,
                        offset: 0,
                    };
                }
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// Takes one record read at `offset` of `segment`.
    fn take(&mut self, segment: u32, offset: u64, bytes: &[u8]) {
        match bytes.first() {
            Some(&record::SERIES) => self.learn(segment, bytes),
            Some(&record::SAMPLES) => {
                if let Ok(Record::Samples(samples)) = record::decode(bytes) {
                    let sent = if (segment, offset) == (self.start.segment, self.start.offset) {
                        self.start.sent.min(samples.len())
                    } else {
                        0
                    };
                    if sent < samples.len() {
                        self.pending_count += samples.len() - sent;
                        self.pending.push_back(PendingRecord {
                            segment,
                            offset,
                            samples,
                            sent,
                        });
                    }
                }
            }
            _ => {}
        }
    }

    fn has_unsent(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The next request: samples in log order, at most `max` and one per series.
    fn next_batch(&self, max: usize) -> Batch {
        let mut batch = Batch {
            series: Vec::new(),
            samples: 0,
            highest_timestamp: i64::MIN,
            extent: None,
            dropped: 0,
            full: false,
        };
        let mut seen: HashSet<u64> = HashSet::new();
        'records: for (index, record) in self.pending.iter().enumerate() {
            for (i, sample) in record.samples.iter().enumerate().skip(record.sent) {
                match self.series.get(&sample.reference) {
                    Some((Some(labels), _)) => {
                        if batch.samples >= max || !seen.insert(sample.reference) {
                            batch.full = true;
                            break 'records;
                        }
                        batch.series.push(TimeSeries {
                            labels: labels.as_ref().clone(),
                            samples: vec![Sample {
                                value: sample.v,
                                timestamp: sample.t,
                            }],
                        });
                        batch.samples += 1;
                        batch.highest_timestamp = batch.highest_timestamp.max(sample.t);
                    }
                    // Dropped by relabelling, or a reference the log never named.
                    _ => batch.dropped += 1,
                }
                batch.extent = Some((index, i + 1));
            }
        }
        batch.full |= batch.samples >= max;
        batch
    }

    /// Moves past `batch` (sent or dropped).
    fn consume(&mut self, batch: &Batch, metrics: &QueueMetrics) {
        metrics.samples_dropped.inc_by(batch.dropped as u64);
        let Some((index, sent)) = batch.extent else {
            return;
        };
        for done in self.pending.drain(..index) {
            self.pending_count -= done.samples.len() - done.sent;
        }
        if let Some(front) = self.pending.front_mut() {
            self.pending_count -= sent - front.sent;
            front.sent = sent;
            if front.sent >= front.samples.len() {
                self.pending.pop_front();
            }
        }
    }

    /// The position to resume from: the first record not wholly sent, or the cursor.
    fn position(&self) -> QueuePosition {
        match self.pending.front() {
            Some(r) => QueuePosition {
                segment: r.segment,
                offset: r.offset,
                sent: r.sent,
            },
            None => QueuePosition {
                segment: self.cursor.segment,
                offset: self.cursor.offset,
                sent: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::WalStore;

    fn labels(name: &str) -> Labels {
        Labels::from_pairs([("__name__", name)])
    }

    fn tail(dir: &std::path::Path, start: QueuePosition) -> Tail {
        let relabel = rthanos_model::relabel::Relabel::from_yaml(
            "- {source_labels: [__name__], regex: dropped, action: drop}",
        )
        .expect("relabel");
        Tail::new(dir.join("wal"), start, Labels::default(), relabel)
    }

    /// Names of a batch's series, in order.
    fn names(batch: &Batch) -> Vec<String> {
        batch
            .series
            .iter()
            .map(|s| s.labels[0].value.clone())
            .collect()
    }

    #[test]
    fn batches_cut_inside_records_and_the_position_resumes_there() {
        let tmp = tempfile::tempdir().expect("tmp");
        let registry = prometheus::Registry::new();
        let (store, _) = WalStore::open(tmp.path(), true, 32 * 1024, &registry).expect("open");
        let series: Vec<Labels> = ["a", "b", "c", "dropped", "e"].map(labels).to_vec();
        store
            .append(series.iter().map(|l| (l, 1000, 1.0)))
            .expect("append");
        store
            .append([(&series[0], 2000, 2.0), (&series[1], 2000, 2.0)])
            .expect("append");
        let end = store.written();
        let metrics = crate::metrics::RemoteWriteMetrics::new(&registry)
            .expect("metrics")
            .queue("q", "http://x", 10, 3);
        let start = QueuePosition {
            segment: end.segment,
            offset: 0,
            sent: 0,
        };
        let mut t = tail(tmp.path(), start);
        // A chunk smaller than a record: each record is still read whole.
        t.read_chunk = 16;
        t.read_to(end, 100).expect("read");
        assert_eq!(t.cursor, end);
        assert_eq!(t.pending_count, 7);
        let first = t.next_batch(3);
        assert!(first.full);
        assert_eq!(names(&first), ["a", "b", "c"]);
        t.consume(&first, &metrics);
        let at = t.position();
        // `dropped` is passed over with them.
        assert_eq!(first.dropped, 1);
        assert_eq!(at.sent, 4, "inside the first record");
        // `a` again is the next record's: one sample per series.
        let second = t.next_batch(3);
        assert_eq!(names(&second), ["e", "a", "b"]);
        // Resumed from the saved position (as after a crash): the same request again.
        let mut resumed = tail(tmp.path(), at);
        resumed.replay_series().expect("series");
        resumed.read_to(end, 100).expect("read");
        assert_eq!(names(&resumed.next_batch(3)), ["e", "a", "b"]);
        t.consume(&second, &metrics);
        assert_eq!(t.pending_count, 0);
        assert!(!t.has_unsent());
        assert_eq!(
            t.position(),
            QueuePosition {
                segment: end.segment,
                offset: end.offset,
                sent: 0
            }
        );
        // A series twice in a row of samples: the request ends before the second.
        store.append([(&series[0], 3000, 3.0)]).expect("append");
        store.append([(&series[0], 4000, 4.0)]).expect("append");
        t.read_to(store.written(), 100).expect("read");
        let third = t.next_batch(3);
        assert!(third.full);
        assert_eq!(names(&third), ["a"]);
        // Reading stops at the capacity, on a record boundary.
        let mut bounded = tail(tmp.path(), start);
        bounded.read_to(store.written(), 2).expect("read");
        assert_eq!(bounded.pending_count, 5, "the first record, whole");
        assert!(bounded.cursor < store.written());
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        // 2015-10-21T07:28:00Z, the date of the example below.
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("0", now), None);
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            None,
            "past"
        );
        assert_eq!(retry_after("soon", now), None);
    }
}
