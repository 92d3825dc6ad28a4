//! `rthanos store` end to end: promtool-made blocks uploaded with sidecar-style meta.json to a
//! FILESYSTEM bucket and to S3 (moto); `rthanos query` over `rthanos store` answers PromQL as
//! Prometheus 2.42 answers over the same blocks. A restart reuses the index-headers; a block
//! with a corrupt index is skipped and counted; a deletion mark older than
//! `--ignore-deletion-marks-delay` takes a block out.

mod common;

use std::path::Path;
use std::time::Duration;

use common::Process;
use rthanos_objstore::Bucket;
use rthanos_testkit::openmetrics::{Spec, generate};
use rthanos_testkit::{Moto, Prometheus, PromtoolBlocks, copy_dir};

const START: i64 = 1_700_000_000;
const SAMPLES: usize = 480;

fn queries() -> Vec<String> {
    let at = START + 3 * 3600;
    let enc = |q: &str| -> String {
        q.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let instant = [
        "sum(rate(http_requests_total[5m]))",
        "sum by (code) (http_requests_total)",
        "temperature_celsius",
        "max_over_time(temperature_celsius[30m])",
        "histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[5m])))",
        r#"{__name__=~"http_requests_total|temperature_celsius", instance!="host-1"}"#,
        r#"temperature_celsius{site="a", room=~"r[0-3]"}"#,
    ];
    let mut out: Vec<String> = instant
        .iter()
        .map(|q| format!("/api/v1/query?query={}&time={at}", enc(q)))
        .collect();
    for q in [
        "sum by (code) (rate(http_requests_total[5m]))",
        "avg(temperature_celsius)",
    ] {
        out.push(format!(
            "/api/v1/query_range?query={}&start={START}&end={}&step=60",
            enc(q),
            START + SAMPLES as i64 * 30
        ));
    }
    out
}

/// A Series call straight to the store's gRPC API for metric `name` over the first 2h of the
/// data; the labels (`name=value,…`) of the first `frames` series (all when `None`). The
/// answer is dropped when enough is read.
fn series_labels(store: &Process, name: &str, frames: Option<usize>) -> Vec<String> {
    use futures::StreamExt;
    use rthanos_storeapi::Store;
    use rthanos_storeapi::thanos::{LabelMatcher, SeriesRequest, series_response::Result as Frame};
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let client = rthanos_storeapi::GrpcStore::connect(
            &store.grpc_addr(),
            &rthanos_storeapi::ClientOptions::default(),
        )
        .expect("client");
        let mut answer = client
            .series(SeriesRequest {
                min_time: START * 1000,
                max_time: (START + 7200) * 1000,
                matchers: vec![LabelMatcher {
                    r#type: 0,
                    name: "__name__".into(),
                    value: name.into(),
                }],
                ..Default::default()
            })
            .await
            .expect("series");
        let mut out = Vec::new();
        while let Some(frame) = answer.next().await {
            if let Some(Frame::Series(s)) = frame.expect("frame").result {
                let text: Vec<String> = s
                    .labels
                    .iter()
                    .map(|l| format!("{}={}", l.name, l.value))
                    .collect();
                out.push(text.join(","));
            }
            if frames.is_some_and(|limit| out.len() >= limit) {
                break;
            }
        }
        out
    })
}

