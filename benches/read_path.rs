//! The read path side by side with Prometheus 2.42 (issue #19): a broad set of PromQL queries,
//! each instant and range, answered by Prometheus itself and by `rthanos query` over the same
//! promtool-made blocks through three paths: the store gateway (FILESYSTEM bucket), one sidecar,
//! and an HA pair of sidecars (deduplicated). Every answer must equal Prometheus's, value for
//! value as JSON strings; each query's time is the median of its runs (whole HTTP request, JSON
//! included, one kept-alive connection per side), and its ratio to Prometheus's is reported.
//! Peak RSS is read per query (`VmHWM`, reset through `/proc/PID/clear_refs` before it).
//!
//! Data: 2 000 series × 12 h of 15 s scrapes in six 2h blocks (counters with resets, a classic
//! histogram, gauges, series that come and go), cached under
//! `$CARGO_TARGET_DIR/bench-data/read-path-2k-12h`.
//!
//! Run: `cargo bench --bench read_path`. `RTHANOS_BENCH_RUNS` sets the runs per query (5),
//! `RTHANOS_BENCH_FILTER` keeps the queries that contain it. Figures: docs/performance.md.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "shared/dataset.rs"]
mod dataset;
#[path = "shared/stack.rs"]
mod stack;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Process;
use rthanos_testkit::Prometheus;
use rthanos_testkit::openmetrics::Rng;

/// 2023-11-15T00:00:00Z, a 2h boundary: the first sample.
const START_S: i64 = 1_700_006_400;
const HOURS: i64 = 12;
const STEPS: i64 = HOURS * 3600 / 15;
/// Instant queries are evaluated here: not on a scrape, not on a block boundary.
const INSTANT_S: i64 = START_S + 11 * 3600 + 7;
/// Range queries: 11 h at a 60 s step.
const RANGE: (i64, i64, i64) = (START_S + 3600, START_S + HOURS * 3600, 60);

/// The expressions; `@T` is replaced by a time inside the data.
const EXPRESSIONS: &[&str] = &[
    // Selectors.
    "http_requests_total",
    "http_requests_total{code=\"500\"}",
    "http_requests_total{instance=~\"host-00[0-4]\", code!=\"200\"}",
    "{__name__=~\"node_.*\", job=\"node-1\"}",
    "node_memory_bytes offset 1h",
    "node_memory_bytes @ @T",
    "temperature_celsius{sensor=~\"cpu|gpu\"} offset 30m",
    "pod_ready",
    // *_over_time and friends on gauges.
    "avg_over_time(node_memory_bytes[10m])",
    "min_over_time(temperature_celsius[15m])",
    "max_over_time(temperature_celsius[15m])",
    "sum_over_time(node_memory_bytes[5m])",
    "count_over_time(pod_ready[30m])",
    "quantile_over_time(0.9, temperature_celsius[30m])",
    "stddev_over_time(node_memory_bytes[30m])",
    "stdvar_over_time(temperature_celsius[30m])",
    "last_over_time(node_memory_bytes[10m])",
    "present_over_time(pod_ready[10m])",
    "changes(temperature_celsius[30m])",
    "delta(node_memory_bytes[10m])",
    "idelta(temperature_celsius[5m])",
    "deriv(node_memory_bytes[30m])",
    "predict_linear(node_memory_bytes[30m], 3600)",
    "holt_winters(temperature_celsius[30m], 0.5, 0.5)",
    // Counters.
    "rate(http_requests_total[5m])",
    "irate(http_requests_total[5m])",
    "increase(http_requests_total[1h])",
    "resets(http_requests_total[1h])",
    "rate(http_requests_total[5m] offset 30m)",
    // Aggregations.
    "sum by (job) (rate(http_requests_total[5m]))",
    "avg by (instance) (node_memory_bytes)",
    "max without (code) (rate(http_requests_total[5m]))",
    "count by (code) (http_requests_total)",
    "stddev by (job) (node_memory_bytes)",
    "topk(5, rate(http_requests_total[5m]))",
    "bottomk(3, temperature_celsius)",
    "quantile by (job) (0.95, rate(http_requests_total[5m]))",
    "count_values(\"version\", build_info)",
    "group by (job) (http_requests_total)",
    // Classic histograms.
    "histogram_quantile(0.9, sum by (le, job) (rate(request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(request_duration_seconds_bucket[10m]))",
    // Binary operators.
    "rate(request_duration_seconds_sum[5m]) / rate(request_duration_seconds_count[5m])",
    "sum by (job, instance) (rate(http_requests_total{code=~\"5..\"}[5m])) / on (job, instance) group_left sum by (job, instance) (rate(http_requests_total[5m]))",
    "node_memory_bytes > 4e9",
    "avg by (instance) (temperature_celsius) * on (instance) group_left (version) build_info",
    "http_requests_total{code=\"200\"} and on (instance) (temperature_celsius{sensor=\"cpu\"} > 50)",
    "node_memory_bytes unless on (instance) pod_ready",
    "1 - rate(http_requests_total{code=\"200\"}[5m]) / ignoring (code) group_left sum without (code) (rate(http_requests_total[5m]))",
    // Subqueries.
    "max_over_time(rate(http_requests_total[5m])[1h:1m])",
    "avg_over_time(sum by (job) (rate(http_requests_total[5m]))[30m:])",
    // Functions.
    "abs(delta(temperature_celsius[10m]))",
    "clamp(temperature_celsius, 40, 60)",
    "label_replace(build_info, \"host\", \"$1\", \"instance\", \"host-(.*)\")",
    "timestamp(node_memory_bytes)",
    "absent(nonexistent_metric)",
    "scalar(sum(build_info)) * 2",
];

