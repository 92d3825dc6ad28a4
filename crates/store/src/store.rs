//! The StoreAPI of the store gateway over its loaded blocks.
//!
//! A Series call picks, per external label set, the blocks that overlap the time range,
//! highest resolution first within `max_resolution_window` (lower resolutions fill the
//! gaps, as Thanos's block sets do), and reads each block's matching series in parallel.
//! Matchers on external labels are decided per block. Series of a block are sorted by their
//! final labels (external labels added, `without_replica_labels` removed); the blocks'
//! streams are merged, equal series joined.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use rthanos_chunkenc::{AggrType, Encoding};
use rthanos_model::{Labels, Matcher};
use rthanos_storeapi::convert::matchers_from_thanos;
use rthanos_storeapi::merge::merge_series;
use rthanos_storeapi::reorder::{Labeled, Reorder};
use rthanos_storeapi::thanos::{
    self, AggrChunk, LabelNamesRequest, LabelNamesResponse, LabelValuesRequest,
    LabelValuesResponse, SeriesRequest, SeriesResponse, series_response::Result as Frame,
};
use rthanos_storeapi::{Component, SeriesStream, Store, StoreInfo};
use rthanos_tsdb::index::SeriesEntry;
use rthanos_tsdb::postings::{Postings, SelectPlan};
use tonic::Status;

use crate::block::{BucketBlock, Fetched};
use crate::{BucketStore, StoreError};

/// Series read from a block at a time: a block's answer is held about one batch at a time,
/// and every block of a query has batches in flight at once (the merge needs each block's
/// next series), so this bounds a broad query's memory: 256 series held ~120 MiB over 84
/// blocks in benches/store.rs, where 1 024 held ~480 MiB (heap profile).
const SERIES_BATCH: usize = 256;

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Bucket(m) => Status::unavailable(m),
            StoreError::Block(m) => Status::data_loss(m),
            StoreError::Local(m) | StoreError::Config(m) => Status::internal(m),
            e @ StoreError::PoolExhausted(_) => Status::resource_exhausted(e.to_string()),
        }
    }
}

/// The matchers a block still has to apply, once those on its external labels are decided;
/// `None` when an external label rejects the block.
fn own_matchers(block: &BucketBlock, matchers: &[Matcher]) -> Option<Vec<Matcher>> {
    let mut own = Vec::with_capacity(matchers.len());
    for m in matchers {
        match block.labels.get(&m.name) {
            Some(value) if !m.matches(value) => return None,
            Some(_) => {}
            None => own.push(m.clone()),
        }
    }
    Some(own)
}

/// The blocks of one label set that serve [min, max]: the coarsest resolution allowed first,
/// finer ones filling what it leaves uncovered.
fn blocks_for(
    blocks: &[Arc<BucketBlock>],
    resolutions: &[i64],
    min: i64,
    max: i64,
) -> Vec<Arc<BucketBlock>> {
    let Some((&resolution, finer)) = resolutions.split_first() else {
        return Vec::new();
    };
    let mut at: Vec<&Arc<BucketBlock>> = blocks
        .iter()
        .filter(|b| b.resolution() == resolution && b.meta.max_time > min && b.meta.min_time <= max)
        .collect();
    at.sort_by_key(|b| b.meta.min_time);
    let mut out = Vec::new();
    let mut covered_to = min;
    for b in at {
        if b.meta.min_time > covered_to {
            out.extend(blocks_for(blocks, finer, covered_to, b.meta.min_time - 1));
        }
        out.push(Arc::clone(b));
        covered_to = covered_to.max(b.meta.max_time);
    }
    if covered_to <= max {
        out.extend(blocks_for(blocks, finer, covered_to, max));
    }
    out
}

impl BucketStore {
    /// A request's time range within --min-time / --max-time, as Thanos clamps requests.
    fn clamp(&self, start: i64, end: i64) -> (i64, i64) {
        let (min, max) = self
            .time_window
            .read()
            .map(|w| *w)
            .unwrap_or((i64::MIN, i64::MAX));
        (start.max(min), end.min(max))
    }

