//! `rthanos query`: Thanos's querier flags, wired to the query crate: static endpoints asked
//! for Info every 5s, the PromQL engine with the `--query.*` settings, and the Prometheus HTTP
//! API. Endpoints come from `--endpoint` (with Thanos's `dns+` / `dnssrv+` / `dnssrvnoa+`
//! discovery) and `--store.sd-files`.

use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use rthanos_model::PromDuration;
use rthanos_promql::{Engine, EngineOptions};
use rthanos_query::api::ApiState;
use rthanos_query::discovery::{AddressSpec, FileSd};
use rthanos_query::endpoints::{EndpointConfig, EndpointSet};
use rthanos_query::proxy::ProxyStore;
use rthanos_query::proxy::StoreSource;
use rthanos_runtime::flags::{GrpcServerFlags, HttpFlags, LogFlags};
use rthanos_storeapi::{ClientOptions, ClientTls, StoreServer};

use super::{RequestLoggingFlags, StoreLimitFlags, TracingFlags};

/// gRPC client flags: how the querier talks to its endpoints.
#[derive(Args, Debug)]
pub(crate) struct GrpcClientFlags {
    /// Use TLS when talking to the gRPC server.
    #[arg(id = "grpc-client-tls-secure", long = "grpc-client-tls-secure")]
    pub(crate) tls_secure: bool,
    /// Disable TLS certificate verification i.e self signed, signed by fake CA.
    #[arg(
        id = "grpc-client-tls-skip-verify",
        long = "grpc-client-tls-skip-verify"
    )]
    pub(crate) tls_skip_verify: bool,
    /// TLS Certificates to use to identify this client to the server.
    #[arg(
        id = "grpc-client-tls-cert",
        long = "grpc-client-tls-cert",
        default_value = "",
        value_name = "PATH"
    )]
    pub(crate) tls_cert: String,
    /// TLS Key for the client's certificate.
    #[arg(
        id = "grpc-client-tls-key",
        long = "grpc-client-tls-key",
        default_value = "",
        value_name = "PATH"
    )]
    pub(crate) tls_key: String,
    /// TLS CA Certificates to use to verify gRPC servers.
    #[arg(
        id = "grpc-client-tls-ca",
        long = "grpc-client-tls-ca",
        default_value = "",
        value_name = "PATH"
    )]
    pub(crate) tls_ca: String,
    /// Server name to verify the hostname on the returned gRPC certificates. See
    /// https://tools.ietf.org/html/rfc4366#section-3.1
    #[arg(
        id = "grpc-client-server-name",
        long = "grpc-client-server-name",
        default_value = ""
    )]
    pub(crate) server_name: String,
    /// Compression algorithm to use for gRPC requests to other clients. Must be one of: snappy, none.
    #[arg(id = "grpc-compression", long = "grpc-compression", default_value = "none", value_parser = ["snappy", "none"])]
    pub(crate) compression: String,
}

/// The web flags of the querier and the ruler.
#[derive(Args, Debug)]
pub(crate) struct WebFlags {
    #[command(flatten)]
    pub(crate) prefix: super::WebPrefixFlags,
    /// Prefix for API and UI endpoints. This allows thanos UI to be served on a sub-path.
    /// Defaults to the value of --web.external-prefix.
    #[arg(id = "web.route-prefix", long = "web.route-prefix", default_value = "")]
    pub(crate) route_prefix: String,
}

/// Flags of `rthanos query`.
#[derive(Args, Debug)]
pub(crate) struct QueryArgs {
    #[command(flatten)]
    pub(crate) log: LogFlags,
    #[command(flatten)]
    pub(crate) tracing: TracingFlags,
    #[command(flatten)]
    pub(crate) http: HttpFlags,
    #[command(flatten)]
    pub(crate) grpc: GrpcServerFlags,
    #[command(flatten)]
    pub(crate) grpc_client: GrpcClientFlags,
    #[command(flatten)]
    pub(crate) web: WebFlags,
    #[command(flatten)]
    pub(crate) request_logging: RequestLoggingFlags,
    #[command(flatten)]
    pub(crate) limits: StoreLimitFlags,

