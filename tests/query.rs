//! `rthanos query` in front of two sidecars, each next to a real Prometheus 2.42 replica
//! holding the same promtool-made blocks: promtool, as a Prometheus API client, gets from
//! rthanos what it gets from one Prometheus, directly and through a querier stacked on the
//! querier's own StoreAPI.

mod common;

use std::time::Duration;

use rthanos_testkit::openmetrics::{Spec, generate};
use rthanos_testkit::{PromtoolBlocks, promtool_query};

fn config(replica: &str) -> String {
    format!("global:\n  external_labels:\n    cluster: eu1\n    replica: {replica}\n")
}

#[test]
fn promtool_gets_from_rthanos_what_prometheus_answers() {
    let blocks = PromtoolBlocks::create(
        &generate(&Spec {
            series: 12,
            samples: 480,
            interval: 30,
            ..Spec::default()
        }),
        "2h",
    );
    let replicas: Vec<common::Replica> = ["a", "b"]
        .iter()
        .map(|name| common::Replica::start(&blocks.data_dir(), &config(name)))
        .collect();
    let query = common::start_query(replicas.iter().map(|r| &r.sidecar), &[]);
    let rthanos = format!("http://127.0.0.1:{}", query.http_port);
    let prometheus = replicas[0].prometheus.url();
    // Stacked: a global querier whose only endpoint is the querier above, over its StoreAPI;
    // served under a route prefix, as behind an ingress path.
    let mut global = common::start_query([&query], &["--web.route-prefix=/thanos"]);
    global.wait_for(Duration::from_secs(30), "the querier below healthy", |g| {
        common::http_get(g.http_port, "/thanos/api/v1/stores")
            .is_some_and(|(_, body)| body.contains("\"query\"") && body.contains("eu1"))
    });
    let global_url = format!("http://127.0.0.1:{}/thanos", global.http_port);
    let (status, answer) = common::http_get(global.http_port, "/thanos/").expect("answer");
    assert!(
        status == 303 && answer.is_empty(),
        "/thanos/ redirects to the UI"
    );
    assert_eq!(
        common::http_get(global.http_port, "/thanos/graph").map(|(s, _)| s),
        Some(200)
    );

    // 2023-11-15T00:30:00Z, inside the data.
    let at = "--time=2023-11-15T00:30:00Z";
    for expr in [
        "sum(rate(http_requests_total[5m]))",
        "sum by (code) (http_requests_total)",
        "temperature_celsius",
    ] {
        let ours = parse(&promtool_query(&rthanos, &["instant", at, expr]));
        let theirs = parse(&promtool_query(&prometheus, &["instant", at, expr]));
        let stacked = parse(&promtool_query(&global_url, &["instant", at, expr]));
        assert!(!ours.is_empty(), "{expr}");
        assert_eq!(ours, stacked, "{expr}: through a querier of queriers");
        assert_eq!(ours.len(), theirs.len(), "{expr}: {ours:?} {theirs:?}");
        for ((labels, v), (want_labels, want)) in ours.iter().zip(&theirs) {
            assert_eq!(labels, want_labels, "{expr}");
            // Summation order may differ in the last bit.
            assert!(
                (v - want).abs() <= 1e-12 * want.abs().max(1.0),
                "{expr}: {labels} {v} != {want}"
            );
        }
    }
    // Metadata: the same label values and series as Prometheus, plus the external labels
    // (less the replica label, with dedup).
    let json = |port: u16, path: &str| -> serde_json::Value {
        let (status, body) = common::http_get(port, path).expect("answer");
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("json")
    };
    let prometheus_port = replicas[0].prometheus.port;
    for path in ["/api/v1/label/code/values", "/api/v1/label/__name__/values"] {
        assert_eq!(
            json(query.http_port, path)["data"],
            json(prometheus_port, path)["data"],
            "{path}"
        );
    }
    let names = json(query.http_port, "/api/v1/labels")["data"].clone();
    let names: Vec<&str> = names
        .as_array()
        .expect("names")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        names.contains(&"cluster") && names.contains(&"code") && !names.contains(&"replica"),
        "{names:?}"
    );
    let series = json(
        query.http_port,
        "/api/v1/series?match[]=temperature_celsius",
    )["data"]
        .clone();
    let theirs = json(
        prometheus_port,
        "/api/v1/series?match[]=temperature_celsius",
    )["data"]
        .clone();
    let series = series.as_array().expect("series");
    assert_eq!(series.len(), theirs.as_array().map_or(0, Vec::len));
    assert!(
        series
            .iter()
            .all(|s| s["cluster"] == "eu1" && s["replica"].is_null())
    );

    let stores = json(query.http_port, "/api/v1/stores")["data"]["sidecar"].clone();
    let stores = stores.as_array().expect("sidecars");
    assert_eq!(stores.len(), 2);
    assert!(
        stores
            .iter()
            .all(|s| s["lastError"].is_null() && s["labelSets"][0]["cluster"] == "eu1")
    );

    // promtool's labels and series queries: the same as Prometheus's (external labels aside).
    // Their window is explicit: promtool's default (now ± 9999h) leaves the data out on any
    // date after 2025-01-04, and two empty answers would agree.
    let window = ["--start=2023-11-14T00:00:00Z", "--end=2023-11-16T00:00:00Z"];
    let labels = promtool_query(&rthanos, &[&["labels"], &window[..], &["code"]].concat());
    assert!(!labels.trim().is_empty(), "no values of code");
    assert_eq!(
        labels,
        promtool_query(&prometheus, &[&["labels"], &window[..], &["code"]].concat())
    );
    let series_args = [&["series"], &window[..], &["--match=temperature_celsius"]].concat();
    let series = promtool_query(&rthanos, &series_args);
    let theirs = promtool_query(&prometheus, &series_args);
    assert!(!theirs.trim().is_empty(), "no series in Prometheus");
    assert_eq!(series.lines().count(), theirs.lines().count(), "{series}");
    assert!(
        series
            .lines()
            .all(|l| l.contains("cluster=\"eu1\"") && !l.contains("replica=")),
        "{series}"
    );

    let range = promtool_query(
        &rthanos,
        &[
            "range",
            "--start=2023-11-15T00:00:00Z",
            "--end=2023-11-15T01:00:00Z",
            "--step=1m",
            "sum(http_requests_total)",
        ],
    );
    assert!(range.contains("@["), "{range}");

    // Request metrics under Thanos's names, for its dashboards and alerts.
    let (status, _) = common::http_get(
        query.http_port,
        &format!("/api/v1/query?query={}", common::urlencode("sum(")),
    )
    .expect("answer");
    assert_eq!(status, 400);
    let http = |handler: &str, code: &str| {
        common::metric_sum(
            query.http_port,
            "http_requests_total",
            &[("handler", handler), ("code", code)],
        )
    };
    assert!(http("query", "200") >= 3.0, "instant queries");
    // Under a route prefix, the same handler names.
    assert!(
        common::metric_sum(
            global.http_port,
            "http_requests_total",
            &[("handler", "query"), ("code", "200")],
        ) >= 3.0,
        "instant queries under /thanos"
    );
    assert!(http("query", "400") >= 1.0, "the malformed query");
    assert!(http("query_range", "200") >= 1.0);
    assert!(http("label_values", "200") >= 2.0);
    assert!(http("label_names", "200") >= 1.0);
    assert!(http("series", "200") >= 1.0);
    assert!(
        common::metric_sum(
            query.http_port,
            "http_request_duration_seconds_count",
            &[("handler", "query"), ("method", "get")],
        ) >= 1.0
    );
    let series_calls = [
        ("grpc_service", "thanos.Store"),
        ("grpc_method", "Series"),
        ("grpc_type", "server_stream"),
    ];
    let ok = [series_calls.as_slice(), &[("grpc_code", "OK")]].concat();
    // The querier's calls to the sidecars, as each sidecar saw them.
    let client_ok = common::metric_sum(query.http_port, "grpc_client_handled_total", &ok);
    let served_ok: f64 = replicas
        .iter()
        .map(|r| common::metric_sum(r.sidecar.http_port, "grpc_server_handled_total", &ok))
        .sum();
    assert!(client_ok >= 2.0, "{client_ok}");
    assert!(served_ok >= client_ok, "{served_ok} < {client_ok}");
    for replica in &replicas {
        let port = replica.sidecar.http_port;
        assert!(common::metric_sum(port, "grpc_server_msg_sent_total", &series_calls) >= 1.0);
        assert!(
            common::metric_sum(port, "grpc_server_handling_seconds_count", &series_calls) >= 1.0
        );
    }
    // Healthy endpoints by type: two sidecars below, one querier above.
    let connections = |port: u16, store_type: &str| {
        common::metric_sum(
            port,
            "thanos_store_nodes_grpc_connections",
            &[("store_type", store_type)],
        )
    };
    assert_eq!(connections(query.http_port, "sidecar"), 2.0);
    assert_eq!(connections(global.http_port, "query"), 1.0);
    // The querier below served the global one.
    assert!(common::metric_sum(query.http_port, "grpc_server_started_total", &series_calls) >= 1.0);
}

/// promtool's lines (`{labels} => value @[t]`) as sorted (labels, value), with rthanos's
/// external label `cluster` left out (Prometheus's own answer does not carry it).
fn parse(output: &str) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = output
        .lines()
        .filter_map(|line| {
            let (labels, rest) = line.split_once(" => ")?;
            let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
            let labels = labels
                .replace(", cluster=\"eu1\"", "")
                .replace("cluster=\"eu1\", ", "")
                .replace("cluster=\"eu1\"", "");
            Some((labels, value))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
