//! The ruler's StoreAPI: its TSDB (local blocks and head) with the `--label` external labels,
//! as Thanos's ruler serves it, so a querier with the ruler among its endpoints sees the
//! recorded series and `ALERTS`. Chunks go out as stored, never decoded.

use std::collections::HashSet;
use std::sync::Arc;

use rthanos_chunkenc::Encoding;
use rthanos_model::{Labels, Matcher};
use rthanos_storeapi::external::{final_labels, split_matchers};
use rthanos_storeapi::thanos::{
    self, AggrChunk, Chunk, LabelNamesRequest, LabelNamesResponse, LabelValuesRequest,
    LabelValuesResponse, Series, SeriesRequest, SeriesResponse, series_response::Result as Frame,
};
use rthanos_storeapi::{Component, SeriesStream, Store, StoreInfo, compare_labels};
use rthanos_tsdb::db::{Db, SelectedChunk};
use tonic::Status;

/// The ruler's TSDB over the StoreAPI.
pub struct TsdbStore {
    db: Arc<Db>,
    external: Labels,
}

impl TsdbStore {
    /// `db`, its series carrying `external` labels.
    pub fn new(db: Arc<Db>, external: Labels) -> Self {
        TsdbStore { db, external }
    }

    fn min_time(&self) -> i64 {
        let head = self.db.head().min_time();
        self.db
            .blocks()
            .first()
            .map_or(head, |b| b.min_time.min(head))
    }

    /// The series of `matchers` in `[min_time, max_time]`, read off the async runtime.
    async fn select(
        &self,
        matchers: Vec<Matcher>,
        min_time: i64,
        max_time: i64,
    ) -> Result<Vec<(Labels, Vec<SelectedChunk>)>, Status> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || db.select(&matchers, min_time, max_time))
            .await
            .map_err(|e| Status::internal(format!("reading the TSDB: {e}")))?
            .map_err(|e| Status::internal(format!("reading the TSDB: {e}")))
    }
}

fn thanos_encoding(encoding: Encoding) -> Option<i32> {
    Some(match encoding {
        Encoding::Xor => thanos::chunk::Encoding::Xor as i32,
        Encoding::Histogram => thanos::chunk::Encoding::Histogram as i32,
        Encoding::FloatHistogram => thanos::chunk::Encoding::FloatHistogram as i32,
        Encoding::None | Encoding::Aggr => return None,
    })
}

fn own_labels(labels: &Labels) -> impl Iterator<Item = (String, String)> + '_ {
    labels.iter().map(|l| (l.name.clone(), l.value.clone()))
}