/// A query as sent: its kind and its URL path with parameters.
struct Query {
    expression: String,
    range: bool,
}

impl Query {
    fn path(&self) -> String {
        let q = common::urlencode(&self.expression);
        if self.range {
            let (start, end, step) = RANGE;
            format!("/api/v1/query_range?query={q}&start={start}&end={end}&step={step}")
        } else {
            format!("/api/v1/query?query={q}&time={INSTANT_S}")
        }
    }
}

/// The OpenMetrics text of the 2 000 series.
fn write_openmetrics(path: &Path) {
    let file = std::fs::File::create(path).expect("create");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut rng = Rng(19);
    let mut line = String::with_capacity(160);
    let mut emit = |out: &mut std::io::BufWriter<std::fs::File>, series: &str, v: f64, k: i64| {
        line.clear();
        let _ = writeln!(line, "{series} {v} {}", START_S + k * 15);
        out.write_all(line.as_bytes()).expect("write");
    };
    let header = |out: &mut std::io::BufWriter<std::fs::File>, name: &str, kind: &str| {
        writeln!(out, "# HELP {name} {name}.\n# TYPE {name} {kind}").expect("write");
    };
    // 640 request counters that reset now and then.
    header(&mut out, "http_requests", "counter");
    for job in 0..4 {
        for instance in 0..40 {
            for code in [200, 404, 500, 503] {
                let series = format!(
                    "http_requests_total{{code=\"{code}\",instance=\"host-{instance:03}\",job=\"api-{job}\"}}"
                );
                let mut v = (rng.next_u64() % 1000) as f64;
                for k in 0..STEPS {
                    v = if rng.next_u64() % 1500 == 0 {
                        (rng.next_u64() % 5) as f64
                    } else {
                        v + (rng.next_u64() % 20) as f64
                    };
                    emit(&mut out, &series, v, k);
                }
            }
        }
    }
    // A classic histogram: 800 buckets, 80 sums, 80 counts.
    header(&mut out, "request_duration_seconds", "histogram");
    let bounds = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
    ];
    for job in 0..2 {
        for instance in 0..40 {
            let labels = format!("instance=\"host-{instance:03}\",job=\"api-{job}\"");
            let mut counts = vec![[0f64; 10]; STEPS as usize];
            let mut sums = vec![0f64; STEPS as usize];
            let (mut totals, mut sum) = ([0f64; 10], 0f64);
            for (step, step_sum) in counts.iter_mut().zip(sums.iter_mut()) {
                for _ in 0..(rng.next_u64() % 10) {
                    let b = (rng.next_u64() % bounds.len() as u64) as usize;
                    for t in totals.iter_mut().skip(b) {
                        *t += 1.0;
                    }
                    sum += (rng.next_u64() % 2500) as f64 / 1000.0;
                }
                *step = totals;
                *step_sum = sum;
            }
            for (b, le) in bounds.iter().enumerate() {
                let series = format!("request_duration_seconds_bucket{{{labels},le=\"{le}\"}}");
                for (k, step) in counts.iter().enumerate() {
                    emit(&mut out, &series, step[b], k as i64);
                }
            }
            let series = format!("request_duration_seconds_count{{{labels}}}");
            for (k, step) in counts.iter().enumerate() {
                emit(&mut out, &series, step[9], k as i64);
            }
            let series = format!("request_duration_seconds_sum{{{labels}}}");
            for (k, s) in sums.iter().enumerate() {
                emit(&mut out, &series, *s, k as i64);
            }
        }
    }
    // 160 memory gauges (random walks around 4 GB) and 120 temperatures (one decimal).
    header(&mut out, "node_memory_bytes", "gauge");
    for job in 0..4 {
        for instance in 0..40 {
            let series =
                format!("node_memory_bytes{{instance=\"host-{instance:03}\",job=\"node-{job}\"}}");
            let mut v = 3.5e9 + (rng.next_u64() % 1_000_000_000) as f64;
            for k in 0..STEPS {
                v += (rng.next_u64() % 2_000_001) as f64 - 1e6;
                emit(&mut out, &series, v, k);
            }
        }
    }
    header(&mut out, "temperature_celsius", "gauge");
    for instance in 0..40 {
        for sensor in ["cpu", "gpu", "disk"] {
            let series = format!(
                "temperature_celsius{{instance=\"host-{instance:03}\",sensor=\"{sensor}\"}}"
            );
            let mut tenths = 400 + (rng.next_u64() % 200) as i64;
            for k in 0..STEPS {
                tenths = (tenths + (rng.next_u64() % 7) as i64 - 3).clamp(200, 900);
                emit(&mut out, &series, tenths as f64 / 10.0, k);
            }
        }
    }
    header(&mut out, "build_info", "gauge");
    for instance in 0..40 {
        let series = format!(
            "build_info{{instance=\"host-{instance:03}\",version=\"v{}\"}}",
            instance % 3
        );
        for k in 0..STEPS {
            emit(&mut out, &series, 1.0, k);
        }
    }
    // 80 pods, each scraped for 3 h somewhere in the 12 h: series that come and go.
    header(&mut out, "pod_ready", "gauge");
    for pod in 0..80i64 {
        let series = format!(
            "pod_ready{{instance=\"host-{:03}\",namespace=\"ns-{}\",pod=\"pod-{pod:03}\"}}",
            pod % 40,
            pod % 4
        );
        let first = (pod * STEPS / 80).min(STEPS - 720);
        for k in first..first + 720 {
            emit(&mut out, &series, (rng.next_u64() % 2) as f64, k);
        }
    }
    writeln!(out, "# EOF").expect("write");
    out.flush().expect("flush");
}

