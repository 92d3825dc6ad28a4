//! One module per subcommand: its flags (named and defaulted as Thanos's) and the wiring that
//! turns them into a running component.

pub(crate) mod bucket;
pub(crate) mod compact;
pub(crate) mod query;
pub(crate) mod rule;
pub(crate) mod sidecar;
pub(crate) mod store;
pub(crate) mod tools;

use anyhow::{Context, bail};
use rthanos_runtime::flags::{GrpcServerFlags, HttpFlags, LogFlags, ObjstoreFlags};
use rthanos_runtime::{BoxError, GrpcOptions, HttpOptions, Runtime};

/// Flags of Thanos that rthanos accepts in argv but does not act on; giving one a value is a
/// start-up error that names it, rather than a setting silently ignored.
pub(crate) fn reject_unsupported(flags: &[(&str, bool)]) -> anyhow::Result<()> {
    if let Some((name, _)) = flags.iter().find(|(_, set)| *set) {
        bail!("--{name} is not supported by rthanos");
    }
    Ok(())
}

/// The flags every component reads before it starts; `None` where a component lacks the group.
pub(crate) struct CommonFlags<'a> {
    pub(crate) log: &'a LogFlags,
    pub(crate) tracing: &'a TracingFlags,
    pub(crate) request_logging: Option<&'a RequestLoggingFlags>,
    pub(crate) http: &'a HttpFlags,
    pub(crate) grpc: Option<&'a GrpcServerFlags>,
    pub(crate) objstore: Option<&'a ObjstoreFlags>,
}

/// A component's shared configuration, checked and ready to serve.
pub(crate) struct Prepared {
    http: HttpOptions,
    grpc: Option<GrpcOptions>,
}

/// Checks what every component checks before it starts, once: logging is set up from the flags
/// first (so every later error is logged as asked), then unsupported flags, the servers'
/// addresses and web config, and the bucket configuration.
pub(crate) fn prepare(flags: &CommonFlags<'_>) -> anyhow::Result<Prepared> {
    rthanos_runtime::logging::init(flags.log.level, flags.log.format);
    flags.tracing.check()?;
    if let Some(request_logging) = flags.request_logging {
        request_logging.check()?;
    }
    let http = HttpOptions::from_flags(flags.http)?;
    let grpc = flags.grpc.map(GrpcOptions::from_flags).transpose()?;
    if let Some(objstore) = flags.objstore
        && let Some(yaml) = objstore.content()?
    {
        rthanos_objstore::ObjstoreConfig::parse(&yaml).context("--objstore.config")?;
    }
    Ok(Prepared { http, grpc })
}

/// What a component serves and does: its gRPC services (if any) and its work, which runs
/// until it returns or the process is asked to stop.
pub(crate) struct Component {
    pub(crate) http: Option<axum::Router>,
    pub(crate) grpc: Option<tonic::service::Routes>,
    pub(crate) work: std::pin::Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>,
}

impl Component {
    /// A component with nothing to serve over gRPC.
    pub(crate) fn work(
        work: impl Future<Output = Result<(), BoxError>> + Send + 'static,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            http: None,
            grpc: None,
            work: Box::pin(work),
        })
    }
}

impl Prepared {
    /// Runs a component the way every component runs: `build` wires it to the runtime
    /// (metrics registry, probes, shutdown signal), then its HTTP server (and gRPC server,
    /// when it has one) are bound, then its work runs until it returns or a signal stops the
    /// process.
    pub(crate) async fn serve(
        self,
        component: &'static str,
        build: impl FnOnce(&Runtime) -> anyhow::Result<Component>,
    ) -> anyhow::Result<()> {
        let runtime = Runtime::new(component, &crate::BUILD)?;
        let Component { http, grpc, work } = build(&runtime)?;
        let bound = runtime
            .bind(self.http, self.grpc, http.unwrap_or_default(), grpc)
            .await?;
        bound.run(work).await?;
        Ok(())
    }
}

