//! A StoreAPI client: a remote store (sidecar, store gateway, another querier, a Thanos
//! component) used through the same [`Store`] trait as an in-process one.
//!
//! One HTTP/2 connection per endpoint, shared by every call and re-established when it drops
//! (tonic channels are cheap to clone); a connect timeout; an optional timeout on each unary call
//! and on the wait for each `Series` frame (Thanos's `--store.response-timeout`); optional TLS.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use rthanos_grpcmetrics::{GrpcMetrics, Metered};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};

use crate::convert::labels_from_thanos;
use crate::metadata::{MetadataApi, MetadataSupport};
use crate::store::{Component, SeriesStream, Store, StoreInfo};
use crate::thanos::{
    self, LabelNamesRequest, LabelNamesResponse, LabelValuesRequest, LabelValuesResponse,
    SeriesRequest, info::info_client::InfoClient, store_client::StoreClient,
};

/// A connection whose calls are counted.
type MeteredChannel = Metered<Channel>;

/// TLS towards stores (Thanos's `--grpc-client-tls-*` flags).
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// CA certificates (PEM) that the server's certificate must chain to; the system's roots
    /// when `None`.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key (PEM), for servers that verify clients.
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    /// Name to verify the server's certificate against, instead of the address's host.
    pub server_name: Option<String>,
}

/// How to reach stores.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// TLS, or plain HTTP/2 when `None`.
    pub tls: Option<ClientTls>,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on a unary call, and on the wait for each frame of a `Series` stream.
    pub response_timeout: Option<Duration>,
    /// Where calls are counted (`grpc_client_*`, see [`ClientOptions::with_metrics`]); when
    /// `None` (tests), in metrics of the client's own that nothing exports.
    pub metrics: Option<GrpcMetrics>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            tls: None,
            connect_timeout: Duration::from_secs(5),
            response_timeout: None,
            metrics: None,
        }
    }
}

impl ClientOptions {
    /// The same options, counting calls in `registry`'s `grpc_client_*` metrics, with the
    /// series of every StoreAPI method a client calls there from the start.
    pub fn with_metrics(self, registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let metrics = GrpcMetrics::client(registry)?;
        metrics.initialize(&[
            "/thanos.info.Info/Info",
            "/thanos.Store/Series",
            "/thanos.Store/LabelNames",
            "/thanos.Store/LabelValues",
        ]);
        Ok(Self {
            metrics: Some(metrics),
            ..self
        })
    }
}

/// An endpoint that cannot be used as given.
#[derive(Debug, thiserror::Error)]
#[error("store endpoint {address}: {reason}")]
pub struct ClientError {
    address: String,
    reason: String,
}

/// A remote store over gRPC.
pub struct GrpcStore {
    address: String,
    store: StoreClient<MeteredChannel>,
    info: InfoClient<MeteredChannel>,
    channel: MeteredChannel,
    response_timeout: Option<Duration>,
    last_info: Mutex<Option<StoreInfo>>,
    /// The metadata APIs the last Info announced.
    support: Mutex<MetadataSupport>,
}

