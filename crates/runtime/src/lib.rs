//! Process plumbing shared by every rthanos component (sidecar, query, store, compact): Thanos's
//! common flags and their value syntaxes, logfmt/JSON logging, the HTTP server with `/metrics`,
//! `/-/healthy` and `/-/ready` (TLS and basic auth through `--http.config`), the gRPC server with
//! the standard health service, and graceful shutdown on SIGTERM/SIGINT within the grace periods.
//!
//! A component is a future (its "work") plus the routes it serves. [`Runtime::bind`] opens both
//! listeners before the work starts, so probes answer from the first moment: `/-/healthy` says
//! 200 while the process runs, `/-/ready` says 503 until the component calls
//! [`Prober::ready`], and again from the start of shutdown. The work must return once the
//! [`Runtime::shutdown_token`] is cancelled; the servers then drain for their grace periods.
//!
//! ```no_run
//! # async fn example() -> Result<(), rthanos_runtime::RuntimeError> {
//! use rthanos_runtime::{BuildInfo, HttpOptions, Runtime};
//! let build = BuildInfo { version: "0.1.0", revision: "abc", branch: "main", compiler: "rustc" };
//! let runtime = Runtime::new("sidecar", &build)?;
//! let http = HttpOptions::new("127.0.0.1:10902".parse().expect("addr"));
//! let prober = runtime.prober().clone();
//! let token = runtime.shutdown_token();
//! let bound = runtime.bind(http, None, axum::Router::new(), None).await?;
//! bound
//!     .run(async move {
//!         prober.ready();
//!         token.cancelled().await;
//!         Ok(())
//!     })
//!     .await
//! # }
//! ```

pub mod flags;
pub mod grpc;
pub mod http;
mod http_metrics;
pub mod logging;
pub mod metrics;
pub mod probe;

pub mod webconfig;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use prometheus::Registry;
pub use rthanos_supervise::{Cause, Panicked, Supervisor};
use tokio_util::sync::CancellationToken;

pub use metrics::BuildInfo;
pub use probe::Prober;
pub use rthanos_model::{ByteSize, PromDuration};
pub use webconfig::WebConfig;

/// An error of the component's own work, as the runtime reports it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of process start-up, serving and shutdown.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A flag or configuration file is wrong.
    #[error("{0}")]
    Config(String),
    /// A listener could not be opened.
    #[error("listen {what} on {addr}: {source}")]
    Bind {
        /// Which server.
        what: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A server failed while serving.
    #[error("serve {0}")]
    Serve(String),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The component's work failed.
    #[error("{component}: {cause}")]
    Component {
        /// Which component.
        component: &'static str,
        /// Its error (already part of this error's message).
        cause: BoxError,
    },
}

/// How the HTTP server listens.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// `--http-address`.
    pub addr: SocketAddr,
    /// `--http-grace-period`.
    pub grace: Duration,
    /// `--http.config`.
    pub web: WebConfig,
}

impl HttpOptions {
    /// Plain HTTP on `addr` with Thanos's default grace period (2m).
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            grace: Duration::from_secs(120),
            web: WebConfig::default(),
        }
    }

    /// From the shared HTTP flags.
    pub fn from_flags(flags: &flags::HttpFlags) -> Result<Self, RuntimeError> {
        let web = if flags.config.is_empty() {
            WebConfig::default()
        } else {
            WebConfig::load(std::path::Path::new(&flags.config))
                .map_err(|e| RuntimeError::Config(format!("--http.config: {e}")))?
        };
        Ok(Self {
            addr: flags::listen_addr("http-address", &flags.address)?,
            grace: flags.grace_period.as_std(),
            web,
        })
    }
}

/// How the gRPC server listens.
#[derive(Clone, Debug)]
pub struct GrpcOptions {
    /// `--grpc-address`.
    pub addr: SocketAddr,
    /// `--grpc-grace-period`.
    pub grace: Duration,
    /// `--grpc-server-tls-*`.
    pub tls: grpc::GrpcTls,
    /// `--grpc-server-max-connection-age`.
    pub max_connection_age: Option<Duration>,
}

impl GrpcOptions {
    /// From the shared gRPC server flags.
    pub fn from_flags(flags: &flags::GrpcServerFlags) -> Result<Self, RuntimeError> {
        Ok(Self {
            addr: flags::listen_addr("grpc-address", &flags.address)?,
            grace: flags.grace_period.as_std(),
            tls: flags.tls(),
            max_connection_age: (!flags.max_connection_age.is_zero())
                .then(|| flags.max_connection_age.as_std()),
        })
    }
}

/// One component's process: its metric registry, probes and shutdown signal.
pub struct Runtime {
    component: &'static str,
    registry: Registry,
    prober: Prober,
    shutdown: CancellationToken,
    supervisor: Supervisor,
}

