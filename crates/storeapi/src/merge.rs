//! Streaming k-way merge of `Series` streams sorted by labels, as the querier's proxy needs it:
//! one output series per distinct label set, with the chunks of every input frame carrying that
//! label set, sorted by time and without exact duplicates. Memory holds one frame per input.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use futures::StreamExt;
use tonic::Status;

use crate::store::SeriesStream;
use crate::thanos::{self, AggrChunk, Series, SeriesResponse, series_response::Result as Frame};

/// Prometheus's order of label sets (`labels.Compare`): label by label, name then value; a
/// set that is a prefix of another sorts first.
pub fn compare_labels(a: &[thanos::Label], b: &[thanos::Label]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let by_name = x.name.cmp(&y.name);
        if by_name != Ordering::Equal {
            return by_name;
        }
        let by_value = x.value.cmp(&y.value);
        if by_value != Ordering::Equal {
            return by_value;
        }
    }
    a.len().cmp(&b.len())
}

/// Chunks of frames of one series, merged: sorted by time range, exact duplicates (same range
/// and same bytes, as overlapping blocks or two stores holding one block produce) dropped.
pub fn merge_chunks(chunks: &mut Vec<AggrChunk>) {
    if chunks
        .windows(2)
        .any(|w| chunk_order(&w[0], &w[1]) == Ordering::Greater)
    {
        chunks.sort_by(chunk_order);
    }
    chunks.dedup();
}

/// Time range first, then the raw bytes, so that duplicates end up next to each other.
fn chunk_order(a: &AggrChunk, b: &AggrChunk) -> Ordering {
    let bytes = |c: &AggrChunk| c.raw.as_ref().map(|r| r.data.clone());
    (a.min_time, a.max_time)
        .cmp(&(b.min_time, b.max_time))
        .then_with(|| bytes(a).cmp(&bytes(b)))
}

/// One input: its stream, and series frames already received (a batch holds several).
struct Source {
    stream: SeriesStream,
    pending: VecDeque<Series>,
}

impl Source {
    /// The next series frame; warnings met on the way are collected in `warnings`.
    async fn next_series(&mut self, warnings: &mut Vec<String>) -> Result<Option<Series>, Status> {
        loop {
            if let Some(series) = self.pending.pop_front() {
                return Ok(Some(series));
            }
            let Some(frame) = self.stream.next().await.transpose()? else {
                return Ok(None);
            };
            match frame.result {
                Some(Frame::Series(series)) => return Ok(Some(series)),
                Some(Frame::Batch(batch)) => self.pending.extend(batch.series),
                Some(Frame::Warning(warning)) => warnings.push(warning),
                Some(Frame::Hints(_)) | None => {}
            }
        }
    }
}

/// A head of the heap: the next series of one source. Ordered so that `BinaryHeap` (a max-heap)
/// pops the smallest labels first, ties in source order.
struct Head {
    series: Series,
    source: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_labels(&other.series.labels, &self.series.labels)
            .then(other.source.cmp(&self.source))
    }
}

/// Merges streams each sorted by labels into one sorted stream. Warnings are passed on as they
/// arrive; the first error ends the merged stream with that error (callers that want partial
/// responses turn a source's error into a warning before merging, see [`errors_as_warnings`]).
pub fn merge_series(mut streams: Vec<SeriesStream>) -> SeriesStream {
    if streams.len() == 1
        && let Some(only) = streams.pop()
    {
        return only;
    }
    let mut sources: Vec<Source> = streams
        .into_iter()
        .map(|stream| Source {
            stream,
            pending: VecDeque::new(),
        })
        .collect();
    Box::pin(async_stream::try_stream! {
        let mut warnings = Vec::new();
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (source, input) in sources.iter_mut().enumerate() {
            if let Some(series) = input.next_series(&mut warnings).await? {
                heap.push(Head { series, source });
            }
        }
        for warning in warnings.drain(..) {
            yield warning_frame(warning);
        }
        while let Some(Head { mut series, source }) = heap.pop() {
            if let Some(next) = sources[source].next_series(&mut warnings).await? {
                heap.push(Head { series: next, source });
            }
            let mut merged = false;
            while heap
                .peek()
                .is_some_and(|top| compare_labels(&top.series.labels, &series.labels).is_eq())
            {
                let Some(Head { series: same, source }) = heap.pop() else { break };
                series.chunks.extend(same.chunks);
                merged = true;
                if let Some(next) = sources[source].next_series(&mut warnings).await? {
                    heap.push(Head { series: next, source });
                }
            }
            if merged {
                merge_chunks(&mut series.chunks);
            }
            for warning in warnings.drain(..) {
                yield warning_frame(warning);
            }
            yield SeriesResponse { result: Some(Frame::Series(series)) };
        }
    })
}

/// A warning frame.
pub fn warning_frame(warning: String) -> SeriesResponse {
    SeriesResponse {
        result: Some(Frame::Warning(warning)),
    }
}