/// The promtool-made data directory (six 2h blocks), made once.
fn data_dir() -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let dir = target.join("bench-data/read-path-2k-12h");
    if dir.join("done").exists() {
        return dir.join("data");
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let input = dir.join("input.om");
    eprintln!("generating 5.8M samples of OpenMetrics…");
    write_openmetrics(&input);
    let status = std::process::Command::new(rthanos_testkit::promtool())
        .args([
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=2h",
        ])
        .arg(&input)
        .arg(dir.join("data"))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("promtool");
    assert!(status.success(), "promtool failed");
    std::fs::remove_file(&input).expect("rm input");
    std::fs::write(dir.join("done"), b"").expect("mark");
    dir.join("data")
}

/// Everything running: Prometheus replicas, sidecars, the store and three queriers.
struct Setup {
    prometheus: Vec<(tempfile::TempDir, Prometheus)>,
    sidecars: Vec<Process>,
    store: Process,
    _bucket: tempfile::TempDir,
    /// query → store, query → sidecar a, query → sidecars a + b (deduplicated).
    queriers: Vec<(&'static str, Process)>,
}

fn start(data: &Path) -> Setup {
    let (prometheus, sidecars) = stack::replicas_with_sidecars(data);
    let bucket = tempfile::tempdir().expect("tmp");
    let objstore = bucket.path().join("objstore.yml");
    std::fs::write(
        &objstore,
        common::filesystem_yaml(&bucket.path().join("bucket")),
    )
    .expect("write");
    let handle = rthanos_objstore::Bucket::from_yaml(
        &std::fs::read_to_string(&objstore).expect("read"),
        &prometheus::Registry::new(),
    )
    .expect("bucket");
    common::upload_blocks(&handle, data, &[("cluster", "bench"), ("replica", "a")]);
    let mut store = Process::start(&[
        "store".to_string(),
        format!("--objstore.config-file={}", objstore.display()),
        format!("--data-dir={}", bucket.path().join("store").display()),
        "--log.level=warn".to_string(),
    ]);
    store.wait_ready(Duration::from_secs(120));
    let querier = |endpoints: &[&Process], dedup: bool| {
        let mut args = vec!["query".to_string(), "--log.level=warn".to_string()];
        if dedup {
            args.push("--query.replica-label=replica".to_string());
        }
        args.extend(
            endpoints
                .iter()
                .map(|p| format!("--endpoint={}", p.grpc_addr())),
        );
        let mut query = Process::start(&args);
        query.wait_ready(Duration::from_secs(60));
        query
    };
    let queriers = vec![
        ("store", querier(&[&store], false)),
        ("sidecar", querier(&[&sidecars[0]], false)),
        ("HA pair", querier(&[&sidecars[0], &sidecars[1]], true)),
    ];
    Setup {
        prometheus,
        sidecars,
        store,
        _bucket: bucket,
        queriers,
    }
}

/// An answer reduced to what must be equal: the result type and, per series (labels without
/// the external ones), its values as Prometheus wrote them.
fn canonical(body: &str) -> Result<(String, BTreeMap<String, String>), String> {
    let json: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("{e}: {body:.300}"))?;
    if json["status"] != "success" {
        return Err(format!("{body:.300}"));
    }
    let data = &json["data"];
    let kind = data["resultType"].as_str().unwrap_or_default().to_string();
    let mut series = BTreeMap::new();
    match &data["result"] {
        serde_json::Value::Array(items) => {
            for item in items {
                // Filtered, not removed: the map keeps insertion order (serde_json's
                // preserve_order) and its `remove` would reorder it.
                let metric: serde_json::Map<String, serde_json::Value> = item["metric"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| *k != "cluster" && *k != "replica")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let values = if item.get("values").is_some() {
                    item["values"].to_string()
                } else {
                    item["value"].to_string()
                };
                series.insert(serde_json::Value::Object(metric).to_string(), values);
            }
        }
        scalar => {
            series.insert(String::new(), scalar.to_string());
        }
    }
    Ok((kind, series))
}

