//! The querier's endpoints: one gRPC client per `--endpoint` address, asked for its Info
//! periodically. A store that does not answer is marked not serving and left out of queries
//! until it answers again; it is never fatal.

use std::sync::Arc;
use std::time::Duration;

use rthanos_storeapi::{ClientOptions, GrpcStore, Store};
use tokio_util::sync::CancellationToken;

use crate::api::StoreSource;
use crate::proxy::NamedStore;

/// Statically configured endpoints.
pub struct EndpointSet {
    endpoints: Vec<(String, Arc<GrpcStore>)>,
}

impl EndpointSet {
    /// Clients for `addresses` (`host:port`); no connection is made yet.
    pub fn new(
        addresses: &[String],
        options: &ClientOptions,
    ) -> Result<Self, rthanos_storeapi::client::ClientError> {
        let endpoints = addresses
            .iter()
            .map(|a| Ok((a.clone(), Arc::new(GrpcStore::connect(a, options)?))))
            .collect::<Result<_, _>>()?;
        Ok(Self { endpoints })
    }

    /// Asks every endpoint for its Info once, all at once; returns how many answered.
    pub async fn refresh(&self) -> usize {
        let answers = futures::future::join_all(self.endpoints.iter().map(|(name, store)| {
            let store = Arc::clone(store);
            async move {
                match store.fetch_info().await {
                    Ok(_) => true,
                    Err(status) => {
                        tracing::warn!(endpoint = %name, err = %status.message(), "endpoint Info failed");
                        false
                    }
                }
            }
        }))
        .await;
        answers.into_iter().filter(|ok| *ok).count()
    }

    /// Refreshes every `interval` until `shutdown`.
    pub async fn refresh_loop(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(interval);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => { self.refresh().await; }
            }
        }
    }
}

impl StoreSource for EndpointSet {
    fn stores(&self) -> Vec<NamedStore> {
        self.endpoints
            .iter()
            .map(|(name, store)| NamedStore {
                name: name.clone(),
                store: Arc::clone(store) as Arc<dyn Store>,
            })
            .collect()
    }
}
