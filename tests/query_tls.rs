//! `rthanos query` talking to a sidecar over mutual TLS, with Thanos's flags on both sides:
//! the sidecar's `--grpc-server-tls-cert/-key/-client-ca`, the querier's
//! `--grpc-client-tls-secure/-cert/-key/-ca` and `--grpc-client-server-name`. A querier
//! without a client certificate, or trusting another CA, is refused by the sidecar.

mod common;

use std::time::Duration;

use common::Process;
use rthanos_testkit::openmetrics::{Spec, generate};
use rthanos_testkit::{Pki, PromtoolBlocks};

fn healthy_stores(query: &Process) -> (usize, String) {
    let (_, body) = common::http_get(query.http_port, "/api/v1/stores").unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let healthy = json["data"]["sidecar"]
        .as_array()
        .map_or(0, |s| s.iter().filter(|e| e["lastError"].is_null()).count());
    (healthy, body)
}

#[test]
fn the_querier_reaches_a_sidecar_over_mutual_tls() {
    let pki = Pki::generate();
    let blocks = PromtoolBlocks::create(
        &generate(&Spec {
            series: 3,
            samples: 120,
            ..Spec::default()
        }),
        "2h",
    );
    let path = |f: &str| pki.path(f).display().to_string();
    let replica = common::Replica::start_with(
        Some(&blocks.data_dir()),
        "global:\n  external_labels:\n    cluster: tls\n",
        &[],
        &[
            format!("--grpc-server-tls-cert={}", path("server.crt")),
            format!("--grpc-server-tls-key={}", path("server.key")),
            format!("--grpc-server-tls-client-ca={}", path("ca.crt")),
        ],
    );
    let sidecar = &replica.sidecar;
    // Asked for by name: the certificate is for localhost and 127.0.0.1.
    let endpoint = format!("--endpoint=localhost:{}", sidecar.grpc_port);

    let mut query = Process::start(&[
        "query".to_string(),
        endpoint.clone(),
        "--grpc-client-tls-secure".to_string(),
        format!("--grpc-client-tls-cert={}", path("client.crt")),
        format!("--grpc-client-tls-key={}", path("client.key")),
        format!("--grpc-client-tls-ca={}", path("ca.crt")),
        "--grpc-client-server-name=localhost".to_string(),
    ]);
    query.wait_ready(Duration::from_secs(60));
    query.wait_for(
        Duration::from_secs(30),
        "the sidecar healthy over TLS",
        |q| healthy_stores(q).0 == 1,
    );
    let (status, body) = common::http_get(
        query.http_port,
        "/api/v1/query?query=count(temperature_celsius)&time=1700001600",
    )
    .expect("query");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"3\""), "{body}");

    // No client certificate: the sidecar refuses the connection.
    let mut anonymous = Process::start(&[
        "query".to_string(),
        endpoint,
        "--grpc-client-tls-secure".to_string(),
        format!("--grpc-client-tls-ca={}", path("ca.crt")),
    ]);
    anonymous.wait_ready(Duration::from_secs(60));
    anonymous.wait_for(Duration::from_secs(30), "an Info failure", |q| {
        let (healthy, body) = healthy_stores(q);
        healthy == 0 && body.contains("lastError\":\"")
    });
    // Plain text against a TLS server: never healthy either.
    let mut plain = Process::start(&[
        "query".to_string(),
        format!("--endpoint=127.0.0.1:{}", sidecar.grpc_port),
    ]);
    plain.wait_ready(Duration::from_secs(60));
    plain.wait_for(Duration::from_secs(30), "an Info failure", |q| {
        let (healthy, body) = healthy_stores(q);
        healthy == 0 && body.contains("lastError\":\"")
    });
}
