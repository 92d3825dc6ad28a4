//! Thanos's metric metadata and exemplars APIs (`thanos.Metadata`, `thanos.Exemplars`): what
//! Prometheus's `/api/v1/metadata` and `/api/v1/query_exemplars` answer, over gRPC. A
//! component that serves them says so in its Info (`metric_metadata`, `exemplars` with its
//! time range); queriers ask only those endpoints.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::thanos::{
    self, ExemplarData, ExemplarsRequest, ExemplarsResponse, MetricMetadata, MetricMetadataRequest,
    MetricMetadataResponse, exemplars_response, metric_metadata_response,
};

/// What a component announces of these APIs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetadataSupport {
    /// Serves metric metadata.
    pub metric_metadata: bool,
    /// Serves exemplars over this time range (ms).
    pub exemplars: Option<(i64, i64)>,
    /// Serves the Rules API (a ruler).
    pub rules: bool,
}

/// The metadata and exemplars APIs of one component.
#[tonic::async_trait]
pub trait MetadataApi: Send + Sync + 'static {
    /// What it serves now.
    fn support(&self) -> MetadataSupport;

    /// Metadata per metric name, and warnings.
    async fn metric_metadata(
        &self,
        request: MetricMetadataRequest,
    ) -> Result<(MetricMetadata, Vec<String>), Status>;

    /// Exemplars per series (series labels with the external labels), and warnings.
    async fn exemplars(
        &self,
        request: ExemplarsRequest,
    ) -> Result<(Vec<ExemplarData>, Vec<String>), Status>;

    /// Rule groups (Thanos's Rules API), and warnings; only where `support().rules`.
    async fn rules(
        &self,
        _request: thanos::RulesRequest,
    ) -> Result<(Vec<thanos::RuleGroup>, Vec<String>), Status> {
        Err(Status::unimplemented("no Rules API here"))
    }
}

type Stream<T> = futures::stream::BoxStream<'static, Result<T, Status>>;

/// The gRPC services over a [`MetadataApi`].
#[derive(Clone)]
pub(crate) struct MetadataService(pub(crate) Arc<dyn MetadataApi>);

#[tonic::async_trait]
impl thanos::metadata_server::Metadata for MetadataService {
    type MetricMetadataStream = Stream<MetricMetadataResponse>;

    async fn metric_metadata(
        &self,
        request: Request<MetricMetadataRequest>,
    ) -> Result<Response<Self::MetricMetadataStream>, Status> {
        let (metadata, warnings) = self.0.metric_metadata(request.into_inner()).await?;
        let frames = std::iter::once(metric_metadata_response::Result::Metadata(metadata))
            .chain(
                warnings
                    .into_iter()
                    .map(metric_metadata_response::Result::Warning),
            )
            .map(|r| Ok(MetricMetadataResponse { result: Some(r) }));
        Ok(Response::new(Box::pin(futures::stream::iter(frames))))
    }
}

#[tonic::async_trait]
impl thanos::exemplars_server::Exemplars for MetadataService {
    type ExemplarsStream = Stream<ExemplarsResponse>;

    async fn exemplars(
        &self,
        request: Request<ExemplarsRequest>,
    ) -> Result<Response<Self::ExemplarsStream>, Status> {
        let (data, warnings) = self.0.exemplars(request.into_inner()).await?;
        let frames = data
            .into_iter()
            .map(exemplars_response::Result::Data)
            .chain(
                warnings
                    .into_iter()
                    .map(exemplars_response::Result::Warning),
            )
            .map(|r| Ok(ExemplarsResponse { result: Some(r) }));
        Ok(Response::new(Box::pin(futures::stream::iter(frames))))
    }
}

/// Joins metadata answers: per metric, each distinct entry once, in the order first seen.
pub fn merge_metadata(into: &mut MetricMetadata, other: MetricMetadata) {
    for (metric, entry) in other.metadata {
        let metas = &mut into.metadata.entry(metric).or_default().metas;
        for meta in entry.metas {
            if !metas.contains(&meta) {
                metas.push(meta);
            }
        }
    }
}
