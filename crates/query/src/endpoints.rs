//! The querier's endpoints: the addresses of `--endpoint` (resolved through DNS when they ask
//! for it) and of the file-SD files, each with a gRPC client asked for its Info at every
//! refresh. A store that does not answer keeps its last Info, so queries that need it report
//! it unavailable; an address that leaves DNS or the files leaves the set. Nothing here is
//! fatal: failures are logged and retried at the next refresh.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rthanos_storeapi::{ClientOptions, GrpcStore, Store};
use tokio_util::sync::CancellationToken;

use crate::discovery::{AddressSpec, DnsProvider, FileSd};
use crate::proxy::NamedStore;
use crate::proxy::StoreSource;

/// How long an endpoint may take to answer Info (Thanos's `--endpoint.info-timeout`).
const INFO_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the endpoints come from.
pub struct EndpointConfig {
    /// `--endpoint` values (any prefix).
    pub addresses: Vec<AddressSpec>,
    /// `--store.sd-files` discovery, if any.
    pub file_sd: Option<Arc<FileSd>>,
    /// How often DNS names are resolved again (`--store.sd-dns-interval`).
    pub dns_interval: Duration,
    /// How the gRPC clients connect.
    pub client: ClientOptions,
}

struct Endpoint {
    store: Arc<GrpcStore>,
    /// Last Info time (RFC 3339) and error.
    last_check: Option<(String, Option<String>)>,
}

#[derive(Default)]
struct Resolved {
    /// The specs last resolved, and when.
    specs: Vec<AddressSpec>,
    at: Option<Instant>,
    addresses: Vec<String>,
}

/// The endpoints known now.
pub struct EndpointSet {
    config: EndpointConfig,
    dns: DnsProvider,
    /// `thanos_store_nodes_grpc_connections`: healthy endpoints by external labels and type.
    connections: prometheus::IntGaugeVec,
    resolved: tokio::sync::Mutex<Resolved>,
    endpoints: Mutex<BTreeMap<String, Endpoint>>,
}

