//! Probe latency under load: `rthanos query` → 2 sidecars → 2 Prometheus 2.42 replicas (the
//! dataset of the query benchmark, 10k series × 24h each), with `--query.max-concurrent`
//! clients each sending heavy range queries back to back, while `/-/healthy`, `/-/ready` and
//! gRPC health (`grpc.health.v1.Health/Check`) are asked every 50ms. The same probes with no
//! load first, as the baseline. The aim: every probe under 100ms while the querier evaluates
//! on both cores.
//!
//! Run: `cargo bench --bench probes`. Figures: docs/performance.md.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "shared/dataset.rs"]
mod dataset;
#[path = "shared/stack.rs"]
mod stack;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dataset::{START_S, reqwest_blocking, urlencode};
use stack::Stack;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const CLIENTS: usize = 4;
const LOADED_FOR: Duration = Duration::from_secs(30);
const QUERIES: &[&str] = &[
    "sum by (job) (rate(http_requests_total[5m]))",
    "histogram_quantile(0.9, sum by (le, job) (rate(request_duration_seconds_bucket[5m])))",
];

/// Milliseconds of each probe kind, asked every 50ms for `period`.
fn probe(http_port: u16, grpc: &str, period: Duration) -> [Vec<f64>; 3] {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let channel = runtime
        .block_on(
            tonic::transport::Channel::from_shared(format!("http://{grpc}"))
                .expect("address")
                .connect(),
        )
        .expect("gRPC connection");
    let mut health = HealthClient::new(channel);
    let mut out = [Vec::new(), Vec::new(), Vec::new()];
    let until = Instant::now() + period;
    while Instant::now() < until {
        for (i, path) in ["/-/healthy", "/-/ready"].into_iter().enumerate() {
            let started = Instant::now();
            let answer = common::http_get(http_port, path);
            out[i].push(started.elapsed().as_secs_f64() * 1000.0);
            assert!(matches!(answer, Some((200, _))), "{path}: {answer:?}");
        }
        let started = Instant::now();
        runtime
            .block_on(health.check(HealthCheckRequest {
                service: String::new(),
            }))
            .expect("gRPC health");
        out[2].push(started.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(50));
    }
    out
}

fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn report(label: &str, probes: &[Vec<f64>; 3]) {
    for (name, values) in ["/-/healthy", "/-/ready", "gRPC health"].iter().zip(probes) {
        println!(
            "| {label} | {name} | {} | {:.1} ms | {:.1} ms | {:.1} ms |",
            values.len(),
            quantile(values, 0.5),
            quantile(values, 0.99),
            quantile(values, 1.0)
        );
    }
}

fn main() {
    let stack = Stack::start(&[format!("--query.max-concurrent={CLIENTS}")]);
    let query = &stack.query;
    let (http_port, grpc) = (query.http_port, query.grpc_addr());

    println!("| load | probe | probes | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    report("none", &probe(http_port, &grpc, Duration::from_secs(10)));

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
            std::thread::spawn(move || {
                let url = format!(
                    "http://127.0.0.1:{http_port}/api/v1/query_range?query={}&start={}&end={}&step=60",
                    urlencode(QUERIES[i % QUERIES.len()]),
                    START_S,
                    START_S + 24 * 3600
                );
                while !stop.load(Ordering::Relaxed) {
                    let body = reqwest_blocking(&url);
                    assert!(body.contains("\"success\""), "{body:.300}");
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Let every client's first query reach evaluation.
    std::thread::sleep(Duration::from_secs(2));
    let loaded = probe(http_port, &grpc, LOADED_FOR);
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client");
    }
    report(&format!("{CLIENTS} clients, heavy range queries"), &loaded);
    println!(
        "heavy range queries answered meanwhile: {}",
        answered.load(Ordering::Relaxed)
    );
}