    /// The blocks that can hold data for the request, by label set and resolution, each with
    /// the matchers it still applies once its external labels are decided.
    fn blocks_for_request(
        &self,
        matchers: &[Matcher],
        min: i64,
        max: i64,
        max_resolution: i64,
    ) -> Vec<(Arc<BucketBlock>, Vec<Matcher>)> {
        let mut own: std::collections::HashMap<ulid::Ulid, Vec<Matcher>> =
            std::collections::HashMap::new();
        let mut by_labels: BTreeMap<Labels, Vec<Arc<BucketBlock>>> = BTreeMap::new();
        for block in self.blocks() {
            if let Some(matchers) = own_matchers(&block, matchers) {
                own.insert(block.id, matchers);
                by_labels
                    .entry(block.labels.clone())
                    .or_default()
                    .push(block);
            }
        }
        let mut out = Vec::new();
        for blocks in by_labels.values() {
            let mut resolutions: Vec<i64> = blocks
                .iter()
                .map(|b| b.resolution())
                .filter(|&r| r <= max_resolution.max(0))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            resolutions.reverse();
            out.extend(blocks_for(blocks, &resolutions, min, max));
        }
        out.into_iter()
            .map(|block| {
                let matchers = own.remove(&block.id).unwrap_or_default();
                (block, matchers)
            })
            .collect()
    }

    /// Calls `each` with the index entry of every series of `block` matching `matchers`,
    /// read a batch at a time; returns whether any matched.
    async fn for_each_entry(
        block: &BucketBlock,
        matchers: &[Matcher],
        mut each: impl FnMut(&SeriesEntry),
    ) -> Result<bool, StoreError> {
        let mut fetched = Fetched::default();
        let ids = Self::select(block, matchers, &mut fetched).await?;
        for batch in ids.chunks(SERIES_BATCH) {
            for entry in block.series(batch, &mut fetched).await? {
                each(&entry);
            }
        }
        Ok(!ids.is_empty())
    }

    /// The matching series IDs of a block.
    async fn select(
        block: &BucketBlock,
        matchers: &[Matcher],
        fetched: &mut Fetched,
    ) -> Result<Vec<u64>, StoreError> {
        let plan = SelectPlan::new(|name| block.label_values(name), matchers);
        let lists = block.postings(&plan.keys(), fetched).await?;
        plan.execute(
            |name, value| match lists.get(&(name.to_string(), value.to_string())) {
                Some(bytes) => rthanos_tsdb::index::postings_at(bytes, 0),
                None => Ok(Postings::Decoded(Vec::new())),
            },
        )
        .map_err(|e| StoreError::Block(format!("block {}: {e}", block.id)))
    }

