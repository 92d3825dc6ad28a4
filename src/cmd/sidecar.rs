//! `rthanos sidecar`: Thanos's sidecar flags, wired to the sidecar crate: the StoreAPI over
//! gRPC, readiness following Prometheus, and the shipper when a bucket is configured.

use clap::Args;
use rthanos_model::{PromDuration, TimeOrDuration};
use rthanos_runtime::flags::{GrpcServerFlags, HttpFlags, LogFlags, ObjstoreFlags};

use std::sync::Arc;

use anyhow::Context;
use rthanos_objstore::Bucket;
use rthanos_runtime::flags::path_or_content;
use rthanos_sidecar::{HttpClientConfig, Sidecar, SidecarConfig};
use rthanos_storeapi::StoreServer;

use super::{RequestLoggingFlags, StoreLimitFlags, TracingFlags, reject_unsupported};

/// Flags of `rthanos sidecar`.
#[derive(Args, Debug)]
pub(crate) struct SidecarArgs {
    #[command(flatten)]
    pub(crate) log: LogFlags,
    #[command(flatten)]
    pub(crate) tracing: TracingFlags,
    #[command(flatten)]
    pub(crate) http: HttpFlags,
    #[command(flatten)]
    pub(crate) grpc: GrpcServerFlags,
    #[command(flatten)]
    pub(crate) objstore: ObjstoreFlags,
    #[command(flatten)]
    pub(crate) request_logging: RequestLoggingFlags,
    #[command(flatten)]
    pub(crate) limits: StoreLimitFlags,

    /// URL at which to reach Prometheus's API. For better performance use local network.
    #[arg(
        id = "prometheus.url",
        long = "prometheus.url",
        default_value = "http://localhost:9090",
        value_name = "URL"
    )]
    pub(crate) prometheus_url: String,
    /// Maximum time to wait for the Prometheus instance to start up.
    #[arg(
        id = "prometheus.ready_timeout",
        long = "prometheus.ready_timeout",
        default_value = "10m",
        value_name = "DURATION"
    )]
    pub(crate) prometheus_ready_timeout: PromDuration,
    /// How often to get Prometheus config.
    #[arg(
        id = "prometheus.get_config_interval",
        long = "prometheus.get_config_interval",
        default_value = "30s",
        value_name = "DURATION"
    )]
    pub(crate) prometheus_get_config_interval: PromDuration,
    /// Timeout for getting Prometheus config.
    #[arg(
        id = "prometheus.get_config_timeout",
        long = "prometheus.get_config_timeout",
        default_value = "5s",
        value_name = "DURATION"
    )]
    pub(crate) prometheus_get_config_timeout: PromDuration,
    /// Path to YAML file with the HTTP client configuration used to talk to Prometheus.
    #[arg(
        id = "prometheus.http-client-file",
        long = "prometheus.http-client-file",
        value_name = "FILE"
    )]
    pub(crate) prometheus_http_client_file: Option<std::path::PathBuf>,
    /// Alternative to 'prometheus.http-client-file' flag (mutually exclusive). Content of the
    /// YAML file with the HTTP client configuration.
    #[arg(
        id = "prometheus.http-client",
        long = "prometheus.http-client",
        value_name = "CONTENT",
        conflicts_with = "prometheus.http-client-file"
    )]
    pub(crate) prometheus_http_client: Option<String>,
    /// Data directory of TSDB.
    #[arg(
        id = "tsdb.path",
        long = "tsdb.path",
        default_value = "./data",
        value_name = "PATH"
    )]
    pub(crate) tsdb_path: std::path::PathBuf,
    /// Config file watched by the reloader (not supported by rthanos).
    #[arg(
        id = "reloader.config-file",
        long = "reloader.config-file",
        default_value = "",
        value_name = "FILE"
    )]
    pub(crate) reloader_config_file: String,
    /// Output file for environment variable substituted config file (not supported by rthanos).
    #[arg(
        id = "reloader.config-envsubst-file",
        long = "reloader.config-envsubst-file",
        default_value = "",
        value_name = "FILE"
    )]
    pub(crate) reloader_config_envsubst_file: String,
    /// Rule directories for the reloader to refresh (repeated field; not supported by rthanos).
    #[arg(
        id = "reloader.rule-dir",
        long = "reloader.rule-dir",
        value_name = "DIR"
    )]
    pub(crate) reloader_rule_dir: Vec<String>,
    /// Controls how often reloader re-reads config and rules.
    #[arg(
        id = "reloader.watch-interval",
        long = "reloader.watch-interval",
        default_value = "3m",
        value_name = "DURATION"
    )]
    pub(crate) reloader_watch_interval: PromDuration,
    /// Controls how often reloader retries config reload in case of error.
    #[arg(
        id = "reloader.retry-interval",
        long = "reloader.retry-interval",
        default_value = "5s",
        value_name = "DURATION"
    )]
    pub(crate) reloader_retry_interval: PromDuration,
    /// Method used to reload the configuration.
    #[arg(id = "reloader.method", long = "reloader.method", default_value = "http", value_parser = ["http", "signal"])]
    pub(crate) reloader_method: String,
    /// Executable name used to match the process being reloaded when using the signal method.
    #[arg(
        id = "reloader.process-name",
        long = "reloader.process-name",
        default_value = "prometheus"
    )]
    pub(crate) reloader_process_name: String,
    /// If true shipper will try to upload compacted blocks as well. Useful for migration
    /// purposes. Works only if compaction is disabled on Prometheus. Do it once and then
    /// disable the flag when done.
    #[arg(id = "shipper.upload-compacted", long = "shipper.upload-compacted")]
    pub(crate) shipper_upload_compacted: bool,
    /// Specify which hash function to use when calculating the hashes of produced files. If no
    /// function has been specified, it does not happen. This permits avoiding downloading some
    /// files twice albeit at some performance cost. Possible values are: "", "SHA256".
    #[arg(id = "hash-func", long = "hash-func", default_value = "", value_parser = ["", "SHA256"])]
    pub(crate) hash_func: String,
    /// Start of time range limit to serve. Thanos sidecar will serve only metrics, which
    /// happened later than this value. Option can be a constant time in RFC3339 format or time
    /// duration relative to current time, such as -1d or 2h45m. Valid duration units are ms, s,
    /// m, h, d, w, y.
    #[arg(
        id = "min-time",
        long = "min-time",
        default_value = "0000-01-01T00:00:00Z",
        value_name = "TIME"
    )]
    pub(crate) min_time: TimeOrDuration,
    /// rthanos only: serve Prometheus's persisted blocks by reading them from --tsdb.path
    /// (mmapped index-headers, positioned reads) instead of through remote read, whenever
    /// the directory provably holds what Prometheus has; the head is always read through
    /// remote read. Index-headers are kept under <tsdb.path>/thanos/index-headers. Off:
    /// everything goes through remote read, as in Thanos.
    #[arg(
        id = "tsdb.read-blocks",
        long = "tsdb.read-blocks",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub(crate) tsdb_read_blocks: bool,
}

