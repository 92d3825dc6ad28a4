//! The HTTP server every component runs on `--http-address`: `/metrics`, `/-/healthy`,
//! `/-/ready`, plus the component's own routes, optionally behind TLS and basic auth
//! (`--http.config`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use prometheus::Registry;

use crate::RuntimeError;
use crate::probe::{ProbeState, Prober};
use crate::webconfig::{BasicAuth, WebConfig};

/// Adds the shared endpoints to a component's routes, and records every request in Thanos's
/// HTTP metrics (registered in `registry`).
pub fn router(
    component: &'static str,
    prober: Prober,
    registry: Registry,
    routes: Router,
) -> Result<Router, RuntimeError> {
    let request_metrics = crate::http_metrics::HttpMetrics::new(&registry)?;
    let probes = Router::new()
        .route("/-/healthy", get(|| async { (StatusCode::OK, "OK\n") }))
        .route(
            "/-/ready",
            get(move || {
                let state = prober.state();
                async move {
                    match state {
                        ProbeState::Ready => (StatusCode::OK, "OK\n".to_string()),
                        ProbeState::NotReady(reason) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("rthanos {component} is not ready: {reason}\n"),
                        ),
                    }
                }
            }),
        )
        .route("/metrics", get(metrics).with_state(Arc::new(registry)));
    Ok(routes.merge(probes).layer(middleware::from_fn_with_state(
        request_metrics,
        crate::http_metrics::instrument,
    )))
}

async fn metrics(State(registry): State<Arc<Registry>>) -> Response {
    match crate::metrics::render(&registry) {
        Ok((content_type, body)) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}\n"),
        )
            .into_response(),
    }
}

/// Wraps `app` with the web configuration: response headers and basic auth.
fn apply_web_config(app: Router, config: &WebConfig) -> Result<Router, RuntimeError> {
    let mut app = app;
    if let Some(auth) = config.basic_auth() {
        app = app.layer(middleware::from_fn_with_state(auth, require_basic_auth));
    }
    if !config.http_server_config.headers.is_empty() {
        let mut headers = Vec::new();
        for (name, value) in &config.http_server_config.headers {
            let name = HeaderName::try_from(name.as_str()).map_err(|e| {
                RuntimeError::Config(format!(
                    "web config: http_server_config.headers: {name:?}: {e}"
                ))
            })?;
            let value = HeaderValue::try_from(value.as_str()).map_err(|e| {
                RuntimeError::Config(format!(
                    "web config: http_server_config.headers: {name}: {e}"
                ))
            })?;
            headers.push((name, value));
        }
        let headers = Arc::new(headers);
        app = app.layer(middleware::from_fn(move |req: Request, next: Next| {
            let headers = Arc::clone(&headers);
            async move {
                let mut res = next.run(req).await;
                for (name, value) in headers.iter() {
                    res.headers_mut().insert(name.clone(), value.clone());
                }
                res
            }
        }));
    }
    Ok(app)
}

async fn require_basic_auth(State(auth): State<BasicAuth>, req: Request, next: Next) -> Response {
    let credentials = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        });
    let allowed = match credentials {
        Some((user, password)) => auth.allows(&user, &password).await,
        None => false,
    };
    if allowed {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic")],
        "Unauthorized\n",
    )
        .into_response()
}

/// Bounds on what clients can hold of an HTTP server. Thanos has no flags for them (Go's
/// server has no limits by default); these defaults follow Prometheus's own server
/// (`--web.max-connections=512`, a read timeout) loosely enough for Grafana's connection pools.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Time a client has to send a request's headers, and the longest an HTTP/1 connection
    /// may sit idle between requests (hyper times both from the same point); also bounds the
    /// TLS handshake and the first request.
    pub header_read_timeout: Duration,
    /// HTTP/2: a ping after this much silence; no answer within [`Self::keep_alive_timeout`]
    /// closes the connection.
    pub keep_alive_interval: Duration,
    /// HTTP/2: how long a ping may go unanswered.
    pub keep_alive_timeout: Duration,
    /// Connections served at once; more wait to be served, for at most
    /// [`Self::header_read_timeout`], then are closed.
    pub max_connections: usize,
    /// HTTP/2 streams (requests) at once on one connection.
    pub max_concurrent_streams: u32,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(60),
            keep_alive_interval: Duration::from_secs(60),
            keep_alive_timeout: Duration::from_secs(20),
            max_connections: 1024,
            max_concurrent_streams: 256,
        }
    }
}