    /// One block's series for the request as a sorted stream. A task of its own reads them
    /// in batches of [`SERIES_BATCH`] (series entries, then their chunks) and hands each
    /// batch over once the merge has taken the previous one, so a block holds about one
    /// batch in memory, and stops when the answer is dropped (the request cancelled).
    fn block_stream(
        block: Arc<BucketBlock>,
        matchers: Vec<Matcher>,
        request: Arc<SeriesRequest>,
        pool: Arc<tokio::sync::Semaphore>,
        metrics: Arc<crate::metrics::StoreMetrics>,
    ) -> SeriesStream {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<thanos::Series>, Status>>(1);
        tokio::spawn(async move {
            let mut fetched = Fetched::default();
            // A panic must not end the stream as if the block had no more series.
            let result = std::panic::AssertUnwindSafe(Self::produce(
                &block,
                &matchers,
                &request,
                &pool,
                &mut fetched,
                &tx,
            ))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Block(format!(
                    "block {}: reading it failed unexpectedly",
                    block.id
                )))
            });
            metrics.observe_fetched(&fetched);
            if let Err(e) = result {
                let _ = tx.send(Err(Status::from(e))).await;
            }
        });
        let batches = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|batch| (batch, rx))
        });
        Box::pin(batches.flat_map(|batch| {
            let frames: Vec<Result<SeriesResponse, Status>> = match batch {
                Ok(series) => series
                    .into_iter()
                    .map(|s| {
                        Ok(SeriesResponse {
                            result: Some(Frame::Series(s)),
                        })
                    })
                    .collect(),
                Err(status) => vec![Err(status)],
            };
            futures::stream::iter(frames)
        }))
    }

    /// Reads a block's matching series batch by batch into `tx`, in the order of their final
    /// labels; returns early when the receiver is gone.
    async fn produce(
        block: &BucketBlock,
        matchers: &[Matcher],
        request: &SeriesRequest,
        pool: &Arc<tokio::sync::Semaphore>,
        fetched: &mut Fetched,
        tx: &tokio::sync::mpsc::Sender<Result<Vec<thanos::Series>, Status>>,
    ) -> Result<(), StoreError> {
        let ids = Self::select(block, matchers, fetched).await?;
        let (min, max) = (request.min_time, request.max_time);
        let strip: BTreeSet<&str> = request
            .without_replica_labels
            .iter()
            .map(String::as_str)
            .collect();
        // Constant labels added or removed can reorder series within one metric.
        let external: std::collections::HashSet<String> =
            block.labels.iter().map(|l| l.name.clone()).collect();
        let mut reorder: Reorder<Pending> =
            Reorder::new(!external.is_empty() || !strip.is_empty(), external);
        // Series entries wait in the reorder run (one metric at most, without chunks); their
        // chunks are read once they are released, a batch at a time.
        let mut released: Vec<Pending> = Vec::new();
        for batch in ids.chunks(SERIES_BATCH) {
            for mut entry in block.series(batch, fetched).await? {
                entry
                    .chunks
                    .retain(|c| c.max_time >= min && c.min_time <= max);
                if !entry.chunks.is_empty() {
                    let own = std::mem::take(&mut entry.labels);
                    let labels = final_labels(own, &block.labels, &strip);
                    released.extend(reorder.push(Pending { labels, entry }));
                }
            }
            while released.len() >= SERIES_BATCH {
                let rest = released.split_off(SERIES_BATCH);
                let batch = std::mem::replace(&mut released, rest);
                if !Self::send_batch(block, request, pool, fetched, tx, batch).await? {
                    return Ok(());
                }
            }
        }
        released.extend(reorder.flush());
        for batch in released.chunks(SERIES_BATCH) {
            if !Self::send_batch(block, request, pool, fetched, tx, batch.to_vec()).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Reads the chunks of `pending` series and hands them to `tx`; false when the receiver
    /// is gone (the answer was dropped).
    async fn send_batch(
        block: &BucketBlock,
        request: &SeriesRequest,
        pool: &Arc<tokio::sync::Semaphore>,
        fetched: &mut Fetched,
        tx: &tokio::sync::mpsc::Sender<Result<Vec<thanos::Series>, Status>>,
        pending: Vec<Pending>,
    ) -> Result<bool, StoreError> {
        if pending.is_empty() {
            return Ok(true);
        }
        if request.skip_chunks {
            let series = pending
                .into_iter()
                .map(|p| thanos::Series {
                    labels: p.labels,
                    chunks: Vec::new(),
                })
                .collect();
            return Ok(tx.send(Ok(series)).await.is_ok());
        }
        let refs: Vec<u64> = pending
            .iter()
            .flat_map(|p| p.entry.chunks.iter().map(|c| c.reference))
            .collect();
        let raw = block.chunks(&refs, fetched).await?;
        // The batch's chunk bytes count against the pool until it is handed over.
        let held: u64 = raw.iter().map(|b| b.len() as u64).sum();
        let permit = u32::try_from(held.div_ceil(1024))
            .ok()
            .and_then(|kib| Arc::clone(pool).try_acquire_many_owned(kib).ok())
            .ok_or(StoreError::PoolExhausted(held))?;
        let mut raw = raw.into_iter();
        let mut series = Vec::with_capacity(pending.len());
        for p in pending {
            let mut chunks = Vec::with_capacity(p.entry.chunks.len());
            for meta in &p.entry.chunks {
                let bytes = raw.next().unwrap_or_default();
                chunks.push(aggr_chunk(block, meta, &bytes, &request.aggregates)?);
            }
            series.push(thanos::Series {
                labels: p.labels,
                chunks,
            });
        }
        let sent = tx.send(Ok(series)).await.is_ok();
        drop(permit);
        Ok(sent)
    }
}

/// A selected series whose chunks are not read yet: its final labels and index entry.
#[derive(Clone)]
struct Pending {
    labels: Vec<thanos::Label>,
    entry: SeriesEntry,
}

impl Labeled for Pending {
    fn labels(&self) -> &[thanos::Label] {
        &self.labels
    }
}

/// A series' labels as served: its own (taken, not copied), the block's external labels set
/// over them, the replica labels the request strips removed; sorted.
fn final_labels(own: Labels, external: &Labels, strip: &BTreeSet<&str>) -> Vec<thanos::Label> {
    let served = |name: &str| !strip.contains(name);
    let mut labels: Vec<thanos::Label> = own
        .into_iter()
        .filter(|l| external.get(&l.name).is_none() && served(&l.name))
        .map(|l| thanos::Label {
            name: l.name,
            value: l.value,
        })
        .chain(
            external
                .iter()
                .filter(|l| served(&l.name))
                .map(|l| thanos::Label {
                    name: l.name.clone(),
                    value: l.value.clone(),
                }),
        )
        .collect();
    // Own labels come sorted: a run the sort only checks when there are no external ones.
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    labels
}

/// A stored chunk as the StoreAPI sends it: raw data, or the requested aggregates of a
/// downsampled chunk; bytes shared, not copied.
fn aggr_chunk(
    block: &BucketBlock,
    meta: &rthanos_tsdb::index::ChunkMeta,
    bytes: &Bytes,
    aggregates: &[i32],
) -> Result<AggrChunk, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Block(format!("block {}: {e}", block.id));
    let chunk = rthanos_tsdb::chunks::chunk_at(bytes).map_err(|e| corrupt(&e))?;
    let wire = |encoding: Encoding, data: &[u8]| -> thanos::Chunk {
        let r#type = match encoding {
            Encoding::Histogram => thanos::chunk::Encoding::Histogram,
            Encoding::FloatHistogram => thanos::chunk::Encoding::FloatHistogram,
            _ => thanos::chunk::Encoding::Xor,
        };
        thanos::Chunk {
            r#type: r#type as i32,
            data: bytes.slice_ref(data),
            hash: 0,
        }
    };
    let mut out = AggrChunk {
        min_time: meta.min_time,
        max_time: meta.max_time,
        ..Default::default()
    };
    if chunk.encoding != Encoding::Aggr {
        out.raw = Some(wire(chunk.encoding, chunk.data));
        return Ok(out);
    }
    let parts = chunk.aggregates().map_err(|e| corrupt(&e))?;
    let wanted = |aggr: thanos::Aggr| aggregates.is_empty() || aggregates.contains(&(aggr as i32));
    let pick = |aggr: AggrType| parts.get(aggr).map(|(e, data)| wire(e, data));
    if wanted(thanos::Aggr::Count) {
        out.count = pick(AggrType::Count);
    }
    if wanted(thanos::Aggr::Sum) {
        out.sum = pick(AggrType::Sum);
    }
    if wanted(thanos::Aggr::Min) {
        out.min = pick(AggrType::Min);
    }
    if wanted(thanos::Aggr::Max) {
        out.max = pick(AggrType::Max);
    }
    if wanted(thanos::Aggr::Counter) {
        out.counter = pick(AggrType::Counter);
    }
    Ok(out)
}

