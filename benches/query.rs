//! A heavy range query through `rthanos query` → 2 sidecars → 2 Prometheus 2.42 replicas
//! (the same 10k series × 24h in each, external labels replica=a / b, deduplicated), against
//! the same query sent straight to one of the Prometheus. Wall time of the whole HTTP request,
//! JSON included, on both sides; median of 5 after one warm-up. The aim is ≤ 1.3× Prometheus.
//!
//! Run: `cargo bench --bench query`. Dataset: benches/shared/dataset.rs. Figures:
//! docs/performance.md.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "shared/dataset.rs"]
mod dataset;
#[path = "shared/stack.rs"]
mod stack;

use std::time::Instant;

use dataset::{START_S, peak_rss_mib, reqwest_blocking, urlencode};
use stack::Stack;

const QUERIES: &[&str] = &[
    "sum by (job) (rate(http_requests_total[5m]))",
    "histogram_quantile(0.9, sum by (le, job) (rate(request_duration_seconds_bucket[5m])))",
    "sum by (instance) (rate(http_requests_total[5m]))",
];

/// Wall time of one range query over the 24h at a 60s step, and the number of series.
fn range_query(port: u16, query: &str) -> (f64, usize) {
    let url = format!(
        "http://127.0.0.1:{port}/api/v1/query_range?query={}&start={}&end={}&step=60",
        urlencode(query),
        START_S,
        START_S + 24 * 3600
    );
    let started = Instant::now();
    let body = reqwest_blocking(&url);
    let elapsed = started.elapsed().as_secs_f64();
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["status"], "success", "{body:.300}");
    (
        elapsed,
        json["data"]["result"].as_array().map_or(0, Vec::len),
    )
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let stack = Stack::start(&[]);
    let (query, sidecars) = (&stack.query, &stack.sidecars);
    let prometheus_port = stack.replicas[0].1.port;

    let runs = 5;
    println!(
        "| query | Prometheus 2.42 direct (median of {runs}) | rthanos query → 2 sidecars (median of {runs}) | ratio | series |"
    );
    println!("|---|---|---|---|---|");
    for q in QUERIES {
        // One warm-up each: both sides then answer from the page cache.
        let (_, theirs_series) = range_query(prometheus_port, q);
        let (_, ours_series) = range_query(query.http_port, q);
        assert_eq!(theirs_series, ours_series, "{q}: same series");
        let theirs = median(
            (0..runs)
                .map(|_| range_query(prometheus_port, q).0)
                .collect(),
        );
        let ours = median(
            (0..runs)
                .map(|_| range_query(query.http_port, q).0)
                .collect(),
        );
        println!(
            "| `{q}` | {:.0} ms | {:.0} ms | {:.2} | {ours_series} |",
            theirs * 1000.0,
            ours * 1000.0,
            ours / theirs
        );
    }
    println!(
        "peak RSS: rthanos query {:.0} MiB, sidecars {:.0} / {:.0} MiB",
        peak_rss_mib(query.pid()),
        peak_rss_mib(sidecars[0].pid()),
        peak_rss_mib(sidecars[1].pid()),
    );
}
