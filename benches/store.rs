//! `rthanos store` over 7 days of 2h blocks (84 blocks of the same 10k counters, 30s scrapes,
//! written by rthanos's block writer) in a FILESYSTEM bucket: start-up (index-header builds),
//! resident memory per loaded block and per million series, cold and warm Series latency for
//! a selective query (5 series) and a broad one (all 10k series), and the bytes read from the
//! bucket against the chunk bytes returned.
//!
//! Run: `cargo bench --bench store`. The bucket is cached under
//! `$CARGO_TARGET_DIR/bench-data/store-7d`. Figures: docs/performance.md.

#[path = "shared/blocks.rs"]
mod blocks;
#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rthanos_storeapi::thanos::{LabelMatcher, SeriesRequest, series_response::Result as Frame};
use rthanos_storeapi::{ClientOptions, GrpcStore, Store};

const BLOCKS: i64 = 84;

fn bucket_dir() -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let dir = target.join("bench-data/store-7d");
    let bucket = dir.join("bucket");
    if dir.join("done").exists() {
        return bucket;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&bucket).expect("mkdir");
    eprintln!("writing 84 blocks of 10k series…");
    let thanos = rthanos_tsdb::meta::ThanosMeta {
        labels: [("cluster".to_string(), "bench".to_string())].into(),
        source: "sidecar".into(),
        ..Default::default()
    };
    blocks::write_blocks(&bucket, BLOCKS, Some(&thanos));
    std::fs::write(dir.join("done"), b"").expect("mark");
    bucket
}

fn status_kb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

fn start_store(objstore: &Path, data_dir: &Path) -> (common::Process, Duration) {
    let started = Instant::now();
    let mut store = common::Process::start(&[
        "store".to_string(),
        format!("--objstore.config-file={}", objstore.display()),
        format!("--data-dir={}", data_dir.display()),
        "--log.level=warn".to_string(),
    ]);
    store.wait_ready(Duration::from_secs(600));
    (store, started.elapsed())
}

fn matcher(kind: i32, name: &str, value: &str) -> LabelMatcher {
    LabelMatcher {
        r#type: kind,
        name: name.into(),
        value: value.into(),
    }
}

/// One Series call over the whole 7 days: (seconds, series, chunk bytes returned).
fn series(
    runtime: &tokio::runtime::Runtime,
    store: &GrpcStore,
    matchers: &[LabelMatcher],
) -> (f64, u64, u64) {
    runtime.block_on(async {
        let started = Instant::now();
        let mut frames = store
            .series(SeriesRequest {
                min_time: blocks::START,
                max_time: blocks::START + BLOCKS * blocks::BLOCK_MS,
                matchers: matchers.to_vec(),
                ..Default::default()
            })
            .await
            .expect("series");
        let (mut count, mut bytes) = (0, 0);
        while let Some(frame) = frames.next().await {
            if let Some(Frame::Series(s)) = frame.expect("frame").result {
                count += 1;
                bytes += s
                    .chunks
                    .iter()
                    .filter_map(|c| c.raw.as_ref())
                    .map(|c| c.data.len() as u64)
                    .sum::<u64>();
            }
        }
        (started.elapsed().as_secs_f64(), count, bytes)
    })
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                dir_size(&path)
            } else {
                e.metadata().map_or(0, |m| m.len())
            }
        })
        .sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let bucket = bucket_dir();
    let work = tempfile::tempdir().expect("tmp");
    let objstore = work.path().join("objstore.yml");
    std::fs::write(
        &objstore,
        format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            bucket.display()
        ),
    )
    .expect("objstore.yml");
    let empty_bucket = work.path().join("empty");
    std::fs::create_dir_all(&empty_bucket).expect("mkdir");
    let empty_objstore = work.path().join("empty.yml");
    std::fs::write(
        &empty_objstore,
        format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            empty_bucket.display()
        ),
    )
    .expect("objstore.yml");

    // Baseline: a store with nothing to load.
    let (empty, _) = start_store(&empty_objstore, &work.path().join("empty-data"));
    std::thread::sleep(Duration::from_secs(1));
    let rss_empty = status_kb(empty.pid(), "VmRSS:");
    drop(empty);

    let data_dir = work.path().join("data");
    let (store, cold_start) = start_store(&objstore, &data_dir);
    std::thread::sleep(Duration::from_secs(1));
    let rss_loaded = status_kb(store.pid(), "VmRSS:");
    let loaded = store
        .metric("thanos_bucket_store_blocks_loaded")
        .unwrap_or(0.0);
    assert_eq!(loaded as i64, BLOCKS, "every block loaded");
    let header_bytes = dir_size(&data_dir);
    drop(store);
    let (store, warm_start) = start_store(&objstore, &data_dir);
    drop(store);

    println!("## store: 84 × 2h blocks × 10k series (7 days), FILESYSTEM bucket");
    println!();
    println!(
        "start-up: {:.1} s building 84 index-headers, {:.1} s reusing them",
        cold_start.as_secs_f64(),
        warm_start.as_secs_f64()
    );
    let per_block_mib = (rss_loaded - rss_empty) / 1024.0 / BLOCKS as f64;
    let million_series = BLOCKS as f64 * 10_000.0 / 1e6;
    println!(
        "resident memory: {:.1} MiB with no block, {:.1} MiB with 84 loaded: {:.3} MiB per block, {:.1} MiB per million series (block-series)",
        rss_empty / 1024.0,
        rss_loaded / 1024.0,
        per_block_mib,
        (rss_loaded - rss_empty) / 1024.0 / million_series
    );
    println!(
        "index-headers on disk: {:.2} MiB in all, {:.1} KiB per block",
        header_bytes as f64 / 1048576.0,
        header_bytes as f64 / 1024.0 / BLOCKS as f64
    );
    println!();

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let cases = [
        (
            "selective: `{__name__=\"metric_042\"}`",
            vec![matcher(0, "__name__", "metric_042")],
            5,
        ),
        (
            "selective: `{__name__=\"metric_042\", instance=~\"host-00[0-4]\"}`",
            vec![
                matcher(0, "__name__", "metric_042"),
                matcher(2, "instance", "host-00[0-4]"),
            ],
            5,
        ),
        (
            "broad: `{job=\"node\"}`",
            vec![matcher(0, "job", "node")],
            3,
        ),
    ];
    println!(
        "| query | series | chunk bytes returned | cold (fresh process) | warm (median) | bucket bytes read, cold | read / returned | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, matchers, warm_runs) in cases {
        let (store, _) = start_store(&objstore, &data_dir);
        let _guard = runtime.enter();
        let client =
            GrpcStore::connect(&store.grpc_addr(), &ClientOptions::default()).expect("client");
        let fetched = |s: &common::Process| {
            s.metric("thanos_bucket_store_bucket_fetched_bytes_total")
                .unwrap_or(0.0)
        };
        let before = fetched(&store);
        let (cold, count, returned) = series(&runtime, &client, &matchers);
        let read = fetched(&store) - before;
        let warm: Vec<f64> = (0..warm_runs)
            .map(|_| series(&runtime, &client, &matchers).0)
            .collect();
        println!(
            "| {name} | {count} | {:.1} MiB | {:.0} ms | {:.0} ms | {:.1} MiB | {:.2} | {:.0} MiB |",
            returned as f64 / 1048576.0,
            cold * 1000.0,
            median(warm) * 1000.0,
            read / 1048576.0,
            read / returned.max(1) as f64,
            status_kb(store.pid(), "VmHWM:") / 1024.0
        );
    }
}