fn start_store(objstore: &Path, data_dir: &Path, extra: &[&str]) -> Process {
    let mut args = vec![
        "store".to_string(),
        format!("--objstore.config-file={}", objstore.display()),
        format!("--data-dir={}", data_dir.display()),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let mut store = Process::start(&args);
    store.wait_ready(Duration::from_secs(60));
    store
}

/// A block written by rthanos's own block writer into `dir`: 20 counters
/// `rthanos_written_total` over the first 2h of the data, in chunks of 120 samples.
fn write_block(dir: &Path) {
    use rthanos_chunkenc::{Encoding, xor};
    use rthanos_tsdb::writer::{BlockWriter, ChunkToWrite};
    let instances: Vec<String> = (0..20).map(|i| format!("w-{i:02}")).collect();
    let mut symbols: std::collections::BTreeSet<String> = [
        "__name__",
        "instance",
        "job",
        "rthanos_written_total",
        "writer",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    symbols.extend(instances.iter().cloned());
    let mut writer = BlockWriter::create(dir, &symbols).expect("writer");
    for (n, instance) in instances.iter().enumerate() {
        let labels = rthanos_model::Labels::from_pairs([
            ("__name__", "rthanos_written_total"),
            ("instance", instance.as_str()),
            ("job", "writer"),
        ]);
        let mut value = 0.0;
        let chunks: Vec<(i64, i64, Vec<u8>)> = (0..2)
            .map(|c| {
                let points: Vec<(i64, f64)> = (0..120)
                    .map(|i| {
                        value += (n as i64 + i % 7) as f64;
                        ((START + (c * 120 + i) * 30) * 1000, value)
                    })
                    .collect();
                let data = xor::encode(points.iter().copied()).expect("encode");
                (points[0].0, points[119].0, data)
            })
            .collect();
        let to_write: Vec<ChunkToWrite<'_>> = chunks
            .iter()
            .map(|(min, max, data)| ChunkToWrite {
                min_time: *min,
                max_time: *max,
                encoding: Encoding::Xor,
                data,
                samples: 120,
            })
            .collect();
        writer.add_series(&labels, &to_write).expect("series");
    }
    writer.finish(None).expect("finish");
}

/// A block whose order changes once the external label `cluster` is added:
/// `{__name__="rthanos_prefix_total"}` sorts before `{…, a="1"}` on its own, after it with
/// `cluster` (`a` < `cluster`).
fn write_prefix_block(dir: &Path) {
    use rthanos_chunkenc::{Encoding, xor};
    use rthanos_tsdb::writer::{BlockWriter, ChunkToWrite};
    let symbols: std::collections::BTreeSet<String> =
        ["__name__", "rthanos_prefix_total", "a", "1", "2"]
            .into_iter()
            .map(str::to_string)
            .collect();
    let mut writer = BlockWriter::create(dir, &symbols).expect("writer");
    let points: Vec<(i64, f64)> = (0..60)
        .map(|i| ((START + i * 30) * 1000, i as f64))
        .collect();
    let data = xor::encode(points.iter().copied()).expect("encode");
    let chunk = [ChunkToWrite {
        min_time: points[0].0,
        max_time: points[59].0,
        encoding: Encoding::Xor,
        data: &data,
        samples: 60,
    }];
    for labels in [
        vec![("__name__", "rthanos_prefix_total")],
        vec![("__name__", "rthanos_prefix_total"), ("a", "1")],
        vec![("__name__", "rthanos_prefix_total"), ("a", "2")],
    ] {
        writer
            .add_series(&rthanos_model::Labels::from_pairs(labels), &chunk)
            .expect("series");
    }
    writer.finish(None).expect("finish");
}

fn blocks() -> PromtoolBlocks {
    PromtoolBlocks::create(
        &generate(&Spec {
            series: 30,
            samples: SAMPLES,
            interval: 30,
            ..Spec::default()
        }),
        "2h",
    )
}

#[test]
fn query_over_store_answers_as_prometheus_on_a_filesystem_bucket() {
    let blocks = blocks();
    let dir = tempfile::tempdir().expect("tmp");
    let bucket_dir = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket_dir).expect("bucket dir");
    let objstore = dir.path().join("objstore.yml");
    let yaml = common::filesystem_yaml(&bucket_dir);
    std::fs::write(&objstore, &yaml).expect("objstore.yml");
    let bucket = Bucket::from_yaml(&yaml, &prometheus::Registry::new()).expect("bucket");
    // promtool's blocks and one of our writer's, in the bucket and in Prometheus.
    let source = tempfile::tempdir().expect("tmp");
    copy_dir(&blocks.data_dir(), source.path());
    write_block(source.path());
    write_prefix_block(source.path());
    let ids = common::upload_blocks(&bucket, source.path(), &[("cluster", "eu1")]);
    assert!(ids.len() >= 5, "{ids:?}");

    // A block with a corrupt index, and a partial upload (no meta.json), beside them.
    let corrupt = "01HZZZZZZZZZZZZZZZZZZZZZZZ";
    copy_dir(&bucket_dir.join(&ids[0]), &bucket_dir.join(corrupt));
    let meta = std::fs::read_to_string(bucket_dir.join(corrupt).join("meta.json")).expect("meta");
    std::fs::write(
        bucket_dir.join(corrupt).join("meta.json"),
        meta.replace(&ids[0], corrupt),
    )
    .expect("meta");
    let index = bucket_dir.join(corrupt).join("index");
    let mut bytes = std::fs::read(&index).expect("index");
    let len = bytes.len();
    bytes[len - 30..].fill(0xAB);
    std::fs::write(&index, bytes).expect("corrupt index");
    // A block whose chunk file is gone.
    let chunkless = "01HXXXXXXXXXXXXXXXXXXXXXXX";
    copy_dir(&bucket_dir.join(&ids[1]), &bucket_dir.join(chunkless));
    let meta = std::fs::read_to_string(bucket_dir.join(chunkless).join("meta.json")).expect("meta");
    std::fs::write(
        bucket_dir.join(chunkless).join("meta.json"),
        meta.replace(&ids[1], chunkless),
    )
    .expect("meta");
    std::fs::remove_dir_all(bucket_dir.join(chunkless).join("chunks")).expect("rm chunks");
    let partial = "01HYYYYYYYYYYYYYYYYYYYYYYY";
    copy_dir(&bucket_dir.join(&ids[1]), &bucket_dir.join(partial));
    std::fs::remove_file(bucket_dir.join(partial).join("meta.json")).expect("rm meta");

    let data = tempfile::tempdir().expect("tmp");
    copy_dir(source.path(), data.path());
    let prometheus = Prometheus::start(data.path(), "global: {}\n");
    let store_data = dir.path().join("store-data");
    let store = start_store(&objstore, &store_data, &["--sync-block-duration=1s"]);
    assert_eq!(
        store.metric("thanos_bucket_store_blocks_loaded"),
        Some(ids.len() as f64)
    );
    assert!(
        store
            .metric("thanos_bucket_store_block_load_failures_total")
            .is_some_and(|n| n >= 2.0)
    );
    assert!(store.log().contains(corrupt), "{}", store.log());
    assert!(
        store.log().contains("chunk file chunks/000001 missing"),
        "{}",
        store.log()
    );
    let mut query = common::start_query([&store], &[]);
    query.wait_for(Duration::from_secs(30), "the store healthy", |q| {
        common::http_get(q.http_port, "/api/v1/stores").is_some_and(|(_, b)| b.contains("eu1"))
    });

    let written = [
        format!(
            "/api/v1/query_range?query=sum%20by%20(instance)%20(rate(rthanos_written_total%5B5m%5D))&start={START}&end={}&step=60",
            START + 7200
        ),
        format!(
            "/api/v1/query?query=rthanos_written_total%5B10m%5D&time={}",
            START + 3600
        ),
    ];
    for path in queries().into_iter().chain(written) {
        common::assert_same_points(
            &common::api_points(query.http_port, &path),
            &common::api_points(prometheus.port, &path),
            &path,
        );
    }
    // The store's own answer is sorted by final labels even where adding `cluster` reorders.
    let labels = series_labels(&store, "rthanos_prefix_total", None);
    assert_eq!(
        labels,
        [
            "__name__=rthanos_prefix_total,a=1,cluster=eu1",
            "__name__=rthanos_prefix_total,a=2,cluster=eu1",
            "__name__=rthanos_prefix_total,cluster=eu1",
        ]
    );

    // Label APIs: Prometheus's names and values, plus the external label.
    let (_, names) = common::http_get(query.http_port, "/api/v1/labels").expect("labels");
    assert!(
        names.contains("\"cluster\"") && names.contains("\"room\""),
        "{names}"
    );
    let values = |port: u16| {
        common::http_get(port, "/api/v1/label/code/values")
            .expect("values")
            .1
    };
    assert_eq!(values(query.http_port), values(prometheus.port));
    let matched = |port: u16| {
        common::http_get(
            port,
            "/api/v1/label/room/values?match[]=temperature_celsius%7Bsite%3D%22b%22%7D",
        )
        .expect("values")
        .1
    };
    assert_eq!(matched(query.http_port), matched(prometheus.port));
    assert!(
        store
            .metric("thanos_store_index_cache_requests_total{item_type=\"Postings\"}")
            .is_some_and(|n| n > 0.0)
    );

    // A restart reuses the index-headers on disk.
    let header = store_data.join(&ids[0]).join("index-header");
    let built = std::fs::metadata(&header)
        .and_then(|m| m.modified())
        .expect("header");
    drop(store);
    let mut store = start_store(&objstore, &store_data, &["--sync-block-duration=1s"]);
    assert_eq!(
        std::fs::metadata(&header)
            .and_then(|m| m.modified())
            .expect("header"),
        built,
        "index-header rebuilt"
    );
    assert_eq!(
        store.metric("thanos_bucket_store_blocks_loaded"),
        Some(ids.len() as f64)
    );

    // A deletion mark older than the delay (24h by default) takes the block out.
    let old = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        - 2 * 86_400;
    std::fs::write(
        bucket_dir.join(&ids[0]).join("deletion-mark.json"),
        format!(
            r#"{{"id":"{}","version":1,"details":"test","deletion_time":{old}}}"#,
            ids[0]
        ),
    )
    .expect("mark");
    store.wait_for(Duration::from_secs(30), "the marked block dropped", |s| {
        s.metric("thanos_bucket_store_blocks_loaded") == Some((ids.len() - 1) as f64)
    });
    assert!(
        !header.exists(),
        "a dropped block's index-header is removed"
    );
}

#[test]
fn query_over_store_answers_as_prometheus_on_s3() {
    let blocks = blocks();
    let moto = Moto::start();
    moto.create_bucket("blocks");
    let yaml = moto.objstore_yaml("blocks");
    let dir = tempfile::tempdir().expect("tmp");
    let objstore = dir.path().join("objstore.yml");
    std::fs::write(&objstore, &yaml).expect("objstore.yml");
    let bucket = Bucket::from_yaml(&yaml, &prometheus::Registry::new()).expect("bucket");
    let ids = common::upload_blocks(&bucket, &blocks.data_dir(), &[("cluster", "eu1")]);

    let data = tempfile::tempdir().expect("tmp");
    copy_dir(&blocks.data_dir(), data.path());
    let prometheus = Prometheus::start(data.path(), "global: {}\n");
    let store = start_store(&objstore, &dir.path().join("store-data"), &[]);
    assert_eq!(
        store.metric("thanos_bucket_store_blocks_loaded"),
        Some(ids.len() as f64)
    );
    let mut query = common::start_query([&store], &[]);
    query.wait_for(Duration::from_secs(30), "the store healthy", |q| {
        common::http_get(q.http_port, "/api/v1/stores").is_some_and(|(_, b)| b.contains("eu1"))
    });
    for path in queries() {
        common::assert_same_points(
            &common::api_points(query.http_port, &path),
            &common::api_points(prometheus.port, &path),
            &path,
        );
    }

    // Limits: clear errors through the querier (partial responses off).
    for (flag, error) in [
        ("--store.limits.request-series=5", "series"),
        ("--chunk-pool-size=4KB", "chunk pool exhausted"),
    ] {
        let limited = start_store(&objstore, &dir.path().join("limited-data"), &[flag]);
        let mut query = common::start_query([&limited], &[]);
        query.wait_for(Duration::from_secs(30), "the store healthy", |q| {
            common::http_get(q.http_port, "/api/v1/stores").is_some_and(|(_, b)| b.contains("eu1"))
        });
        let (status, body) = common::http_get(
            query.http_port,
            &format!(
                "/api/v1/query?query=temperature_celsius&time={}&partial_response=false",
                START + 3600
            ),
        )
        .expect("answer");
        assert_eq!(status, 422, "{flag}: {body}");
        assert!(body.contains(error), "{flag}: {body}");
    }

    // The bucket gone: reads are retried (`max_retries`), then fail as gRPC UNAVAILABLE: a
    // partial answer with a warning, or the query's error without partial responses.
    let retrying = dir.path().join("retrying.yml");
    std::fs::write(&retrying, format!("{yaml}  max_retries: 1\n")).expect("objstore.yml");
    let store = start_store(&retrying, &dir.path().join("retrying-data"), &[]);
    let mut query = common::start_query([&store], &[]);
    query.wait_for(Duration::from_secs(30), "the store healthy", |q| {
        common::http_get(q.http_port, "/api/v1/stores").is_some_and(|(_, b)| b.contains("eu1"))
    });
    drop(moto);
    let path = format!(
        "/api/v1/query?query=temperature_celsius&time={}",
        START + 3600
    );
    let (status, body) = common::http_get(query.http_port, &path).expect("answer");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("warnings") && body.contains("bucket"),
        "{body}"
    );
    let (status, body) =
        common::http_get(query.http_port, &format!("{path}&partial_response=false"))
            .expect("answer");
    assert_eq!(status, 422, "{body}");
    assert!(
        store.log().is_empty() || !store.log().contains("panicked"),
        "{}",
        store.log()
    );
}

