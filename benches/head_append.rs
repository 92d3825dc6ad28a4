//! The head's append path beside Prometheus 2.42's, on the same workload: `promtool tsdb
//! bench write` (10,000 series, 3,000 scrapes 30s apart, shards of 1,000 series each
//! committing one scrape at a time, all shards at once, compactions off, WAL on) and the same
//! scrapes through `rthanos_tsdb::db::Db`, each in a process of its own under GNU time for
//! its peak resident memory. Reports samples per second and resident bytes per series.
//!
//! Run: `cargo bench --bench head_append`. Figures: docs/performance.md.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use rthanos_model::Labels;
use rthanos_tsdb::db::{Db, DbOptions};

const SERIES: usize = 10_000;
const SCRAPES: usize = 3_000;
const SHARD: usize = 1_000;
const ROUND: usize = 100;
/// promtool's `timeDelta`.
const INTERVAL: i64 = 30_000;
const CHILD: &str = "RTHANOS_HEAD_APPEND_CHILD";

/// Kubernetes-like label sets: 10 jobs × pods × metric names, as a cluster's scrapes have.
fn label_sets() -> Vec<Vec<(String, String)>> {
    (0..SERIES)
        .map(|i| {
            vec![
                ("__name__".into(), format!("http_requests_total_{}", i % 50)),
                ("job".into(), format!("service-{}", i % 10)),
                ("namespace".into(), format!("team-{}", i % 7)),
                ("pod".into(), format!("service-{}-{:x}", i % 10, i / 50)),
                (
                    "instance".into(),
                    format!("10.0.{}.{}:8080", i / 250, i % 250),
                ),
                ("code".into(), ["200", "404", "500"][i % 3].into()),
            ]
        })
        .collect()
}

/// The label sets in promtool's input format: a JSON object per line.
fn write_promtool_input(path: &Path) {
    let lines: Vec<String> = label_sets()
        .iter()
        .map(|set| {
            let pairs: Vec<String> = set
                .iter()
                .map(|(n, v)| format!("\"{n}\":\"{v}\""))
                .collect();
            format!("{{{}}}", pairs.join(","))
        })
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").expect("write input");
}

/// The child: the scrapes into a Db in `dir`; prints samples/s.
fn ingest(dir: &Path) {
    let (db, _) = Db::open(dir, DbOptions::default()).expect("open");
    let labels: Vec<Labels> = label_sets().into_iter().map(Labels::from_pairs).collect();
    let started = Instant::now();
    let mut total = 0usize;
    for round in (0..SCRAPES).step_by(ROUND) {
        let base = INTERVAL * round as i64;
        total += std::thread::scope(|scope| {
            let shards: Vec<_> = labels
                .chunks(SHARD)
                .map(|shard| {
                    let db = &db;
                    scope.spawn(move || {
                        let mut n = 0;
                        let mut value = 123_456_789i64 + 1000 * round as i64;
                        // References from the first append, as promtool's benchmark keeps.
                        let mut refs = vec![0u64; shard.len()];
                        for scrape in 0..ROUND {
                            let t = base + INTERVAL * (scrape as i64 + 1);
                            value += 1000;
                            let mut app = db.appender();
                            for (l, reference) in shard.iter().zip(refs.iter_mut()) {
                                *reference = if *reference == 0 {
                                    app.append(l, t, value as f64)
                                } else {
                                    app.append_ref(*reference, l, t, value as f64)
                                }
                                .expect("append");
                                n += 1;
                            }
                            app.commit().expect("commit");
                        }
                        n
                    })
                })
                .collect();
            shards
                .into_iter()
                .map(|s| s.join().expect("shard"))
                .sum::<usize>()
        });
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(" > total samples: {total}");
    println!(" > samples/sec: {}", total as f64 / seconds);
    db.close().expect("close");
}

/// Runs `command` under GNU time: (its stdout, peak resident KiB).
fn timed(command: &mut Command) -> (String, u64) {
    let out = command.output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rss = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.parse().ok())
        .expect("GNU time's report");
    (String::from_utf8_lossy(&out.stdout).to_string(), rss)
}

fn samples_per_second(stdout: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("> samples/sec: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("samples/sec in the output")
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD) {
        ingest(Path::new(&dir));
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("series.json");
    write_promtool_input(&input);
    println!("| head | samples/s | peak RSS | RSS per series |");
    println!("|---|---|---|---|");
    for _ in 0..3 {
        let out = tmp.path().join("promtool");
        let (stdout, rss) = timed(
            Command::new("/usr/bin/time")
                .arg("-v")
                .arg(rthanos_testkit::promtool())
                .args(["tsdb", "bench", "write"])
                .arg(format!("--metrics={SERIES}"))
                .arg(format!("--scrapes={SCRAPES}"))
                .arg(format!("--out={}", out.display()))
                .arg(&input),
        );
        report("Prometheus 2.42 (promtool tsdb bench write)", &stdout, rss);
        let _ = std::fs::remove_dir_all(&out);

        let dir = tmp.path().join("rthanos");
        let (stdout, rss) = timed(
            Command::new("/usr/bin/time")
                .arg("-v")
                .arg(std::env::current_exe().expect("bench binary"))
                .env(CHILD, &dir),
        );
        report("rthanos-tsdb Db", &stdout, rss);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn report(name: &str, stdout: &str, rss_kib: u64) {
    println!(
        "| {name} | {:.0} | {:.0} MiB | {:.0} B |",
        samples_per_second(stdout),
        rss_kib as f64 / 1024.0,
        rss_kib as f64 * 1024.0 / SERIES as f64
    );
}
