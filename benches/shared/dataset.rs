//! The 10k-series × 24h dataset the PromQL and query benchmarks share, made once with
//! promtool and cached under `$CARGO_TARGET_DIR/bench-data/promql-10k-24h`, and the small
//! helpers both use.
#![allow(dead_code, unreachable_pub)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rthanos_testkit::openmetrics::Rng;

/// 2023-11-15T00:00:00Z: the first sample.
pub const START_S: i64 = 1_700_006_400;
const STEPS: i64 = 24 * 3600 / 15;

/// The OpenMetrics text: 5000 request counters, 4000 histogram buckets, 900 CPU counters, 100
/// build_info gauges; one sample every 15 s for 24 h.
fn write_openmetrics(path: &Path) {
    let file = std::fs::File::create(path).expect("create");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut rng = Rng(7);
    let mut line = String::with_capacity(128);
    let ts = |k: i64| format!("{}", START_S + k * 15);
    writeln!(
        out,
        "# HELP http_requests Requests.\n# TYPE http_requests counter"
    )
    .expect("w");
    for job in 0..10 {
        for instance in 0..100 {
            for code in [200, 201, 404, 500, 503] {
                let mut v = (rng.next_u64() % 1000) as f64;
                for k in 0..STEPS {
                    v += (rng.next_u64() % 20) as f64;
                    line.clear();
                    let _ = writeln!(
                        line,
                        "http_requests_total{{code=\"{code}\",instance=\"host-{instance:03}\",job=\"api-{job}\"}} {v} {}",
                        ts(k)
                    );
                    out.write_all(line.as_bytes()).expect("w");
                }
            }
        }
    }
    writeln!(
        out,
        "# HELP request_duration_seconds Latency.\n# TYPE request_duration_seconds histogram"
    )
    .expect("w");
    let bounds = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
    ];
    for job in 0..4 {
        for instance in 0..100 {
            // Cumulative counts per bucket, for every step.
            let mut counts = vec![vec![0f64; bounds.len()]; STEPS as usize];
            let mut totals = vec![0f64; bounds.len()];
            for step in counts.iter_mut() {
                for _ in 0..(rng.next_u64() % 10) {
                    let b = (rng.next_u64() % bounds.len() as u64) as usize;
                    for t in totals.iter_mut().skip(b) {
                        *t += 1.0;
                    }
                }
                step.copy_from_slice(&totals);
            }
            for (b, le) in bounds.iter().enumerate() {
                for (k, step) in counts.iter().enumerate() {
                    line.clear();
                    let _ = writeln!(
                        line,
                        "request_duration_seconds_bucket{{instance=\"host-{instance:03}\",job=\"api-{job}\",le=\"{le}\"}} {} {}",
                        step[b],
                        ts(k as i64)
                    );
                    out.write_all(line.as_bytes()).expect("w");
                }
            }
        }
    }
    writeln!(
        out,
        "# HELP process_cpu_seconds CPU.\n# TYPE process_cpu_seconds counter"
    )
    .expect("w");
    for job in 0..9 {
        for instance in 0..100 {
            let mut v = 0.0;
            for k in 0..STEPS {
                v += (rng.next_u64() % 100) as f64 / 100.0;
                line.clear();
                let _ = writeln!(
                    line,
                    "process_cpu_seconds_total{{instance=\"host-{instance:03}\",job=\"node-{job}\"}} {v} {}",
                    ts(k)
                );
                out.write_all(line.as_bytes()).expect("w");
            }
        }
    }
    writeln!(out, "# HELP build_info Build.\n# TYPE build_info gauge").expect("w");
    for instance in 0..100 {
        for k in 0..STEPS {
            line.clear();
            let _ = writeln!(
                line,
                "build_info{{instance=\"host-{instance:03}\",version=\"v{}\"}} 1 {}",
                instance % 3,
                ts(k)
            );
            out.write_all(line.as_bytes()).expect("w");
        }
    }
    writeln!(out, "# EOF").expect("w");
    out.flush().expect("flush");
}

/// The promtool-made data directory, made once.
pub fn data_dir() -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let dir = target.join("bench-data/promql-10k-24h");
    if dir.join("done").exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let input = dir.join("input.om");
    eprintln!("generating 57.6M samples of OpenMetrics…");
    write_openmetrics(&input);
    eprintln!("promtool tsdb create-blocks-from openmetrics…");
    let status = std::process::Command::new(rthanos_testkit::promtool())
        .args([
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=24h",
        ])
        .arg(&input)
        .arg(dir.join("data"))
        .status()
        .expect("promtool");
    assert!(status.success(), "promtool failed");
    std::fs::remove_file(&input).expect("rm input");
    std::fs::write(dir.join("done"), b"").expect("mark");
    dir
}

pub fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn reqwest_blocking(url: &str) -> String {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        reqwest::get(url)
            .await
            .expect("GET")
            .text()
            .await
            .expect("body")
    })
}
