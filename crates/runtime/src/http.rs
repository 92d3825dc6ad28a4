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

/// A bound HTTP server, not yet serving.
pub struct HttpServer {
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
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
        })
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
        match self.tls {
            Some(tls) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_config(tls);
                axum_server::from_tcp_rustls(self.listener, config)?
                    .handle(handle)
                    .serve(service)
                    .await
            }
            None => {
                axum_server::from_tcp(self.listener)?
                    .handle(handle)
                    .serve(service)
                    .await
            }
        }
    }
}
