//! The shared servers, started for real on 127.0.0.1: probes, metrics (linted by Prometheus's
//! own `promtool check metrics`), gRPC health, TLS and basic auth from `--http.config`, and the
//! component lifecycle.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use rthanos_runtime::{BoxError, BuildInfo, GrpcOptions, HttpOptions, Runtime, WebConfig};
use tokio::sync::oneshot;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const BUILD: BuildInfo = BuildInfo {
    version: "0.1.0",
    revision: "abcdef",
    branch: "main",
    compiler: "rustc 1.95.0",
};

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn grpc_options() -> GrpcOptions {
    GrpcOptions {
        addr: loopback(),
        grace: Duration::from_secs(5),
        tls: Default::default(),
        max_connection_age: None,
    }
}

/// Lints a metrics exposition with promtool, as Prometheus's maintainers would.
fn promtool_check(body: &str) {
    let mut child = match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!(
            "promtool not found ({e}); run scripts/test.sh, which installs Debian's prometheus"
        ),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write metrics");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics found problems:\n{}{}\n---\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn health(addr: SocketAddr) -> ServingStatus {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect gRPC");
    let mut client = HealthClient::new(channel);
    let res = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check");
    ServingStatus::try_from(res.into_inner().status).expect("status")
}

#[tokio::test]
async fn probes_metrics_and_grpc_health_follow_the_component() {
    let runtime = Runtime::new("store", &BUILD).expect("runtime");
    // What a component adds to the registry: here the bucket's metrics, as every component has.
    let dir = tempfile::tempdir().expect("tmp");
    let yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.path().display()
    );
    let bucket = rthanos_objstore::Bucket::from_yaml(&yaml, runtime.registry()).expect("bucket");
    bucket.upload("a", "b".into()).await.expect("upload");

    let prober = runtime.prober().clone();
    let token = runtime.shutdown_token();
    let bound = runtime
        .bind(
            HttpOptions::new(loopback()),
            Some(grpc_options()),
            axum::Router::new(),
            None,
        )
        .await
        .expect("bind");
    let http = bound.http_addr().expect("http addr");
    let grpc = bound.grpc_addr().expect("grpc addr");
    let (ready_tx, ready_rx) = oneshot::channel::<()>();
    let work_token = token.clone();
    let serving = tokio::spawn(bound.run(async move {
        let _ = ready_rx.await;
        prober.ready();
        work_token.cancelled().await;
        Ok::<(), BoxError>(())
    }));

    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("http://{http}{path}")).send();

    // Starting: alive, not ready.
    assert_eq!(get("/-/healthy").await.expect("healthy").status(), 200);
    let res = get("/-/ready").await.expect("ready");
    assert_eq!(res.status(), 503);
    assert!(
        res.text()
            .await
            .expect("body")
            .contains("not ready: starting")
    );
    assert_eq!(health(grpc).await, ServingStatus::NotServing);

    // Ready.
    ready_tx.send(()).expect("signal ready");
    let mut status = 0;
    for _ in 0..50 {
        status = get("/-/ready").await.expect("ready").status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200);
    let mut grpc_status = ServingStatus::Unknown;
    for _ in 0..50 {
        grpc_status = health(grpc).await;
        if grpc_status == ServingStatus::Serving {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(grpc_status, ServingStatus::Serving);

    // Metrics in the Prometheus text format, with Thanos's names, clean under promtool.
    let res = get("/metrics").await.expect("metrics");
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let body = res.text().await.expect("body");
    assert!(body.contains(r#"thanos_build_info{branch="main",goversion="rustc 1.95.0",revision="abcdef",version="0.1.0"} 1"#), "{body}");
    assert!(
        body.contains("thanos_objstore_bucket_operations_total{"),
        "{body}"
    );
    assert!(body.contains("process_resident_memory_bytes"), "{body}");
    promtool_check(&body);

    // Shutdown: the work returns, the servers close.
    token.cancel();
    let result = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("shut down in time")
        .expect("join");
    assert!(result.is_ok(), "{result:?}");
    assert!(
        get("/-/healthy").await.is_err(),
        "HTTP server still up after shutdown"
    );
}

#[tokio::test]
async fn a_failing_component_is_an_error_and_stops_the_servers() {
    let runtime = Runtime::new("compact", &BUILD).expect("runtime");
    let bound = runtime
        .bind(
            HttpOptions::new(loopback()),
            None,
            axum::Router::new(),
            None,
        )
        .await
        .expect("bind");
    let err = bound
        .run(async { Err::<(), BoxError>("halted: overlapping blocks".into()) })
        .await
        .expect_err("must fail");
    assert_eq!(err.to_string(), "compact: halted: overlapping blocks");
}

#[tokio::test]
async fn a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind(loopback()).expect("bind");
    let addr = taken.local_addr().expect("addr");
    let runtime = Runtime::new("sidecar", &BUILD).expect("runtime");
    let err = runtime
        .bind(HttpOptions::new(addr), None, axum::Router::new(), None)
        .await
        .err()
        .expect("port in use");
    assert!(
        err.to_string()
            .starts_with(&format!("listen HTTP on {addr}:")),
        "{err}"
    );
}

/// A CA and a server certificate for 127.0.0.1/localhost, written as PEM files.
fn make_pki() -> rthanos_testkit::Pki {
    rthanos_testkit::Pki::generate()
}

#[tokio::test]
async fn web_config_serves_tls_and_basic_auth() {
    let pki = make_pki();
    let hash = bcrypt::hash("s3cret", 4).expect("hash");
    let config_path = pki.dir.path().join("web.yml");
    // Relative paths are resolved against the config file's directory.
    std::fs::write(
        &config_path,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  alice: '{hash}'\n"
        ),
    )
    .expect("web config");
    let web = WebConfig::load(&config_path).expect("load");
    let runtime = Runtime::new("query", &BUILD).expect("runtime");
    let token = runtime.shutdown_token();
    let mut http = HttpOptions::new(loopback());
    http.web = web;
    let bound = runtime
        .bind(http, None, axum::Router::new(), None)
        .await
        .expect("bind");
    let addr = bound.http_addr().expect("addr");
    let work_token = token.clone();
    let serving = tokio::spawn(bound.run(async move {
        work_token.cancelled().await;
        Ok::<(), BoxError>(())
    }));

    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).expect("ca")])
        .build()
        .expect("client");
    let url = format!("https://localhost:{}/-/healthy", addr.port());
    let res = client.get(&url).send().await.expect("https");
    assert_eq!(res.status(), 401, "no credentials");
    assert_eq!(res.headers()["www-authenticate"], "Basic");
    let res = client
        .get(&url)
        .basic_auth("alice", Some("wrong"))
        .send()
        .await
        .expect("https");
    assert_eq!(res.status(), 401, "wrong password");
    let res = client
        .get(&url)
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .expect("https");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-frame-options"], "deny");
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/-/healthy", addr.port()))
        .send()
        .await;
    assert!(
        plain.map(|r| r.status() != 200).unwrap_or(true),
        "plain HTTP must not be served"
    );

    token.cancel();
    serving.await.expect("join").expect("clean shutdown");
}