#[tonic::async_trait]
impl Store for TsdbStore {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            serving: true,
            component: Component::Rule,
            label_sets: Some(self.external.clone())
                .filter(|l| !l.is_empty())
                .into_iter()
                .collect(),
            min_time: self.min_time(),
            max_time: i64::MAX,
            supports_sharding: false,
            supports_without_replica_labels: true,
        }
    }

    async fn series(&self, request: SeriesRequest) -> Result<SeriesStream, Status> {
        let Some(matchers) = split_matchers(&request.matchers, &self.external)? else {
            return Ok(Box::pin(futures::stream::empty()));
        };
        if matchers.is_empty() {
            return Err(Status::invalid_argument(
                "no matchers specified (excluding external labels)",
            ));
        }
        let strip: HashSet<String> = request
            .without_replica_labels
            .iter()
            .filter(|name| self.external.get(name).is_some())
            .cloned()
            .collect();
        let selected = self
            .select(matchers, request.min_time, request.max_time)
            .await?;
        let mut series = Vec::with_capacity(selected.len());
        for (labels, chunks) in selected {
            let chunks = if request.skip_chunks {
                Vec::new()
            } else {
                let mut out = Vec::with_capacity(chunks.len());
                for c in chunks {
                    let Some(encoding) = thanos_encoding(c.encoding) else {
                        return Err(Status::internal(format!(
                            "series {labels}: a chunk without encoding"
                        )));
                    };
                    out.push(AggrChunk {
                        min_time: c.min_time,
                        max_time: c.max_time,
                        raw: Some(Chunk {
                            r#type: encoding,
                            hash: xxhash_rust::xxh64::xxh64(&c.data, 0),
                            data: bytes::Bytes::from_owner(c.data),
                        }),
                        ..Default::default()
                    });
                }
                out
            };
            series.push(Series {
                labels: final_labels(own_labels(&labels), &self.external, &strip),
                chunks,
            });
        }
        // External labels set over a series' own can change the order.
        series.sort_by(|a, b| compare_labels(&a.labels, &b.labels));
        Ok(Box::pin(futures::stream::iter(series.into_iter().map(
            |s| {
                Ok(SeriesResponse {
                    result: Some(Frame::Series(s)),
                })
            },
        ))))
    }

    async fn label_names(&self, request: LabelNamesRequest) -> Result<LabelNamesResponse, Status> {
        let Some(matchers) = split_matchers(&request.matchers, &self.external)? else {
            return Ok(LabelNamesResponse::default());
        };
        let selected = self.select(matchers, request.start, request.end).await?;
        let strip: HashSet<&String> = request.without_replica_labels.iter().collect();
        let mut names: Vec<String> = selected
            .iter()
            .flat_map(|(labels, _)| labels.iter().map(|l| l.name.clone()))
            .collect();
        if !names.is_empty() {
            names.extend(self.external.iter().map(|l| l.name.clone()));
        }
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
        if request.without_replica_labels.contains(&request.label) {
            return Ok(LabelValuesResponse::default());
        }
        let Some(matchers) = split_matchers(&request.matchers, &self.external)? else {
            return Ok(LabelValuesResponse::default());
        };
        if let Some(value) = self.external.get(&request.label) {
            return Ok(LabelValuesResponse {
                values: vec![value.to_string()],
                ..Default::default()
            });
        }
        let selected = self.select(matchers, request.start, request.end).await?;
        let mut values: Vec<String> = selected
            .iter()
            .filter_map(|(labels, _)| labels.get(&request.label).map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        Ok(LabelValuesResponse {
            values,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use rthanos_storeapi::convert::matcher_to_thanos;

    use super::*;

    fn store() -> (tempfile::TempDir, TsdbStore) {
        let tmp = tempfile::tempdir().expect("tmp");
        let (db, _) = Db::open(tmp.path(), Default::default()).expect("open");
        let mut app = db.appender();
        for (name, job) in [("job:up", "a"), ("job:up", "b"), ("ALERTS", "a")] {
            let labels = Labels::from_pairs([("__name__", name), ("job", job)]);
            for t in 0..3 {
                app.append(&labels, t * 1000, t as f64).expect("append");
            }
        }
        app.commit().expect("commit");
        let external = Labels::from_pairs([("ruler", "r1")]);
        (tmp, TsdbStore::new(Arc::new(db), external))
    }

    fn request(matchers: &[Matcher]) -> SeriesRequest {
        SeriesRequest {
            min_time: 0,
            max_time: 10_000,
            matchers: matchers.iter().map(matcher_to_thanos).collect(),
            ..Default::default()
        }
    }

    async fn series(store: &TsdbStore, request: SeriesRequest) -> Vec<Series> {
        let stream = store.series(request).await.expect("series");
        stream
            .map(|frame| match frame.expect("frame").result {
                Some(Frame::Series(s)) => s,
                other => panic!("not a series: {other:?}"),
            })
            .collect()
            .await
    }

    #[tokio::test]
    async fn series_carry_the_external_labels_and_their_chunks() {
        let (_tmp, store) = store();
        assert_eq!(store.info().min_time, 0);
        assert_eq!(store.info().component, Component::Rule);
        let out = series(&store, request(&[Matcher::equal("__name__", "job:up")])).await;
        assert_eq!(out.len(), 2);
        let names: Vec<&str> = out[0].labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "job", "ruler"]);
        let chunk = out[0].chunks[0].raw.as_ref().expect("raw");
        let samples: Vec<(i64, f64)> = rthanos_chunkenc::Chunk::new(Encoding::Xor, &chunk.data)
            .xor_samples()
            .expect("xor")
            .map(|s| s.expect("sample"))
            .collect();
        assert_eq!(samples, [(0, 0.0), (1000, 1.0), (2000, 2.0)]);
        // A matcher on the external label is answered here.
        let none = series(
            &store,
            request(&[
                Matcher::equal("__name__", "job:up"),
                Matcher::equal("ruler", "r2"),
            ]),
        )
        .await;
        assert!(none.is_empty());
        let mut skip = request(&[Matcher::equal("job", "a")]);
        skip.skip_chunks = true;
        skip.without_replica_labels = vec!["ruler".into()];
        let out = series(&store, skip).await;
        assert_eq!(out.len(), 2, "ALERTS and job:up of job a");
        assert!(
            out.iter()
                .all(|s| s.chunks.is_empty() && s.labels.len() == 2)
        );
        assert!(
            store
                .series(request(&[Matcher::equal("ruler", "r1")]))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn label_names_and_values_include_the_external_labels() {
        let (_tmp, store) = store();
        let names = store
            .label_names(LabelNamesRequest {
                start: 0,
                end: 10_000,
                ..Default::default()
            })
            .await
            .expect("names");
        assert_eq!(names.names, ["__name__", "job", "ruler"]);
        let values = store
            .label_values(LabelValuesRequest {
                label: "__name__".into(),
                start: 0,
                end: 10_000,
                ..Default::default()
            })
            .await
            .expect("values");
        assert_eq!(values.values, ["ALERTS", "job:up"]);
    }
}
