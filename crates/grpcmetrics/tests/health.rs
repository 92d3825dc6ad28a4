//! Server and client metrics of real calls over loopback: tonic's health service behind a
//! metered server, called through a metered channel (a unary call that succeeds, one that
//! fails, a server stream that the client abandons).

use std::time::Duration;

use prometheus::Registry;
use rthanos_grpcmetrics::GrpcMetrics;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// The value of one counter series, by its labels (in any order), or 0 when absent.
fn counter(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> u64 {
    registry
        .gather()
        .iter()
        .filter(|family| family.name() == name)
        .flat_map(|family| family.get_metric().iter())
        .filter(|metric| {
            labels.iter().all(|(name, value)| {
                metric
                    .get_label()
                    .iter()
                    .any(|pair| pair.name() == *name && pair.value() == *value)
            })
        })
        .map(|metric| metric.get_counter().value() as u64)
        .sum()
}

fn histogram_count(registry: &Registry, name: &str) -> u64 {
    registry
        .gather()
        .iter()
        .filter(|family| family.name() == name)
        .flat_map(|family| family.get_metric().iter())
        .map(|metric| metric.get_histogram().get_sample_count())
        .sum()
}

#[tokio::test]
async fn calls_are_counted_on_both_ends_with_their_codes() {
    let server_registry = Registry::new();
    let client_registry = Registry::new();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = Server::builder()
        .layer(GrpcMetrics::server(&server_registry).expect("server metrics"))
        .add_service(health)
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    let server = tokio::spawn(server);

    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy();
    let metrics = GrpcMetrics::client(&client_registry).expect("client metrics");
    let mut client = HealthClient::new(tower::Layer::layer(&metrics, channel));

    // Unary, OK: the whole server's health.
    let ok = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    // Unary, NotFound: a service the server does not know.
    let missing = client
        .check(HealthCheckRequest {
            service: "no.Such".into(),
        })
        .await;
    assert_eq!(
        missing.map(|_| ()).map_err(|s| s.code()),
        Err(tonic::Code::NotFound)
    );
    // Server stream: one message read, then abandoned by the client.
    let mut watch = client
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    assert!(watch.message().await.expect("first status").is_some());
    drop(watch);

    let check = [
        ("grpc_service", "grpc.health.v1.Health"),
        ("grpc_method", "Check"),
        ("grpc_type", "unary"),
    ];
    let with_code = |code: &'static str| {
        let mut labels = check.to_vec();
        labels.push(("grpc_code", code));
        labels
    };
    for (registry, side) in [(&client_registry, "client"), (&server_registry, "server")] {
        let name = |what: &str| format!("grpc_{side}_{what}");
        assert_eq!(
            counter(registry, &name("started_total"), &check),
            2,
            "{side}"
        );
        assert_eq!(
            counter(registry, &name("handled_total"), &with_code("OK")),
            1,
            "{side}"
        );
        assert_eq!(
            counter(registry, &name("handled_total"), &with_code("NotFound")),
            1,
            "{side}"
        );
        // One request message per call each way; the failed call answers no message.
        let (sent, received) = match side {
            "client" => ("msg_sent_total", "msg_received_total"),
            _ => ("msg_received_total", "msg_sent_total"),
        };
        assert_eq!(counter(registry, &name(sent), &check), 2, "{side}");
        assert_eq!(counter(registry, &name(received), &check), 1, "{side}");
    }
    // The abandoned stream: the client knows at once; the server once the reset reaches it.
    let watch = [
        ("grpc_method", "Watch"),
        ("grpc_type", "server_stream"),
        ("grpc_code", "Canceled"),
    ];
    assert_eq!(
        counter(&client_registry, "grpc_client_handled_total", &watch),
        1
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while counter(&server_registry, "grpc_server_handled_total", &watch) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "server never saw the cancel"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        histogram_count(&client_registry, "grpc_client_handling_seconds"),
        3
    );
    assert_eq!(
        histogram_count(&server_registry, "grpc_server_handling_seconds"),
        3
    );
    server.abort();
}