/// A ready component's servers with `grpc`, until the token is cancelled: the gRPC address,
/// the token, and the serving task.
async fn serve_grpc(
    grpc: GrpcOptions,
) -> (
    SocketAddr,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<Result<(), rthanos_runtime::RuntimeError>>,
) {
    let runtime = Runtime::new("sidecar", &BUILD).expect("runtime");
    let prober = runtime.prober().clone();
    let token = runtime.shutdown_token();
    let bound = runtime
        .bind(
            HttpOptions::new(loopback()),
            Some(grpc),
            axum::Router::new(),
            None,
        )
        .await
        .expect("bind");
    let addr = bound.grpc_addr().expect("addr");
    let work_token = token.clone();
    let serving = tokio::spawn(bound.run(async move {
        prober.ready();
        work_token.cancelled().await;
        Ok::<(), BoxError>(())
    }));
    (addr, token, serving)
}

#[tokio::test]
async fn grpc_server_tls() {
    let pki = make_pki();
    let mut grpc = grpc_options();
    grpc.tls = rthanos_runtime::grpc::GrpcTls {
        cert: Some(pki.dir.path().join("server.crt")),
        key: Some(pki.dir.path().join("server.key")),
        client_ca: None,
    };
    let (addr, token, serving) = serve_grpc(grpc).await;

    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    let channel =
        tonic::transport::Channel::from_shared(format!("https://127.0.0.1:{}", addr.port()))
            .expect("uri")
            .tls_config(tls)
            .expect("tls")
            .connect()
            .await
            .expect("connect over TLS");
    let mut client = HealthClient::new(channel);
    let mut status = ServingStatus::Unknown;
    for _ in 0..50 {
        status = ServingStatus::try_from(
            client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .expect("check")
                .into_inner()
                .status,
        )
        .expect("status");
        if status == ServingStatus::Serving {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, ServingStatus::Serving);

    token.cancel();
    serving.await.expect("join").expect("clean shutdown");
}

/// The gRPC server bounds the streams one connection may hold: its HTTP/2 SETTINGS say so.
#[tokio::test]
async fn grpc_bounds_concurrent_streams_per_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, token, serving) = serve_grpc(grpc_options()).await;
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // The client preface and an empty SETTINGS frame.
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("preface");
    // The server's first frame is its SETTINGS: 9-byte header, then 6-byte parameters.
    let mut header = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut header))
        .await
        .expect("in time")
        .expect("settings header");
    assert_eq!(header[3], 0x4, "a SETTINGS frame");
    let len = usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
    let mut payload = vec![0u8; len];
    conn.read_exact(&mut payload).await.expect("settings");
    let max_streams = payload.chunks(6).find_map(|p| {
        (u16::from_be_bytes([p[0], p[1]]) == 0x3)
            .then(|| u32::from_be_bytes([p[2], p[3], p[4], p[5]]))
    });
    assert_eq!(
        max_streams,
        Some(rthanos_runtime::grpc::MAX_CONCURRENT_STREAMS)
    );
    drop(conn);
    token.cancel();
    serving.await.expect("join").expect("clean stop");
}