/// Sorted, unique strings, at most `limit` of them when it is positive.
fn limited(set: BTreeSet<String>, limit: i64) -> Vec<String> {
    let limit = usize::try_from(limit)
        .ok()
        .filter(|&l| l > 0)
        .unwrap_or(usize::MAX);
    set.into_iter().take(limit).collect()
}

#[tonic::async_trait]
impl Store for BucketStore {
    fn info(&self) -> StoreInfo {
        let blocks = self.blocks();
        let label_sets: BTreeSet<Labels> = blocks
            .iter()
            .map(|b| b.labels.clone())
            .filter(|l| !l.is_empty())
            .collect();
        let (window_min, window_max) = self
            .time_window
            .read()
            .map(|w| *w)
            .unwrap_or((i64::MIN, i64::MAX));
        let min_time = blocks
            .iter()
            .map(|b| b.meta.min_time)
            .min()
            .unwrap_or(i64::MAX);
        let max_time = blocks
            .iter()
            .map(|b| b.meta.max_time)
            .max()
            .unwrap_or(i64::MIN);
        StoreInfo {
            serving: self.synced.load(std::sync::atomic::Ordering::Acquire),
            component: Component::Store,
            label_sets: label_sets.into_iter().collect(),
            min_time: min_time.max(window_min),
            max_time: max_time.min(window_max),
            supports_sharding: false,
            supports_without_replica_labels: true,
        }
    }