/// The stream with its error, if one comes, turned into a final warning naming `store`: the
/// partial-response strategy WARN.
pub fn errors_as_warnings(store: String, stream: SeriesStream) -> SeriesStream {
    Box::pin(async_stream::stream! {
        let mut stream = stream;
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(frame) => yield Ok(frame),
                Err(status) => {
                    yield Ok(warning_frame(format!("store {store}: {}", status.message())));
                    break;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use futures::stream;

    use super::*;
    use crate::thanos::Chunk;

    fn labels(pairs: &[(&str, &str)]) -> Vec<thanos::Label> {
        pairs
            .iter()
            .map(|(n, v)| thanos::Label {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect()
    }

    fn series(pairs: &[(&str, &str)], chunk_times: &[i64]) -> Result<SeriesResponse, Status> {
        Ok(SeriesResponse {
            result: Some(Frame::Series(Series {
                labels: labels(pairs),
                chunks: chunk_times
                    .iter()
                    .map(|&t| AggrChunk {
                        min_time: t,
                        max_time: t + 9,
                        raw: Some(Chunk {
                            r#type: 0,
                            data: vec![t as u8].into(),
                            hash: 0,
                        }),
                        ..Default::default()
                    })
                    .collect(),
            })),
        })
    }

    async fn collect(s: SeriesStream) -> Vec<Result<SeriesResponse, Status>> {
        s.collect().await
    }

    fn describe(frames: &[Result<SeriesResponse, Status>]) -> Vec<String> {
        frames
            .iter()
            .map(|f| match f {
                Ok(SeriesResponse {
                    result: Some(Frame::Series(s)),
                }) => format!(
                    "{}:{:?}",
                    s.labels
                        .iter()
                        .map(|l| format!("{}={}", l.name, l.value))
                        .collect::<Vec<_>>()
                        .join(","),
                    s.chunks.iter().map(|c| c.min_time).collect::<Vec<_>>()
                ),
                Ok(SeriesResponse {
                    result: Some(Frame::Warning(w)),
                }) => format!("warning:{w}"),
                Ok(other) => format!("{other:?}"),
                Err(e) => format!("error:{}", e.message()),
            })
            .collect()
    }

    #[test]
    fn label_order_is_prometheus_order() {
        let a = labels(&[("a", "1")]);
        let ab = labels(&[("a", "1"), ("b", "1")]);
        let a2 = labels(&[("a", "2")]);
        let c = labels(&[("c", "0")]);
        assert_eq!(compare_labels(&a, &ab), Ordering::Less, "prefix first");
        assert_eq!(compare_labels(&ab, &a2), Ordering::Less, "value decides");
        assert_eq!(compare_labels(&a2, &c), Ordering::Less, "name decides");
        assert_eq!(compare_labels(&c, &c), Ordering::Equal);
    }

    #[tokio::test]
    async fn merges_sorted_streams_and_joins_equal_series() {
        let one: SeriesStream = Box::pin(stream::iter(vec![
            series(&[("a", "1")], &[0, 10, 20]),
            series(&[("a", "3")], &[0]),
        ]));
        let two: SeriesStream = Box::pin(stream::iter(vec![
            series(&[("a", "1")], &[10, 20]),
            Ok(warning_frame("slow".into())),
            series(&[("a", "2")], &[0]),
            // A second frame of the same series, as a store splits large series.
            series(&[("a", "2")], &[30]),
        ]));
        let three: SeriesStream = Box::pin(stream::empty());
        let got = collect(merge_series(vec![one, two, three])).await;
        assert_eq!(
            describe(&got),
            ["warning:slow", "a=1:[0, 10, 20]", "a=2:[0, 30]", "a=3:[0]"]
        );
    }

    #[tokio::test]
    async fn batches_are_unpacked() {
        let batch = Ok(SeriesResponse {
            result: Some(Frame::Batch(thanos::SeriesBatch {
                series: vec![
                    Series {
                        labels: labels(&[("a", "1")]),
                        chunks: vec![],
                    },
                    Series {
                        labels: labels(&[("a", "4")]),
                        chunks: vec![],
                    },
                ],
            })),
        });
        let one: SeriesStream = Box::pin(stream::iter(vec![batch]));
        let two: SeriesStream = Box::pin(stream::iter(vec![series(&[("a", "2")], &[])]));
        let got = collect(merge_series(vec![one, two])).await;
        assert_eq!(describe(&got), ["a=1:[]", "a=2:[]", "a=4:[]"]);
    }

    #[tokio::test]
    async fn an_error_ends_the_merge_unless_turned_into_a_warning() {
        let failing = || -> SeriesStream {
            Box::pin(stream::iter(vec![
                series(&[("a", "1")], &[0]),
                Err(Status::unavailable("connection refused")),
            ]))
        };
        let healthy =
            || -> SeriesStream { Box::pin(stream::iter(vec![series(&[("a", "2")], &[0])])) };
        let got = collect(merge_series(vec![failing(), healthy()])).await;
        assert!(
            describe(&got)
                .last()
                .is_some_and(|l| l.starts_with("error:"))
        );

        let got = collect(merge_series(vec![
            errors_as_warnings("sidecar-0:10901".into(), failing()),
            healthy(),
        ]))
        .await;
        assert_eq!(
            describe(&got),
            [
                "warning:store sidecar-0:10901: connection refused",
                "a=1:[0]",
                "a=2:[0]"
            ]
        );
    }
}
