//! Our PromQL engine against Prometheus 2.42 on the same data: 10 000 series × 24 h at 15 s
//! (57.6 M samples) generated here as OpenMetrics, turned into a block by
//! `promtool tsdb create-blocks-from openmetrics`, served by a real Prometheus and read by our
//! engine through crates/tsdb. Range queries over the 24 h at a 60 s step.
//!
//! Run: `cargo bench --bench promql`. The block is cached under
//! `$CARGO_TARGET_DIR/bench-data/promql-10k-24h`. Prometheus's time is its own engine time
//! (`stats=all`: `execTotalTime`, which includes reading its TSDB and excludes JSON); ours is
//! `Engine::range_query` over a `Queryable` that decodes the block's chunks. Peak memory is
//! each side's resident set growth over the query (`VmHWM`), measured in a fresh process.
//! Figures: docs/performance.md.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use rthanos_model::{Labels, Matcher};
use rthanos_promql::{Engine, Queryable, SelectHints, Series, StorageError, XorChunk};
use rthanos_testkit::Prometheus;
use rthanos_tsdb::Block;

#[path = "shared/dataset.rs"]
mod dataset;
use dataset::{START_S, data_dir, peak_rss_mib, reqwest_blocking, urlencode};

const QUERIES: &[(&str, &str)] = &[
    ("rate", "rate(http_requests_total[5m])"),
    (
        "sum_by_rate",
        "sum by (job) (rate(http_requests_total[5m]))",
    ),
    (
        "histogram_quantile",
        "histogram_quantile(0.9, sum by (le, job) (rate(request_duration_seconds_bucket[5m])))",
    ),
    (
        "topk",
        "topk(5, sum by (instance) (rate(http_requests_total[5m])))",
    ),
    (
        "join",
        "sum by (instance) (rate(http_requests_total[5m])) * on (instance) group_left (version) build_info",
    ),
];

/// Our engine's storage: the blocks, read through crates/tsdb.
struct Blocks(Vec<Block>);

#[async_trait::async_trait]
impl Queryable for Blocks {
    /// The selected series with their chunks in the time range, still encoded: the engine
    /// decodes a series when it evaluates it.
    async fn select(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<Vec<Series>, StorageError> {
        let err = |e: rthanos_tsdb::TsdbError| StorageError(e.to_string());
        let mut merged: BTreeMap<Labels, Vec<XorChunk>> = BTreeMap::new();
        for block in &self.0 {
            let meta = block.meta();
            if meta.max_time < hints.start || meta.min_time > hints.end {
                continue;
            }
            for id in block.index().select(matchers).map_err(err)? {
                let entry = block.index().series(id).map_err(err)?;
                let chunks = merged.entry(entry.labels).or_default();
                for c in entry.chunks {
                    if c.max_time < hints.start || c.min_time > hints.end {
                        continue;
                    }
                    let chunk = block.chunks().chunk(c.reference).map_err(err)?;
                    chunks.push(XorChunk {
                        data: chunk.data.to_vec(),
                    });
                }
            }
        }
        Ok(merged
            .into_iter()
            .map(|(labels, chunks)| {
                let mut series = Series::new(labels, Vec::new());
                series.chunks = chunks;
                series
            })
            .collect())
    }
}

fn open_blocks(data: &Path) -> Blocks {
    let mut blocks = Vec::new();
    for entry in std::fs::read_dir(data).expect("data dir") {
        let path = entry.expect("entry").path();
        if path.join("meta.json").exists() {
            blocks.push(Block::open(&path).expect("block"));
        }
    }
    Blocks(blocks)
}

fn query_range_stats(port: u16, query: &str) -> (f64, usize) {
    let url = format!(
        "http://127.0.0.1:{port}/api/v1/query_range?query={}&start={}&end={}&step=60&stats=all",
        urlencode(query),
        START_S,
        START_S + 24 * 3600
    );
    let body = reqwest_blocking(&url);
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["status"], "success", "{body:.300}");
    let exec = json["data"]["stats"]["timings"]["execTotalTime"]
        .as_f64()
        .expect("execTotalTime");
    let series = json["data"]["result"].as_array().map_or(0, Vec::len);
    (exec, series)
}

/// Child mode: run one query on our engine and print its time and peak memory growth.
fn child(data: &Path, name: &str) {
    let query = QUERIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, q)| *q)
        .expect("query name");
    let blocks = open_blocks(data);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let before = peak_rss_mib(std::process::id());
    let started = Instant::now();
    let result = runtime
        .block_on(Engine::default().range_query(
            &blocks,
            query,
            START_S * 1000,
            (START_S + 24 * 3600) * 1000,
            60_000,
        ))
        .expect("query");
    let elapsed = started.elapsed();
    let series = match result {
        rthanos_promql::Value::Matrix(m) => m.len(),
        _ => 0,
    };
    println!(
        "{} {} {:.1}",
        elapsed.as_secs_f64(),
        series,
        peak_rss_mib(std::process::id()) - before
    );
}

fn main() {
    let data = data_dir();
    if let Ok(name) = std::env::var("PROMQL_BENCH_CHILD") {
        child(&data.join("data"), &name);
        return;
    }
    let served = tempfile::tempdir().expect("tmp");
    rthanos_testkit::copy_dir(&data.join("data"), served.path());
    let runs = 5;
    println!(
        "| query | Prometheus 2.42 (median of {runs}) | rthanos engine (median of {runs}) | ratio | series | peak memory growth: Prometheus / rthanos |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, query) in QUERIES {
        // A fresh Prometheus per query, so its peak memory is this query's.
        let prometheus = Prometheus::start(served.path(), "global: {}\n");
        let mut theirs = Vec::new();
        let mut prom_series = 0;
        let prom_before = peak_rss_mib(prometheus.pid());
        for _ in 0..runs {
            let (t, n) = query_range_stats(prometheus.port, query);
            theirs.push(t);
            prom_series = n;
        }
        let prom_growth = peak_rss_mib(prometheus.pid()) - prom_before;
        drop(prometheus);
        let mut ours = Vec::new();
        let mut our_series = 0;
        let mut our_growth = 0.0f64;
        for _ in 0..runs {
            let out = std::process::Command::new(std::env::current_exe().expect("exe"))
                .env("PROMQL_BENCH_CHILD", name)
                .output()
                .expect("child");
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let mut fields = text.split_whitespace();
            let t: f64 = fields.next().and_then(|v| v.parse().ok()).expect("time");
            our_series = fields.next().and_then(|v| v.parse().ok()).expect("series");
            let growth: f64 = fields.next().and_then(|v| v.parse().ok()).expect("memory");
            ours.push(t);
            our_growth = our_growth.max(growth);
        }
        assert_eq!(
            prom_series, our_series,
            "{name}: both answer the same series"
        );
        theirs.sort_by(f64::total_cmp);
        ours.sort_by(f64::total_cmp);
        let (p, o) = (theirs[runs / 2], ours[runs / 2]);
        println!(
            "| `{query}` | {:.0} ms | {:.0} ms | {:.2} | {our_series} | {prom_growth:.0} MiB / {our_growth:.0} MiB |",
            p * 1000.0,
            o * 1000.0,
            o / p
        );
    }
}