    async fn series(&self, request: SeriesRequest) -> Result<SeriesStream, Status> {
        // The wait is recorded however it ends: a client that gives up in the queue counts.
        let waiting = GateWait {
            since: Instant::now(),
            duration: &self.metrics.series_gate_duration,
        };
        let permit = Arc::clone(&self.series_gate)
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("store is shutting down"))?;
        drop(waiting);
        let permit = GatePass::new(permit, self.metrics.series_gate_in_flight.clone());
        let started = Instant::now();
        let matchers = matchers_from_thanos(&request.matchers)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut request = request;
        (request.min_time, request.max_time) = self.clamp(request.min_time, request.max_time);
        let blocks = self.blocks_for_request(
            &matchers,
            request.min_time,
            request.max_time,
            request.max_resolution_window,
        );
        self.metrics
            .series_blocks_queried
            .observe(blocks.len() as f64);
        let request = Arc::new(request);
        let streams: Vec<SeriesStream> = blocks
            .into_iter()
            .map(|(block, own)| {
                Self::block_stream(
                    block,
                    own,
                    Arc::clone(&request),
                    Arc::clone(&self.chunk_pool),
                    Arc::clone(&self.metrics),
                )
            })
            .collect();
        let metrics = Arc::clone(&self.metrics);
        let mut merged = merge_series(streams);
        // The call's concurrency slot is held until its answer is sent.
        Ok(Box::pin(async_stream::stream! {
            let _permit = permit;
            while let Some(frame) = merged.next().await {
                yield frame;
            }
            metrics.series_duration.observe(started.elapsed().as_secs_f64());
        }))
    }

    async fn label_names(&self, request: LabelNamesRequest) -> Result<LabelNamesResponse, Status> {
        let matchers = matchers_from_thanos(&request.matchers)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut names = BTreeSet::new();
        let (start, end) = self.clamp(request.start, request.end);
        for (block, own) in self.blocks_for_request(&matchers, start, end, i64::MAX) {
            let has_series = if own.is_empty() {
                names.extend(block.label_names().map(str::to_string));
                true
            } else {
                Self::for_each_entry(&block, &own, |entry| {
                    names.extend(entry.labels.iter().map(|l| l.name.clone()));
                })
                .await?
            };
            // The block's external labels, when it has series to carry them.
            if has_series {
                names.extend(block.labels.iter().map(|l| l.name.clone()));
            }
        }
        for replica in &request.without_replica_labels {
            names.remove(replica);
        }
        Ok(LabelNamesResponse {
            names: limited(names, request.limit),
            warnings: Vec::new(),
            hints: None,
        })
    }

    async fn label_values(
        &self,
        request: LabelValuesRequest,
    ) -> Result<LabelValuesResponse, Status> {
        let matchers = matchers_from_thanos(&request.matchers)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut values = BTreeSet::new();
        // A label the caller strips has no values, as in Thanos.
        if request.without_replica_labels.contains(&request.label) {
            return Ok(LabelValuesResponse::default());
        }
        let (start, end) = self.clamp(request.start, request.end);
        for (block, own) in self.blocks_for_request(&matchers, start, end, i64::MAX) {
            match block.labels.get(&request.label) {
                // An external label: its value, if the block has matching series.
                Some(value) => {
                    if own.is_empty() || Self::for_each_entry(&block, &own, |_| {}).await? {
                        values.insert(value.to_string());
                    }
                }
                None if own.is_empty() => values.extend(
                    block
                        .label_values(&request.label)
                        .into_iter()
                        .map(str::to_string),
                ),
                None => {
                    Self::for_each_entry(&block, &own, |entry| {
                        if let Some(v) = entry.labels.get(&request.label) {
                            values.insert(v.to_string());
                        }
                    })
                    .await?;
                }
            }
        }
        Ok(LabelValuesResponse {
            values: limited(values, request.limit),
            warnings: Vec::new(),
            hints: None,
        })
    }
}
/// A Series call waiting at the concurrency gate; the wait is observed when it ends.
struct GateWait<'a> {
    since: Instant,
    duration: &'a prometheus::Histogram,
}

impl Drop for GateWait<'_> {
    fn drop(&mut self) {
        self.duration.observe(self.since.elapsed().as_secs_f64());
    }
}

/// A Series call past the concurrency gate: counted in flight until its answer is done.
struct GatePass {
    _permit: tokio::sync::OwnedSemaphorePermit,
    in_flight: prometheus::IntGauge,
}

impl GatePass {
    fn new(permit: tokio::sync::OwnedSemaphorePermit, in_flight: prometheus::IntGauge) -> Self {
        in_flight.inc();
        Self {
            _permit: permit,
            in_flight,
        }
    }
}

impl Drop for GatePass {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}
