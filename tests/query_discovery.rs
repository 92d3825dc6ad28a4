//! `rthanos query` finding its endpoints as in Kubernetes: `dnssrv+` and `dns+` names answered
//! by a real DNS server (dnsmasq) that the test starts on 127.0.0.77:53, and `--store.sd-files`
//! rewritten while the querier runs. The querier runs in a mount namespace of its own whose
//! /etc/resolv.conf names that server, so it uses the system resolver path as in production.
//! Needs root (CI runs as root).

mod common;

use std::time::Duration;

use common::Process;
use rthanos_testkit::openmetrics::{Spec, generate};
use rthanos_testkit::{Dnsmasq, PromtoolBlocks};

fn stores(query: &Process) -> Vec<(String, bool)> {
    let Some((200, body)) = common::http_get(query.http_port, "/api/v1/stores") else {
        return Vec::new();
    };
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let mut found: Vec<(String, bool)> = json["data"]
        .as_object()
        .into_iter()
        .flat_map(|by_type| by_type.values())
        .filter_map(|list| list.as_array())
        .flatten()
        .map(|s| {
            let healthy = s["lastError"].is_null() && s["lastCheck"] != "0001-01-01T00:00:00Z";
            (s["name"].as_str().unwrap_or_default().to_string(), healthy)
        })
        .collect();
    found.sort();
    found
}

#[test]
fn endpoints_are_discovered_through_dns_and_files() {
    let blocks = PromtoolBlocks::create(
        &generate(&Spec {
            series: 3,
            samples: 120,
            interval: 30,
            ..Spec::default()
        }),
        "2h",
    );
    let replicas: Vec<common::Replica> = ["a", "b"]
        .iter()
        .map(|name| {
            common::Replica::start(
                &blocks.data_dir(),
                &format!("global:\n  external_labels:\n    replica: {name}\n"),
            )
        })
        .collect();
    let (port_a, port_b) = (replicas[0].sidecar.grpc_port, replicas[1].sidecar.grpc_port);
    let ip = std::net::Ipv4Addr::new(127, 0, 0, 77);
    let _dns = Dnsmasq::start(
        ip,
        &[
            format!("--srv-host=_grpc._tcp.sidecars.rthanos.test,sidecar-a.rthanos.test,{port_a}"),
            format!("--srv-host=_grpc._tcp.sidecars.rthanos.test,sidecar-b.rthanos.test,{port_b}"),
            "--host-record=sidecar-a.rthanos.test,127.0.0.1".to_string(),
            "--host-record=sidecar-b.rthanos.test,127.0.0.1".to_string(),
            "--host-record=single.rthanos.test,127.0.0.1".to_string(),
        ],
    );

    let dir = tempfile::tempdir().expect("tmp");
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        format!("nameserver {ip}\noptions timeout:1 attempts:1\n"),
    )
    .expect("resolv.conf");
    let wrapper = dir.path().join("resolv-wrapper.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nmount --bind {} /etc/resolv.conf && exec \"$@\"\n",
            resolv.display()
        ),
    )
    .expect("wrapper");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .expect("chmod");
    let sd_dir = dir.path().join("sd");
    std::fs::create_dir(&sd_dir).expect("sd dir");
    std::fs::write(sd_dir.join("stores.yml"), "").expect("sd file");

    let mut query = Process::start_wrapped(
        &format!("unshare -m {}", wrapper.display()),
        &[
            "query".to_string(),
            "--query.replica-label=replica".to_string(),
            "--endpoint=dnssrv+_grpc._tcp.sidecars.rthanos.test".to_string(),
            // Does not resolve: logged and retried, never fatal.
            "--endpoint=dns+missing.rthanos.test:10901".to_string(),
            format!("--store.sd-files={}/*.yml", sd_dir.display()),
            "--store.sd-dns-interval=1s".to_string(),
        ],
    );
    query.wait_ready(Duration::from_secs(60));
    let a = format!("127.0.0.1:{port_a}");
    let b = format!("127.0.0.1:{port_b}");
    query.wait_for(Duration::from_secs(30), "both SRV targets healthy", |q| {
        let now = stores(q);
        eprintln!("stores: {now:?}");
        now == [(a.clone(), true), (b.clone(), true)]
    });

    // The two replicas, found through DNS, are deduplicated into one answer.
    let (status, body) = common::http_get(
        query.http_port,
        "/api/v1/query?query=count(temperature_celsius)&time=1700001600",
    )
    .expect("query");
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    let series = blocks_series_count(&json);
    assert!(series > 0, "{body}");
    let (_, body) = common::http_get(
        query.http_port,
        "/api/v1/query?query=count(temperature_celsius)&time=1700001600&dedup=false",
    )
    .expect("query");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(blocks_series_count(&json), 2 * series, "{body}");

    // A file SD target with a DNS prefix appears, then goes when the file is emptied.
    let single = format!("single.rthanos.test:{port_b}");
    let resolved = format!("127.0.0.1:{port_b}");
    std::fs::write(
        sd_dir.join("more.yml"),
        format!("- targets: ['dns+{single}', 'localhost:{port_a}']\n"),
    )
    .expect("sd file");
    let localhost = format!("localhost:{port_a}");
    query.wait_for(Duration::from_secs(30), "the file's endpoints", |q| {
        let now = stores(q);
        now.contains(&(localhost.clone(), true)) && now.contains(&(resolved.clone(), true))
    });
    std::fs::remove_file(sd_dir.join("more.yml")).expect("rm");
    query.wait_for(Duration::from_secs(30), "the file's endpoints gone", |q| {
        stores(q) == [(a.clone(), true), (b.clone(), true)]
    });
    assert!(
        query.log().contains("missing.rthanos.test"),
        "{}",
        query.log()
    );
    assert!(
        query
            .metric("thanos_query_endpoints_dns_lookups_total")
            .is_some_and(|n| n >= 2.0)
    );
}

/// The value of a `count(...)` instant answer.
fn blocks_series_count(json: &serde_json::Value) -> usize {
    json["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as usize)
}
