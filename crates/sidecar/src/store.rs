//! The sidecar's [`Store`]: Prometheus's data over the StoreAPI.
//!
//! `Series` is one remote read with streamed XOR chunks; the chunks go to the querier as the
//! bytes Prometheus sent (never decoded), each with its xxhash64 as Thanos's sidecar sets it.
//! External labels are set on every series (they win over a series' own label of the same
//! name, as in Thanos), matchers on them are answered here and not sent to Prometheus.
//!
//! Order: Prometheus streams series sorted by their own labels; adding external labels (or
//! removing replica labels) can move a series before another, e.g. `{__name__="up"}` and
//! `{__name__="up", a="1"}` swap once `cluster="x"` is added to both. Such swaps only happen
//! between series with the same first label (the metric name, in practice), so the series of
//! one first label are sorted together before they are sent: memory is bounded by the largest
//! metric of a query, not by the whole answer.

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use rthanos_model::Labels;
use rthanos_runtime::Supervisor;
use rthanos_storeapi::external::{final_labels, split_matchers};
use rthanos_storeapi::reorder::Reorder;
use rthanos_storeapi::thanos::{
    self, AggrChunk, Chunk, LabelNamesRequest, LabelNamesResponse, LabelValuesRequest,
    LabelValuesResponse, Series, SeriesRequest, SeriesResponse, series_response::Result as Frame,
};
use rthanos_storeapi::{
    Component, MetadataApi, MetadataSupport, SeriesStream, Store, StoreInfo, compare_labels,
    merge_series,
};
use tonic::Status;

use crate::local::LocalBlocks;
use crate::metadata::Metadata;
use crate::prometheus::{PrometheusClient, read_query};

/// Prometheus behind the StoreAPI.
pub struct PrometheusStore {
    prometheus: PrometheusClient,
    metadata: Arc<Metadata>,
    supervisor: Supervisor,
    local: Option<Arc<LocalBlocks>>,
}

impl PrometheusStore {
    /// A store over `prometheus`, whose external labels and time range `metadata` tracks;
    /// `supervisor` counts the panics of its read-ahead tasks. With `local`, persisted
    /// blocks are read from Prometheus's directory when they can be (see [`LocalBlocks`]).
    pub fn new(
        prometheus: PrometheusClient,
        metadata: Arc<Metadata>,
        supervisor: Supervisor,
        local: Option<Arc<LocalBlocks>>,
    ) -> Self {
        Self {
            prometheus,
            metadata,
            supervisor,
            local,
        }
    }

    fn external_labels(&self) -> Result<Labels, Status> {
        self.metadata
            .external_labels()
            .ok_or_else(|| Status::unavailable("external labels of Prometheus are not known yet"))
    }
}

/// Prometheus's chunk encoding number as Thanos's (they differ: XOR is 1 in remote read, 0 in
/// the StoreAPI).
fn thanos_encoding(prometheus: i32) -> Option<i32> {
    match prometheus {
        1 => Some(thanos::chunk::Encoding::Xor as i32),
        2 => Some(thanos::chunk::Encoding::Histogram as i32),
        3 => Some(thanos::chunk::Encoding::FloatHistogram as i32),
        _ => None,
    }
}

/// Remote-read frames as series with Prometheus's own labels, in Prometheus's order.
fn remote_series(
    frames: impl futures::Stream<
        Item = Result<rthanos_storeapi::prometheus::ChunkedReadResponse, crate::SidecarError>,
    > + Send
    + 'static,
) -> SeriesStream {
    Box::pin(async_stream::try_stream! {
        let mut frames = std::pin::pin!(frames);
        while let Some(frame) = frames.next().await {
            let frame = frame?;
            for chunked in frame.chunked_series {
                let labels = chunked
                    .labels
                    .into_iter()
                    .map(|l| thanos::Label { name: l.name, value: l.value })
                    .collect();
                let mut chunks = Vec::with_capacity(chunked.chunks.len());
                for chunk in chunked.chunks {
                    let Some(encoding) = thanos_encoding(chunk.r#type) else {
                        Err(Status::internal(format!(
                            "remote read returned a chunk of unknown encoding {}",
                            chunk.r#type
                        )))?;
                        continue;
                    };
                    chunks.push(AggrChunk {
                        min_time: chunk.min_time_ms,
                        max_time: chunk.max_time_ms,
                        raw: Some(Chunk {
                            r#type: encoding,
                            hash: xxhash_rust::xxh64::xxh64(&chunk.data, 0),
                            data: chunk.data,
                        }),
                        ..Default::default()
                    });
                }
                yield series_frame(Series { labels, chunks });
            }
        }
    })
}

