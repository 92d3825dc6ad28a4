//! The querier's storage for the PromQL engine, over [`ProxyStore`]: a select is one
//! `Series` request to the proxy; with dedup on, the replica labels are dropped and the
//! replicas of each series merged ([`crate::dedup`]), counters with their resets adjusted;
//! downsampled chunks are read with the aggregates the enclosing function needs. The
//! proxy's warnings (unavailable stores, stores' own) are kept for the API to report with
//! the result; its errors are the query's.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use rthanos_model::{Labels, Matcher};
use rthanos_promql::{Queryable, SelectHints, Series, StorageError, XorChunk};
use rthanos_storeapi::Store;
use rthanos_storeapi::convert::{labels_from_thanos, matcher_to_thanos};
use rthanos_storeapi::thanos::{self, series_response::Result as Frame};

use crate::proxy::{NamedStore, ProxyOptions, ProxyStore};

/// Series per Series response message asked of the stores (Thanos's
/// `DefaultResponseBatchSize`).
const RESPONSE_BATCH_SIZE: i64 = 64;

/// The stores as one `Queryable`, for one query.
pub struct ProxyQueryable {
    proxy: ProxyStore,
    options: ProxyOptions,
    warnings: Mutex<Vec<String>>,
}

impl ProxyQueryable {
    /// Reads `stores` as `options` say.
    pub fn new(stores: Vec<NamedStore>, options: ProxyOptions) -> Self {
        Self {
            proxy: ProxyStore::new(Arc::new(stores)),
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

impl ProxyQueryable {
    fn strategy(&self) -> i32 {
        if self.options.partial_response {
            thanos::PartialResponseStrategy::Warn as i32
        } else {
            thanos::PartialResponseStrategy::Abort as i32
        }
    }

    /// Label names of the series matching `matchers` (all series when empty) in
    /// [start, end], over every store; replica labels are left out with dedup on.
    ///
    /// # Errors
    /// A store failed and partial responses are off.
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
        let answer = self.proxy.label_names(request).await;
        let mut names = self.strings(answer.map(|a| (a.names, a.warnings)))?;
        if self.options.dedup {
            names.retain(|n| !self.options.replica_labels.contains(n));
        }
        Ok(names)
    }

    /// Values of label `name` over the series matching `matchers` in [start, end].
    ///
    /// # Errors
    /// A store failed and partial responses are off.
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
        let answer = self.proxy.label_values(request).await;
        self.strings(answer.map(|a| (a.values, a.warnings)))
    }

    /// A label API's strings, its warnings kept for the API; a failure is the query's error.
    fn strings(
        &self,
        answer: Result<(Vec<String>, Vec<String>), tonic::Status>,
    ) -> Result<Vec<String>, StorageError> {
        let (strings, warnings) =
            answer.map_err(|status| StorageError(status.message().to_string()))?;
        warnings.into_iter().for_each(|w| self.warn(w));
        Ok(strings)
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
            // As Thanos's querier (`store.DefaultResponseBatchSize`): 64 series a message,
            // where a series a message cost a gRPC message, an HTTP/2 DATA frame and a
            // syscall each (docs/performance.md). Stores that do not batch ignore it.
            response_batch_size: RESPONSE_BATCH_SIZE,
            ..Default::default()
        };
        let mut merged = self
            .proxy
            .series(request)
            .await
            .map_err(|status| StorageError(status.message().to_string()))?;
        // Series by their labels without replica labels, each with one replica's chunks, in
        // the merged stream's order: sorted already unless stripping replica labels unsorted
        // it, and then sorted once at the end.
        let mut received: Vec<(Labels, crate::dedup::Replica)> = Vec::new();
        let mut in_order = true;
        let strip = if self.options.dedup {
            self.options.replica_labels.as_slice()
        } else {
            &[]
        };
        let mut receive = |series: thanos::Series| -> Result<(), StorageError> {
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
            if let Some((last, _)) = received.last() {
                in_order &= *last <= labels;
            }
            received.push((labels, replica));
            Ok(())
        };
        while let Some(frame) = merged.next().await {
            let frame = frame.map_err(|status| StorageError(status.message().to_string()))?;
            match frame.result {
                Some(Frame::Series(series)) => receive(series)?,
                // A store that batches (asked to, as above) sends series in batches.
                Some(Frame::Batch(batch)) => {
                    for series in batch.series {
                        receive(series)?;
                    }
                }
                Some(Frame::Warning(w)) => self.warn(w),
                _ => {}
            }
        }
        // Thanos's `isCounter`: rate, increase, irate and resets.
        let counter = hints
            .func
            .is_some_and(rthanos_promql::SelectFunc::is_counter);
        if !in_order {
            // Stable: a series' replicas stay in the order they came.
            received.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let mut out: Vec<Series> = Vec::new();
        let mut received = received.into_iter().peekable();
        while let Some((labels, replica)) = received.next() {
            let mut replicas = vec![replica];
            while let Some((_, next)) = received.next_if(|(l, _)| *l == labels) {
                replicas.push(next);
            }
            out.push(crate::dedup::deduplicated(labels, replicas, counter));
        }
        Ok(out)
    }
}