/// The body without the external labels (`cluster`, `replica`), for a byte comparison.
fn without_external_labels(body: &str) -> String {
    let mut s = body.to_string();
    for label in [
        r#""cluster":"bench""#,
        r#""replica":"a""#,
        r#""replica":"b""#,
    ] {
        s = s
            .replace(&format!("{label},"), "")
            .replace(&format!(",{label}"), "")
            .replace(label, "");
    }
    s
}

/// The result's elements as written, sorted.
fn elements(body: &str) -> Vec<&str> {
    // Each element without what closes it (the last one also closes the answer).
    let mut parts: Vec<&str> = body
        .split(r#"{"metric":"#)
        .map(|p| p.trim_end_matches([']', '}', ',']))
        .collect();
    parts.sort_unstable();
    parts
}

fn first_difference(ours: &BTreeMap<String, String>, theirs: &BTreeMap<String, String>) -> String {
    for (key, value) in theirs {
        match ours.get(key) {
            None => {
                let near = ours.keys().next().map_or("", String::as_str);
                return format!("missing series {key} (ours: {near}, …)");
            }
            Some(v) if v != value => {
                return format!("{key}: ours {v:.200} theirs {value:.200}");
            }
            Some(_) => {}
        }
    }
    match ours.keys().find(|k| !theirs.contains_key(*k)) {
        Some(extra) => format!("extra series {extra}"),
        None => "none".to_string(),
    }
}

fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// One HTTP client per side, kept alive across requests.
struct Client {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Client {
    fn get(&self, port: u16, path: &str) -> (f64, String) {
        let url = format!("http://127.0.0.1:{port}{path}");
        self.runtime.block_on(async {
            let started = Instant::now();
            let response = self.http.get(&url).send().await.expect("GET");
            let body = response.text().await.expect("body");
            (started.elapsed().as_secs_f64(), body)
        })
    }
}

fn main() {
    let runs: usize = std::env::var("RTHANOS_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let filter = std::env::var("RTHANOS_BENCH_FILTER").unwrap_or_default();
    let data = data_dir();
    let setup = start(&data);
    let client = Client {
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime"),
        http: reqwest::Client::new(),
    };
    let reference = setup.prometheus[0].1.port;
    // Every querier sees its stores before the first measurement.
    let probe = Query {
        expression: "count(http_requests_total)".into(),
        range: false,
    };
    for (name, querier) in &setup.queriers {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, body) = client.get(querier.http_port, &probe.path());
            if body.contains("\"640\"") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: stores not seen: {body}\n{}",
                querier.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let at = (START_S + 6 * 3600 + 3).to_string();
    let queries: Vec<Query> = EXPRESSIONS
        .iter()
        .map(|e| e.replace("@T", &at))
        .filter(|e| e.contains(&filter))
        .flat_map(|e| {
            [false, true].map(|range| Query {
                expression: e.clone(),
                range,
            })
        })
        .collect();

    let mut pids: Vec<u32> = setup.prometheus.iter().map(|(_, p)| p.pid()).collect();
    pids.extend(setup.sidecars.iter().map(Process::pid));
    pids.push(setup.store.pid());
    pids.extend(setup.queriers.iter().map(|(_, q)| q.pid()));
    let names: Vec<&str> = setup.queriers.iter().map(|(n, _)| *n).collect();
    println!(
        "| query | kind | Prometheus | {} | peak RSS MiB: Prometheus / querier→store / store |",
        names
            .iter()
            .map(|n| format!("query → {n} (ratio)"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|---|---|{}---|", "---|".repeat(names.len()));
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut wrong = Vec::new();
    let mut bytes_differ = Vec::new();
    let mut order_only = Vec::new();
    let mut heaviest = (0.0, 0.0, String::new());
    for query in &queries {
        let path = query.path();
        for pid in &pids {
            reset_peak(*pid);
        }
        // One warm-up each, checked against Prometheus's answer.
        let (_, reference_body) = client.get(reference, &path);
        let expected =
            canonical(&reference_body).unwrap_or_else(|e| panic!("{}: {e}", query.expression));
        for (name, querier) in &setup.queriers {
            let (_, body) = client.get(querier.http_port, &path);
            match canonical(&body) {
                Ok(ours) if ours == expected => {
                    let (ours, theirs) = (
                        without_external_labels(&body),
                        without_external_labels(&reference_body),
                    );
                    // Where Prometheus's own order comes from a Go map (histogram_quantile's
                    // groups, a subquery's series), only the elements can be compared.
                    if ours != theirs && elements(&ours) == elements(&theirs) {
                        order_only.push(format!("{name}: `{}`", query.expression));
                    } else if ours != theirs {
                        let at = ours
                            .bytes()
                            .zip(theirs.bytes())
                            .take_while(|(a, b)| a == b)
                            .count();
                        let from = at.saturating_sub(60);
                        bytes_differ.push(format!(
                            "{name}: `{}`: at byte {at}: ours …{:.120} theirs …{:.120}",
                            query.expression,
                            ours.get(from..).unwrap_or_default(),
                            theirs.get(from..).unwrap_or_default()
                        ));
                    }
                }
                Ok(ours) => wrong.push(format!(
                    "{name}: `{}` ({}): {}",
                    query.expression,
                    if query.range { "range" } else { "instant" },
                    if ours.0 == expected.0 {
                        first_difference(&ours.1, &expected.1)
                    } else {
                        format!("type {} vs {}", ours.0, expected.0)
                    }
                )),
                Err(e) => wrong.push(format!("{name}: `{}`: {e}", query.expression)),
            }
        }
        let mut theirs = Vec::new();
        let mut ours = vec![Vec::new(); names.len()];
        for _ in 0..runs {
            theirs.push(client.get(reference, &path).0);
            for (i, (_, querier)) in setup.queriers.iter().enumerate() {
                ours[i].push(client.get(querier.http_port, &path).0);
            }
        }
        let theirs = median(theirs);
        let mut cells = Vec::new();
        for (i, times) in ours.into_iter().enumerate() {
            let t = median(times);
            ratios[i].push(t / theirs);
            cells.push(format!("{:.1} ms ({:.2})", t * 1000.0, t / theirs));
        }
        let prometheus_peak = dataset::peak_rss_mib(setup.prometheus[0].1.pid());
        let querier_peak = dataset::peak_rss_mib(setup.queriers[0].1.pid());
        if querier_peak > heaviest.1 {
            heaviest = (prometheus_peak, querier_peak, query.expression.clone());
        }
        println!(
            "| `{}` | {} | {:.1} ms | {} | {:.0} / {:.0} / {:.0} |",
            query.expression.replace('|', "\\|"),
            if query.range { "range" } else { "instant" },
            theirs * 1000.0,
            cells.join(" | "),
            prometheus_peak,
            querier_peak,
            dataset::peak_rss_mib(setup.store.pid()),
        );
    }
    println!();
    println!("| path | median ratio | max ratio | queries above 1.0 |");
    println!("|---|---|---|---|");
    for (name, mut r) in names.iter().zip(ratios) {
        r.sort_by(f64::total_cmp);
        let above = r.iter().filter(|x| **x > 1.0).count();
        println!(
            "| query → {name} | {:.2} | {:.2} | {above} of {} |",
            r[r.len() / 2],
            r[r.len() - 1],
            r.len()
        );
    }
    println!(
        "\nheaviest for the querier: `{}`: querier {:.0} MiB, Prometheus {:.0} MiB",
        heaviest.2, heaviest.1, heaviest.0
    );
    if bytes_differ.is_empty() {
        println!("every equal answer is byte for byte Prometheus's (external labels aside)");
    } else {
        println!(
            "{} equal answers are not byte for byte Prometheus's:",
            bytes_differ.len()
        );
        for w in &bytes_differ {
            println!("- {w}");
        }
    }
    if !order_only.is_empty() {
        println!(
            "{} answers have Prometheus's elements in another order (Prometheus's own order is a Go map's):",
            order_only.len()
        );
        for w in &order_only {
            println!("- {w}");
        }
    }
    if wrong.is_empty() {
        println!("every answer equals Prometheus's");
    } else {
        println!("{} answers differ from Prometheus's:", wrong.len());
        for w in &wrong {
            println!("- {w}");
        }
    }
}
