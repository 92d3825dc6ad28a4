//! `rthanos sidecar`, as a library: runs next to one Prometheus, serves its data over the
//! StoreAPI ([`PrometheusStore`]: remote read with streamed XOR chunks, chunks passed through
//! as bytes, external labels added) and ships every block Prometheus writes to object storage
//! ([`Shipper`]). [`Sidecar::run`] waits for Prometheus and its external labels, then keeps
//! them fresh (the heartbeat that drives readiness and `thanos_sidecar_prometheus_up`) and
//! syncs the shipper.

pub mod local;
mod metadata;
pub mod prometheus;
mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::prometheus::{Gauge, IntGauge, Registry};
use rthanos_model::TimeOrDuration;
use rthanos_objstore::Bucket;
use rthanos_runtime::{Prober, Supervisor};
use tokio_util::sync::CancellationToken;

pub use metadata::Metadata;
pub use prometheus::PrometheusClient;
pub use rthanos_httpclient::HttpClientConfig;
pub use rthanos_shipper::{SHIPPER_STATE_FILE, Shipper};
pub use store::PrometheusStore;

/// How often the shipper looks for new blocks (Thanos's sidecar: 30s).
pub const SHIPPER_SYNC_INTERVAL: Duration = Duration::from_secs(30);

/// Why the sidecar cannot do something.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// A flag or configuration file is wrong.
    #[error("{0}")]
    Config(String),
    /// Prometheus cannot be reached, or answers with a server error.
    #[error("Prometheus unavailable: {0}")]
    Unavailable(String),
    /// Prometheus refused the request.
    #[error("Prometheus refused the request: {0}")]
    BadRequest(String),
    /// Prometheus answered something we cannot read.
    #[error("Prometheus answer: {0}")]
    Prometheus(String),
    /// A block could not be shipped.
    #[error("upload: {0}")]
    Upload(String),
}

impl From<SidecarError> for tonic::Status {
    fn from(e: SidecarError) -> Self {
        match e {
            SidecarError::Unavailable(_) => tonic::Status::unavailable(e.to_string()),
            SidecarError::BadRequest(_) => tonic::Status::invalid_argument(e.to_string()),
            _ => tonic::Status::internal(e.to_string()),
        }
    }
}

/// The sidecar's settings, from its flags.
pub struct SidecarConfig {
    /// `--prometheus.url`.
    pub prometheus_url: String,
    /// `--prometheus.http-client(-file)`.
    pub http_client: HttpClientConfig,
    /// `--prometheus.ready_timeout`.
    pub ready_timeout: Duration,
    /// `--prometheus.get_config_interval`.
    pub get_config_interval: Duration,
    /// `--prometheus.get_config_timeout`.
    pub get_config_timeout: Duration,
    /// `--tsdb.path`.
    pub tsdb_path: PathBuf,
    /// `--shipper.upload-compacted`.
    pub upload_compacted: bool,
    /// `--min-time`.
    pub min_time: TimeOrDuration,
    /// The bucket, when `--objstore.config` is given: uploads are on.
    pub bucket: Option<Bucket>,
    /// How often the shipper syncs.
    pub shipper_interval: Duration,
    /// Where index-headers of Prometheus's blocks are kept when the sidecar reads them from
    /// `--tsdb.path` itself; `None`: every read goes through remote read, as in Thanos.
    pub local_blocks: Option<PathBuf>,
}

/// A configured sidecar.
pub struct Sidecar {
    config: SidecarConfig,
    prometheus: PrometheusClient,
    metadata: Arc<Metadata>,
    shipper: Option<Shipper>,
    prometheus_up: IntGauge,
    last_heartbeat: Gauge,
    supervisor: Supervisor,
    local: Option<Arc<local::LocalBlocks>>,
}

