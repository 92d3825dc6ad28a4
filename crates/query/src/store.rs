//! The querier as a StoreAPI server, so queriers can be stacked (a global querier over one
//! querier per cluster), as Thanos's proxy store: a request goes to every endpoint whose time
//! range and external labels can match, the answers are merged as sorted streams, and nothing
//! is deduplicated here (the querier above does it; `without_replica_labels` is passed on).
//! An endpoint that fails is a warning frame under the WARN strategy, else the error.

use std::collections::BTreeSet;
use std::sync::Arc;

use rthanos_model::{Labels, Matcher};
use rthanos_storeapi::convert::matchers_from_thanos;
use rthanos_storeapi::thanos::{
    ExemplarData, ExemplarsRequest, LabelNamesRequest, LabelNamesResponse, LabelValuesRequest,
    LabelValuesResponse, MetricMetadata, MetricMetadataRequest, PartialResponseStrategy,
    SeriesRequest,
};
use rthanos_storeapi::{Component, MetadataApi, MetadataSupport, SeriesStream, Store, StoreInfo};
use tonic::Status;

use crate::api::StoreSource;
use crate::proxy::{NamedStore, fan_out, store_matches};

/// The querier's own StoreAPI.
pub struct QueryStore {
    stores: Arc<dyn StoreSource>,
}

impl QueryStore {
    /// A StoreAPI over `stores`.
    pub fn new(stores: Arc<dyn StoreSource>) -> Self {
        Self { stores }
    }

    fn chosen(
        &self,
        matchers: &[rthanos_storeapi::thanos::LabelMatcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<NamedStore>, Status> {
        let matchers: Vec<Matcher> =
            matchers_from_thanos(matchers).map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(self
            .stores
            .stores()
            .into_iter()
            .filter(|s| store_matches(s.store.as_ref(), &matchers, start, end))
            .collect())
    }
}

/// Whether failures become warnings: WARN is the default strategy, as in Thanos.
fn warn_on_failure(strategy: i32, disabled: bool) -> bool {
    !disabled && strategy != PartialResponseStrategy::Abort as i32
}

/// Unions the strings that every store answers; a failure is a warning or the error.
async fn union<F, Fut>(
    stores: Vec<NamedStore>,
    warn: bool,
    ask: F,
) -> Result<(Vec<String>, Vec<String>), Status>
where
    F: Fn(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = Result<(Vec<String>, Vec<String>), Status>>,
{
    let answers = futures::future::join_all(stores.iter().map(|s| ask(Arc::clone(&s.store)))).await;
    let mut strings = BTreeSet::new();
    let mut warnings = Vec::new();
    for (store, answer) in stores.iter().zip(answers) {
        match answer {
            Ok((found, their_warnings)) => {
                strings.extend(found);
                warnings.extend(their_warnings);
            }
            Err(status) if warn => {
                warnings.push(format!("store {}: {}", store.name, status.message()))
            }
            Err(status) => {
                return Err(Status::new(
                    status.code(),
                    format!("store {}: {}", store.name, status.message()),
                ));
            }
        }
    }
    Ok((strings.into_iter().collect(), warnings))
}

/// Metadata and exemplars of the endpoints, merged as the HTTP API merges them (no dedup:
/// the querier above does it).
#[tonic::async_trait]
impl MetadataApi for QueryStore {
    fn support(&self) -> MetadataSupport {
        let mut support = MetadataSupport::default();
        for endpoint in self.stores.metadata_apis() {
            let theirs = endpoint.api.support();
            support.metric_metadata |= theirs.metric_metadata;
            if let Some((min, max)) = theirs.exemplars {
                support.exemplars = Some(
                    support
                        .exemplars
                        .map_or((min, max), |(a, b)| (a.min(min), b.max(max))),
                );
            }
        }
        support
    }

    async fn metric_metadata(
        &self,
        request: MetricMetadataRequest,
    ) -> Result<(MetricMetadata, Vec<String>), Status> {
        let warn = warn_on_failure(request.partial_response_strategy, false);
        crate::metadata::metric_metadata(&self.stores.metadata_apis(), request, warn)
            .await
            .map_err(Status::unavailable)
    }

    async fn exemplars(
        &self,
        request: ExemplarsRequest,
    ) -> Result<(Vec<ExemplarData>, Vec<String>), Status> {
        let warn = warn_on_failure(request.partial_response_strategy, false);
        crate::metadata::exemplars(&self.stores.metadata_apis(), request, &[], warn)
            .await
            .map_err(Status::unavailable)
    }
}

#[tonic::async_trait]
impl Store for QueryStore {
    /// Serving while any endpoint is: the union of their label sets and the span of their
    /// time ranges.
    fn info(&self) -> StoreInfo {
        let mut label_sets = BTreeSet::<Labels>::new();
        let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
        let mut serving = false;
        for named in self.stores.stores() {
            let info = named.store.info();
            if !info.serving {
                continue;
            }
            serving = true;
            label_sets.extend(info.label_sets);
            min_time = min_time.min(info.min_time);
            max_time = max_time.max(info.max_time);
        }
        StoreInfo {
            serving,
            component: Component::Query,
            label_sets: label_sets.into_iter().collect(),
            min_time,
            max_time,
            supports_sharding: false,
            // Passed on to the endpoints, which drop the labels themselves.
            supports_without_replica_labels: true,
        }
    }

    async fn series(&self, request: SeriesRequest) -> Result<SeriesStream, Status> {
        let chosen = self.chosen(&request.matchers, request.min_time, request.max_time)?;
        let warn = warn_on_failure(
            request.partial_response_strategy,
            request.partial_response_disabled,
        );
        let chosen: Vec<&NamedStore> = chosen.iter().collect();
        Ok(fan_out(&chosen, &request, warn).await)
    }

    async fn label_names(&self, request: LabelNamesRequest) -> Result<LabelNamesResponse, Status> {
        let chosen = self.chosen(&request.matchers, request.start, request.end)?;
        let warn = warn_on_failure(
            request.partial_response_strategy,
            request.partial_response_disabled,
        );
        let (names, warnings) = union(chosen, warn, |store| {
            let request = request.clone();
            async move {
                let r = store.label_names(request).await?;
                Ok((r.names, r.warnings))
            }
        })
        .await?;
        Ok(LabelNamesResponse {
            names,
            warnings,
            hints: None,
        })
    }

    async fn label_values(
        &self,
        request: LabelValuesRequest,
    ) -> Result<LabelValuesResponse, Status> {
        let chosen = self.chosen(&request.matchers, request.start, request.end)?;
        let warn = warn_on_failure(
            request.partial_response_strategy,
            request.partial_response_disabled,
        );
        let (values, warnings) = union(chosen, warn, |store| {
            let request = request.clone();
            async move {
                let r = store.label_values(request).await?;
                Ok((r.values, r.warnings))
            }
        })
        .await?;
        Ok(LabelValuesResponse {
            values,
            warnings,
            hints: None,
        })
    }
}
