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
use futures::StreamExt;
use rthanos_chunkenc::{AggrType, Encoding};
use rthanos_model::{Labels, Matcher};
use rthanos_storeapi::convert::matchers_from_thanos;
use rthanos_storeapi::merge::merge_series;
use rthanos_storeapi::thanos::{
    self, AggrChunk, LabelNamesRequest, LabelNamesResponse, LabelValuesRequest,
    LabelValuesResponse, SeriesRequest, SeriesResponse, series_response::Result as Frame,
};
use rthanos_storeapi::{Component, SeriesStream, Store, StoreInfo, compare_labels};
use rthanos_tsdb::index::SeriesEntry;
use rthanos_tsdb::postings::{Postings, SelectPlan};
use tonic::Status;

use crate::block::{BucketBlock, Fetched};
use crate::{BucketStore, StoreError};

/// Blocks read at once for one request.
const BLOCK_CONCURRENCY: usize = 8;

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
    /// The blocks that can hold data for the request, by label set and resolution.
    fn blocks_for_request(
        &self,
        matchers: &[Matcher],
        min: i64,
        max: i64,
        max_resolution: i64,
    ) -> Vec<Arc<BucketBlock>> {
        let mut by_labels: BTreeMap<Labels, Vec<Arc<BucketBlock>>> = BTreeMap::new();
        for block in self.blocks() {
            if own_matchers(&block, matchers).is_some() {
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
        out
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

    /// One block's series for the request, sorted by their final labels.
    async fn block_series(
        block: Arc<BucketBlock>,
        matchers: Vec<Matcher>,
        request: Arc<SeriesRequest>,
        pool: Arc<tokio::sync::Semaphore>,
    ) -> Result<BlockAnswer, StoreError> {
        let mut fetched = Fetched::default();
        let ids = Self::select(&block, &matchers, &mut fetched).await?;
        let entries = block.series(&ids, &mut fetched).await?;
        let (min, max) = (request.min_time, request.max_time);
        let strip: BTreeSet<&str> = request
            .without_replica_labels
            .iter()
            .map(String::as_str)
            .collect();
        let mut selected: Vec<(Vec<thanos::Label>, SeriesEntry)> = Vec::new();
        for mut entry in entries {
            entry
                .chunks
                .retain(|c| c.max_time >= min && c.min_time <= max);
            if entry.chunks.is_empty() {
                continue;
            }
            let labels = final_labels(&entry.labels, &block.labels, &strip);
            selected.push((labels, entry));
        }
        selected.sort_by(|a, b| compare_labels(&a.0, &b.0));
        if request.skip_chunks {
            let series = selected
                .into_iter()
                .map(|(labels, _)| thanos::Series {
                    labels,
                    chunks: Vec::new(),
                })
                .collect();
            return Ok(BlockAnswer {
                series,
                fetched,
                permit: None,
            });
        }
        let refs: Vec<u64> = selected
            .iter()
            .flat_map(|(_, e)| e.chunks.iter().map(|c| c.reference))
            .collect();
        let raw = block.chunks(&refs, &mut fetched).await?;
        // The chunk bytes stay held until the answer is sent: they count against the pool.
        let held: u64 = raw.iter().map(|b| b.len() as u64).sum();
        let permit = u32::try_from(held.div_ceil(1024))
            .ok()
            .and_then(|kib| pool.try_acquire_many_owned(kib).ok())
            .ok_or(StoreError::PoolExhausted(held))?;
        let mut raw = raw.into_iter();
        let mut series = Vec::with_capacity(selected.len());
        for (labels, entry) in selected {
            let mut chunks = Vec::with_capacity(entry.chunks.len());
            for meta in &entry.chunks {
                let bytes = raw.next().unwrap_or_default();
                chunks.push(aggr_chunk(&block, meta, &bytes, &request.aggregates)?);
            }
            series.push(thanos::Series { labels, chunks });
        }
        Ok(BlockAnswer {
            series,
            fetched,
            permit: Some(permit),
        })
    }
}

/// One block's part of an answer.
struct BlockAnswer {
    series: Vec<thanos::Series>,
    fetched: Fetched,
    /// The chunk pool's share held by the answer's chunks.
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// A series' labels as served: its own, the block's external labels set over them, the
/// replica labels the request strips removed; sorted.
fn final_labels(own: &Labels, external: &Labels, strip: &BTreeSet<&str>) -> Vec<thanos::Label> {
    let mut labels: Vec<thanos::Label> = own
        .iter()
        .filter(|l| external.get(&l.name).is_none())
        .chain(external.iter())
        .filter(|l| !strip.contains(l.name.as_str()))
        .map(|l| thanos::Label {
            name: l.name.clone(),
            value: l.value.clone(),
        })
        .collect();
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

/// Sorted, unique strings.
fn sorted(set: BTreeSet<String>) -> Vec<String> {
    set.into_iter().collect()
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
        let _permit = self
            .series_gate
            .acquire()
            .await
            .map_err(|_| Status::unavailable("store is shutting down"))?;
        let started = Instant::now();
        let matchers = matchers_from_thanos(&request.matchers)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
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
        let reads = blocks.into_iter().filter_map(|block| {
            let own = own_matchers(&block, &matchers)?;
            Some(Self::block_series(
                block,
                own,
                Arc::clone(&request),
                Arc::clone(&self.chunk_pool),
            ))
        });
        let results: Vec<Result<BlockAnswer, StoreError>> = futures::stream::iter(reads)
            .buffer_unordered(BLOCK_CONCURRENCY)
            .collect()
            .await;
        let mut streams: Vec<SeriesStream> = Vec::with_capacity(results.len());
        let mut total = Fetched::default();
        let mut permits = Vec::new();
        for result in results {
            let BlockAnswer {
                series,
                fetched,
                permit,
            } = result.map_err(Status::from)?;
            permits.extend(permit);
            total.postings += fetched.postings;
            total.series += fetched.series;
            total.chunks += fetched.chunks;
            let frames = series.into_iter().map(|s| {
                Ok(SeriesResponse {
                    result: Some(Frame::Series(s)),
                })
            });
            streams.push(Box::pin(futures::stream::iter(frames)));
        }
        self.metrics.observe_fetched(&total);
        self.metrics
            .series_duration
            .observe(started.elapsed().as_secs_f64());
        // The pool's permits go with the stream: released once the answer is sent or dropped.
        Ok(Box::pin(merge_series(streams).map(move |frame| {
            let _held = &permits;
            frame
        })))
    }

    async fn label_names(&self, request: LabelNamesRequest) -> Result<LabelNamesResponse, Status> {
        let matchers = matchers_from_thanos(&request.matchers)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut names = BTreeSet::new();
        for block in self.blocks_for_request(&matchers, request.start, request.end, i64::MAX) {
            let Some(own) = own_matchers(&block, &matchers) else {
                continue;
            };
            let mut fetched = Fetched::default();
            let before = names.len();
            if own.is_empty() {
                names.extend(block.label_names().map(str::to_string));
            } else {
                let ids = Self::select(&block, &own, &mut fetched).await?;
                for entry in block.series(&ids, &mut fetched).await? {
                    names.extend(entry.labels.iter().map(|l| l.name.clone()));
                }
            }
            // The block's external labels, when it has series to carry them.
            if names.len() > before || own.is_empty() {
                names.extend(block.labels.iter().map(|l| l.name.clone()));
            }
        }
        Ok(LabelNamesResponse {
            names: sorted(names),
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
        for block in self.blocks_for_request(&matchers, request.start, request.end, i64::MAX) {
            let Some(own) = own_matchers(&block, &matchers) else {
                continue;
            };
            if let Some(external) = block.labels.get(&request.label) {
                values.insert(external.to_string());
                continue;
            }
            if own.is_empty() {
                values.extend(
                    block
                        .label_values(&request.label)
                        .into_iter()
                        .map(str::to_string),
                );
                continue;
            }
            let mut fetched = Fetched::default();
            let ids = Self::select(&block, &own, &mut fetched).await?;
            for entry in block.series(&ids, &mut fetched).await? {
                if let Some(v) = entry.labels.get(&request.label) {
                    values.insert(v.to_string());
                }
            }
        }
        Ok(LabelValuesResponse {
            values: sorted(values),
            warnings: Vec::new(),
            hints: None,
        })
    }
}