/// A 5m-resolution block (as the compactor writes them: one AggrChunk per series with count,
/// sum, min, max and counter per 5-minute window) for the hour before [`START`], and the
/// resolution choice: the querier asks raw data only by default, so the hour answers nothing;
/// with `max_source_resolution=5m` it is answered from the aggregates Thanos's way (max for
/// max_over_time, min for min_over_time, sum / count for avg_over_time).
#[test]
fn downsampled_blocks_are_served_by_resolution() {
    use rthanos_chunkenc::{Encoding, encode_aggr, xor};
    use rthanos_tsdb::writer::{BlockWriter, ChunkToWrite};
    let dir = tempfile::tempdir().expect("tmp");
    let bucket_dir = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket_dir).expect("bucket dir");
    let yaml = common::filesystem_yaml(&bucket_dir);
    let objstore = dir.path().join("objstore.yml");
    std::fs::write(&objstore, &yaml).expect("objstore.yml");

    // Raw samples 0, 1, 2, … every 30 s over the hour: window k (5 min) holds 10k … 10k+9.
    let from = (START - 3600) * 1000;
    let windows: Vec<i64> = (1..=12).map(|k| from + k * 300_000).collect();
    let series = |f: &dyn Fn(i64) -> f64| -> Vec<u8> {
        let points: Vec<(i64, f64)> = windows
            .iter()
            .enumerate()
            .map(|(k, t)| (*t, f(k as i64)))
            .collect();
        xor::encode(points.iter().copied()).expect("encode")
    };
    let count = series(&|_| 10.0);
    let sum = series(&|k| (0..10).map(|i| (10 * k + i) as f64).sum());
    let min = series(&|k| (10 * k) as f64);
    let max = series(&|k| (10 * k + 9) as f64);
    let counter = series(&|k| (10 * k + 9) as f64);
    let aggr = encode_aggr([
        Some(&count),
        Some(&sum),
        Some(&min),
        Some(&max),
        Some(&counter),
    ]);
    let symbols: std::collections::BTreeSet<String> = ["__name__", "ds_metric", "job", "d"]
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut writer = BlockWriter::create(&bucket_dir, &symbols).expect("writer");
    writer
        .add_series(
            &rthanos_model::Labels::from_pairs([("__name__", "ds_metric"), ("job", "d")]),
            &[ChunkToWrite {
                min_time: windows[0],
                max_time: windows[11],
                encoding: Encoding::Aggr,
                data: &aggr,
                samples: 120,
            }],
        )
        .expect("series");
    writer
        .finish(Some(rthanos_tsdb::meta::ThanosMeta {
            labels: [("cluster".to_string(), "eu1".to_string())].into(),
            source: "compactor".into(),
            downsample: rthanos_tsdb::meta::Downsample {
                resolution: 300_000,
            },
            ..Default::default()
        }))
        .expect("finish");

    let store = start_store(&objstore, &dir.path().join("store-data"), &[]);
    assert_eq!(store.metric("thanos_bucket_store_blocks_loaded"), Some(1.0));
    let mut query = common::start_query([&store], &[]);
    query.wait_for(Duration::from_secs(30), "the store healthy", |q| {
        common::http_get(q.http_port, "/api/v1/stores").is_some_and(|(_, b)| b.contains("eu1"))
    });
    let at = START;
    let value = |expr: &str, resolution: &str| -> Option<f64> {
        let path = format!(
            "/api/v1/query?query={}&time={at}{resolution}",
            expr.replace('[', "%5B").replace(']', "%5D")
        );
        let (status, body) = common::http_get(query.http_port, &path).expect("answer");
        assert_eq!(status, 200, "{path}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        json["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
    };
    let five = "&max_source_resolution=5m";
    assert_eq!(
        value("max_over_time(ds_metric[1h])", ""),
        None,
        "raw only by default"
    );
    assert_eq!(value("max_over_time(ds_metric[1h])", five), Some(119.0));
    assert_eq!(value("min_over_time(ds_metric[1h])", five), Some(0.0));
    // Each window's average, then their average: (4.5 + 14.5 + … + 114.5) / 12.
    assert_eq!(value("avg_over_time(ds_metric[1h])", five), Some(59.5));
    assert_eq!(
        value(
            "max_over_time(ds_metric[1h])",
            "&max_source_resolution=auto"
        ),
        None
    );
}