impl SidecarArgs {
    fn check_unsupported(&self) -> anyhow::Result<()> {
        reject_unsupported(&[
            (
                "reloader.config-file",
                !self.reloader_config_file.is_empty(),
            ),
            (
                "reloader.config-envsubst-file",
                !self.reloader_config_envsubst_file.is_empty(),
            ),
            ("reloader.rule-dir", !self.reloader_rule_dir.is_empty()),
            ("hash-func", !self.hash_func.is_empty()),
        ])
    }
}

/// Runs the sidecar.
pub(crate) async fn run(args: SidecarArgs) -> anyhow::Result<()> {
    let prepared = super::prepare(&super::CommonFlags {
        log: &args.log,
        tracing: &args.tracing,
        request_logging: Some(&args.request_logging),
        http: &args.http,
        grpc: Some(&args.grpc),
        objstore: Some(&args.objstore),
    })?;
    args.check_unsupported()?;
    let http_client = path_or_content(
        "prometheus.http-client",
        args.prometheus_http_client_file.as_deref(),
        args.prometheus_http_client.as_deref(),
    )?
    .unwrap_or_default();
    let http_client = HttpClientConfig::parse("--prometheus.http-client", &http_client)?;
    let objstore = args.objstore.content()?;
    let limits = args.limits.clone();
    prepared
        .serve("sidecar", move |runtime| {
            let bucket = objstore
                .map(|yaml| Bucket::from_yaml(&yaml, runtime.registry()))
                .transpose()
                .context("--objstore.config")?;
            let sidecar = Sidecar::new(
                SidecarConfig {
                    prometheus_url: args.prometheus_url,
                    http_client,
                    ready_timeout: args.prometheus_ready_timeout.as_std(),
                    get_config_interval: args.prometheus_get_config_interval.as_std(),
                    get_config_timeout: args.prometheus_get_config_timeout.as_std(),
                    tsdb_path: args.tsdb_path.clone(),
                    upload_compacted: args.shipper_upload_compacted,
                    min_time: args.min_time,
                    bucket,
                    shipper_interval: rthanos_sidecar::SHIPPER_SYNC_INTERVAL,
                    // Beside the shipper's own files: writable wherever shipping works,
                    // one per Prometheus, kept across restarts.
                    local_blocks: args
                        .tsdb_read_blocks
                        .then(|| args.tsdb_path.join("thanos").join("index-headers")),
                },
                runtime.registry(),
                runtime.supervisor().clone(),
            )?;
            let store = sidecar.store();
            let grpc = StoreServer::new(Arc::clone(&store) as Arc<dyn rthanos_storeapi::Store>)
                .with_metadata(store)
                .with_limits(limits.series_limits())
                .routes();
            let prober = runtime.prober().clone();
            Ok(super::Component {
                http: None,
                grpc: Some(grpc),
                work: Box::pin(async move { Ok(sidecar.run(prober).await?) }),
            })
        })
        .await
}
