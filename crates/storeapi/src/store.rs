//! The `Store` trait: what the sidecar, the store gateway and the querier's proxy each answer,
//! in-process or over gRPC. Requests and responses are the wire messages themselves, so a
//! store's answer goes on the wire without being copied into another shape.

use std::pin::Pin;

use futures::Stream;
use rthanos_model::Labels;
use tonic::Status;

use crate::thanos::{
    LabelNamesRequest, LabelNamesResponse, LabelValuesRequest, LabelValuesResponse, SeriesRequest,
    SeriesResponse,
};

/// The frames of one `Series` call: series sorted by labels, warnings anywhere between them.
pub type SeriesStream = Pin<Box<dyn Stream<Item = Result<SeriesResponse, Status>> + Send>>;

/// The component behind a store, as `thanos.info.Info` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// `rthanos sidecar`.
    Sidecar,
    /// `rthanos store`.
    Store,
    /// `rthanos query`, when another querier uses it as a store.
    Query,
    /// A Thanos ruler.
    Rule,
    /// A Thanos receiver.
    Receive,
}

impl Component {
    /// The name `thanos.info.InfoResponse.ComponentType` carries.
    pub fn name(self) -> &'static str {
        match self {
            Component::Sidecar => "sidecar",
            Component::Store => "store",
            Component::Query => "query",
            Component::Rule => "rule",
            Component::Receive => "receive",
        }
    }

    /// The component named `name`, as a querier reads it from an Info answer.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "sidecar" => Component::Sidecar,
            "store" => Component::Store,
            "query" => Component::Query,
            "rule" => Component::Rule,
            "receive" => Component::Receive,
            _ => return None,
        })
    }

    /// The v0.34 `thanos.StoreType` number.
    pub fn store_type(self) -> i32 {
        use crate::thanos::StoreType;
        (match self {
            Component::Sidecar => StoreType::Sidecar,
            Component::Store => StoreType::Store,
            Component::Query => StoreType::Query,
            Component::Rule => StoreType::Rule,
            Component::Receive => StoreType::Receive,
        }) as i32
    }
}

/// What a store holds, as its Info call answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreInfo {
    /// Whether the store answers queries now (a sidecar whose Prometheus is down does not);
    /// queriers leave a store that is not serving out of their queries.
    pub serving: bool,
    /// The kind of component.
    pub component: Component,
    /// The label sets every series of the store carries (external labels), one per TSDB.
    pub label_sets: Vec<Labels>,
    /// Oldest sample time the store may hold (ms).
    pub min_time: i64,
    /// Newest sample time the store may hold (ms); `i64::MAX` when unbounded.
    pub max_time: i64,
    /// Whether the store honours `SeriesRequest.shard_info`.
    pub supports_sharding: bool,
    /// Whether the store honours `without_replica_labels`.
    pub supports_without_replica_labels: bool,
}

/// A StoreAPI server: answers series and label queries over a time range and matchers.
#[tonic::async_trait]
pub trait Store: Send + Sync + 'static {
    /// What the store holds now.
    fn info(&self) -> StoreInfo;

    /// Series matching the request, sorted by labels (without the request's
    /// `without_replica_labels`), each with its chunks sorted by time.
    async fn series(&self, request: SeriesRequest) -> Result<SeriesStream, Status>;

    /// Label names of the series matching the request.
    async fn label_names(&self, request: LabelNamesRequest) -> Result<LabelNamesResponse, Status>;

    /// Values of one label over the series matching the request.
    async fn label_values(
        &self,
        request: LabelValuesRequest,
    ) -> Result<LabelValuesResponse, Status>;
}