/// A Series answer dropped after its first frame stops the block readers: the store reads
/// far less from the bucket than the whole answer needs.
#[test]
fn a_cancelled_series_call_stops_fetching() {
    use rthanos_chunkenc::{Encoding, xor};
    use rthanos_tsdb::writer::{BlockWriter, ChunkToWrite};
    let dir = tempfile::tempdir().expect("tmp");
    let bucket_dir = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket_dir).expect("bucket dir");
    let objstore = dir.path().join("objstore.yml");
    std::fs::write(
        &objstore,
        format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            bucket_dir.display()
        ),
    )
    .expect("objstore.yml");
    // 4000 series of 8 chunks of 120 samples each: the chunks, not the index, are most of
    // what a whole answer reads.
    let instances: Vec<String> = (0..4000).map(|i| format!("i{i:04}")).collect();
    let mut symbols: std::collections::BTreeSet<String> = ["__name__", "big", "instance"]
        .into_iter()
        .map(str::to_string)
        .collect();
    symbols.extend(instances.iter().cloned());
    let mut writer = BlockWriter::create(&bucket_dir, &symbols).expect("writer");
    let chunks: Vec<(i64, i64, Vec<u8>)> = (0..8)
        .map(|c| {
            let points: Vec<(i64, f64)> = (0..120)
                .map(|i| {
                    let t = START + (c * 120 + i) * 7;
                    (t * 1000, ((c * 120 + i) * 7919 % 1000) as f64 / 7.0)
                })
                .collect();
            let data = xor::encode(points.iter().copied()).expect("encode");
            (points[0].0, points[119].0, data)
        })
        .collect();
    for instance in &instances {
        let to_write: Vec<ChunkToWrite<'_>> = chunks
            .iter()
            .map(|(min_time, max_time, data)| ChunkToWrite {
                min_time: *min_time,
                max_time: *max_time,
                encoding: Encoding::Xor,
                data,
                samples: 120,
            })
            .collect();
        writer
            .add_series(
                &rthanos_model::Labels::from_pairs([
                    ("__name__", "big"),
                    ("instance", instance.as_str()),
                ]),
                &to_write,
            )
            .expect("series");
    }
    writer
        .finish(Some(rthanos_tsdb::meta::ThanosMeta {
            labels: [("cluster".to_string(), "eu1".to_string())].into(),
            source: "sidecar".into(),
            ..Default::default()
        }))
        .expect("finish");

    // Each call goes to a store of its own, so both start with an empty index cache.
    let read = |frames: Option<usize>, data_dir: &str| -> f64 {
        let store = start_store(&objstore, &dir.path().join(data_dir), &[]);
        let fetched = || {
            store
                .metric("thanos_bucket_store_bucket_fetched_bytes_total")
                .unwrap_or(0.0)
        };
        let before = fetched();
        series_labels(&store, "big", frames);
        // The store's readers notice the dropped answer at their next hand-over.
        std::thread::sleep(Duration::from_secs(2));
        fetched() - before
    };
    let cancelled = read(Some(1), "store-cancelled");
    let whole = read(None, "store-whole");
    assert!(whole > 0.0);
    assert!(
        cancelled < whole / 3.0,
        "a cancelled call read {cancelled} bytes, the whole answer {whole}"
    );
}

