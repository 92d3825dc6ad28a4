//! The gRPC server on `--grpc-address`: the component's services plus the standard
//! `grpc.health.v1.Health` service, which mirrors the prober; optional TLS with client
//! verification (`--grpc-server-tls-cert`, `-key`, `-client-ca`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rthanos_grpcmetrics::GrpcMetrics;
use tonic::service::Routes;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

use crate::RuntimeError;
use crate::probe::{ProbeState, Prober};

/// TLS material for the gRPC server, as Thanos's `--grpc-server-tls-*` flags name it.
#[derive(Clone, Debug, Default)]
pub struct GrpcTls {
    /// Server certificate (PEM); TLS is off when empty.
    pub cert: Option<PathBuf>,
    /// Server key (PEM).
    pub key: Option<PathBuf>,
    /// CA that client certificates must be signed by; client certificates are not asked for
    /// when empty.
    pub client_ca: Option<PathBuf>,
}

impl GrpcTls {
    fn server_config(&self) -> Result<Option<ServerTlsConfig>, RuntimeError> {
        let read = |flag: &str, path: &PathBuf| {
            std::fs::read(path)
                .map_err(|e| RuntimeError::Config(format!("--{flag}: {}: {e}", path.display())))
        };
        match (&self.cert, &self.key) {
            (None, None) => {
                if self.client_ca.is_some() {
                    return Err(RuntimeError::Config(
                        "--grpc-server-tls-client-ca needs --grpc-server-tls-cert and --grpc-server-tls-key".into(),
                    ));
                }
                Ok(None)
            }
            (Some(cert), Some(key)) => {
                let identity = Identity::from_pem(
                    read("grpc-server-tls-cert", cert)?,
                    read("grpc-server-tls-key", key)?,
                );
                let mut config = ServerTlsConfig::new().identity(identity);
                if let Some(ca) = &self.client_ca {
                    config = config.client_ca_root(Certificate::from_pem(read(
                        "grpc-server-tls-client-ca",
                        ca,
                    )?));
                }
                Ok(Some(config))
            }
            _ => Err(RuntimeError::Config(
                "--grpc-server-tls-cert and --grpc-server-tls-key must be given together".into(),
            )),
        }
    }
}

/// HTTP/2 streams (calls) served at once on one gRPC connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 1000;

/// A bound gRPC server, not yet serving.
pub struct GrpcServer {
    listener: tokio::net::TcpListener,
    tls: Option<ServerTlsConfig>,
    max_connection_age: Option<Duration>,
    routes: Routes,
    metrics: GrpcMetrics,
}

impl GrpcServer {
    /// Binds `addr` for `routes`, whose calls are recorded in `metrics`.
    pub async fn bind(
        addr: SocketAddr,
        routes: Routes,
        tls: &GrpcTls,
        max_connection_age: Option<Duration>,
        metrics: GrpcMetrics,
    ) -> Result<Self, RuntimeError> {
        let tls = tls.server_config()?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| RuntimeError::Bind {
                what: "gRPC",
                addr,
                source,
            })?;
        Ok(Self {
            listener,
            tls,
            max_connection_age,
            routes,
            metrics,
        })
    }

    /// The bound address (useful when binding port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, std::io::Error> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then lets in-flight calls finish for at most `grace`.
    pub async fn serve(
        self,
        prober: Prober,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        grace: Duration,
    ) -> Result<(), RuntimeError> {
        let (reporter, health) = tonic_health::server::health_reporter();
        let mut states = prober.subscribe();
        tokio::spawn(async move {
            loop {
                let status = match &*states.borrow_and_update() {
                    ProbeState::Ready => ServingStatus::Serving,
                    ProbeState::NotReady(_) => ServingStatus::NotServing,
                };
                reporter.set_service_status("", status).await;
                if states.changed().await.is_err() {
                    break;
                }
            }
        });
        // Streams at once on one connection: a querier multiplexes all its selects on one
        // (Go's gRPC sets no bound; this one only stops a single peer from holding the server).
        let mut server = Server::builder().max_concurrent_streams(MAX_CONCURRENT_STREAMS);
        if let Some(tls) = self.tls {
            server = server
                .tls_config(tls)
                .map_err(|e| RuntimeError::Config(format!("gRPC TLS: {e}")))?;
        }
        if let Some(age) = self.max_connection_age {
            server = server.max_connection_age(age);
        }
        // No Nagle: small answers (a few series, an Info) must not wait for the peer's
        // delayed ACK (40 ms on Linux).
        let incoming =
            tonic::transport::server::TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = server
            .layer(self.metrics)
            .add_routes(self.routes)
            .add_service(health)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop_rx.await;
            });
        tokio::pin!(serving);
        tokio::select! {
            res = &mut serving => return res.map_err(|e| RuntimeError::Serve(format!("gRPC: {e}"))),
            () = shutdown => {}
        }
        let _ = stop_tx.send(());
        // In-flight calls may finish within the grace period; after it they are dropped.
        match tokio::time::timeout(grace, serving).await {
            Ok(res) => res.map_err(|e| RuntimeError::Serve(format!("gRPC: {e}"))),
            Err(_) => Ok(()),
        }
    }
}