impl Runtime {
    /// Creates the runtime of `component`, with `thanos_build_info` and process metrics registered.
    pub fn new(component: &'static str, build: &BuildInfo) -> Result<Self, RuntimeError> {
        let registry = metrics::new_registry(build)?;
        let shutdown = CancellationToken::new();
        let supervisor = Supervisor::new(&registry, shutdown.clone())?;
        Ok(Self {
            component,
            registry,
            prober: Prober::new(),
            shutdown,
            supervisor,
        })
    }

    /// The registry served on `/metrics`: components register their metrics here.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The probes; the component calls `ready()` once it can serve.
    pub fn prober(&self) -> &Prober {
        &self.prober
    }

    /// Cancelled when the process is asked to stop; the work must return soon after.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs the component's background loops until shutdown, restarting one that panics or
    /// ends early (logged, counted in `thanos_background_task_failures_total`).
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Opens the listeners: HTTP always, gRPC when `grpc` is given.
    pub async fn bind(
        self,
        http: HttpOptions,
        grpc: Option<GrpcOptions>,
        http_routes: axum::Router,
        grpc_routes: Option<tonic::service::Routes>,
    ) -> Result<Bound, RuntimeError> {
        let app = http::router(
            self.component,
            self.prober.clone(),
            self.registry.clone(),
            http_routes,
        )?;
        let http_server = http::HttpServer::bind(http.addr, app, &http.web)?;
        let grpc_server = match grpc {
            Some(opts) => {
                let routes = grpc_routes.unwrap_or_default();
                let metrics = rthanos_grpcmetrics::GrpcMetrics::server(&self.registry)?;
                // Every server has the health service; its series exist from the start.
                metrics.initialize(&["/grpc.health.v1.Health/Check"]);
                let server = grpc::GrpcServer::bind(
                    opts.addr,
                    routes,
                    &opts.tls,
                    opts.max_connection_age,
                    metrics,
                )
                .await?;
                Some((server, opts.grace))
            }
            None => None,
        };
        Ok(Bound {
            runtime: self,
            http: (http_server, http.grace),
            grpc: grpc_server,
        })
    }
}

/// A runtime whose listeners are open; [`Bound::run`] serves and runs the component.
pub struct Bound {
    runtime: Runtime,
    http: (http::HttpServer, Duration),
    grpc: Option<(grpc::GrpcServer, Duration)>,
}

impl Bound {
    /// The HTTP listener's address.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.0.local_addr().ok()
    }

    /// The gRPC listener's address, if gRPC is served.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.as_ref().and_then(|(s, _)| s.local_addr().ok())
    }

    /// Serves until the work returns or a SIGTERM/SIGINT arrives, then shuts down gracefully.
    /// Returns the work's error, if any.
    pub async fn run<W>(self, work: W) -> Result<(), RuntimeError>
    where
        W: Future<Output = Result<(), BoxError>>,
    {
        let Runtime {
            component,
            prober,
            shutdown,
            ..
        } = self.runtime;
        let stopping = shutdown.clone();
        let (http_server, http_grace) = self.http;
        let http_task =
            tokio::spawn(http_server.serve(stopping.clone().cancelled_owned(), http_grace));
        let grpc_task = self.grpc.map(|(server, grace)| {
            tokio::spawn(server.serve(prober.clone(), stopping.clone().cancelled_owned(), grace))
        });
        let signals = tokio::spawn(wait_for_signal(stopping.clone(), prober.clone()));
        tracing::info!(component, "starting");

        let result = work.await;
        prober.not_ready("shutting down");
        // An error is returned to the caller, which reports it once.
        if result.is_ok() {
            tracing::info!(component, "exiting");
        }
        stopping.cancel();
        signals.abort();
        let mut serve_error = None;
        match http_task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => serve_error = Some(RuntimeError::Serve(format!("HTTP: {e}"))),
            Err(e) => serve_error = Some(RuntimeError::Serve(format!("HTTP: {e}"))),
        }
        if let Some(task) = grpc_task {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => serve_error = Some(e),
                Err(e) => serve_error = Some(RuntimeError::Serve(format!("gRPC: {e}"))),
            }
        }
        result.map_err(|cause| RuntimeError::Component { component, cause })?;
        serve_error.map_or(Ok(()), Err)
    }
}

/// On the first SIGTERM or SIGINT: not ready any more, and `token` cancelled.
async fn wait_for_signal(token: CancellationToken, prober: Prober) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for signals; stop with SIGKILL");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        () = token.cancelled() => return,
    };
    tracing::info!(signal = name, "caught signal, exiting gracefully");
    prober.not_ready("shutting down");
    token.cancel();
}