/// A store whose connection dies mid-answer: the querier reports it (a warning with partial
/// responses, the query's error without), never a shorter answer that looks complete.
#[test]
fn a_store_answer_cut_short_is_an_error_not_a_shorter_answer() {
    use rthanos_chunkenc::{Encoding, xor};
    use rthanos_tsdb::writer::{BlockWriter, ChunkToWrite};
    let dir = tempfile::tempdir().expect("tmp");
    let bucket_dir = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket_dir).expect("bucket dir");
    let objstore = dir.path().join("objstore.yml");
    std::fs::write(&objstore, common::filesystem_yaml(&bucket_dir)).expect("objstore.yml");
    // 600 series of 4 chunks: an answer of a few hundred KiB, cut after 64 KiB.
    let instances: Vec<String> = (0..600).map(|i| format!("i{i:04}")).collect();
    let mut symbols: std::collections::BTreeSet<String> = ["__name__", "cut", "instance"]
        .into_iter()
        .map(str::to_string)
        .collect();
    symbols.extend(instances.iter().cloned());
    let mut writer = BlockWriter::create(&bucket_dir, &symbols).expect("writer");
    let chunks: Vec<(i64, i64, Vec<u8>)> = (0..4)
        .map(|c| {
            let points: Vec<(i64, f64)> = (0..120)
                .map(|i| {
                    let t = START + (c * 120 + i) * 15;
                    (t * 1000, ((c * 120 + i) * 7919 % 1000) as f64 / 7.0)
                })
                .collect();
            let data = xor::encode(points.iter().copied()).expect("encode");
            (points[0].0, points[119].0, data)
        })
        .collect();
    for instance in &instances {
        let to_write: Vec<ChunkToWrite<'_>> = chunks
            .iter()
            .map(|(min_time, max_time, data)| ChunkToWrite {
                min_time: *min_time,
                max_time: *max_time,
                encoding: Encoding::Xor,
                data,
                samples: 120,
            })
            .collect();
        let labels =
            rthanos_model::Labels::from_pairs([("__name__", "cut"), ("instance", instance)]);
        writer.add_series(&labels, &to_write).expect("series");
    }
    writer
        .finish(Some(rthanos_tsdb::meta::ThanosMeta {
            labels: [("cluster".to_string(), "eu1".to_string())].into(),
            source: "sidecar".into(),
            ..Default::default()
        }))
        .expect("finish");

    let store = start_store(&objstore, &dir.path().join("data"), &[]);
    let link = rthanos_testkit::Link::cutting(store.grpc_port, 64 * 1024);
    let args = [
        "query".to_string(),
        format!("--endpoint=127.0.0.1:{}", link.port),
    ];
    let mut query = Process::start(&args);
    query.wait_ready(Duration::from_secs(60));
    query.wait_for(Duration::from_secs(30), "the store healthy", |q| {
        common::http_get(q.http_port, "/api/v1/stores").is_some_and(|(_, b)| b.contains("eu1"))
    });
    let path = format!(
        "/api/v1/query?query=count(count_over_time(cut[2h]))&time={}",
        START + 7200
    );
    // Through a whole link, all 600 series count.
    let whole = common::start_query([&store], &[]);
    let (status, body) = common::http_get(whole.http_port, &path).expect("answer");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#""600""#) && !body.contains("warnings"),
        "{body}"
    );

    let (status, body) = common::http_get(query.http_port, &path).expect("answer");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("warnings"), "a cut answer must warn: {body}");
    let (status, body) =
        common::http_get(query.http_port, &format!("{path}&partial_response=false"))
            .expect("answer");
    assert_eq!(
        status, 422,
        "a cut answer must fail without partial responses: {body}"
    );
    assert!(!query.log().contains("panicked"), "{}", query.log());
    // The background loops run supervised: their failures are counted (none here).
    for (process, task) in [(&store, "block_sync"), (&query, "endpoint_refresh")] {
        let series =
            format!(r#"thanos_background_task_failures_total{{cause="panic",task="{task}"}}"#);
        assert_eq!(process.metric(&series), Some(0.0), "{series}");
    }
}