/// Thanos's tracing flags: accepted, and refused when set (rthanos exports no traces yet).
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct TracingFlags {
    /// Path to YAML file with tracing configuration (not supported by rthanos).
    #[arg(
        id = "tracing.config-file",
        long = "tracing.config-file",
        value_name = "FILE"
    )]
    pub(crate) config_file: Option<String>,
    /// Alternative to 'tracing.config-file' flag (not supported by rthanos).
    #[arg(id = "tracing.config", long = "tracing.config", value_name = "CONTENT")]
    pub(crate) config: Option<String>,
}

impl TracingFlags {
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        reject_unsupported(&[
            (
                "tracing.config-file",
                self.config_file.as_deref().is_some_and(|s| !s.is_empty()),
            ),
            (
                "tracing.config",
                self.config.as_deref().is_some_and(|s| !s.is_empty()),
            ),
        ])
    }
}

/// Thanos's request logging flags: accepted, and refused when set.
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct RequestLoggingFlags {
    /// Path to a YAML file with request logging configuration (not supported by rthanos).
    #[arg(
        id = "request.logging-config-file",
        long = "request.logging-config-file",
        value_name = "FILE"
    )]
    pub(crate) config_file: Option<String>,
    /// Alternative to 'request.logging-config-file' flag (not supported by rthanos).
    #[arg(
        id = "request.logging-config",
        long = "request.logging-config",
        value_name = "CONTENT"
    )]
    pub(crate) config: Option<String>,
}

impl RequestLoggingFlags {
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        reject_unsupported(&[
            (
                "request.logging-config-file",
                self.config_file.as_deref().is_some_and(|s| !s.is_empty()),
            ),
            (
                "request.logging-config",
                self.config.as_deref().is_some_and(|s| !s.is_empty()),
            ),
        ])
    }
}

/// Store limits, shared by sidecar, store and query.
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct StoreLimitFlags {
    /// The maximum series allowed for a single Series request. The Series call fails if this
    /// limit is exceeded. 0 means no limit.
    #[arg(
        id = "store.limits.request-series",
        long = "store.limits.request-series",
        default_value_t = 0
    )]
    pub(crate) request_series: u64,
    /// The maximum samples allowed for a single Series request, The Series call fails if this
    /// limit is exceeded. 0 means no limit. NOTE: For efficiency the limit is internally
    /// implemented as 'chunks limit' considering each chunk contains a maximum of 120 samples.
    #[arg(
        id = "store.limits.request-samples",
        long = "store.limits.request-samples",
        default_value_t = 0
    )]
    pub(crate) request_samples: u64,
}

impl StoreLimitFlags {
    /// The limits for the StoreAPI server.
    pub(crate) fn series_limits(&self) -> rthanos_storeapi::SeriesLimits {
        rthanos_storeapi::SeriesLimits {
            series: self.request_series,
            samples: self.request_samples,
        }
    }
}

/// Web UI prefixing flags (query, store, compact).
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct WebPrefixFlags {
    /// Static prefix for all HTML links and redirect URLs in the UI.
    #[arg(
        id = "web.external-prefix",
        long = "web.external-prefix",
        default_value = ""
    )]
    pub(crate) external_prefix: String,
    /// Name of HTTP request header used for dynamic prefixing of UI links and redirects.
    #[arg(
        id = "web.prefix-header",
        long = "web.prefix-header",
        default_value = ""
    )]
    pub(crate) prefix_header: String,
    /// Whether to disable CORS headers to be set by Thanos. By default Thanos sets CORS headers
    /// to be allowed by all.
    #[arg(id = "web.disable-cors", long = "web.disable-cors")]
    pub(crate) disable_cors: bool,
}

/// The bucket block viewer's flags (store, compact).
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct BucketWebFlags {
    /// Disable Block Viewer UI.
    #[arg(id = "web.disable", long = "web.disable")]
    pub(crate) disable: bool,
    /// External block label to use as group title in the bucket web UI.
    #[arg(
        id = "bucket-web-label",
        long = "bucket-web-label",
        value_name = "LABEL"
    )]
    pub(crate) label: Option<String>,
}