    /// Maximum time to process query by query node.
    #[arg(
        id = "query.timeout",
        long = "query.timeout",
        default_value = "2m",
        value_name = "DURATION"
    )]
    pub(crate) timeout: PromDuration,
    /// Default PromQL engine to use.
    #[arg(id = "query.promql-engine", long = "query.promql-engine", default_value = "prometheus", value_parser = ["prometheus", "thanos"])]
    pub(crate) promql_engine: String,
    /// Whether to enable extended rate functions (xrate, xincrease and xdelta).
    #[arg(id = "query.enable-x-functions", long = "query.enable-x-functions")]
    pub(crate) enable_x_functions: bool,
    /// Maximum number of queries processed concurrently by query node.
    #[arg(
        id = "query.max-concurrent",
        long = "query.max-concurrent",
        default_value_t = 20
    )]
    pub(crate) max_concurrent: usize,
    /// The maximum lookback duration for retrieving metrics during expression evaluations.
    /// PromQL always evaluates the query for the certain timestamp (query range timestamps are
    /// deduced by step). Since scrape intervals might be different, PromQL looks back for given
    /// amount of time to get latest sample. If it exceeds the maximum lookback delta it assumes
    /// series is stale and returns none (a gap). Defaults to 5m.
    #[arg(
        id = "query.lookback-delta",
        long = "query.lookback-delta",
        value_name = "DURATION"
    )]
    pub(crate) lookback_delta: Option<PromDuration>,
    /// Maximum number of samples a single query can load into memory (rthanos; as Prometheus's
    /// --query.max-samples).
    #[arg(
        id = "query.max-samples",
        long = "query.max-samples",
        default_value_t = 50_000_000
    )]
    pub(crate) max_samples: u64,
    /// Maximum number of select requests made concurrently per a query.
    #[arg(
        id = "query.max-concurrent-select",
        long = "query.max-concurrent-select",
        default_value_t = 4
    )]
    pub(crate) max_concurrent_select: usize,
    /// Optional selection of query connection metric labels to be collected from endpoint set.
    #[arg(id = "query.conn-metric.label", long = "query.conn-metric.label", value_parser = ["external_labels", "store_type"], default_values = ["external_labels", "store_type"])]
    pub(crate) conn_metric_labels: Vec<String>,
    /// Labels to treat as a replica indicator along which data is deduplicated. Still you will
    /// be able to query without deduplication using 'dedup=false' parameter. Data includes time
    /// series, recording rules, and alerting rules.
    #[arg(
        id = "query.replica-label",
        long = "query.replica-label",
        value_name = "LABEL"
    )]
    pub(crate) replica_labels: Vec<String>,
    /// The default metadata time range duration for retrieving labels through Labels and
    /// Series API when the range parameters are not specified. The zero value means range
    /// covers the time since the beginning.
    #[arg(
        id = "query.metadata.default-time-range",
        long = "query.metadata.default-time-range",
        default_value = "0s",
        value_name = "DURATION"
    )]
    pub(crate) metadata_default_time_range: PromDuration,
    /// Query selector labels that will be exposed in info endpoint (repeated).
    #[arg(
        id = "selector-label",
        long = "selector-label",
        value_name = "<name>=\"<value>\""
    )]
    pub(crate) selector_labels: Vec<String>,
    /// Enable automatic adjustment (step / 5) to what source of data should be used in store
    /// gateways if no max_source_resolution param is specified.
    #[arg(id = "query.auto-downsampling", long = "query.auto-downsampling")]
    pub(crate) auto_downsampling: bool,
    /// Enable partial response for queries if no partial_response param is specified.
    /// --no-query.partial-response for disabling. On by default, as in Thanos: the value in
    /// effect is `!no_partial_response`.
    #[arg(
        id = "query.partial-response",
        long = "query.partial-response",
        overrides_with = "no-query.partial-response"
    )]
    pub(crate) partial_response: bool,
    #[arg(
        id = "no-query.partial-response",
        long = "no-query.partial-response",
        hide = true,
        overrides_with = "query.partial-response"
    )]
    pub(crate) no_partial_response: bool,
    /// Directory to log currently active queries in the queries.active file.
    #[arg(
        id = "query.active-query-path",
        long = "query.active-query-path",
        default_value = ""
    )]
    pub(crate) active_query_path: String,
    /// Set default evaluation interval for sub queries.
    #[arg(
        id = "query.default-evaluation-interval",
        long = "query.default-evaluation-interval",
        default_value = "1m",
        value_name = "DURATION"
    )]
    pub(crate) default_evaluation_interval: PromDuration,
    /// Set default step for range queries. Default step is only used when step is not set in
    /// UI. In such cases, Thanos UI will use default step to calculate resolution (resolution
    /// = max(rangeSeconds / 250, defaultStep)). This will not work from Grafana, but Grafana
    /// has __step variable which can be used.
    #[arg(
        id = "query.default-step",
        long = "query.default-step",
        default_value = "1s",
        value_name = "DURATION"
    )]
    pub(crate) default_step: PromDuration,
    /// If a Store doesn't send any data in this specified duration then a Store will be ignored
    /// and partial data will be returned if it's enabled. 0 disables timeout.
    #[arg(
        id = "store.response-timeout",
        long = "store.response-timeout",
        default_value = "0ms",
        value_name = "DURATION"
    )]
    pub(crate) store_response_timeout: PromDuration,
    /// The external Thanos Query URL that would be set in all alerts 'Source' field.
    #[arg(id = "alert.query-url", long = "alert.query-url", value_name = "URL")]
    pub(crate) alert_query_url: Option<String>,
    /// The quantiles for the request duration histogram (repeated).
    #[arg(id = "query.telemetry.request-duration-seconds-quantiles", long = "query.telemetry.request-duration-seconds-quantiles", default_values = ["0.1", "0.25", "0.75", "1.25", "1.75", "2.5", "3", "5", "10"])]
    pub(crate) telemetry_duration_quantiles: Vec<f64>,
    /// The quantiles for the request samples histogram (repeated).
    #[arg(id = "query.telemetry.request-samples-quantiles", long = "query.telemetry.request-samples-quantiles", default_values = ["100", "1000", "10000", "100000", "1000000"])]
    pub(crate) telemetry_samples_quantiles: Vec<f64>,
    /// The quantiles for the request series histogram (repeated).
    #[arg(id = "query.telemetry.request-series-seconds-quantiles", long = "query.telemetry.request-series-seconds-quantiles", default_values = ["10", "100", "1000", "10000", "100000"])]
    pub(crate) telemetry_series_quantiles: Vec<f64>,
    /// HTTP header to determine tenant.
    #[arg(
        id = "query.tenant-header",
        long = "query.tenant-header",
        default_value = "THANOS-TENANT"
    )]
    pub(crate) tenant_header: String,
    /// Default tenant ID to use if tenant header is not present.
    #[arg(
        id = "query.default-tenant-id",
        long = "query.default-tenant-id",
        default_value = "default-tenant"
    )]
    pub(crate) default_tenant_id: String,
    /// Use TLS client's certificate field to determine tenant for write requests.
    #[arg(id = "query.tenant-certificate-field", long = "query.tenant-certificate-field", default_value = "", value_parser = ["", "organization", "organizationalUnit", "commonName"])]
    pub(crate) tenant_certificate_field: String,
    /// Enforce tenancy on Query APIs. Responses are returned only if the label value of the
    /// configured tenant-label-name and the value of the tenant header matches.
    #[arg(id = "query.enforce-tenancy", long = "query.enforce-tenancy")]
    pub(crate) enforce_tenancy: bool,
    /// Label name to use when enforcing tenancy (if --query.enforce-tenancy is enabled).
    #[arg(
        id = "query.tenant-label-name",
        long = "query.tenant-label-name",
        default_value = "tenant_id"
    )]
    pub(crate) tenant_label_name: String,
    /// Addresses of statically configured Thanos API servers (repeatable). The scheme may be
    /// prefixed with 'dns+' or 'dnssrv+' to detect Thanos API servers through respective DNS
    /// lookups.
    #[arg(id = "endpoint", long = "endpoint", value_name = "<endpoint>")]
    pub(crate) endpoints: Vec<String>,
    /// Experimental: DNS name of statically configured Thanos API server groups (repeatable).
    #[arg(
        id = "endpoint-group",
        long = "endpoint-group",
        value_name = "<endpoint-group>"
    )]
    pub(crate) endpoint_groups: Vec<String>,
    /// Addresses of only statically configured Thanos API servers that are always used, even
    /// if the health check fails.
    #[arg(
        id = "endpoint-strict",
        long = "endpoint-strict",
        value_name = "<staticendpoint>"
    )]
    pub(crate) endpoints_strict: Vec<String>,
    /// Experimental: DNS name of statically configured Thanos API server groups (repeatable)
    /// that are always used, even if the health check fails.
    #[arg(
        id = "endpoint-group-strict",
        long = "endpoint-group-strict",
        value_name = "<endpoint-group-strict>"
    )]
    pub(crate) endpoint_groups_strict: Vec<String>,
    /// Deprecation Warning - This flag is deprecated and replaced with `endpoint`.
    #[arg(id = "store", long = "store", value_name = "<store>")]
    pub(crate) stores: Vec<String>,
    /// Deprecation Warning - This flag is deprecated and replaced with `endpoint-strict`.
    #[arg(
        id = "store-strict",
        long = "store-strict",
        value_name = "<staticstore>"
    )]
    pub(crate) stores_strict: Vec<String>,
    /// Path to files that contain addresses of store API servers. The path can be a glob
    /// pattern (repeatable).
    #[arg(
        id = "store.sd-files",
        long = "store.sd-files",
        alias = "endpoint.sd-files",
        value_name = "<path>"
    )]
    pub(crate) sd_files: Vec<String>,
    /// Refresh interval to re-read file SD files. It is used as a resync fallback.
    #[arg(
        id = "store.sd-interval",
        long = "store.sd-interval",
        default_value = "5m",
        value_name = "DURATION"
    )]
    pub(crate) sd_interval: PromDuration,
    /// Interval between DNS resolutions.
    #[arg(
        id = "store.sd-dns-interval",
        long = "store.sd-dns-interval",
        default_value = "30s",
        value_name = "DURATION"
    )]
    pub(crate) sd_dns_interval: PromDuration,
    /// Timeout before an unhealthy store is cleaned from the store UI page.
    #[arg(
        id = "store.unhealthy-timeout",
        long = "store.unhealthy-timeout",
        default_value = "5m",
        value_name = "DURATION"
    )]
    pub(crate) unhealthy_timeout: PromDuration,
}

