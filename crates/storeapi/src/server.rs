//! The gRPC face of a [`Store`]: `thanos.Store` (Info, Series, LabelNames, LabelValues) and
//! `thanos.info.Info`, served from one `Arc<dyn Store>`.
//!
//! Series frames are produced as the client reads them (tonic polls the store's stream only
//! when HTTP/2 flow control lets it send), so a slow querier slows the store down instead of
//! filling its memory. A series too large for one frame is split into several frames with the
//! same labels, which queriers join again; `response_batch_size` packs series into batches.

use std::sync::Arc;

use futures::StreamExt;
use prost::Message;
use tonic::{Request, Response, Status};

use crate::convert::labels_to_thanos;
use crate::limits::{SeriesLimits, limit};
use crate::metadata::{MetadataApi, MetadataService};
use crate::store::{Component, SeriesStream, Store, StoreInfo};
use crate::thanos::{
    self, InfoRequest, InfoResponse, LabelNamesRequest, LabelNamesResponse, LabelValuesRequest,
    LabelValuesResponse, Series, SeriesBatch, SeriesRequest, SeriesResponse, ZLabelSet,
    series_response::Result as Frame,
};

/// gRPC's default receive limit (4 MiB) less room for the frame's own fields: every frame we
/// send fits a client that never raised its limit.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 4 * 1024 * 1024 - 64 * 1024;

/// Serves a [`Store`] over gRPC.
#[derive(Clone)]
pub struct StoreServer {
    store: Arc<dyn Store>,
    max_frame_bytes: usize,
    limits: SeriesLimits,
    metadata: Option<Arc<dyn MetadataApi>>,
    rules: bool,
}

impl StoreServer {
    /// A server for `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            limits: SeriesLimits::default(),
            metadata: None,
            rules: false,
        }
    }

    /// Announces the Rules API in Info (the caller serves `thanos.Rules` beside), so
    /// queriers ask this endpoint for rules and alerts.
    pub fn with_rules_announced(mut self) -> Self {
        self.rules = true;
        self
    }

    /// Also serves the metric metadata and exemplars APIs, announced in Info.
    pub fn with_metadata(mut self, api: Arc<dyn MetadataApi>) -> Self {
        self.metadata = Some(api);
        self
    }

    /// Fails `Series` calls that return more than `limits` allow.
    pub fn with_limits(mut self, limits: SeriesLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the largest encoded frame sent (default [`DEFAULT_MAX_FRAME_BYTES`]).
    pub fn with_max_frame_bytes(mut self, bytes: usize) -> Self {
        self.max_frame_bytes = bytes.max(1024);
        self
    }

    /// Both services, ready to be added to a gRPC server.
    pub fn routes(self) -> tonic::service::Routes {
        // Requests (matchers) are small; responses are bounded by the frame size, so the
        // codec limits are lifted as Thanos lifts them (MaxInt32).
        let limit = i32::MAX as usize;
        let metadata = self.metadata.clone();
        let store = thanos::store_server::StoreServer::new(self.clone())
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let info = thanos::info::info_server::InfoServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let mut routes = tonic::service::Routes::new(store).add_service(info);
        if let Some(api) = metadata {
            routes = routes
                .add_service(
                    thanos::metadata_server::MetadataServer::new(MetadataService(Arc::clone(&api)))
                        .max_decoding_message_size(limit)
                        .max_encoding_message_size(limit),
                )
                .add_service(
                    thanos::exemplars_server::ExemplarsServer::new(MetadataService(api))
                        .max_decoding_message_size(limit)
                        .max_encoding_message_size(limit),
                );
        }
        routes
    }
}

/// The v0.34 `Store.Info` answer for `info`.
pub fn store_info_response(info: &StoreInfo) -> InfoResponse {
    let label_sets: Vec<ZLabelSet> = info
        .label_sets
        .iter()
        .map(|set| ZLabelSet {
            labels: labels_to_thanos(set),
        })
        .collect();
    let (min_time, max_time) = if info.serving {
        (info.min_time, info.max_time)
    } else {
        // An empty range: v0.34 queriers use no store whose range is empty.
        (i64::MAX, i64::MIN)
    };
    InfoResponse {
        labels: label_sets
            .first()
            .map(|set| set.labels.clone())
            .unwrap_or_default(),
        min_time,
        max_time,
        store_type: info.component.store_type(),
        label_sets,
    }
}

