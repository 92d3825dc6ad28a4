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

/// One round's latencies in milliseconds: the loaded querier's `/-/healthy`, `/-/ready` and
/// gRPC health, then the idle control querier's `/-/healthy`.
type Round = [f64; 4];

const PROBES: [&str; 4] = [
    "/-/healthy",
    "/-/ready",
    "gRPC health",
    "control /-/healthy",
];

/// Rounds of probes, one every 50ms for `period`, each with its start (seconds since `t0`).
fn probe(
    http_port: u16,
    grpc: &str,
    control_port: u16,
    t0: Instant,
    period: Duration,
) -> Vec<(f64, Round)> {
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
    let mut rounds = Vec::new();
    let until = Instant::now() + period;
    let http = |port: u16, path: &str| {
        let started = Instant::now();
        let answer = common::http_get(port, path);
        assert!(matches!(answer, Some((200, _))), "{path}: {answer:?}");
        started.elapsed().as_secs_f64() * 1000.0
    };
    while Instant::now() < until {
        let at = t0.elapsed().as_secs_f64();
        let healthy = http(http_port, "/-/healthy");
        let ready = http(http_port, "/-/ready");
        let started = Instant::now();
        runtime
            .block_on(health.check(HealthCheckRequest {
                service: String::new(),
            }))
            .expect("gRPC health");
        let grpc = started.elapsed().as_secs_f64() * 1000.0;
        let control = http(control_port, "/-/healthy");
        rounds.push((at, [healthy, ready, grpc, control]));
        std::thread::sleep(Duration::from_millis(50));
    }
    rounds
}

/// The machine's CPU time stolen by the hypervisor so far, in clock ticks (/proc/stat).
fn steal_ticks() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            let cpu = stat.lines().next()?.to_string();
            cpu.split_whitespace().nth(8)?.parse().ok()
        })
        .unwrap_or(0)
}

fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn report(label: &str, rounds: &[(f64, Round)]) {
    for (i, name) in PROBES.iter().enumerate() {
        let values: Vec<f64> = rounds.iter().map(|(_, r)| r[i]).collect();
        println!(
            "| {label} | {name} | {} | {:.1} ms | {:.1} ms | {:.1} ms |",
            values.len(),
            quantile(&values, 0.5),
            quantile(&values, 0.99),
            quantile(&values, 1.0)
        );
    }
    // Every slow round whole: a stall of the control too is the machine's, not the querier's.
    for (at, round) in rounds
        .iter()
        .filter(|(_, r)| r.iter().any(|&ms| ms > 100.0))
    {
        println!("slow round at {at:.2}s: {round:.1?}");
    }
}

fn main() {
    let stack = Stack::start(&[format!("--query.max-concurrent={CLIENTS}")]);
    let query = &stack.query;
    let (http_port, grpc) = (query.http_port, query.grpc_addr());
    // The same binary with no endpoints and no load: what the machine alone costs a probe.
    let mut control =
        common::Process::start(&["query".to_string(), "--log.level=warn".to_string()]);
    control.wait_ready(Duration::from_secs(60));
    let t0 = Instant::now();

    println!("| load | probe | probes | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    report(
        "none",
        &probe(
            http_port,
            &grpc,
            control.http_port,
            t0,
            Duration::from_secs(10),
        ),
    );

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
    let steal_before = steal_ticks();
    let loaded = probe(http_port, &grpc, control.http_port, t0, LOADED_FOR);
    let stolen = steal_ticks() - steal_before;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client");
    }
    report(&format!("{CLIENTS} clients, heavy range queries"), &loaded);
    println!(
        "heavy range queries answered meanwhile: {}",
        answered.load(Ordering::Relaxed)
    );
    println!("CPU time stolen by the hypervisor meanwhile: {stolen} ticks");
}
