//! Compaction and downsampling: rthanos against Prometheus 2.42 on the same 12 × 2h blocks
//! of 10k counters (24h, 28.8 M samples, written by rthanos's block writer).
//!
//! - rthanos, in process: the 12 blocks merged into one (what the compactor does for a full
//!   range), median of 3.
//! - `rthanos compact` (the binary, FILESYSTEM bucket, downsampling off): a whole iteration,
//!   wall time and peak resident memory (VmHWM polled).
//! - Prometheus 2.42 over a copy of the blocks (`--storage.tsdb.max-block-duration=24h`):
//!   each compaction it logs (`msg="compact blocks" … duration=…`), and its peak memory.
//! - Downsampling of the merged 24h block to 5m, in process: raw samples per second.
//!
//! Run: `cargo bench --bench compact`. The blocks are cached under
//! `$CARGO_TARGET_DIR/bench-data/compact-12`. Figures: docs/performance.md.

#[path = "shared/blocks.rs"]
mod blocks;
#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rthanos_tsdb::Block;
use rthanos_tsdb::meta::ThanosMeta;

const BLOCKS: i64 = 12;

fn thanos() -> ThanosMeta {
    ThanosMeta {
        labels: [("cluster".to_string(), "bench".to_string())].into(),
        source: "sidecar".into(),
        ..Default::default()
    }
}

fn blocks_dir() -> (PathBuf, u64) {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let dir = target.join("bench-data/compact-12");
    let blocks = dir.join("blocks");
    let samples = (BLOCKS as u64) * (blocks::METRICS * blocks::INSTANCES) as u64 * 240;
    if dir.join("done").exists() {
        return (blocks, samples);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&blocks).expect("mkdir");
    eprintln!("writing 12 blocks of 10k series…");
    blocks::write_blocks(&blocks, BLOCKS, Some(&thanos()));
    std::fs::write(dir.join("done"), b"").expect("mark");
    (blocks, samples)
}

fn block_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("meta.json").is_file())
        .collect();
    out.sort();
    out
}

fn status_kb(pid: u32, field: &str) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn copy_blocks(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for block in block_dirs(from) {
        let name = block.file_name().expect("name");
        rthanos_testkit::copy_dir(&block, &to.join(name));
    }
}