/// An acceptor that serves at most as many connections as it has permits: a connection over
/// the cap waits for one (up to the header-read timeout) before its first byte is read, as
/// connections wait in the listen queue of Prometheus's limited listener.
#[derive(Clone)]
struct ConnectionLimit<A> {
    inner: A,
    permits: Arc<tokio::sync::Semaphore>,
    wait: Duration,
}

impl<A, I, S> axum_server::accept::Accept<I, S> for ConnectionLimit<A>
where
    A: axum_server::accept::Accept<Limited<I>, S> + Clone + Send + Sync + 'static,
    A::Future: Send,
    I: Send + 'static,
    S: Send + 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = futures::future::BoxFuture<'static, std::io::Result<(A::Stream, A::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let (inner, permits, wait) = (self.inner.clone(), Arc::clone(&self.permits), self.wait);
        Box::pin(async move {
            let permit = tokio::time::timeout(wait, permits.acquire_owned())
                .await
                .map_err(|_| std::io::Error::other("connection limit reached"))?
                .map_err(std::io::Error::other)?;
            inner
                .accept(
                    Limited {
                        inner: stream,
                        _permit: permit,
                    },
                    service,
                )
                .await
        })
    }
}

/// A connection holding one of the server's connection permits until it closes.
struct Limited<S> {
    inner: S,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Limited<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Limited<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A bound HTTP server, not yet serving.
pub struct HttpServer {
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    limits: ServerLimits,
}

impl HttpServer {
    /// Binds `addr` and prepares `app` under the web configuration.
    pub fn bind(addr: SocketAddr, app: Router, web: &WebConfig) -> Result<Self, RuntimeError> {
        let listener = std::net::TcpListener::bind(addr).map_err(|source| RuntimeError::Bind {
            what: "HTTP",
            addr,
            source,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| RuntimeError::Bind {
                what: "HTTP",
                addr,
                source,
            })?;
        let tls = web
            .rustls_config()
            .map_err(|e| RuntimeError::Config(e.to_string()))?
            .map(Arc::new);
        Ok(Self {
            listener,
            tls,
            app: apply_web_config(app, web)?,
            limits: ServerLimits::default(),
        })
    }

    /// Replaces the default [`ServerLimits`].
    pub fn with_limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The bound address (useful when binding port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, std::io::Error> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish for at most `grace`.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        grace: Duration,
    ) -> Result<(), std::io::Error> {
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            stopper.graceful_shutdown(Some(grace));
        });
        let service = self.app.into_make_service();
        let limits = self.limits;
        let limit = ConnectionLimit {
            inner: axum_server::accept::DefaultAcceptor,
            permits: Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1))),
            wait: limits.header_read_timeout,
        };
        let configure = |builder: &mut hyper_util::server::conn::auto::Builder<_>| {
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            builder
                .http2()
                .timer(hyper_util::rt::TokioTimer::new())
                .keep_alive_interval(limits.keep_alive_interval)
                .keep_alive_timeout(limits.keep_alive_timeout)
                .max_concurrent_streams(limits.max_concurrent_streams);
        };
        match self.tls {
            Some(tls) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_config(tls);
                let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config)
                    .handshake_timeout(limits.header_read_timeout)
                    .acceptor(limit);
                let mut server = axum_server::from_tcp(self.listener)?
                    .acceptor(acceptor)
                    .first_request_timeout(limits.header_read_timeout)
                    .handle(handle);
                configure(server.http_builder());
                server.serve(service).await
            }
            None => {
                let mut server = axum_server::from_tcp(self.listener)?
                    .acceptor(limit)
                    .first_request_timeout(limits.header_read_timeout)
                    .handle(handle);
                configure(server.http_builder());
                server.serve(service).await
            }
        }
    }
}