impl Sidecar {
    /// Checks the configuration and registers the sidecar's metrics.
    pub fn new(
        mut config: SidecarConfig,
        registry: &Registry,
        supervisor: Supervisor,
    ) -> Result<Self, SidecarError> {
        let prometheus = PrometheusClient::new(&config.prometheus_url, &config.http_client)?;
        let metric_error = |e: ::prometheus::Error| SidecarError::Config(format!("metrics: {e}"));
        let prometheus_up = IntGauge::new(
            "thanos_sidecar_prometheus_up",
            "Boolean indicator whether the sidecar can reach its Prometheus peer.",
        )
        .map_err(metric_error)?;
        let last_heartbeat = Gauge::new(
            "thanos_sidecar_last_heartbeat_success_time_seconds",
            "Timestamp of the last successful heartbeat in seconds.",
        )
        .map_err(metric_error)?;
        registry
            .register(Box::new(prometheus_up.clone()))
            .map_err(metric_error)?;
        registry
            .register(Box::new(last_heartbeat.clone()))
            .map_err(metric_error)?;
        let shipper = match config.bucket.take() {
            Some(bucket) => Some(
                Shipper::new(
                    &config.tsdb_path,
                    bucket,
                    config.upload_compacted,
                    "sidecar",
                    registry,
                )
                .map_err(|e| SidecarError::Config(e.to_string()))?,
            ),
            None => None,
        };
        let local = config.local_blocks.as_ref().map(|header_dir| {
            Arc::new(local::LocalBlocks::new(
                &config.tsdb_path,
                header_dir.clone(),
            ))
        });
        Ok(Self {
            local,
            metadata: Arc::new(Metadata::new(config.min_time)),
            config,
            prometheus,
            shipper,
            prometheus_up,
            last_heartbeat,
            supervisor,
        })
    }

    /// The StoreAPI face, to be served over gRPC.
    pub fn store(&self) -> Arc<PrometheusStore> {
        Arc::new(PrometheusStore::new(
            self.prometheus.clone(),
            Arc::clone(&self.metadata),
            self.supervisor.clone(),
            self.local.clone(),
        ))
    }

    /// Runs until the supervisor's shutdown: waits for Prometheus (at most `--prometheus.ready_timeout`), then
    /// heartbeats every `--prometheus.get_config_interval` and, in a task of its own, ships
    /// blocks.
    pub async fn run(self, prober: Prober) -> Result<(), SidecarError> {
        let shutdown = self.supervisor.shutdown().clone();
        tracing::info!(url = %self.prometheus.url(), "waiting for Prometheus and its external labels");
        let deadline = tokio::time::Instant::now() + self.config.ready_timeout;
        loop {
            match self.heartbeat().await {
                Ok(()) => break,
                Err(e) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(SidecarError::Unavailable(format!(
                            "Prometheus not ready within --prometheus.ready_timeout={:?}: {e}",
                            self.config.ready_timeout
                        )));
                    }
                    tracing::warn!(err = %e, "failed to fetch initial external labels; is Prometheus running? retrying");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
        let external = self.metadata.external_labels().unwrap_or_default();
        if self.shipper.is_some() {
            if external.is_empty() {
                return Err(SidecarError::Config(
                    "no external labels configured on Prometheus server, uniquely identifying external labels must be configured; see https://thanos.io/tip/thanos/storage.md#external-labels for details.".into(),
                ));
            }
            self.check_block_durations().await?;
        }
        tracing::info!(external_labels = %external, "Prometheus is ready");
        prober.ready();

        let Sidecar {
            config,
            prometheus,
            metadata,
            shipper,
            prometheus_up,
            last_heartbeat,
            supervisor,
            local,
        } = self;
        let heartbeat = Heartbeat {
            prometheus,
            metadata: Arc::clone(&metadata),
            timeout: config.get_config_timeout,
            prometheus_up,
            last_heartbeat,
        };
        // The shipper runs apart from the heartbeat: a long upload must not stall readiness.
        // A shipper loop that panics is logged, counted and started again: blocks keep being
        // uploaded.
        let shipping = shipper.map(|shipper| {
            shipper.clean_staging();
            let shipper = Arc::new(shipper);
            let interval = config.shipper_interval;
            let shutdown = shutdown.clone();
            supervisor.spawn_loop("shipper", interval, move || {
                ship_loop(
                    Arc::clone(&shipper),
                    Arc::clone(&metadata),
                    interval,
                    shutdown.clone(),
                )
            })
        });
        // Prometheus's blocks are listed from its directory, when the sidecar reads them.
        let local_sync = local.map(|local| {
            let shutdown = shutdown.clone();
            supervisor.spawn_loop("local_blocks", local::SYNC_INTERVAL, move || {
                Arc::clone(&local).sync_loop(shutdown.clone())
            })
        });
        if shipping.is_none() {
            tracing::info!("no --objstore.config: blocks are not uploaded");
        }
        let mut ticks = tokio::time::interval(config.get_config_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticks.tick() => match heartbeat.beat().await {
                    Ok(()) => prober.ready(),
                    Err(e) => {
                        tracing::warn!(err = %e, "heartbeat to Prometheus failed");
                        prober.not_ready(format!("Prometheus unreachable: {e}"));
                    }
                },
            }
        }
        if let Some(task) = shipping {
            let _ = task.await;
        }
        if let Some(task) = local_sync {
            let _ = task.await;
        }
        Ok(())
    }

