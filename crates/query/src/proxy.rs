//! The querier's storage for the PromQL engine: a select fans out to the stores whose time
//! range and external labels can match, in parallel, merges their sorted streams, and, with
//! dedup on, drops the replica labels and merges the replicas of each series
//! ([`crate::dedup`]).
//!
//! An unreachable store, or one that fails mid-stream, is a warning when partial responses
//! are allowed, and the query's error when they are not. Warnings are kept for the API to
//! report with the result.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use rthanos_model::{Labels, Matcher};
use rthanos_promql::{Queryable, SelectHints, Series, StorageError, XorChunk};
use rthanos_storeapi::convert::{labels_from_thanos, matcher_to_thanos};
use rthanos_storeapi::merge::{errors_as_warnings, merge_series};
use rthanos_storeapi::thanos::{self, series_response::Result as Frame};
use rthanos_storeapi::{SeriesStream, Store};

/// A store and the name it is reported by (its address).
#[derive(Clone)]
pub struct NamedStore {
    /// Address or name, for warnings and `/api/v1/stores`.
    pub name: String,
    /// The store.
    pub store: Arc<dyn Store>,
}

/// How one query reads the stores.
#[derive(Clone, Debug, Default)]
pub struct ProxyOptions {
    /// Labels that tell HA replicas apart (`--query.replica-label`).
    pub replica_labels: Vec<String>,
    /// Whether replicas are merged into one series.
    pub dedup: bool,
    /// Whether an unavailable store is a warning (else an error).
    pub partial_response: bool,
    /// The coarsest resolution the stores may answer with (ms; 0 = raw only), from
    /// `max_source_resolution` or `--query.auto-downsampling`.
    pub max_resolution_window: i64,
}

/// Asks every store of `stores` for `request` at once and merges their sorted streams. A
/// store that fails (at once or mid-stream) is a warning frame when `warn`, else an error
/// naming it.
pub(crate) async fn fan_out(
    stores: &[&NamedStore],
    request: &thanos::SeriesRequest,
    warn: bool,
) -> SeriesStream {
    let calls = stores.iter().map(|s| {
        let request = request.clone();
        async move {
            let stream: SeriesStream = match s.store.series(request).await {
                Ok(stream) => stream,
                Err(status) => Box::pin(futures::stream::once(async move { Err(status) })),
            };
            if warn {
                errors_as_warnings(s.name.clone(), stream)
            } else {
                let name = s.name.clone();
                Box::pin(stream.map(move |frame| {
                    frame.map_err(|status| {
                        tonic::Status::new(
                            status.code(),
                            format!("store {name}: {}", status.message()),
                        )
                    })
                })) as SeriesStream
            }
        }
    });
    merge_series(futures::future::join_all(calls).await)
}

/// The stores as one `Queryable`, for one query.
pub struct ProxyQueryable {
    stores: Vec<NamedStore>,
    options: ProxyOptions,
    warnings: Mutex<Vec<String>>,
}