impl EndpointSet {
    /// An empty set; [`EndpointSet::refresh`] fills it. DNS metrics go to `registry`.
    pub fn new(
        config: EndpointConfig,
        registry: &prometheus::Registry,
    ) -> Result<Self, prometheus::Error> {
        let connections = prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                "thanos_store_nodes_grpc_connections",
                "Number of gRPC connection to Store APIs. Opened connection means healthy store APIs available for Querier.",
            ),
            &["external_labels", "store_type"],
        )?;
        registry.register(Box::new(connections.clone()))?;
        Ok(Self {
            dns: DnsProvider::new(registry, "thanos_query_endpoints")?,
            connections,
            config,
            resolved: tokio::sync::Mutex::new(Resolved::default()),
            endpoints: Mutex::new(BTreeMap::new()),
        })
    }

    /// The addresses now: DNS is asked again when its interval has passed or the specs
    /// (files) changed.
    async fn addresses(&self) -> Vec<String> {
        let mut specs = self.config.addresses.clone();
        if let Some(file_sd) = &self.config.file_sd {
            // Globbing and reading files block: off the runtime's workers.
            let file_sd = Arc::clone(file_sd);
            let targets = tokio::task::spawn_blocking(move || file_sd.targets())
                .await
                .unwrap_or_default();
            for target in targets {
                match AddressSpec::parse(&target) {
                    Ok(spec) => specs.push(spec),
                    Err(e) => tracing::warn!(err = %e, "file SD: target ignored"),
                }
            }
        }
        let mut resolved = self.resolved.lock().await;
        let due = resolved
            .at
            .is_none_or(|at| at.elapsed() >= self.config.dns_interval);
        if due || resolved.specs != specs {
            resolved.addresses = self.dns.resolve(&specs).await;
            resolved.specs = specs;
            resolved.at = Some(Instant::now());
        }
        resolved.addresses.clone()
    }

    /// Brings the set up to date with the addresses, then asks every endpoint for its Info,
    /// all at once; returns how many answered.
    pub async fn refresh(&self) -> usize {
        let addresses = self.addresses().await;
        // New clients are made before the lock is taken (making one may read the system's
        // root certificates): queries take the same lock for every select.
        let new: Vec<String> = match self.endpoints.lock() {
            Ok(endpoints) => addresses
                .iter()
                .filter(|a| !endpoints.contains_key(*a))
                .cloned()
                .collect(),
            Err(_) => return 0,
        };
        let mut made = Vec::new();
        for address in new {
            match GrpcStore::connect(&address, &self.config.client) {
                Ok(store) => made.push((address, Arc::new(store))),
                Err(e) => tracing::warn!(endpoint = %address, err = %e, "endpoint not usable"),
            }
        }
        let stores: Vec<(String, Arc<GrpcStore>)> = {
            let Ok(mut endpoints) = self.endpoints.lock() else {
                return 0;
            };
            endpoints.retain(|address, _| {
                let keep = addresses.contains(address);
                if !keep {
                    tracing::info!(endpoint = %address, "endpoint removed: no longer discovered");
                }
                keep
            });
            for (address, store) in made {
                tracing::info!(endpoint = %address, "endpoint added");
                endpoints.insert(
                    address,
                    Endpoint {
                        store,
                        last_check: None,
                    },
                );
            }
            endpoints
                .iter()
                .map(|(address, e)| (address.clone(), Arc::clone(&e.store)))
                .collect()
        };
        let answers =
            futures::future::join_all(stores.into_iter().map(|(name, store)| async move {
                // Bounded, as Thanos's --endpoint.info-timeout: one endpoint that accepts
                // and never answers must not stall the refresh of all the others.
                let result = match tokio::time::timeout(INFO_TIMEOUT, store.fetch_info()).await {
                    Ok(result) => result,
                    Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                        "no Info answer within {INFO_TIMEOUT:?}"
                    ))),
                };
                let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let error = result.as_ref().err().map(|s| s.message().to_string());
                if let Some(e) = &error {
                    tracing::warn!(endpoint = %name, err = %e, "endpoint Info failed");
                }
                if let Ok(mut endpoints) = self.endpoints.lock()
                    && let Some(endpoint) = endpoints.get_mut(&name)
                {
                    endpoint.last_check = Some((now, error));
                }
                result.is_ok()
            }))
            .await;
        self.count_connections();
        answers.into_iter().filter(|ok| *ok).count()
    }

    /// Sets `thanos_store_nodes_grpc_connections` from the last Info answers: endpoints whose
    /// last Info succeeded, by their external label sets (as Thanos writes them, comma-joined)
    /// and component.
    fn count_connections(&self) {
        let Ok(endpoints) = self.endpoints.lock() else {
            return;
        };
        let mut counts: BTreeMap<(String, &'static str), i64> = BTreeMap::new();
        for endpoint in endpoints.values() {
            if !matches!(&endpoint.last_check, Some((_, None))) {
                continue;
            }
            let info = endpoint.store.info();
            let label_sets: Vec<String> = info.label_sets.iter().map(ToString::to_string).collect();
            *counts
                .entry((label_sets.join(","), info.component.name()))
                .or_default() += 1;
        }
        self.connections.reset();
        for ((labels, component), count) in counts {
            self.connections
                .with_label_values(&[labels.as_str(), component])
                .set(count);
        }
    }

    /// Refreshes every `interval` until `shutdown`.
    pub async fn refresh_loop(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(interval);
        // A slow refresh delays the next one instead of causing a burst.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
        self.endpoints.lock().ok()?.get(name)?.last_check.clone()
    }

    fn metadata_apis(&self) -> Vec<crate::metadata::NamedMetadataApi> {
        let Ok(endpoints) = self.endpoints.lock() else {
            return Vec::new();
        };
        endpoints
            .iter()
            .map(|(name, e)| crate::metadata::NamedMetadataApi {
                name: name.clone(),
                api: Arc::clone(&e.store) as Arc<dyn rthanos_storeapi::MetadataApi>,
                label_sets: e.store.info().label_sets,
            })
            .collect()
    }

    fn stores(&self) -> Vec<NamedStore> {
        let Ok(endpoints) = self.endpoints.lock() else {
            return Vec::new();
        };
        endpoints
            .iter()
            .map(|(name, e)| NamedStore {
                name: name.clone(),
                store: Arc::clone(&e.store) as Arc<dyn Store>,
            })
            .collect()
    }
}
