//! Per-request limits on what a `Series` call may return (Thanos's
//! `--store.limits.request-series` and `--store.limits.request-samples`): the call fails with
//! RESOURCE_EXHAUSTED as soon as one is passed, instead of streaming on.

use futures::StreamExt;
use tonic::Status;

use crate::store::SeriesStream;
use crate::thanos::{Series, series_response::Result as Frame};

/// Limits of one `Series` call; 0 means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeriesLimits {
    /// Most series returned.
    pub series: u64,
    /// Most samples returned, counted as [`SAMPLES_PER_CHUNK`] per chunk.
    pub samples: u64,
}

impl SeriesLimits {
    /// Whether any limit is set.
    pub fn is_set(&self) -> bool {
        self.series > 0 || self.samples > 0
    }
}

/// Samples a chunk is assumed to hold: as Thanos, the samples limit is a chunks limit with
/// each chunk counted as 120 samples (Prometheus's target chunk size).
pub const SAMPLES_PER_CHUNK: u64 = 120;

/// `stream`, failing once it passes `limits`.
pub fn limit(stream: SeriesStream, limits: SeriesLimits) -> SeriesStream {
    if !limits.is_set() {
        return stream;
    }
    Box::pin(async_stream::stream! {
        let mut stream = stream;
        let (mut series, mut samples) = (0u64, 0u64);
        let mut last_labels: Option<Vec<crate::thanos::Label>> = None;
        while let Some(frame) = stream.next().await {
            if let Ok(response) = &frame {
                let counted: Vec<&Series> = match &response.result {
                    Some(Frame::Series(s)) => vec![s],
                    Some(Frame::Batch(b)) => b.series.iter().collect(),
                    _ => Vec::new(),
                };
                for s in counted {
                    // Frames of one series split for size count once.
                    if last_labels.as_ref() != Some(&s.labels) {
                        series += 1;
                        last_labels = Some(s.labels.clone());
                    }
                    samples += s.chunks.len() as u64 * SAMPLES_PER_CHUNK;
                }
                if limits.series > 0 && series > limits.series {
                    yield Err(Status::resource_exhausted(format!(
                        "exceeded series limit: limit {} violated (got {series})",
                        limits.series
                    )));
                    break;
                }
                if limits.samples > 0 && samples > limits.samples {
                    yield Err(Status::resource_exhausted(format!(
                        "exceeded samples limit: limit {} violated (got {samples})",
                        limits.samples
                    )));
                    break;
                }
            }
            yield frame;
        }
    })
}

#[cfg(test)]
mod tests {
    use futures::stream;

    use super::*;
    use crate::thanos::{AggrChunk, Chunk, Label, SeriesResponse};

    fn series(name: &str, samples: u16) -> Result<SeriesResponse, Status> {
        let mut data = samples.to_be_bytes().to_vec();
        data.push(0);
        Ok(SeriesResponse {
            result: Some(Frame::Series(Series {
                labels: vec![Label {
                    name: "a".into(),
                    value: name.into(),
                }],
                chunks: vec![AggrChunk {
                    raw: Some(Chunk {
                        r#type: 0,
                        data: data.into(),
                        hash: 0,
                    }),
                    ..Default::default()
                }],
            })),
        })
    }

    async fn run(limits: SeriesLimits) -> (usize, Option<Status>) {
        let input: SeriesStream = Box::pin(stream::iter(vec![
            series("1", 100),
            series("1", 20),
            series("2", 100),
            series("3", 100),
        ]));
        let frames: Vec<_> = limit(input, limits).collect().await;
        let ok = frames.iter().filter(|f| f.is_ok()).count();
        let err = frames.into_iter().find_map(Result::err);
        (ok, err)
    }

    #[tokio::test]
    async fn series_and_samples_are_counted_and_limited() {
        assert_eq!(run(SeriesLimits::default()).await.0, 4);
        assert_eq!(
            run(SeriesLimits {
                series: 3,
                samples: 480
            })
            .await
            .0,
            4
        );
        let (ok, err) = run(SeriesLimits {
            series: 2,
            samples: 0,
        })
        .await;
        assert_eq!(ok, 3, "two series in three frames");
        let err = err.expect("limit passed");
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            err.message(),
            "exceeded series limit: limit 2 violated (got 3)"
        );
        // Four chunks counted as 120 samples each: a limit of 300 is passed at the third.
        let (ok, err) = run(SeriesLimits {
            series: 0,
            samples: 300,
        })
        .await;
        assert_eq!(ok, 2);
        assert!(err.expect("limit").message().contains("samples limit"));
    }
}
