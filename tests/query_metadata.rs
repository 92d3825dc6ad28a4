//! Metric metadata and exemplars through `rthanos query`: two real Prometheus 2.42 replicas
//! (exemplar storage on) scrape the same target, which exposes OpenMetrics with an exemplar;
//! their sidecars serve Thanos's Metadata and Exemplars APIs. The querier's
//! `/api/v1/metadata` answers what Prometheus answers, and `/api/v1/query_exemplars` gives
//! Prometheus's exemplars once per series with dedup (the external labels on, the replica
//! label off), and per replica without.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// A scrape target answering every request with OpenMetrics text carrying an exemplar at
/// `exemplar_ts` (Unix seconds).
fn serve_target(listener: &std::net::TcpListener, exemplar_ts: i64) {
    let body = format!(
        "# TYPE test_requests counter\n# HELP test_requests Requests served.\n\
         test_requests_total{{path=\"/\"}} 42 # {{trace_id=\"abc123\"}} 1.5 {exemplar_ts}.250\n\
         # TYPE test_temperature_celsius gauge\n# HELP test_temperature_celsius Room temperature.\n# UNIT test_temperature_celsius celsius\n\
         test_temperature_celsius 21.5\n# EOF\n"
    );
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request);
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

fn json(port: u16, path: &str) -> serde_json::Value {
    let (status, body) = common::http_get(port, path).expect("answer");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("json")
}

#[test]
fn metadata_and_exemplars_come_through_the_querier() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let exemplar_ts = now - 30;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = listener.local_addr().expect("addr");
    std::thread::spawn(move || serve_target(&listener, exemplar_ts));

    let replicas: Vec<common::Replica> = ["a", "b"]
        .iter()
        .map(|name| {
            let config = format!(
                "global:\n  scrape_interval: 1s\n  external_labels:\n    cluster: eu1\n    replica: {name}\n\
                 scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{target}']\n"
            );
            common::Replica::start_with(None, &config, &["--enable-feature=exemplar-storage"], &[])
        })
        .collect();
    let (start, end) = (now - 600, now + 600);
    let exemplars_path =
        format!("/api/v1/query_exemplars?query=test_requests_total&start={start}&end={end}");
    // Both replicas have scraped the target.
    let deadline = Instant::now() + Duration::from_secs(30);
    for prometheus in replicas.iter().map(|r| &r.prometheus) {
        while json(prometheus.port, &exemplars_path)["data"]
            .as_array()
            .is_none_or(Vec::is_empty)
            || json(
                prometheus.port,
                "/api/v1/metadata?metric=test_temperature_celsius",
            )["data"]
                .as_object()
                .is_none_or(serde_json::Map::is_empty)
        {
            assert!(
                Instant::now() < deadline,
                "Prometheus did not scrape the target: {}",
                json(prometheus.port, "/api/v1/targets")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    let query = common::start_query(replicas.iter().map(|r| &r.sidecar), &[]);
    let prometheus = replicas[0].prometheus.port;

    // Metadata: as Prometheus answers, for one metric and for all.
    for path in [
        "/api/v1/metadata?metric=test_temperature_celsius",
        "/api/v1/metadata?metric=test_requests",
    ] {
        assert_eq!(
            json(query.http_port, path)["data"],
            json(prometheus, path)["data"],
            "{path}"
        );
    }
    let all = json(query.http_port, "/api/v1/metadata")["data"].clone();
    let theirs = json(prometheus, "/api/v1/metadata")["data"].clone();
    let names = |v: &serde_json::Value| -> Vec<String> {
        // Prometheus's order is Go's map order: compare as sets.
        let mut names: Vec<String> = v
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    };
    assert_eq!(names(&all), names(&theirs));
    assert_eq!(
        json(query.http_port, "/api/v1/metadata?limit=1")["data"]
            .as_object()
            .map_or(0, serde_json::Map::len),
        1
    );

    // Exemplars: Prometheus's, with the external labels, once with dedup.
    let ours = json(query.http_port, &exemplars_path)["data"].clone();
    let theirs = json(prometheus, &exemplars_path)["data"].clone();
    let ours = ours.as_array().expect("series");
    assert_eq!(ours.len(), 1, "{ours:?}");
    let labels = &ours[0]["seriesLabels"];
    assert_eq!(labels["cluster"], "eu1");
    assert!(labels["replica"].is_null(), "{labels}");
    assert_eq!(labels["__name__"], "test_requests_total");
    assert_eq!(ours[0]["exemplars"], theirs[0]["exemplars"]);
    assert_eq!(ours[0]["exemplars"][0]["labels"]["trace_id"], "abc123");
    assert_eq!(ours[0]["exemplars"][0]["value"], "1.5");
    // Byte for byte too: the time as Prometheus writes it (`….250`, not `….25`).
    let exemplars_text = |port| {
        let (_, body) = common::http_get(port, &exemplars_path).expect("exemplars");
        let from = body.find(r#""exemplars":"#).expect("exemplars key");
        body[from..]
            .split(']')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(exemplars_text(query.http_port), exemplars_text(prometheus));
    assert!(
        exemplars_text(prometheus).contains(".250}"),
        "{}",
        exemplars_text(prometheus)
    );

    // Matchers on external labels are answered by the querier (Prometheus knows none).
    let by_cluster = |cluster: &str| {
        json(
            query.http_port,
            &format!(
                "/api/v1/query_exemplars?query=test_requests_total%7Bcluster%3D%22{cluster}%22%7D&start={start}&end={end}"
            ),
        )["data"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(by_cluster("eu1"), 1);
    assert_eq!(by_cluster("us1"), 0);

    let per_replica = json(query.http_port, &format!("{exemplars_path}&dedup=false"))["data"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(per_replica, 2);

    // Through a querier stacked on this one's StoreAPI: the same metadata and exemplars.
    let mut global = common::start_query([&query], &[]);
    let metadata_path = "/api/v1/metadata?metric=test_temperature_celsius";
    global.wait_for(Duration::from_secs(30), "metadata through the stack", |g| {
        common::http_get(g.http_port, metadata_path)
            .is_some_and(|(_, body)| body.contains("celsius\""))
    });
    assert_eq!(
        json(global.http_port, metadata_path)["data"],
        json(prometheus, metadata_path)["data"]
    );
    assert_eq!(
        json(global.http_port, &exemplars_path)["data"][0]["exemplars"],
        theirs[0]["exemplars"]
    );

    // A malformed query is Prometheus's bad_data.
    let (status, body) = common::http_get(
        query.http_port,
        &format!("/api/v1/query_exemplars?query=sum(&start={start}&end={end}"),
    )
    .expect("answer");
    assert_eq!(status, 400, "{body}");
}