/// Runs the querier.
pub(crate) async fn run(args: QueryArgs) -> anyhow::Result<()> {
    let prepared = super::prepare(&super::CommonFlags {
        log: &args.log,
        tracing: &args.tracing,
        request_logging: Some(&args.request_logging),
        http: &args.http,
        grpc: Some(&args.grpc),
        objstore: None,
    })?;
    let addresses: Vec<String> = args
        .endpoints
        .iter()
        .chain(&args.stores)
        .chain(&args.endpoints_strict)
        .chain(&args.stores_strict)
        .cloned()
        .collect();
    let addresses = addresses
        .iter()
        .map(|a| AddressSpec::parse(a))
        .collect::<Result<Vec<_>, _>>()
        .context("--endpoint")?;
    if !args.endpoint_groups.is_empty() || !args.endpoint_groups_strict.is_empty() {
        anyhow::bail!(
            "--endpoint-group is not supported by rthanos; use --endpoint with dns+ or dnssrv+"
        );
    }
    if args.grpc_client.tls_skip_verify {
        anyhow::bail!("--grpc-client-tls-skip-verify is not supported by rthanos");
    }
    let read = |flag: &str, path: &str| -> anyhow::Result<Option<Vec<u8>>> {
        if path.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            std::fs::read(path).with_context(|| format!("--{flag} {path}"))?,
        ))
    };
    let tls = if args.grpc_client.tls_secure {
        let cert = read("grpc-client-tls-cert", &args.grpc_client.tls_cert)?;
        let key = read("grpc-client-tls-key", &args.grpc_client.tls_key)?;
        Some(ClientTls {
            ca_pem: read("grpc-client-tls-ca", &args.grpc_client.tls_ca)?,
            identity_pem: cert.zip(key),
            server_name: Some(args.grpc_client.server_name.clone()).filter(|s| !s.is_empty()),
        })
    } else {
        None
    };
    let client_options = ClientOptions {
        tls,
        connect_timeout: std::time::Duration::from_secs(5),
        response_timeout: Some(args.store_response_timeout.as_std()).filter(|d| !d.is_zero()),
        // Calls are counted once the registry exists.
        metrics: None,
    };
    let engine = Engine::new(EngineOptions {
        lookback_delta: args
            .lookback_delta
            .map_or(std::time::Duration::from_secs(300), |d| d.as_std()),
        max_samples: usize::try_from(args.max_samples).unwrap_or(usize::MAX),
        timeout: args.timeout.as_std(),
        default_subquery_step: args.default_evaluation_interval.as_std(),
        max_concurrency: args.max_concurrent,
        max_concurrent_select: args.max_concurrent_select,
    });
    let partial_response = !args.no_partial_response;
    let auto_downsampling = args.auto_downsampling;
    let metadata_default_range_ms = args.metadata_default_time_range.as_millis();
    let route_prefix = route_prefix(&args.web)?;
    super::reject_unsupported(&[
        ("query.enforce-tenancy", args.enforce_tenancy),
        ("query.enable-x-functions", args.enable_x_functions),
        (
            "query.tenant-certificate-field",
            !args.tenant_certificate_field.is_empty(),
        ),
        ("selector-label", !args.selector_labels.is_empty()),
    ])?;
    let replica_labels = args.replica_labels.clone();
    let limits = args.limits;
    let sd_files = args.sd_files.clone();
    let sd_interval = args.sd_interval.as_std();
    let dns_interval = args.sd_dns_interval.as_std();
    prepared
        .serve("query", move |runtime| {
            let file_sd =
                (!sd_files.is_empty()).then(|| Arc::new(FileSd::new(sd_files, sd_interval)));
            let client = client_options.with_metrics(runtime.registry())?;
            let endpoints = Arc::new(EndpointSet::new(
                EndpointConfig {
                    addresses,
                    file_sd,
                    dns_interval,
                    client,
                },
                runtime.registry(),
            )?);
            let state = Arc::new(ApiState {
                engine,
                stores: Arc::clone(&endpoints) as Arc<dyn StoreSource>,
                replica_labels,
                partial_response,
                auto_downsampling,
                metadata_default_range_ms,
                route_prefix,
                build_info: serde_json::json!({
                    "version": crate::BUILD.version,
                    "revision": crate::BUILD.revision,
                    "branch": crate::BUILD.branch,
                    "buildUser": "",
                    "buildDate": "",
                    "goVersion": crate::BUILD.compiler,
                }),
                now_ms: || {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                },
            });
            let query_store = Arc::new(ProxyStore::new(
                Arc::clone(&endpoints) as Arc<dyn StoreSource>
            ));
            let prober = runtime.prober().clone();
            let shutdown = runtime.shutdown_token();
            let supervisor = runtime.supervisor().clone();
            Ok(super::Component {
                http: Some(rthanos_query::api::router(state)),
                grpc: Some(
                    StoreServer::new(Arc::clone(&query_store) as Arc<dyn rthanos_storeapi::Store>)
                        .with_metadata(query_store)
                        .with_limits(limits.series_limits())
                        .routes(),
                ),
                work: Box::pin(async move {
                    endpoints.refresh().await;
                    prober.ready();
                    // A refresh loop that panics is restarted: endpoints keep being discovered.
                    let interval = std::time::Duration::from_secs(5);
                    supervisor
                        .run_loop("endpoint_refresh", interval, move || {
                            Arc::clone(&endpoints).refresh_loop(interval, shutdown.clone())
                        })
                        .await;
                    Ok(())
                }),
            })
        })
        .await
}

/// `--web.route-prefix`, else the path of `--web.external-prefix`, as `/prefix` (no trailing
/// slash), or empty for the root.
pub(crate) fn route_prefix(web: &WebFlags) -> anyhow::Result<String> {
    let prefix = if web.route_prefix.is_empty() {
        let external = &web.prefix.external_prefix;
        match external.split_once("://") {
            // A full URL: its path.
            Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]).to_string(),
            None => external.clone(),
        }
    } else {
        web.route_prefix.clone()
    };
    let trimmed = prefix.trim_matches('/');
    if trimmed.contains("//") || trimmed.contains(['?', '#', ' ']) {
        anyhow::bail!("--web.route-prefix {prefix:?}: not a URL path");
    }
    Ok(if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    })
}