/// The `thanos.info.Info` answer for `info`.
pub fn info_response(info: &StoreInfo) -> thanos::info::InfoResponse {
    thanos::info::InfoResponse {
        label_sets: info
            .label_sets
            .iter()
            .map(|set| ZLabelSet {
                labels: labels_to_thanos(set),
            })
            .collect(),
        component_type: info.component.name().to_string(),
        // No StoreInfo while not serving, as Thanos's sidecar answers while not ready.
        store: info.serving.then(|| thanos::info::StoreInfo {
            min_time: info.min_time,
            max_time: info.max_time,
            supports_sharding: info.supports_sharding,
            supports_without_replica_labels: info.supports_without_replica_labels,
            tsdb_infos: info
                .label_sets
                .iter()
                .map(|set| thanos::info::TsdbInfo {
                    labels: Some(ZLabelSet {
                        labels: labels_to_thanos(set),
                    }),
                    min_time: info.min_time,
                    max_time: info.max_time,
                })
                .collect(),
            supports_projections: false,
        }),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl thanos::store_server::Store for StoreServer {
    async fn info(&self, _: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        Ok(Response::new(store_info_response(&self.store.info())))
    }

    type SeriesStream = SeriesStream;

    async fn series(
        &self,
        request: Request<SeriesRequest>,
    ) -> Result<Response<Self::SeriesStream>, Status> {
        let request = request.into_inner();
        let batch_size = usize::try_from(request.response_batch_size).unwrap_or(0);
        let stream = limit(self.store.series(request).await?, self.limits);
        Ok(Response::new(frame(
            stream,
            self.max_frame_bytes,
            batch_size,
        )))
    }

    async fn label_names(
        &self,
        request: Request<LabelNamesRequest>,
    ) -> Result<Response<LabelNamesResponse>, Status> {
        self.store
            .label_names(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn label_values(
        &self,
        request: Request<LabelValuesRequest>,
    ) -> Result<Response<LabelValuesResponse>, Status> {
        self.store
            .label_values(request.into_inner())
            .await
            .map(Response::new)
    }
}

#[tonic::async_trait]
impl thanos::info::info_server::Info for StoreServer {
    async fn info(
        &self,
        _: Request<thanos::info::InfoRequest>,
    ) -> Result<Response<thanos::info::InfoResponse>, Status> {
        let mut response = info_response(&self.store.info());
        if self.rules {
            response.rules = Some(thanos::info::RulesInfo {});
        }
        if let Some(api) = &self.metadata {
            let support = api.support();
            if support.metric_metadata {
                response.metric_metadata = Some(thanos::info::MetricMetadataInfo {});
            }
            response.exemplars = support
                .exemplars
                .map(|(min_time, max_time)| thanos::info::ExemplarsInfo { min_time, max_time });
        }
        Ok(Response::new(response))
    }
}

/// `thanos.info.Info` of a component that serves the Rules API and no series: Thanos's
/// stateless ruler, whose samples go to remote write. Queriers ask it for rules and alerts
/// only (no store range, no label sets).
#[derive(Clone, Copy, Debug)]
pub struct RulesOnlyInfo {
    component: Component,
}

impl RulesOnlyInfo {
    /// Info for `component`.
    pub fn new(component: Component) -> Self {
        RulesOnlyInfo { component }
    }

    /// The service, ready to be added to a gRPC server beside `thanos.Rules`.
    pub fn routes(self) -> tonic::service::Routes {
        tonic::service::Routes::new(thanos::info::info_server::InfoServer::new(self))
    }
}

#[tonic::async_trait]
impl thanos::info::info_server::Info for RulesOnlyInfo {
    async fn info(
        &self,
        _: Request<thanos::info::InfoRequest>,
    ) -> Result<Response<thanos::info::InfoResponse>, Status> {
        Ok(Response::new(thanos::info::InfoResponse {
            component_type: self.component.name().to_string(),
            rules: Some(thanos::info::RulesInfo {}),
            ..Default::default()
        }))
    }
}

/// Splits series larger than `max_bytes` into frames with the same labels and, when
/// `batch_size` > 0, packs series into `SeriesBatch` frames of at most `batch_size` series
/// (and `max_bytes`). Warnings keep their place between series.
pub fn frame(stream: SeriesStream, max_bytes: usize, batch_size: usize) -> SeriesStream {
    let split = stream.flat_map(move |frame| {
        let frames: Vec<Result<SeriesResponse, Status>> = match frame {
            Ok(SeriesResponse {
                result: Some(Frame::Series(series)),
            }) => split_series(series, max_bytes)
                .into_iter()
                .map(|s| {
                    Ok(SeriesResponse {
                        result: Some(Frame::Series(s)),
                    })
                })
                .collect(),
            other => vec![other],
        };
        futures::stream::iter(frames)
    });
    if batch_size == 0 {
        return Box::pin(split);
    }
    Box::pin(async_stream::stream! {
        let mut split = std::pin::pin!(split);
        let mut batch: Vec<Series> = Vec::new();
        let mut batch_bytes = 0;
        while let Some(frame) = split.next().await {
            match frame {
                Ok(SeriesResponse { result: Some(Frame::Series(series)) }) => {
                    let size = series.encoded_len() + 8;
                    if !batch.is_empty() && (batch.len() >= batch_size || batch_bytes + size > max_bytes) {
                        yield Ok(batch_frame(std::mem::take(&mut batch)));
                        batch_bytes = 0;
                    }
                    batch_bytes += size;
                    batch.push(series);
                }
                other => {
                    if !batch.is_empty() {
                        yield Ok(batch_frame(std::mem::take(&mut batch)));
                        batch_bytes = 0;
                    }
                    yield other;
                }
            }
        }
        if !batch.is_empty() {
            yield Ok(batch_frame(batch));
        }
    })
}

fn batch_frame(series: Vec<Series>) -> SeriesResponse {
    SeriesResponse {
        result: Some(Frame::Batch(SeriesBatch { series })),
    }
}

/// An upper bound of the encoded size, cheaper than `encoded_len` (which walks every field and
/// is computed again by the encoder): data lengths plus the most each field's tag, length and
/// integers can take.
fn size_bound(series: &Series) -> usize {
    // Label: its tag and length (6), two string tags and lengths (12).
    const PER_LABEL: usize = 18;
    // AggrChunk: tag and length (6), two int64 (22), six Chunks each with tag and length
    // (6), type (11), data tag and length (6), hash (11).
    const PER_CHUNK: usize = 6 + 22 + 6 * 34;
    let labels: usize = series
        .labels
        .iter()
        .map(|l| l.name.len() + l.value.len() + PER_LABEL)
        .sum();
    let chunks: usize = series
        .chunks
        .iter()
        .map(|c| {
            [&c.raw, &c.count, &c.sum, &c.min, &c.max, &c.counter]
                .into_iter()
                .flatten()
                .map(|chunk| chunk.data.len())
                .sum::<usize>()
                + PER_CHUNK
        })
        .sum();
    labels + chunks + 16
}

/// `series` as frames of at most `max_bytes` each (a single chunk larger than that still goes
/// alone in its frame: chunks are never cut).
fn split_series(series: Series, max_bytes: usize) -> Vec<Series> {
    if size_bound(&series) <= max_bytes || series.encoded_len() <= max_bytes {
        return vec![series];
    }
    let Series { labels, chunks } = series;
    let labels_bytes: usize = labels
        .iter()
        .map(|l| {
            let len = l.encoded_len();
            len + prost::length_delimiter_len(len) + 1
        })
        .sum();
    let mut frames = Vec::new();
    let mut current = Vec::new();
    let mut current_bytes = labels_bytes;
    for chunk in chunks {
        let len = chunk.encoded_len();
        let size = len + prost::length_delimiter_len(len) + 1;
        if !current.is_empty() && current_bytes + size > max_bytes {
            frames.push(Series {
                labels: labels.clone(),
                chunks: std::mem::take(&mut current),
            });
            current_bytes = labels_bytes;
        }
        current_bytes += size;
        current.push(chunk);
    }
    frames.push(Series {
        labels,
        chunks: current,
    });
    frames
}

#[cfg(test)]
mod tests {
    use futures::stream;

    use super::*;
    use crate::thanos::{AggrChunk, Chunk, Label};

    fn big_series(chunks: usize, chunk_bytes: usize) -> Series {
        Series {
            labels: vec![Label {
                name: "__name__".into(),
                value: "up".into(),
            }],
            chunks: (0..chunks)
                .map(|i| AggrChunk {
                    min_time: i as i64,
                    max_time: i as i64,
                    raw: Some(Chunk {
                        r#type: 0,
                        data: vec![0; chunk_bytes].into(),
                        hash: 0,
                    }),
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn the_size_bound_is_a_bound() {
        for (chunks, bytes) in [(0, 0), (1, 0), (1, 200), (50, 1000), (3, 70_000)] {
            let series = big_series(chunks, bytes);
            assert!(size_bound(&series) >= series.encoded_len());
        }
    }

    #[tokio::test]
    async fn large_series_are_split_under_the_frame_limit_and_keep_every_chunk() {
        let input: SeriesStream = Box::pin(stream::iter(vec![Ok(SeriesResponse {
            result: Some(Frame::Series(big_series(100, 1000))),
        })]));
        let frames: Vec<_> = frame(input, 10_000, 0).collect().await;
        assert!(frames.len() >= 10, "{} frames", frames.len());
        let mut times = Vec::new();
        for f in frames {
            let f = f.expect("no error");
            assert!(f.encoded_len() <= 10_000 + 8, "{}", f.encoded_len());
            let Some(Frame::Series(s)) = f.result else {
                panic!("series frame expected")
            };
            assert_eq!(s.labels[0].value, "up");
            times.extend(s.chunks.iter().map(|c| c.min_time));
        }
        assert_eq!(times, (0..100).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn batches_hold_at_most_the_asked_number_and_warnings_keep_their_place() {
        let mut input = Vec::new();
        for i in 0..5 {
            input.push(Ok(SeriesResponse {
                result: Some(Frame::Series(big_series(1, 10 + i))),
            }));
        }
        input.insert(3, Ok(crate::merge::warning_frame("w".into())));
        let frames: Vec<_> = frame(Box::pin(stream::iter(input)), 1 << 20, 2)
            .collect()
            .await;
        let shape: Vec<String> = frames
            .into_iter()
            .map(|f| match f.expect("no error").result {
                Some(Frame::Batch(b)) => format!("batch{}", b.series.len()),
                Some(Frame::Warning(w)) => w,
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(shape, ["batch2", "batch1", "w", "batch2"]);
    }
}
