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
    /// Per endpoint: last Info time (RFC 3339) and error.
    checks: std::sync::Mutex<std::collections::HashMap<String, (String, Option<String>)>>,
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
        Ok(Self {
            endpoints,
            checks: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Asks every endpoint for its Info once, all at once; returns how many answered.
    pub async fn refresh(&self) -> usize {
        let answers = futures::future::join_all(self.endpoints.iter().map(|(name, store)| {
            let store = Arc::clone(store);
            async move {
                let result = store.fetch_info().await;
                let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let error = result.as_ref().err().map(|s| s.message().to_string());
                if let Some(e) = &error {
                    tracing::warn!(endpoint = %name, err = %e, "endpoint Info failed");
                }
                if let Ok(mut checks) = self.checks.lock() {
                    checks.insert(name.clone(), (now, error));
                }
                result.is_ok()
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
    fn last_check(&self, name: &str) -> Option<(String, Option<String>)> {
        self.checks.lock().ok()?.get(name).cloned()
    }

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