fn main() {
    let (dir, samples) = blocks_dir();
    let mut report = String::new();
    report.push_str(&format!(
        "## compact: {BLOCKS} × 2h blocks × 10k series, {samples} samples\n\n"
    ));

    // rthanos in process: 12 blocks merged into one.
    let mut times = Vec::new();
    let mut merged_dir = None;
    let work = tempfile::tempdir().expect("tmp");
    for run in 0..3 {
        let out = work.path().join(format!("merge-{run}"));
        std::fs::create_dir_all(&out).expect("mkdir");
        let sources: Vec<Block> = block_dirs(&dir)
            .iter()
            .map(|p| Block::open(p).expect("open"))
            .collect();
        let started = Instant::now();
        let meta = rthanos_compact::merge::merge_blocks(&sources, &out, thanos())
            .expect("merge")
            .expect("a block");
        times.push(started.elapsed());
        merged_dir = Some(out.join(&meta.ulid));
    }
    times.sort();
    let merge = times[1];
    report.push_str(&format!(
        "rthanos merge (in process, median of 3): {:.2} s, {:.1} M samples/s\n",
        merge.as_secs_f64(),
        samples as f64 / merge.as_secs_f64() / 1e6
    ));

    // The rthanos compactor binary on a FILESYSTEM bucket.
    let bucket = work.path().join("bucket");
    copy_blocks(&dir, &bucket);
    let objstore = work.path().join("objstore.yml");
    std::fs::write(
        &objstore,
        format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            bucket.display()
        ),
    )
    .expect("objstore");
    let started = Instant::now();
    let mut compact = common::Process::start(&[
        "compact".to_string(),
        format!("--objstore.config-file={}", objstore.display()),
        format!("--data-dir={}", work.path().join("compact-data").display()),
        "--consistency-delay=0s".to_string(),
        "--delete-delay=0s".to_string(),
        "--downsampling.disable".to_string(),
    ]);
    let (mut peak, mut anon) = (0.0f64, 0.0f64);
    let code = loop {
        if let Some(kb) = status_kb(compact.pid(), "VmHWM:") {
            peak = peak.max(kb);
        }
        if let Some(kb) = status_kb(compact.pid(), "RssAnon:") {
            anon = anon.max(kb);
        }
        if let Some(code) = compact.wait_exit_within(Duration::from_millis(20)) {
            break code;
        }
    };
    let wall = started.elapsed();
    assert_eq!(code, Some(0), "{}", compact.log());
    let compactions = compact.log().matches("compacted block uploaded").count();
    report.push_str(&format!(
        "rthanos compact (binary, one iteration): {:.2} s wall, {compactions} compactions, peak RSS {:.0} MiB, peak anonymous RSS {:.0} MiB\n",
        wall.as_secs_f64(),
        peak / 1024.0,
        anon / 1024.0
    ));

    // Prometheus 2.42 compacting a copy of the same blocks.
    let data = work.path().join("prometheus");
    copy_blocks(&dir, &data);
    let config = work.path().join("prometheus.yml");
    std::fs::write(&config, "global: {}\n").expect("config");
    let log = work.path().join("prometheus.log");
    let port = rthanos_testkit::free_port();
    let mut child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args([
            "--storage.tsdb.retention.time=100y",
            "--storage.tsdb.min-block-duration=2h",
            "--storage.tsdb.max-block-duration=24h",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("prometheus");
    let started = Instant::now();
    let mut base = None;
    let (mut peak, mut anon) = (0.0f64, 0.0f64);
    let mut last_change = Instant::now();
    let mut seen = 0;
    // Prometheus compacts a minute after start, then again while there is work.
    while started.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(20));
        if let Some(kb) = status_kb(child.id(), "VmHWM:") {
            peak = peak.max(kb);
        }
        if let Some(kb) = status_kb(child.id(), "RssAnon:") {
            anon = anon.max(kb);
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines = text.matches("msg=\"compact blocks\"").count();
        if lines == 0 {
            base = status_kb(child.id(), "VmRSS:");
        }
        if lines != seen {
            seen = lines;
            last_change = Instant::now();
        }
        if seen > 0 && last_change.elapsed() > Duration::from_secs(75) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut total = 0.0;
    for line in text
        .lines()
        .filter(|l| l.contains("msg=\"compact blocks\""))
    {
        let count = field(line, "count=");
        let duration = field(line, "duration=");
        let seconds = go_duration(&duration);
        total += seconds;
        report.push_str(&format!(
            "prometheus compaction: {count} blocks in {duration}\n"
        ));
    }
    report.push_str(&format!(
        "prometheus: {seen} compactions, {total:.2} s in all, peak RSS {:.0} MiB (before compacting {:.0} MiB), peak anonymous RSS {:.0} MiB\n",
        peak / 1024.0,
        base.unwrap_or(0.0) / 1024.0,
        anon / 1024.0
    ));

    // Downsampling the merged 24h block to 5m.
    if let Some(merged) = merged_dir {
        let block = Block::open(&merged).expect("open merged");
        let out = work.path().join("downsampled");
        std::fs::create_dir_all(&out).expect("mkdir");
        let started = Instant::now();
        rthanos_compact::downsample::downsample_block(&block, &out, 300_000)
            .expect("downsample")
            .expect("a block");
        let took = started.elapsed();
        report.push_str(&format!(
            "rthanos downsample 24h raw → 5m (in process): {:.2} s, {:.1} M samples/s\n",
            took.as_secs_f64(),
            samples as f64 / took.as_secs_f64() / 1e6
        ));
    }
    println!("{report}");
}

fn field(line: &str, key: &str) -> String {
    line.split(key)
        .nth(1)
        .map(|rest| {
            rest.trim_start_matches('"')
                .split([' ', '"'])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default()
}

/// Seconds of a Go duration as Prometheus logs it (`1.234s`, `850.5ms`, `1m2.5s`).
fn go_duration(text: &str) -> f64 {
    let mut total = 0.0;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() || n == 'µ' {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let value: f64 = number.parse().unwrap_or(0.0);
        number.clear();
        total += value
            * match unit.as_str() {
                "h" => 3600.0,
                "m" => 60.0,
                "s" => 1.0,
                "ms" => 1e-3,
                "µs" | "us" => 1e-6,
                "ns" => 1e-9,
                _ => 0.0,
            };
    }
    total
}