impl GrpcStore {
    /// A client for `address` (`host:port`). No connection is made until the first call.
    /// Must be called within a Tokio runtime, which drives the connection.
    pub fn connect(address: &str, options: &ClientOptions) -> Result<Self, ClientError> {
        let error = |reason: String| ClientError {
            address: address.to_string(),
            reason,
        };
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
            .map_err(|e| error(e.to_string()))?
            .connect_timeout(options.connect_timeout)
            // No HTTP/2 keepalive pings: Thanos's servers (grpc-go defaults) answer pings more
            // often than every 5 minutes, or on idle connections, with GOAWAY.
            .tcp_nodelay(true);
        if let Some(tls) = &options.tls {
            let mut config = ClientTlsConfig::new();
            config = match &tls.ca_pem {
                Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
                // As Thanos: the system's roots when no CA is given.
                None => config.with_native_roots(),
            };
            if let Some((cert, key)) = &tls.identity_pem {
                config = config.identity(Identity::from_pem(cert, key));
            }
            if let Some(name) = &tls.server_name {
                config = config.domain_name(name.clone());
            }
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| error(e.to_string()))?;
        }
        let metrics = match &options.metrics {
            Some(metrics) => metrics.clone(),
            None => GrpcMetrics::client(&prometheus::Registry::new())
                .map_err(|e| error(e.to_string()))?,
        };
        let channel = tower::Layer::layer(&metrics, endpoint.connect_lazy());
        let limit = i32::MAX as usize;
        Ok(Self {
            address: address.to_string(),
            store: StoreClient::new(channel.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            info: InfoClient::new(channel.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            channel,
            response_timeout: options.response_timeout,
            last_info: Mutex::new(None),
            support: Mutex::new(MetadataSupport::default()),
        })
    }

    /// The address the client was made for.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Asks the store what it holds (`thanos.info.Info`, falling back to the v0.34
    /// `thanos.Store/Info` for older servers) and remembers the answer for [`Store::info`].
    pub async fn fetch_info(&self) -> Result<StoreInfo, Status> {
        let info = match self
            .info
            .clone()
            .info(self.request(thanos::info::InfoRequest {}))
            .await
        {
            Ok(response) => {
                let response = response.into_inner();
                if let Ok(mut support) = self.support.lock() {
                    *support = MetadataSupport {
                        metric_metadata: response.metric_metadata.is_some(),
                        exemplars: response
                            .exemplars
                            .as_ref()
                            .map(|e| (e.min_time, e.max_time)),
                        rules: response.rules.is_some(),
                    };
                }
                info_from_response(response)
            }
            Err(status) if status.code() == Code::Unimplemented => {
                let response = self
                    .store
                    .clone()
                    .info(self.request(thanos::InfoRequest {}))
                    .await?;
                info_from_store_response(response.into_inner())
            }
            Err(status) => return Err(status),
        };
        if let Ok(mut last) = self.last_info.lock() {
            *last = Some(info.clone());
        }
        Ok(info)
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(timeout) = self.response_timeout {
            request.set_timeout(timeout);
        }
        request
    }
}

fn info_from_response(response: thanos::info::InfoResponse) -> StoreInfo {
    let serving = response.store.is_some();
    let store = response.store.unwrap_or_default();
    StoreInfo {
        serving,
        component: Component::from_name(&response.component_type).unwrap_or(Component::Store),
        label_sets: response
            .label_sets
            .into_iter()
            .map(|set| labels_from_thanos(set.labels))
            .collect(),
        min_time: store.min_time,
        max_time: store.max_time,
        supports_sharding: store.supports_sharding,
        supports_without_replica_labels: store.supports_without_replica_labels,
    }
}

fn info_from_store_response(response: thanos::InfoResponse) -> StoreInfo {
    use thanos::StoreType;
    let component = match StoreType::try_from(response.store_type) {
        Ok(StoreType::Sidecar) => Component::Sidecar,
        Ok(StoreType::Query) => Component::Query,
        Ok(StoreType::Rule) => Component::Rule,
        Ok(StoreType::Receive) => Component::Receive,
        _ => Component::Store,
    };
    let mut label_sets: Vec<_> = response
        .label_sets
        .into_iter()
        .map(|set| labels_from_thanos(set.labels))
        .collect();
    if label_sets.is_empty() && !response.labels.is_empty() {
        label_sets.push(labels_from_thanos(response.labels));
    }
    StoreInfo {
        serving: response.min_time <= response.max_time,
        component,
        label_sets,
        min_time: response.min_time,
        max_time: response.max_time,
        supports_sharding: false,
        supports_without_replica_labels: false,
    }
}

#[tonic::async_trait]
impl MetadataApi for GrpcStore {
    fn support(&self) -> MetadataSupport {
        self.support.lock().map(|s| *s).unwrap_or_default()
    }