/// A month of 100k short-lived series (10 minutes each, as pods that come and go), one range
/// query over the whole month at ~11k steps: Prometheus holds the points present, ≈ 4 per
/// series, not one slot per series per step (100k × 11k × 16 bytes is 17 GB). The querier runs
/// under a 6 GiB address-space limit, as in the bad-input battery, and answers in full.
#[test]
fn a_month_of_short_lived_series_costs_its_points_not_its_steps() {
    use rthanos_chunkenc::{Encoding, xor};
    use rthanos_tsdb::writer::{BlockWriter, ChunkToWrite};
    const SERIES: i64 = 100_000;
    const MONTH_MS: i64 = 30 * 86_400_000;
    const SCRAPE_MS: i64 = 15_000;
    const SAMPLES: i64 = 40;
    const LOOKBACK_MS: i64 = 300_000;
    let from = START * 1000;
    // Series k starts at from + k × 25.92 s: a new pod about every half minute.
    let first = |k: i64| from + k * (MONTH_MS / SERIES);
    let last = |k: i64| first(k) + (SAMPLES - 1) * SCRAPE_MS;

    let dir = tempfile::tempdir().expect("tmp");
    let bucket_dir = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket_dir).expect("bucket dir");
    let objstore = dir.path().join("objstore.yml");
    std::fs::write(&objstore, common::filesystem_yaml(&bucket_dir)).expect("objstore.yml");
    let pods: Vec<String> = (0..SERIES).map(|k| format!("pod-{k:06}")).collect();
    let mut symbols: std::collections::BTreeSet<String> = ["__name__", "pod", "short_lived"]
        .into_iter()
        .map(str::to_string)
        .collect();
    symbols.extend(pods.iter().cloned());
    let mut writer = BlockWriter::create(&bucket_dir, &symbols).expect("writer");
    for (k, pod) in (0..SERIES).zip(&pods) {
        let points = (0..SAMPLES).map(|i| (first(k) + i * SCRAPE_MS, 1.0));
        let data = xor::encode(points).expect("encode");
        writer
            .add_series(
                &rthanos_model::Labels::from_pairs([
                    ("__name__", "short_lived"),
                    ("pod", pod.as_str()),
                ]),
                &[ChunkToWrite {
                    min_time: first(k),
                    max_time: last(k),
                    encoding: Encoding::Xor,
                    data: &data,
                    samples: SAMPLES as u64,
                }],
            )
            .expect("series");
    }
    writer
        .finish(Some(rthanos_tsdb::meta::ThanosMeta {
            labels: [("cluster".to_string(), "pods".to_string())].into(),
            source: "compactor".into(),
            ..Default::default()
        }))
        .expect("finish");

    let store = start_store(&objstore, &dir.path().join("store-data"), &[]);
    let mut query = common::Process::start_wrapped(
        "prlimit --as=6442450944 --",
        &[
            "query".to_string(),
            format!("--endpoint={}", store.grpc_addr()),
        ],
    );
    query.wait_ready(Duration::from_secs(60));
    query.wait_for(Duration::from_secs(30), "the store healthy", |q| {
        common::http_get(q.http_port, "/api/v1/stores").is_some_and(|(_, b)| b.contains("pods"))
    });

    let step_ms = 236_000;
    let steps: Vec<i64> = (0..)
        .map(|i| from + i * step_ms)
        .take_while(|&t| t <= from + MONTH_MS)
        .collect();
    assert!(steps.len() > 10_000);
    // A series is present at the steps from its first sample to its last plus the lookback.
    let present = |k: i64| {
        steps
            .iter()
            .filter(|&&t| first(k) <= t && t <= last(k) + LOOKBACK_MS)
            .count()
    };
    let range = |expr: &str| -> serde_json::Value {
        let path = format!(
            "/api/v1/query_range?query={}&start={}&end={}&step={}",
            common::urlencode(expr),
            from / 1000,
            (from + MONTH_MS) / 1000,
            step_ms / 1000
        );
        let answer = common::http_get_within(query.http_port, &path, Duration::from_secs(240));
        let Some((200, body)) = answer else {
            panic!("{expr}: {answer:?}\n{}", query.log());
        };
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        json["data"]["result"].clone()
    };
    let points = |result: &serde_json::Value| -> usize {
        result
            .as_array()
            .expect("matrix")
            .iter()
            .map(|s| s["values"].as_array().map_or(0, Vec::len))
            .sum()
    };

    let raw = range("short_lived");
    let want: usize = (0..SERIES).map(present).sum();
    assert_eq!(raw.as_array().map(Vec::len), Some(SERIES as usize));
    assert_eq!(points(&raw), want, "every present point, no other");
    drop(raw);
    // Aggregated step by step: the pods alive at each step.
    let alive = range("count(short_lived)");
    let counts = alive[0]["values"].as_array().expect("values");
    let total: f64 = counts
        .iter()
        .filter_map(|p| p[1].as_str().and_then(|v| v.parse::<f64>().ok()))
        .sum();
    assert_eq!(total as usize, want, "count() adds up to the points");
    // A range function over the month: one window per present step.
    let windows = range("count_over_time(short_lived[5m])");
    assert_eq!(windows.as_array().map(Vec::len), Some(SERIES as usize));
    assert_eq!(
        query.http_status("/-/healthy"),
        Some(200),
        "{}",
        query.log()
    );
}