/// `stream` once its first frame has come, or the error that came first.
async fn started(mut stream: SeriesStream) -> Result<SeriesStream, Status> {
    match stream.next().await {
        None => Ok(empty()),
        Some(Err(e)) => Err(e),
        Some(Ok(first)) => Ok(Box::pin(
            futures::stream::once(async move { Ok(first) }).chain(stream),
        )),
    }
}

/// `stream` with its runs of series that share a first own label sorted (see [`Reorder`]).
fn sorted(stream: SeriesStream, external_names: HashSet<String>) -> SeriesStream {
    Box::pin(async_stream::try_stream! {
        let mut stream = stream;
        let mut reorder = Reorder::new(true, external_names);
        while let Some(frame) = stream.next().await {
            match frame?.result {
                Some(Frame::Series(series)) => {
                    for series in reorder.push(series) {
                        yield series_frame(series);
                    }
                }
                other => yield SeriesResponse { result: other },
            }
        }
        for series in reorder.flush() {
            yield series_frame(series);
        }
    })
}

fn series_frame(series: Series) -> SeriesResponse {
    SeriesResponse {
        result: Some(Frame::Series(series)),
    }
}

/// Frames a task reads from Prometheus and converts while the gRPC task sends earlier ones:
/// the two overlap (on two cores), and at most `READ_AHEAD` frames wait in between. The task
/// ends, closing the remote read, when the client goes away. A panic in it ends the answer
/// with an error (and is counted), never as if Prometheus had no more series.
fn read_ahead(
    frames: impl futures::Stream<Item = Result<SeriesResponse, Status>> + Send + 'static,
    supervisor: &Supervisor,
) -> SeriesStream {
    const READ_AHEAD: usize = 32;
    let (tx, mut rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    let supervisor = supervisor.clone();
    tokio::spawn(async move {
        let produce = async {
            let mut frames = std::pin::pin!(frames);
            while let Some(frame) = frames.next().await {
                let failed = frame.is_err();
                if tx.send(frame).await.is_err() || failed {
                    break;
                }
            }
        };
        if let Err(panic) = supervisor.catch("remote_read", produce).await {
            let _ = tx
                .send(Err(Status::internal(format!(
                    "reading series from Prometheus failed: {panic}"
                ))))
                .await;
        }
    });
    Box::pin(async_stream::stream! {
        while let Some(frame) = rx.recv().await {
            yield frame;
        }
    })
}

fn empty() -> SeriesStream {
    Box::pin(futures::stream::empty())
}

/// Metadata and exemplars straight from Prometheus's HTTP API; exemplars get the external
/// labels, as series do.
#[tonic::async_trait]
impl MetadataApi for PrometheusStore {
    fn support(&self) -> MetadataSupport {
        MetadataSupport {
            metric_metadata: true,
            exemplars: Some((self.metadata.min_time(), i64::MAX)),
            rules: false,
        }
    }

    async fn metric_metadata(
        &self,
        request: thanos::MetricMetadataRequest,
    ) -> Result<(thanos::MetricMetadata, Vec<String>), Status> {
        let found = self
            .prometheus
            .metadata(&request.metric, request.limit)
            .await?;
        let metadata = found
            .into_iter()
            .map(|(metric, metas)| {
                let metas = metas
                    .into_iter()
                    .map(|m| thanos::Meta {
                        r#type: m.kind,
                        help: m.help,
                        unit: m.unit,
                    })
                    .collect();
                (metric, thanos::MetricMetadataEntry { metas })
            })
            .collect();
        Ok((thanos::MetricMetadata { metadata }, Vec::new()))
    }

    async fn exemplars(
        &self,
        request: thanos::ExemplarsRequest,
    ) -> Result<(Vec<thanos::ExemplarData>, Vec<String>), Status> {
        let external = self.external_labels()?;
        let found = self
            .prometheus
            .query_exemplars(&request.query, request.start, request.end)
            .await?;
        let data = found
            .into_iter()
            .map(|series| {
                let labels = final_labels(series.series_labels, &external, &HashSet::new());
                thanos::ExemplarData {
                    series_labels: Some(thanos::LabelSet { labels }),
                    exemplars: series
                        .exemplars
                        .into_iter()
                        .map(|e| thanos::Exemplar {
                            labels: Some(thanos::LabelSet {
                                labels: e
                                    .labels
                                    .into_iter()
                                    .map(|(name, value)| thanos::Label { name, value })
                                    .collect(),
                            }),
                            value: e.value.parse().unwrap_or(f64::NAN),
                            ts: (e.timestamp * 1000.0).round() as i64,
                        })
                        .collect(),
                }
            })
            .collect();
        Ok((data, Vec::new()))
    }
}

#[tonic::async_trait]
impl Store for PrometheusStore {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            serving: self.metadata.serving(),
            component: Component::Sidecar,
            label_sets: self
                .metadata
                .external_labels()
                .into_iter()
                .filter(|l| !l.is_empty())
                .collect(),
            min_time: self.metadata.min_time(),
            max_time: i64::MAX,
            // Shard matching is left to the querier, which applies it to stores that do
            // not claim it.
            supports_sharding: false,
            supports_without_replica_labels: true,
        }
    }

    async fn series(&self, request: SeriesRequest) -> Result<SeriesStream, Status> {
        let external = self.external_labels()?;
        let Some(matchers) = split_matchers(&request.matchers, &external)? else {
            return Ok(empty());
        };
        if matchers.is_empty() {
            return Err(Status::invalid_argument(
                "no matchers specified (excluding external labels)",
            ));
        }
        let min_time = request.min_time.max(self.metadata.min_time());
        let max_time = request.max_time;
        if min_time > max_time {
            return Ok(empty());
        }
        let strip: HashSet<String> = request.without_replica_labels.into_iter().collect();
        let added: HashSet<String> = external
            .iter()
            .filter(|l| !strip.contains(&l.name))
            .map(|l| l.name.clone())
            .collect();
        let external_names: HashSet<String> = external.iter().map(|l| l.name.clone()).collect();
        let strip_own: HashSet<String> = strip
            .iter()
            .filter(|name| external.get(name).is_some())
            .cloned()
            .collect();

        if request.skip_chunks {
            let sets = self
                .prometheus
                .series(&matchers, min_time, max_time)
                .await?;
            let mut series: Vec<Series> = sets
                .into_iter()
                .map(|set| Series {
                    labels: final_labels(
                        set.iter().map(|l| (l.name.clone(), l.value.clone())),
                        &external,
                        &strip_own,
                    ),
                    chunks: Vec::new(),
                })
                .collect();
            series.sort_by(|a, b| compare_labels(&a.labels, &b.labels));
            return Ok(Box::pin(futures::stream::iter(
                series.into_iter().map(|s| Ok(series_frame(s))),
            )));
        }

        // Persisted blocks from the directory where they may answer, the rest (the head,
        // and blocks not listed yet) through remote read; merged by Prometheus's labels.
        let selection = matchers.as_slice();
        let remote = |from: i64| async move {
            let frames = self
                .prometheus
                .remote_read(read_query(selection, from, max_time))
                .await?;
            Ok::<_, Status>(remote_series(frames))
        };
        let mut sources: Vec<SeriesStream> = Vec::with_capacity(2);
        let boundary = self
            .local
            .as_ref()
            .and_then(|local| Some((local, local.boundary(&self.metadata)?)))
            .filter(|(_, boundary)| min_time < *boundary);
        match boundary {
            Some((local, boundary)) => {
                let blocks = local
                    .series(&matchers, min_time, max_time.min(boundary - 1), &external)
                    .await?;
                // The head's remote read goes out while the blocks are read.
                let head = async {
                    if boundary <= max_time {
                        remote(boundary).await.map(Some)
                    } else {
                        Ok(None)
                    }
                };
                let (blocks, head) = tokio::join!(started(blocks), head);
                match blocks {
                    Ok(blocks) => {
                        sources.push(blocks);
                        sources.extend(head?);
                    }
                    // A block Prometheus deleted (retention) since the last listing fails
                    // its first read, before any series comes: remote read then answers the
                    // whole request.
                    Err(e) => {
                        tracing::debug!(err = %e, "reading Prometheus's blocks failed; remote read answers");
                        sources.push(remote(min_time).await?);
                    }
                }
            }
            None => sources.push(remote(min_time).await?),
        }
        // Both come in the order of the series' own labels, which the external labels may
        // break: each is put in order of the labels the merge compares.
        if sources.len() > 1 {
            sources = sources
                .into_iter()
                .map(|source| sorted(source, external_names.clone()))
                .collect();
        }
        let merged = merge_series(sources);
        let converted = async_stream::try_stream! {
            let mut merged = merged;
            let mut reorder = Reorder::new(!added.is_empty(), external_names);
            while let Some(frame) = merged.next().await {
                match frame?.result {
                    Some(Frame::Series(series)) => {
                        let labels = final_labels(
                            series.labels.into_iter().map(|l| (l.name, l.value)),
                            &external,
                            &strip_own,
                        );
                        for series in reorder.push(Series { labels, chunks: series.chunks }) {
                            yield series_frame(series);
                        }
                    }
                    Some(Frame::Warning(warning)) => {
                        yield SeriesResponse { result: Some(Frame::Warning(warning)) };
                    }
                    _ => {}
                }
            }
            for series in reorder.flush() {
                yield series_frame(series);
            }
        };
        Ok(read_ahead(converted, &self.supervisor))
    }

    async fn label_names(&self, request: LabelNamesRequest) -> Result<LabelNamesResponse, Status> {
        let external = self.external_labels()?;
        let Some(matchers) = split_matchers(&request.matchers, &external)? else {
            return Ok(LabelNamesResponse::default());
        };
        let start = request.start.max(self.metadata.min_time());
        let mut names = self
            .prometheus
            .label_names(&matchers, start, request.end)
            .await?;
        if !names.is_empty() {
            names.extend(external.iter().map(|l| l.name.clone()));
        }
        let strip: HashSet<&String> = request.without_replica_labels.iter().collect();
        names.retain(|n| !strip.contains(n));
        names.sort();
        names.dedup();
        Ok(LabelNamesResponse {
            names,
            ..Default::default()
        })
    }

    async fn label_values(
        &self,
        request: LabelValuesRequest,
    ) -> Result<LabelValuesResponse, Status> {
        let external = self.external_labels()?;
        if request.without_replica_labels.contains(&request.label) {
            return Ok(LabelValuesResponse::default());
        }
        let Some(matchers) = split_matchers(&request.matchers, &external)? else {
            return Ok(LabelValuesResponse::default());
        };
        if let Some(value) = external.get(&request.label) {
            return Ok(LabelValuesResponse {
                values: vec![value.to_string()],
                ..Default::default()
            });
        }
        let start = request.start.max(self.metadata.min_time());
        let mut values = self
            .prometheus
            .label_values(&request.label, &matchers, start, request.end)
            .await?;
        values.sort();
        Ok(LabelValuesResponse {
            values,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
            .collect()
    }

    fn text(series: &[Series]) -> Vec<String> {
        series
            .iter()
            .map(|s| {
                s.labels
                    .iter()
                    .map(|l| format!("{}={}", l.name, l.value))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    }

    /// A panic while frames are read ends the answer with an error after the frames already
    /// read, never as a complete answer; the panic is counted.
    #[tokio::test]
    async fn a_panicking_read_ahead_ends_the_answer_with_an_error() {
        let supervisor = Supervisor::unregistered(tokio_util::sync::CancellationToken::new());
        let frames = futures::stream::iter(0..3).map(|i| {
            assert!(i < 2, "frame {i} cannot be converted");
            Ok(series_frame(Series::default()))
        });
        let answer: Vec<Result<SeriesResponse, Status>> =
            read_ahead(frames, &supervisor).collect().await;
        assert_eq!(answer.len(), 3, "{answer:?}");
        assert!(answer[..2].iter().all(Result::is_ok));
        let error = answer[2].as_ref().expect_err("the last item is the error");
        assert_eq!(error.code(), tonic::Code::Internal);
        assert!(
            error.message().contains("frame 2 cannot be converted"),
            "{error:?}"
        );
        assert_eq!(
            supervisor.failures("remote_read", rthanos_runtime::Cause::Panic),
            1
        );
    }

    /// Series in Prometheus's order come out in the order of their final labels.
    #[test]
    fn runs_are_sorted_after_external_labels_are_added() {
        let external = Labels::from_pairs([("cluster", "eu1"), ("replica", "a")]);
        let strip = HashSet::from(["replica".to_string()]);
        let names = HashSet::from(["cluster".to_string(), "replica".to_string()]);
        let prometheus_order = [
            labels(&[("__name__", "up")]),
            labels(&[("__name__", "up"), ("a", "1")]),
            labels(&[("__name__", "up"), ("instance", "x")]),
            labels(&[("__name__", "up"), ("instance", "x"), ("job", "j")]),
            labels(&[("__name__", "z")]),
            labels(&[("__name__", "z"), ("b", "1")]),
            // No metric name: its labels all sort after the external ones.
            labels(&[("x", "1")]),
        ];
        let mut reorder = Reorder::new(true, names);
        let mut out = Vec::new();
        for own in prometheus_order {
            out.extend(reorder.push(Series {
                labels: final_labels(own, &external, &strip),
                chunks: vec![],
            }));
        }
        out.extend(reorder.flush());
        let got = text(&out);
        let mut sorted = out.clone();
        sorted.sort_by(|a, b| compare_labels(&a.labels, &b.labels));
        assert_eq!(got, text(&sorted));
        assert_eq!(
            got[..3],
            [
                "__name__=up,a=1,cluster=eu1",
                "__name__=up,cluster=eu1",
                "__name__=up,cluster=eu1,instance=x"
            ]
        );
    }

    /// An external label sorting before `__name__` still lets series go out metric by metric.
    #[test]
    fn runs_follow_own_labels_when_external_labels_sort_first() {
        let external = Labels::from_pairs([("Region", "eu")]);
        let names = HashSet::from(["Region".to_string()]);
        let mut reorder = Reorder::new(true, names);
        let mut released = 0;
        for own in [
            labels(&[("__name__", "a")]),
            labels(&[("__name__", "a"), ("x", "1")]),
            labels(&[("__name__", "b")]),
        ] {
            released += reorder
                .push(Series {
                    labels: final_labels(own, &external, &HashSet::new()),
                    chunks: vec![],
                })
                .len();
        }
        assert_eq!(released, 2, "metric a goes out when metric b starts");
    }

    #[test]
    fn external_label_matchers_are_answered_here() {
        let external = Labels::from_pairs([("cluster", "eu1")]);
        let m = |t: i32, n: &str, v: &str| thanos::LabelMatcher {
            r#type: t,
            name: n.into(),
            value: v.into(),
        };
        let rest = split_matchers(&[m(0, "cluster", "eu1"), m(0, "job", "a")], &external)
            .expect("valid")
            .expect("matches");
        assert_eq!(rest.len(), 1);
        assert!(
            split_matchers(&[m(2, "cluster", "us.*"), m(0, "job", "a")], &external)
                .expect("valid")
                .is_none()
        );
        assert_eq!(
            split_matchers(&[m(2, "job", "(")], &external)
                .expect_err("bad regex")
                .code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn external_labels_win_and_replica_labels_go() {
        let external = Labels::from_pairs([("cluster", "eu1"), ("replica", "a")]);
        let strip = HashSet::from(["replica".to_string()]);
        let got = final_labels(
            labels(&[("cluster", "own"), ("job", "j")]),
            &external,
            &strip,
        );
        assert_eq!(
            text(&[Series {
                labels: got,
                chunks: vec![]
            }]),
            ["cluster=eu1,job=j"]
        );
    }
}
