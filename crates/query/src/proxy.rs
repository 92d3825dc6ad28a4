//! The one fan-out of the querier: [`ProxyStore`] is a StoreAPI over the endpoints, as
//! Thanos's proxy store. A request goes to every endpoint whose time range and external
//! labels can match, at once; their sorted streams are merged; an endpoint that fails is a
//! warning under the WARN strategy, else the request's error naming it. Nothing is
//! deduplicated here: it serves the querier's own StoreAPI (queriers stack, the one above
//! deduplicates) and, through [`crate::queryable::ProxyQueryable`], the PromQL engine, which
//! deduplicates replicas over it.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use rthanos_model::{Labels, Matcher};
use rthanos_storeapi::convert::matchers_from_thanos;
use rthanos_storeapi::merge::{errors_as_warnings, merge_series};
use rthanos_storeapi::thanos::{
    self, ExemplarData, ExemplarsRequest, LabelNamesRequest, LabelNamesResponse,
    LabelValuesRequest, LabelValuesResponse, MetricMetadata, MetricMetadataRequest,
    PartialResponseStrategy, SeriesRequest,
};
use rthanos_storeapi::{Component, MetadataApi, MetadataSupport, SeriesStream, Store, StoreInfo};
use tonic::Status;

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

/// The endpoints the querier knows now (discovery's, or a fixed set in tests).
pub trait StoreSource: Send + Sync + 'static {
    /// The stores known now.
    fn stores(&self) -> Vec<NamedStore>;

    /// When each store was last asked for its Info, and the error if it failed
    /// (`/api/v1/stores`); `None` when never asked.
    fn last_check(&self, _name: &str) -> Option<(String, Option<String>)> {
        None
    }

    /// The endpoints' metadata and exemplars APIs (`/api/v1/metadata`,
    /// `/api/v1/query_exemplars`).
    fn metadata_apis(&self) -> Vec<crate::metadata::NamedMetadataApi> {
        Vec::new()
    }
}

/// A fixed set of stores (tests, one query's snapshot).
impl StoreSource for Vec<NamedStore> {
    fn stores(&self) -> Vec<NamedStore> {
        self.clone()
    }
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
                // A store's own warning fails the request too, as in Thanos's proxy.
                Box::pin(stream.map(move |frame| match frame {
                    Ok(thanos::SeriesResponse {
                        result: Some(thanos::series_response::Result::Warning(w)),
                    }) => Err(Status::aborted(w)),
                    Ok(frame) => Ok(frame),
                    Err(status) => Err(Status::new(
                        status.code(),
                        format!("store {name}: {}", status.message()),
                    )),
                })) as SeriesStream
            }
        }
    });
    merge_series(futures::future::join_all(calls).await)
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

/// The endpoints as one StoreAPI.
pub struct ProxyStore {
    stores: Arc<dyn StoreSource>,
}

impl ProxyStore {
    /// A StoreAPI over `stores`.
    pub fn new(stores: Arc<dyn StoreSource>) -> Self {
        Self { stores }
    }

    /// The endpoints it fans out to.
    pub fn stores(&self) -> &Arc<dyn StoreSource> {
        &self.stores
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
impl MetadataApi for ProxyStore {
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
impl Store for ProxyStore {
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
        let warn = warn_on_failure(
            request.partial_response_strategy,
            request.partial_response_disabled,
        );
        // No endpoint at all (not one that does not match) is an error without partial
        // responses: Thanos's ErrorNoStoresAvailable.
        if !warn && self.stores.stores().is_empty() {
            return Err(Status::unknown("No StoreAPIs available"));
        }
        let chosen = self.chosen(&request.matchers, request.min_time, request.max_time)?;
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
