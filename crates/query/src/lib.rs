//! `rthanos query`, as a library. It fans PromQL selects out to StoreAPI endpoints and
//! deduplicates the series of HA Prometheus replicas with Thanos's penalty algorithm
//! ([`dedup`]). It also serves the Prometheus HTTP API over the `crates/promql` engine.
//! Built in steps by issue #6; what is here so far is the deduplication and the fan-out
//! storage: one [`proxy::ProxyStore`], read by the engine through
//! [`queryable::ProxyQueryable`] and served as the querier's own StoreAPI.

pub mod api;
pub mod dedup;
/// Endpoint discovery (the `rthanos-discovery` crate).
pub use rthanos_discovery as discovery;
pub mod downsampled;
pub mod endpoints;
mod json;
pub mod metadata;
pub mod params;
pub mod proxy;
pub mod queryable;
pub mod rules;
pub mod ui;