    async fn metric_metadata(
        &self,
        request: thanos::MetricMetadataRequest,
    ) -> Result<(thanos::MetricMetadata, Vec<String>), Status> {
        use thanos::metric_metadata_response::Result as Answer;
        let mut stream = thanos::metadata_client::MetadataClient::new(self.channel.clone())
            .max_decoding_message_size(i32::MAX as usize)
            .metric_metadata(self.request(request))
            .await?
            .into_inner();
        let (mut metadata, mut warnings) = (thanos::MetricMetadata::default(), Vec::new());
        while let Some(frame) = stream.message().await? {
            match frame.result {
                Some(Answer::Metadata(m)) => crate::metadata::merge_metadata(&mut metadata, m),
                Some(Answer::Warning(w)) => warnings.push(w),
                None => {}
            }
        }
        Ok((metadata, warnings))
    }

    async fn rules(
        &self,
        request: thanos::RulesRequest,
    ) -> Result<(Vec<thanos::RuleGroup>, Vec<String>), Status> {
        use thanos::rules_response::Result as Answer;
        let mut stream = thanos::rules_client::RulesClient::new(self.channel.clone())
            .max_decoding_message_size(i32::MAX as usize)
            .rules(self.request(request))
            .await?
            .into_inner();
        let (mut groups, mut warnings) = (Vec::new(), Vec::new());
        while let Some(frame) = stream.message().await? {
            match frame.result {
                Some(Answer::Group(g)) => groups.push(g),
                Some(Answer::Warning(w)) => warnings.push(w),
                None => {}
            }
        }
        Ok((groups, warnings))
    }

    async fn exemplars(
        &self,
        request: thanos::ExemplarsRequest,
    ) -> Result<(Vec<thanos::ExemplarData>, Vec<String>), Status> {
        use thanos::exemplars_response::Result as Answer;
        let mut stream = thanos::exemplars_client::ExemplarsClient::new(self.channel.clone())
            .max_decoding_message_size(i32::MAX as usize)
            .exemplars(self.request(request))
            .await?
            .into_inner();
        let (mut data, mut warnings) = (Vec::new(), Vec::new());
        while let Some(frame) = stream.message().await? {
            match frame.result {
                Some(Answer::Data(d)) => data.push(d),
                Some(Answer::Warning(w)) => warnings.push(w),
                None => {}
            }
        }
        Ok((data, warnings))
    }
}

#[tonic::async_trait]
impl Store for GrpcStore {
    /// The last answer of [`GrpcStore::fetch_info`]; before any, a store that claims nothing.
    fn info(&self) -> StoreInfo {
        self.last_info
            .lock()
            .ok()
            .and_then(|last| last.clone())
            .unwrap_or(StoreInfo {
                serving: false,
                component: Component::Store,
                label_sets: Vec::new(),
                min_time: i64::MAX,
                max_time: i64::MIN,
                supports_sharding: false,
                supports_without_replica_labels: false,
            })
    }

    async fn series(&self, request: SeriesRequest) -> Result<SeriesStream, Status> {
        let mut call = Request::new(request);
        let frame_timeout = self.response_timeout;
        if let Some(timeout) = frame_timeout {
            // The first frame may take as long as the store needs to find the series.
            call.set_timeout(timeout.saturating_mul(1_000));
        }
        let response = self.store.clone().series(call).await?;
        let mut frames = response.into_inner();
        let Some(frame_timeout) = frame_timeout else {
            return Ok(Box::pin(frames));
        };
        let address = self.address.clone();
        Ok(Box::pin(async_stream::stream! {
            loop {
                match tokio::time::timeout(frame_timeout, frames.next()).await {
                    Ok(Some(frame)) => yield frame,
                    Ok(None) => break,
                    Err(_) => {
                        yield Err(Status::deadline_exceeded(format!(
                            "store {address}: no series frame within {frame_timeout:?}"
                        )));
                        break;
                    }
                }
            }
        }))
    }

    async fn label_names(&self, request: LabelNamesRequest) -> Result<LabelNamesResponse, Status> {
        Ok(self
            .store
            .clone()
            .label_names(self.request(request))
            .await?
            .into_inner())
    }

    async fn label_values(
        &self,
        request: LabelValuesRequest,
    ) -> Result<LabelValuesResponse, Status> {
        Ok(self
            .store
            .clone()
            .label_values(self.request(request))
            .await?
            .into_inner())
    }
}

/// Shares one client between several owners (the querier's endpoint set and its queries).
pub type SharedStore = Arc<dyn Store>;
