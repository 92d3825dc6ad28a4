//! Series throughput of `rthanos sidecar` over a real Prometheus holding 10k series × 24h,
//! against Prometheus's own remote read (what the sidecar adds), and the sidecar's peak memory
//! for answers of 1k and 10k series (it must not grow with the number of series returned).
//! Run: `cargo bench --bench sidecar`. Figures: docs/performance.md.

#[path = "shared/blocks.rs"]
mod blocks;
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use criterion::{Criterion, Throughput};
use futures::StreamExt;
use rthanos_model::{MatchType, Matcher};
use rthanos_sidecar::prometheus::read_query;
use rthanos_sidecar::{HttpClientConfig, PrometheusClient};
use rthanos_storeapi::thanos::{LabelMatcher, SeriesRequest, series_response::Result as Frame};
use rthanos_storeapi::{ClientOptions, GrpcStore, Store};
use rthanos_testkit::Prometheus;

const BLOCKS: i64 = 12;

/// Twelve 2h blocks of 10k counters scraped every 30s: 28.8M samples, chunks of 120 samples.
fn write_blocks(dir: &std::path::Path) -> u64 {
    blocks::write_blocks(dir, BLOCKS, None)
}

/// Samples and chunk bytes of one remote read straight from Prometheus.
async fn remote_read(client: &PrometheusClient, matchers: &[Matcher]) -> (u64, u64) {
    let frames = client
        .remote_read(read_query(matchers, i64::MIN, i64::MAX))
        .await
        .expect("remote read");
    let mut frames = std::pin::pin!(frames);
    let (mut samples, mut bytes) = (0, 0);
    while let Some(frame) = frames.next().await {
        for series in frame.expect("frame").chunked_series {
            for chunk in series.chunks {
                samples += u64::from(u16::from_be_bytes([chunk.data[0], chunk.data[1]]));
                bytes += chunk.data.len() as u64;
            }
        }
    }
    (samples, bytes)
}

/// Samples and chunk bytes of one Series call to the sidecar.
async fn series(store: &GrpcStore, matchers: &[LabelMatcher]) -> (u64, u64) {
    let mut frames = store
        .series(SeriesRequest {
            min_time: i64::MIN,
            max_time: i64::MAX,
            matchers: matchers.to_vec(),
            ..Default::default()
        })
        .await
        .expect("series");
    let (mut samples, mut bytes) = (0, 0);
    while let Some(frame) = frames.next().await {
        if let Some(Frame::Series(s)) = frame.expect("frame").result {
            for chunk in s.chunks {
                let data = chunk.raw.expect("raw").data;
                samples += u64::from(u16::from_be_bytes([data[0], data[1]]));
                bytes += data.len() as u64;
            }
        }
    }
    (samples, bytes)
}

fn start_sidecar(prometheus: &Prometheus, tsdb: &std::path::Path) -> common::Process {
    let mut sidecar = common::Process::start(&[
        "sidecar".to_string(),
        format!("--prometheus.url={}", prometheus.url()),
        format!("--tsdb.path={}", tsdb.display()),
        "--log.level=warn".to_string(),
    ]);
    sidecar.wait_ready(Duration::from_secs(60));
    sidecar
}

/// Peak resident memory of a process (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let data = tempfile::tempdir().expect("tmp");
    let total = write_blocks(data.path());
    let prometheus = Prometheus::start(
        data.path(),
        "global:\n  external_labels:\n    cluster: bench\n    replica: a\n",
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _context = runtime.enter();
    let client =
        PrometheusClient::new(&prometheus.url(), &HttpClientConfig::default()).expect("client");
    let sidecar = start_sidecar(&prometheus, data.path());
    let store = GrpcStore::connect(&sidecar.grpc_addr(), &ClientOptions::default()).expect("grpc");

    let all = [Matcher::new(MatchType::Equal, "job", "node").expect("matcher")];
    let all_grpc = [LabelMatcher {
        r#type: 0,
        name: "job".into(),
        value: "node".into(),
    }];
    let (samples, bytes) = runtime.block_on(remote_read(&client, &all));
    assert_eq!(samples, total, "remote read returns every sample");
    assert_eq!(
        runtime.block_on(series(&store, &all_grpc)),
        (samples, bytes)
    );
    eprintln!("dataset: 10000 series, {samples} samples, {bytes} chunk bytes");
    if std::env::var_os("SIDECAR_BENCH_ONE_QUERY").is_some() {
        // For profiling the sidecar (RTHANOS_WRAPPER="valgrind --tool=callgrind …"): the
        // queries above were all; stop it gracefully so the tool writes its output.
        drop(store);
        let pid = sidecar.pid();
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
        std::thread::sleep(Duration::from_secs(10));
        return;
    }

    let mut criterion = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .configure_from_args();
    let mut group = criterion.benchmark_group("series_10k_series_24h");
    group.throughput(Throughput::Elements(samples));
    group.bench_function("prometheus_remote_read", |b| {
        b.iter(|| runtime.block_on(remote_read(&client, &all)));
    });
    group.bench_function("sidecar_series_grpc", |b| {
        b.iter(|| runtime.block_on(series(&store, &all_grpc)));
    });
    group.finish();

    // CPU the sidecar spends per answer of every series (user + system), against the CPU
    // Prometheus spends producing the remote read.
    let cpu = |pid: u32| -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, r)| r)
            .split_whitespace()
            .collect();
        let ticks: f64 =
            fields[11].parse::<f64>().unwrap_or(0.0) + fields[12].parse::<f64>().unwrap_or(0.0);
        ticks / 100.0
    };
    let rounds = 10;
    let (sidecar_before, prometheus_before) = (cpu(sidecar.pid()), cpu(prometheus.pid()));
    for _ in 0..rounds {
        runtime.block_on(series(&store, &all_grpc));
    }
    eprintln!(
        "CPU per Series of all 10k series: sidecar {:.0} ms, Prometheus {:.0} ms",
        (cpu(sidecar.pid()) - sidecar_before) * 1000.0 / f64::from(rounds),
        (cpu(prometheus.pid()) - prometheus_before) * 1000.0 / f64::from(rounds),
    );
    drop(sidecar);

    // Peak memory of a fresh sidecar answering 1k, then 10k series.
    for (label, value) in [("1k series", "metric_00[0-9]"), ("10k series", ".+")] {
        let sidecar = start_sidecar(&prometheus, data.path());
        let store =
            GrpcStore::connect(&sidecar.grpc_addr(), &ClientOptions::default()).expect("grpc");
        let pid = sidecar.pid();
        let before = peak_rss_mib(pid);
        let matchers = [LabelMatcher {
            r#type: 2,
            name: "__name__".into(),
            value: value.into(),
        }];
        let mut answered = (0, 0);
        for _ in 0..3 {
            answered = runtime.block_on(series(&store, &matchers));
        }
        eprintln!(
            "sidecar peak RSS answering {label} ({} samples, {} MiB of chunks): {:.1} MiB (at start {:.1} MiB)",
            answered.0,
            answered.1 >> 20,
            peak_rss_mib(pid),
            before
        );
    }
    criterion.final_summary();
}