    /// Thanos's rule: uploads need Prometheus's own compaction off
    /// (`--storage.tsdb.min-block-duration` = `max-block-duration`), else level-1 blocks are
    /// compacted locally before they can be shipped.
    async fn check_block_durations(&self) -> Result<(), SidecarError> {
        let flags = self
            .prometheus
            .flags(self.config.get_config_timeout)
            .await?;
        let min = flags.get("storage.tsdb.min-block-duration");
        let max = flags.get("storage.tsdb.max-block-duration");
        if let (Some(min), Some(max)) = (min, max)
            && min != max
            && !self.config.upload_compacted
        {
            return Err(SidecarError::Config(format!(
                "found that TSDB max block duration ({max}) differs from min block duration ({min}); compaction needs to be disabled (storage.tsdb.min-block-duration = storage.tsdb.max-block-duration) for the sidecar to upload blocks"
            )));
        }
        Ok(())
    }

    async fn heartbeat(&self) -> Result<(), SidecarError> {
        Heartbeat {
            prometheus: self.prometheus.clone(),
            metadata: Arc::clone(&self.metadata),
            timeout: self.config.get_config_timeout,
            prometheus_up: self.prometheus_up.clone(),
            last_heartbeat: self.last_heartbeat.clone(),
        }
        .beat()
        .await
    }
}

/// One heartbeat: the external labels (which decide readiness), then the oldest sample time
/// (best effort: the last value stays if it cannot be read).
struct Heartbeat {
    prometheus: PrometheusClient,
    metadata: Arc<Metadata>,
    timeout: Duration,
    prometheus_up: IntGauge,
    last_heartbeat: Gauge,
}

impl Heartbeat {
    async fn beat(&self) -> Result<(), SidecarError> {
        match self.prometheus.config(self.timeout).await {
            Ok(config) => {
                self.metadata.set_external_labels(config.external_labels);
                self.metadata.set_out_of_order(config.out_of_order);
                self.metadata.set_up(true);
                self.prometheus_up.set(1);
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                self.last_heartbeat.set(now);
            }
            Err(e) => {
                self.metadata.set_up(false);
                self.prometheus_up.set(0);
                return Err(e);
            }
        }
        match self.prometheus.tsdb_times(self.timeout).await {
            Ok(times) => self.metadata.set_tsdb_times(times),
            Err(e) => tracing::debug!(err = %e, "cannot read Prometheus's oldest sample time"),
        }
        Ok(())
    }
}

/// Syncs the shipper every `interval` until `shutdown`.
async fn ship_loop(
    shipper: Arc<Shipper>,
    metadata: Arc<Metadata>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let Some(labels) = metadata.external_labels() else {
            continue;
        };
        tokio::select! {
            // A stop mid-upload leaves a partial block without meta.json, completed at the
            // next start.
            () = shutdown.cancelled() => return,
            result = shipper.sync(&labels) => match result {
                Ok(report) if !report.uploaded.is_empty() => {
                    tracing::info!(uploaded = report.uploaded.len(), "shipper sync done");
                }
                Ok(_) => {}
                Err(e) => tracing::error!(err = %e, "shipper sync failed"),
            }
        }
    }
}