impl ProxyQueryable {
    /// Reads `stores` as `options` say.
    pub fn new(stores: Vec<NamedStore>, options: ProxyOptions) -> Self {
        Self {
            stores,
            options,
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// Lets the stores answer with data downsampled up to `window` ms.
    pub fn with_max_resolution_window(mut self, window: i64) -> Self {
        self.options.max_resolution_window = window;
        self
    }

    /// The warnings gathered so far (unavailable stores, store warnings).
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().map(|w| w.clone()).unwrap_or_default()
    }

    fn warn(&self, warning: String) {
        if let Ok(mut w) = self.warnings.lock()
            && !w.contains(&warning)
        {
            w.push(warning);
        }
    }
}

/// Whether a store's range and label sets leave room for series matching `matchers` in
/// [start, end].
pub(crate) fn store_matches(store: &dyn Store, matchers: &[Matcher], start: i64, end: i64) -> bool {
    let info = store.info();
    if !info.serving || info.max_time < start || info.min_time > end {
        return false;
    }
    info.label_sets.is_empty()
        || info.label_sets.iter().any(|set| {
            matchers
                .iter()
                .all(|m| set.get(&m.name).is_none_or(|v| m.matches(v)))
        })
}

impl ProxyQueryable {
    /// The stores that can hold series matching `matchers` in [start, end].
    fn chosen(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<&NamedStore> {
        self.stores
            .iter()
            .filter(|s| store_matches(s.store.as_ref(), matchers, start, end))
            .collect()
    }

    fn strategy(&self) -> i32 {
        if self.options.partial_response {
            thanos::PartialResponseStrategy::Warn as i32
        } else {
            thanos::PartialResponseStrategy::Abort as i32
        }
    }

    /// A store's failure: a warning with partial responses, else the error.
    fn failed(&self, name: &str, status: &tonic::Status) -> Result<(), StorageError> {
        let message = format!("store {name}: {}", status.message());
        if self.options.partial_response {
            self.warn(message);
            Ok(())
        } else {
            Err(StorageError(message))
        }
    }

    /// Asks every store that can hold series matching `matchers` in [start, end], at once,
    /// and returns the union of the strings they answer (names or values); each answer is
    /// its strings and its warnings.
    async fn union<F, Fut>(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        ask: F,
    ) -> Result<BTreeSet<String>, StorageError>
    where
        F: Fn(Arc<dyn Store>) -> Fut,
        Fut: Future<Output = Result<(Vec<String>, Vec<String>), tonic::Status>>,
    {
        let calls = self.chosen(matchers, start, end).into_iter().map(|s| {
            let answer = ask(Arc::clone(&s.store));
            async move { (s, answer.await) }
        });
        let mut union = BTreeSet::new();
        for (store, answer) in futures::future::join_all(calls).await {
            match answer {
                Ok((strings, warnings)) => {
                    warnings.into_iter().for_each(|w| self.warn(w));
                    union.extend(strings);
                }
                Err(status) => self.failed(&store.name, &status)?,
            }
        }
        Ok(union)
    }

    /// Label names of the series matching `matchers` (all series when empty) in
    /// [start, end], over every store; replica labels are left out with dedup on.
    pub async fn label_names(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, StorageError> {
        let request = thanos::LabelNamesRequest {
            partial_response_strategy: self.strategy(),
            start,
            end,
            matchers: matchers.iter().map(matcher_to_thanos).collect(),
            ..Default::default()
        };
        let mut names = self
            .union(matchers, start, end, |store| {
                let request = request.clone();
                async move {
                    let r = store.label_names(request).await?;
                    Ok((r.names, r.warnings))
                }
            })
            .await?;
        if self.options.dedup {
            for replica in &self.options.replica_labels {
                names.remove(replica);
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Values of label `name` over the series matching `matchers` in [start, end].
    pub async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, StorageError> {
        let request = thanos::LabelValuesRequest {
            label: name.to_string(),
            partial_response_strategy: self.strategy(),
            start,
            end,
            matchers: matchers.iter().map(matcher_to_thanos).collect(),
            ..Default::default()
        };
        let values = self
            .union(matchers, start, end, |store| {
                let request = request.clone();
                async move {
                    let r = store.label_values(request).await?;
                    Ok((r.values, r.warnings))
                }
            })
            .await?;
        Ok(values.into_iter().collect())
    }
}

#[async_trait::async_trait]
impl Queryable for ProxyQueryable {
    async fn select(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<Vec<Series>, StorageError> {
        let aggregates = crate::downsampled::aggregates_for(hints.func);
        let request = thanos::SeriesRequest {
            min_time: hints.start,
            max_time: hints.end,
            matchers: matchers.iter().map(matcher_to_thanos).collect(),
            aggregates: aggregates.iter().map(|a| *a as i32).collect(),
            max_resolution_window: self.options.max_resolution_window,
            partial_response_strategy: self.strategy(),
            skip_chunks: hints.func == Some(rthanos_promql::SelectFunc::Series),
            step: hints.step,
            range: hints.range,
            ..Default::default()
        };
        let chosen: Vec<&NamedStore> = self
            .stores
            .iter()
            .filter(|s| store_matches(s.store.as_ref(), matchers, hints.start, hints.end))
            .collect();
        let mut merged = fan_out(&chosen, &request, self.options.partial_response).await;
        // Series by their labels without replica labels; each entry one replica's chunks.
        let mut groups: BTreeMap<Labels, Vec<crate::dedup::Replica>> = BTreeMap::new();
        let strip = if self.options.dedup {
            self.options.replica_labels.as_slice()
        } else {
            &[]
        };
        while let Some(frame) = merged.next().await {
            let frame = frame.map_err(|status| StorageError(status.message().to_string()))?;
            match frame.result {
                Some(Frame::Series(series)) => {
                    let labels = labels_from_thanos(
                        series
                            .labels
                            .into_iter()
                            .filter(|l| !strip.contains(&l.name))
                            .collect(),
                    );
                    let replica = if crate::downsampled::all_raw(&series.chunks) {
                        crate::dedup::Replica::Raw(
                            series
                                .chunks
                                .into_iter()
                                .filter_map(|c| c.raw)
                                .filter(|raw| raw.r#type == thanos::chunk::Encoding::Xor as i32)
                                .map(|raw| XorChunk {
                                    data: raw.data.to_vec(),
                                })
                                .collect(),
                        )
                    } else {
                        crate::dedup::Replica::Decoded(
                            crate::downsampled::samples(&series.chunks, &aggregates)
                                .map_err(StorageError)?,
                        )
                    };
                    groups.entry(labels).or_default().push(replica);
                }
                Some(Frame::Warning(w)) => self.warn(w),
                _ => {}
            }
        }
        // Thanos's `isCounter`: rate, increase, irate and resets.
        let counter = hints
            .func
            .is_some_and(rthanos_promql::SelectFunc::is_counter);
        let out = groups
            .into_iter()
            .map(|(labels, replicas)| crate::dedup::deduplicated(labels, replicas, counter))
            .collect();
        Ok(out)
    }
}
