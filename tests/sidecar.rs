//! `rthanos sidecar` against a real Prometheus 2.42 (Debian's), with blocks made by promtool
//! in its data directory: the StoreAPI answers what `promtool tsdb dump` shows, and the
//! shipper uploads every block once, to a FILESYSTEM bucket and to S3 (moto).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Process;
use futures::StreamExt;
use rthanos_storeapi::thanos::{
    self, LabelNamesRequest, LabelValuesRequest, SeriesRequest, series_response::Result as Frame,
};
use rthanos_storeapi::{ClientOptions, Component, GrpcStore, Store};
use rthanos_testkit::openmetrics::{Spec, generate};
use rthanos_testkit::{Prometheus, PromtoolBlocks, copy_dir, promtool_dump_matching};

const EXTERNAL: &str = "global:\n  external_labels:\n    cluster: eu1\n    replica: a\n";

/// Prometheus over a copy of promtool blocks (4h of data: two 2h blocks).
struct Setup {
    blocks: PromtoolBlocks,
    data: tempfile::TempDir,
    prometheus: Prometheus,
}

fn setup(spec: &Spec, config: &str) -> Setup {
    let blocks = PromtoolBlocks::create(&generate(spec), "2h");
    let data = tempfile::tempdir().expect("tmp");
    copy_dir(&blocks.data_dir(), data.path());
    let prometheus = Prometheus::start(data.path(), config);
    Setup {
        blocks,
        data,
        prometheus,
    }
}

fn small_spec() -> Spec {
    Spec {
        series: 12,
        samples: 480,
        interval: 30,
        ..Spec::default()
    }
}

fn sidecar_args(prometheus: &Prometheus, tsdb: &Path, extra: &[String]) -> Vec<String> {
    let mut args = vec![
        "sidecar".to_string(),
        format!("--prometheus.url={}", prometheus.url()),
        format!("--tsdb.path={}", tsdb.display()),
        "--prometheus.get_config_interval=1s".to_string(),
        "--prometheus.ready_timeout=1m".to_string(),
    ];
    args.extend_from_slice(extra);
    args
}

fn client(sidecar: &Process) -> GrpcStore {
    GrpcStore::connect(
        &sidecar.grpc_addr(),
        &ClientOptions {
            response_timeout: Some(Duration::from_secs(30)),
            ..ClientOptions::default()
        },
    )
    .expect("client")
}

fn matcher(kind: i32, name: &str, value: &str) -> thanos::LabelMatcher {
    thanos::LabelMatcher {
        r#type: kind,
        name: name.into(),
        value: value.into(),
    }
}

/// The samples of a Series answer as `promtool tsdb dump` lines (`{labels} value ts`), sorted,
/// keeping samples in [min, max]; the external labels are checked on every series and left out
/// of the lines, as Prometheus's own dump does not show them.
async fn series_as_dump(
    store: &GrpcStore,
    request: SeriesRequest,
    external: &[(&str, &str)],
) -> Vec<String> {
    let (min, max) = (request.min_time, request.max_time);
    let mut frames = store.series(request).await.expect("series");
    let mut lines = Vec::new();
    while let Some(frame) = frames.next().await {
        let Some(Frame::Series(series)) = frame.expect("frame").result else {
            continue;
        };
        let mut labels = rthanos_storeapi::convert::labels_from_thanos(series.labels);
        for (name, value) in external {
            assert_eq!(labels.get(name), Some(*value), "{labels}");
        }
        labels = rthanos_model::Labels::from_pairs(
            labels
                .iter()
                .filter(|l| !external.iter().any(|(n, _)| *n == l.name))
                .map(|l| (l.name.clone(), l.value.clone())),
        );
        for chunk in series.chunks {
            let raw = chunk.raw.expect("raw chunk");
            assert_eq!(raw.r#type, 0, "XOR");
            assert_eq!(raw.hash, xxhash_rust::xxh64::xxh64(&raw.data, 0));
            let mut it = rthanos_chunkenc::XorIterator::new(&raw.data).expect("chunk");
            while let Some((t, v)) = it.next_sample().expect("sample") {
                if t < min || t > max {
                    continue;
                }
                let mut value = String::new();
                rthanos_tsdb::dump::format_go_g(&mut value, v);
                lines.push(format!("{labels} {value} {t}"));
            }
        }
    }
    lines.sort();
    lines
}

fn dump_lines(data: &Path, args: &[&str]) -> Vec<String> {
    let mut lines: Vec<String> = promtool_dump_matching(data, args)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn series_are_what_promtool_dump_shows_plus_external_labels() {
    let setup = setup(&small_spec(), EXTERNAL);
    let mut sidecar = Process::start(&sidecar_args(&setup.prometheus, setup.data.path(), &[]));
    sidecar.wait_ready(Duration::from_secs(60));
    let store = client(&sidecar);
    let external = [("cluster", "eu1"), ("replica", "a")];

    let info = store.fetch_info().await.expect("info");
    assert!(info.serving);
    assert_eq!(info.component, Component::Sidecar);
    assert_eq!(
        info.label_sets[0].to_string(),
        r#"{cluster="eu1", replica="a"}"#
    );
    assert_eq!(info.max_time, i64::MAX);
    let oldest = 1_700_000_000_000;
    assert!(
        (oldest..oldest + 1000).contains(&info.min_time),
        "min time is the oldest sample: {}",
        info.min_time
    );

    // Everything.
    let all = series_as_dump(
        &store,
        SeriesRequest {
            min_time: i64::MIN,
            max_time: i64::MAX,
            matchers: vec![matcher(2, "__name__", ".+")],
            ..Default::default()
        },
        &external,
    )
    .await;
    let expected = dump_lines(setup.blocks.data_dir().as_path(), &[]);
    assert!(expected.len() > 10_000, "{} samples", expected.len());
    assert_eq!(all.len(), expected.len());
    assert!(all == expected, "series differ from promtool tsdb dump");

    // A selection with a time window and an external-label matcher that matches.
    let (min, max) = (1_700_003_000_000, 1_700_009_000_000);
    let some = series_as_dump(
        &store,
        SeriesRequest {
            min_time: min,
            max_time: max,
            matchers: vec![
                matcher(0, "__name__", "http_requests_total"),
                matcher(2, "code", "200|500"),
                matcher(0, "cluster", "eu1"),
            ],
            ..Default::default()
        },
        &external,
    )
    .await;
    let expected = dump_lines(
        setup.blocks.data_dir().as_path(),
        &[
            r#"--match={__name__="http_requests_total", code=~"200|500"}"#,
            &format!("--min-time={min}"),
            &format!("--max-time={max}"),
        ],
    );
    assert!(!expected.is_empty());
    assert!(some == expected, "windowed selection differs from promtool");
}

#[tokio::test(flavor = "multi_thread")]
async fn labels_external_matchers_and_replica_labels() {
    let setup = setup(&small_spec(), EXTERNAL);
    let mut sidecar = Process::start(&sidecar_args(&setup.prometheus, setup.data.path(), &[]));
    sidecar.wait_ready(Duration::from_secs(60));
    let store = client(&sidecar);

    let names = store
        .label_names(LabelNamesRequest {
            start: i64::MIN,
            end: i64::MAX,
            ..Default::default()
        })
        .await
        .expect("names");
    for name in ["__name__", "cluster", "code", "replica", "room"] {
        assert!(names.names.contains(&name.to_string()), "{:?}", names.names);
    }
    let names = store
        .label_names(LabelNamesRequest {
            start: i64::MIN,
            end: i64::MAX,
            matchers: vec![matcher(0, "__name__", "temperature_celsius")],
            without_replica_labels: vec!["replica".into()],
            ..Default::default()
        })
        .await
        .expect("names");
    assert_eq!(names.names, ["__name__", "cluster", "room", "site"]);

    let values = store
        .label_values(LabelValuesRequest {
            label: "cluster".into(),
            start: i64::MIN,
            end: i64::MAX,
            ..Default::default()
        })
        .await
        .expect("values");
    assert_eq!(values.values, ["eu1"]);
    let values = store
        .label_values(LabelValuesRequest {
            label: "site".into(),
            start: i64::MIN,
            end: i64::MAX,
            matchers: vec![matcher(0, "__name__", "temperature_celsius")],
            ..Default::default()
        })
        .await
        .expect("values");
    assert_eq!(values.values, ["a", "b"]);

    // Only external-label matchers: refused, as Thanos refuses.
    let status = match store
        .series(SeriesRequest {
            min_time: i64::MIN,
            max_time: i64::MAX,
            matchers: vec![matcher(0, "cluster", "eu1")],
            ..Default::default()
        })
        .await
    {
        Ok(_) => panic!("must be refused"),
        Err(status) => status,
    };
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("no matchers specified"));

    // An external-label matcher that does not match: nothing, not an error.
    let frames: Vec<_> = store
        .series(SeriesRequest {
            min_time: i64::MIN,
            max_time: i64::MAX,
            matchers: vec![matcher(0, "__name__", "up"), matcher(0, "cluster", "us1")],
            ..Default::default()
        })
        .await
        .expect("series")
        .collect()
        .await;
    assert!(frames.is_empty());

    // skip_chunks and without_replica_labels: labels only, replica gone, sorted.
    let frames: Vec<_> = store
        .series(SeriesRequest {
            min_time: i64::MIN,
            max_time: i64::MAX,
            matchers: vec![matcher(
                2,
                "__name__",
                "temperature_celsius|http_requests_total",
            )],
            skip_chunks: true,
            without_replica_labels: vec!["replica".into()],
            ..Default::default()
        })
        .await
        .expect("series")
        .collect()
        .await;
    let sets: Vec<Vec<thanos::Label>> = frames
        .into_iter()
        .filter_map(|f| match f.expect("frame").result {
            Some(Frame::Series(s)) => {
                assert!(s.chunks.is_empty());
                Some(s.labels)
            }
            _ => None,
        })
        .collect();
    assert_eq!(sets.len(), 24);
    assert!(sets.iter().all(|s| s.iter().all(|l| l.name != "replica")));
    assert!(sets.iter().all(|s| s.iter().any(|l| l.name == "cluster")));
    assert!(
        sets.windows(2)
            .all(|w| rthanos_storeapi::compare_labels(&w[0], &w[1]).is_lt())
    );

    // --min-time: the advertised range starts there and older chunks are not sent.
    let min_time = 1_700_006_400_000; // 2023-11-15T00:00:00Z
    let mut limited = Process::start(&sidecar_args(
        &setup.prometheus,
        setup.data.path(),
        &["--min-time=2023-11-15T00:00:00Z".to_string()],
    ));
    limited.wait_ready(Duration::from_secs(60));
    let store = client(&limited);
    assert_eq!(store.fetch_info().await.expect("info").min_time, min_time);
    let mut frames = store
        .series(SeriesRequest {
            min_time: i64::MIN,
            max_time: i64::MAX,
            matchers: vec![matcher(0, "__name__", "temperature_celsius")],
            ..Default::default()
        })
        .await
        .expect("series");
    let mut chunks = 0;
    while let Some(frame) = frames.next().await {
        if let Some(Frame::Series(s)) = frame.expect("frame").result {
            for chunk in s.chunks {
                assert!(chunk.max_time >= min_time, "chunk ends before --min-time");
                chunks += 1;
            }
        }
    }
    assert!(chunks > 0);

    // --store.limits.request-series: a larger answer fails, as in Thanos.
    let mut limited = Process::start(&sidecar_args(
        &setup.prometheus,
        setup.data.path(),
        &["--store.limits.request-series=5".to_string()],
    ));
    limited.wait_ready(Duration::from_secs(60));
    let frames: Vec<_> = client(&limited)
        .series(SeriesRequest {
            min_time: i64::MIN,
            max_time: i64::MAX,
            matchers: vec![matcher(0, "__name__", "temperature_celsius")],
            ..Default::default()
        })
        .await
        .expect("series")
        .collect()
        .await;
    let status = frames
        .into_iter()
        .find_map(Result::err)
        .expect("12 series pass the limit of 5");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(
        status.message().contains("exceeded series limit"),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_down_means_unavailable_and_not_ready_until_it_is_back() {
    let setup = setup(&small_spec(), EXTERNAL);
    let port = setup.prometheus.port;
    let mut sidecar = Process::start(&sidecar_args(&setup.prometheus, setup.data.path(), &[]));
    sidecar.wait_ready(Duration::from_secs(60));
    assert_eq!(sidecar.metric("thanos_sidecar_prometheus_up"), Some(1.0));
    let store = client(&sidecar);
    let request = SeriesRequest {
        min_time: i64::MIN,
        max_time: i64::MAX,
        matchers: vec![matcher(0, "__name__", "temperature_celsius")],
        ..Default::default()
    };
    assert!(store.series(request.clone()).await.is_ok());

    let Setup {
        blocks: _blocks,
        data,
        prometheus,
    } = setup;
    drop(prometheus);
    let status = match store.series(request.clone()).await {
        Ok(_) => panic!("Prometheus is down"),
        Err(status) => status,
    };
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    sidecar.wait_for(Duration::from_secs(20), "not ready", |p| {
        p.http_status("/-/ready") == Some(503)
    });
    assert_eq!(sidecar.metric("thanos_sidecar_prometheus_up"), Some(0.0));
    // Queriers must leave it out meanwhile: Info carries no StoreInfo.
    assert!(!store.fetch_info().await.expect("info").serving);

    let _prometheus = Prometheus::start_on(data.path(), EXTERNAL, port);
    sidecar.wait_ready(Duration::from_secs(30));
    assert_eq!(sidecar.metric("thanos_sidecar_prometheus_up"), Some(1.0));
    assert!(store.fetch_info().await.expect("info").serving);
    let frames: Vec<_> = store
        .series(request)
        .await
        .expect("series after recovery")
        .collect()
        .await;
    assert_eq!(frames.len(), 12);
}

// ---- shipper ----

fn local_blocks(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(dir)
        .expect("tsdb dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().join("meta.json").is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| ulid::Ulid::from_string(n).is_ok())
        .collect();
    ids.sort();
    ids
}

/// Every file of each local block is in the FILESYSTEM bucket with the same bytes, and the
/// uploaded meta.json has the sidecar's `thanos` section.
fn assert_shipped(tsdb: &Path, bucket: &Path, blocks: &[String]) {
    for id in blocks {
        let local = tsdb.join(id);
        let remote = bucket.join(id);
        for rel in block_files(&local) {
            assert_eq!(
                std::fs::read(local.join(&rel)).expect("local file"),
                std::fs::read(remote.join(&rel)).unwrap_or_default(),
                "{id}/{rel}"
            );
        }
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(remote.join("meta.json")).expect("meta.json"))
                .expect("json");
        let local_meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(local.join("meta.json")).expect("meta.json"))
                .expect("json");
        assert_eq!(meta["ulid"], local_meta["ulid"]);
        assert_eq!(meta["minTime"], local_meta["minTime"]);
        assert_eq!(meta["stats"], local_meta["stats"]);
        let thanos = &meta["thanos"];
        assert_eq!(thanos["labels"]["cluster"], "eu1");
        assert_eq!(thanos["labels"]["replica"], "a");
        assert_eq!(thanos["downsample"]["resolution"], 0);
        assert_eq!(thanos["source"], "sidecar");
        let files: Vec<&str> = thanos["files"]
            .as_array()
            .expect("files")
            .iter()
            .filter_map(|f| f["rel_path"].as_str())
            .collect();
        assert!(
            files.contains(&"index") && files.contains(&"meta.json"),
            "{files:?}"
        );
        assert!(files.iter().any(|f| f.starts_with("chunks/")), "{files:?}");
    }
}

fn block_files(block: &Path) -> Vec<String> {
    let mut files = vec!["index".to_string()];
    for entry in std::fs::read_dir(block.join("chunks")).expect("chunks") {
        let entry = entry.expect("entry");
        files.push(format!("chunks/{}", entry.file_name().to_string_lossy()));
    }
    files
}

fn fs_objstore(dir: &Path) -> String {
    format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.display()
    )
}

fn all_in_bucket(bucket: &Path, blocks: &[String]) -> bool {
    blocks
        .iter()
        .all(|id| bucket.join(id).join("meta.json").is_file())
}

#[test]
fn every_block_is_shipped_once_to_a_filesystem_bucket() {
    let setup = setup(&small_spec(), EXTERNAL);
    let tsdb = setup.data.path();
    let blocks = local_blocks(tsdb);
    assert!(blocks.len() >= 2, "4h of data make 2h blocks");
    let count = blocks.len() as f64;
    let bucket = tempfile::tempdir().expect("tmp");
    let args = sidecar_args(&setup.prometheus, tsdb, &[fs_objstore(bucket.path())]);

    let mut sidecar = Process::start(&args);
    sidecar.wait_for(Duration::from_secs(60), "shipped", |_| {
        all_in_bucket(bucket.path(), &blocks)
    });
    sidecar.wait_for(Duration::from_secs(10), "recorded", |p| {
        p.metric("thanos_shipper_uploads_total") == Some(count)
    });
    assert_shipped(tsdb, bucket.path(), &blocks);
    assert_eq!(common::shipped_record(tsdb), blocks);
    assert_eq!(
        sidecar.metric("thanos_shipper_upload_failures_total"),
        Some(0.0)
    );
    assert_eq!(
        sidecar.metric("thanos_shipper_dir_sync_failures_total"),
        Some(0.0)
    );
    drop(sidecar);

    // A restart uploads nothing twice.
    let mtime = |id: &str| {
        std::fs::metadata(bucket.path().join(id).join("index"))
            .and_then(|m| m.modified())
            .expect("mtime")
    };
    let before = mtime(&blocks[0]);
    let mut sidecar = Process::start(&args);
    sidecar.wait_for(Duration::from_secs(60), "synced", |p| {
        p.metric("thanos_shipper_dir_syncs_total")
            .is_some_and(|n| n >= 1.0)
    });
    assert_eq!(sidecar.metric("thanos_shipper_uploads_total"), Some(0.0));
    assert_eq!(mtime(&blocks[0]), before);
}

#[test]
fn blocks_reach_s3() {
    let moto = rthanos_testkit::Moto::start();
    moto.create_bucket("thanos");
    let setup = setup(&small_spec(), EXTERNAL);
    let tsdb = setup.data.path();
    let blocks = local_blocks(tsdb);
    let config = format!("--objstore.config={}", moto.objstore_yaml("thanos"));
    let mut sidecar = Process::start(&sidecar_args(&setup.prometheus, tsdb, &[config]));
    let count = blocks.len() as f64;
    sidecar.wait_for(Duration::from_secs(60), "shipped", |p| {
        p.metric("thanos_shipper_uploads_total") == Some(count)
    });
    assert_eq!(common::shipped_record(tsdb), blocks);

    // Read back through the S3 API what the sidecar wrote.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let registry = prometheus::Registry::new();
    let bucket = rthanos_objstore::Bucket::from_yaml(&moto.objstore_yaml("thanos"), &registry)
        .expect("bucket");
    for id in &blocks {
        let meta = runtime
            .block_on(bucket.get(&format!("{id}/meta.json")))
            .expect("meta.json");
        let meta = rthanos_tsdb::BlockMeta::parse(&meta).expect("valid meta.json");
        let thanos = meta.thanos.expect("thanos section");
        assert_eq!(thanos.source, "sidecar");
        assert_eq!(
            thanos.labels.get("cluster").map(String::as_str),
            Some("eu1")
        );
        let index = runtime
            .block_on(bucket.get(&format!("{id}/index")))
            .expect("index");
        assert_eq!(
            index.as_ref(),
            std::fs::read(tsdb.join(id).join("index")).expect("local index")
        );
    }
}

/// Killed with SIGKILL while uploading: on restart every block is completed, and at no time
/// does a block's meta.json exist in the bucket before all of its other files.
#[test]
fn a_killed_sidecar_completes_its_upload_and_meta_json_always_comes_last() {
    // 48h of data: 24 blocks of 2h, so the kill lands while blocks are still to ship.
    let spec = Spec {
        series: 60,
        samples: 24 * 60,
        interval: 120,
        ..Spec::default()
    };
    let setup = setup(&spec, EXTERNAL);
    let tsdb = setup.data.path().to_path_buf();
    let blocks = local_blocks(&tsdb);
    assert!(blocks.len() >= 24, "{} blocks", blocks.len());
    // A kill must land while blocks are still to ship. The test thread polls tightly, but a
    // busy machine may deschedule it for as long as all the uploads take: then it tries again
    // on a fresh bucket, with the sidecar's record of shipped blocks removed.
    let mut attempt = 0;
    let (_bucket, bucket_dir, stop, watcher, args) = loop {
        attempt += 1;
        let bucket = tempfile::tempdir().expect("tmp");
        let bucket_dir = bucket.path().to_path_buf();
        let (stop, watcher) = watch_meta_json_comes_last(&tsdb, &bucket_dir, &blocks);
        let args = sidecar_args(&setup.prometheus, &tsdb, &[fs_objstore(&bucket_dir)]);
        let mut sidecar = Process::start(&args);
        // Polled tightly: a block takes milliseconds to upload.
        let first = bucket_dir.join(&blocks[0]);
        let limit = Duration::from_secs(60);
        let deadline = rthanos_testkit::time::deadline_after(limit);
        while !first.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "no upload started {}:\n{}",
                rthanos_testkit::time::gave_up(limit, deadline),
                sidecar.log()
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        sidecar.kill();
        let shipped_before = blocks
            .iter()
            .filter(|id| bucket_dir.join(id).join("meta.json").exists())
            .count();
        if shipped_before < blocks.len() {
            break (bucket, bucket_dir, stop, watcher, args);
        }
        assert!(
            attempt < 5,
            "the kill came too late to test anything, {attempt} times"
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        watcher.join().expect("invariant held");
        // The record may not be written yet.
        let _ = std::fs::remove_file(tsdb.join("thanos.shipper.json"));
    };

    let mut sidecar = Process::start(&args);
    sidecar.wait_for(Duration::from_secs(120), "all shipped", |_| {
        all_in_bucket(&bucket_dir, &blocks)
    });
    sidecar.wait_for(Duration::from_secs(10), "recorded", |_| {
        std::fs::read(tsdb.join("thanos.shipper.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["uploaded"].as_array().map(Vec::len))
            == Some(blocks.len())
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let checks = watcher.join().expect("invariant held");
    assert!(checks > 0);
    assert_shipped(&tsdb, &bucket_dir, &blocks);
    assert!(
        !tsdb.join("thanos/upload").exists()
            || std::fs::read_dir(tsdb.join("thanos/upload"))
                .map(|d| d.count() == 0)
                .unwrap_or(true),
        "staging cleaned up"
    );
}

#[test]
fn uploads_without_external_labels_are_refused() {
    let setup = setup(&small_spec(), "global: {}\n");
    let bucket = tempfile::tempdir().expect("tmp");
    let mut sidecar = Process::start(&sidecar_args(
        &setup.prometheus,
        setup.data.path(),
        &[fs_objstore(bucket.path())],
    ));
    assert_eq!(sidecar.wait_exit(Duration::from_secs(60)), Some(1));
    assert!(
        sidecar.log().contains("no external labels configured"),
        "{}",
        sidecar.log()
    );
    let _: PathBuf = bucket.path().to_path_buf();
}

/// A thread that checks, as often as it can until told to stop, that no block's meta.json is
/// in the bucket before its other files are complete; it returns how many checks it made.
fn watch_meta_json_comes_last(
    tsdb: &Path,
    bucket_dir: &Path,
    blocks: &[String],
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<u64>,
) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (stop, tsdb, bucket_dir, blocks) = (
            std::sync::Arc::clone(&stop),
            tsdb.to_path_buf(),
            bucket_dir.to_path_buf(),
            blocks.to_vec(),
        );
        std::thread::spawn(move || {
            let expected: BTreeMap<String, Vec<(String, u64)>> = blocks
                .iter()
                .map(|id| {
                    let files = block_files(&tsdb.join(id))
                        .into_iter()
                        .map(|rel| {
                            let size = std::fs::metadata(tsdb.join(id).join(&rel))
                                .expect("size")
                                .len();
                            (rel, size)
                        })
                        .collect();
                    (id.clone(), files)
                })
                .collect();
            let mut checks = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (id, files) in &expected {
                    if !bucket_dir.join(id).join("meta.json").exists() {
                        continue;
                    }
                    for (rel, size) in files {
                        let got = std::fs::metadata(bucket_dir.join(id).join(rel)).map(|m| m.len());
                        assert_eq!(
                            got.ok(),
                            Some(*size),
                            "{id}: meta.json visible before {rel} was complete"
                        );
                    }
                }
                checks += 1;
            }
            checks
        })
    };
    (stop, watcher)
}

/// A large block shipped slowly to S3 (through a slow link to moto) while the compactor cleans
/// the same bucket every second: nothing of the upload in flight is deleted, and the block ends
/// up whole and served by a store gateway. (Before, a block without meta.json idle for the
/// consistency delay was deleted under the upload.)
#[test]
fn a_slow_upload_to_s3_survives_the_compactors_cleanup() {
    let moto = rthanos_testkit::Moto::start();
    moto.create_bucket("thanos");
    let link = rthanos_testkit::Link::slow(moto.port, 256 * 1024);
    // Many short series: an index larger than the chunks, so that the block is partial (its
    // chunks in the bucket, its index on the way) for seconds.
    let spec = Spec {
        series: 4000,
        samples: 30,
        interval: 240,
        ..Spec::default()
    };
    let setup = setup(&spec, EXTERNAL);
    let tsdb = setup.data.path();
    let blocks = local_blocks(tsdb);
    let bytes: u64 = blocks
        .iter()
        .flat_map(|id| {
            block_files(&tsdb.join(id))
                .into_iter()
                .map(move |rel| tsdb.join(id).join(rel))
        })
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|m| m.len())
        .sum();
    assert!(
        bytes > 2 << 20,
        "blocks of {bytes} bytes ship too fast to test anything"
    );

    let direct = moto.objstore_yaml("thanos");
    let data = tempfile::tempdir().expect("tmp");
    let mut compact = Process::start(&[
        "compact".to_string(),
        format!("--objstore.config={direct}"),
        format!("--data-dir={}", data.path().display()),
        "--wait".to_string(),
        "--wait-interval=1s".to_string(),
        "--compact.cleanup-interval=1s".to_string(),
        "--consistency-delay=0s".to_string(),
        "--delete-delay=0s".to_string(),
    ]);
    compact.wait_ready(Duration::from_secs(60));

    let slow = rthanos_testkit::s3_objstore_yaml(link.port, "thanos");
    let sidecar = Process::start(&sidecar_args(
        &setup.prometheus,
        tsdb,
        &[format!("--objstore.config={slow}")],
    ));
    // Every object of the upload, once it has appeared, stays until the upload is done; the
    // compactor goes through its iterations (each with a cleanup) meanwhile.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let bucket =
        rthanos_objstore::Bucket::from_yaml(&direct, &prometheus::Registry::new()).expect("bucket");
    let iterations = |p: &Process| p.metric("thanos_compact_iterations_total").unwrap_or(0.0);
    let mut seen: Vec<String> = Vec::new();
    let mut iterations_while_partial = 0.0;
    let limit = Duration::from_secs(120);
    let deadline = rthanos_testkit::time::deadline_after(limit);
    let mut partial_since = None;
    while sidecar.metric("thanos_shipper_uploads_total") != Some(blocks.len() as f64) {
        let now: Vec<String> = runtime
            .block_on(bucket.iter("", true))
            .expect("list the bucket");
        for object in &seen {
            assert!(
                now.contains(object),
                "{object} deleted during the upload:\n{}",
                compact.log()
            );
        }
        let partial = blocks.iter().any(|id| {
            now.iter().any(|o| o.starts_with(&format!("{id}/")))
                && !now.contains(&format!("{id}/meta.json"))
        });
        let count = iterations(&compact);
        // Iterations between two looks that both saw a partial block ran while it was.
        if partial {
            if let Some(then) = partial_since {
                iterations_while_partial += count - then;
            }
            partial_since = Some(count);
        } else {
            partial_since = None;
        }
        seen = now;
        assert!(
            std::time::Instant::now() < deadline,
            "not shipped {}:\n{}",
            rthanos_testkit::time::gave_up(limit, deadline),
            sidecar.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Had a cleanup taken a partial block for abandoned, the objects seen above would have
    // gone, or the blocks checked below would miss files.
    assert!(
        iterations_while_partial >= 1.0,
        "the compactor ran no iteration while a block was partial"
    );
    assert_eq!(
        compact.metric("thanos_compact_aborted_partial_uploads_deletion_attempts_total"),
        Some(0.0)
    );

    // Whole, and served: a store gateway on the bucket loads every block, and its data is
    // what the sidecar had.
    assert_eq!(common::shipped_record(tsdb), blocks);
    for id in &blocks {
        for rel in block_files(&tsdb.join(id)) {
            let got = runtime
                .block_on(bucket.get(&format!("{id}/{rel}")))
                .unwrap_or_else(|e| panic!("{id}/{rel}: {e}"));
            if rel != "meta.json" {
                assert_eq!(
                    got.len() as u64,
                    std::fs::metadata(tsdb.join(id).join(&rel))
                        .expect("local")
                        .len(),
                    "{id}/{rel}"
                );
            }
        }
    }
    let store_data = tempfile::tempdir().expect("tmp");
    let mut store = Process::start(&[
        "store".to_string(),
        format!("--objstore.config={direct}"),
        format!("--data-dir={}", store_data.path().display()),
    ]);
    store.wait_for(Duration::from_secs(60), "every block loaded", |p| {
        p.metric("thanos_bucket_store_blocks_loaded") == Some(blocks.len() as f64)
    });
}

/// Samples (time, value bits) by series labels.
type SamplesBySeries = BTreeMap<Vec<(String, String)>, Vec<(i64, u64)>>;

/// Every sample of `request`'s answer within its time range, by series.
async fn samples_by_series(store: &GrpcStore, request: SeriesRequest) -> SamplesBySeries {
    let (min, max) = (request.min_time, request.max_time);
    let mut frames = store.series(request).await.expect("series");
    let mut out = SamplesBySeries::new();
    while let Some(frame) = frames.next().await {
        let Some(Frame::Series(series)) = frame.expect("frame").result else {
            continue;
        };
        let labels = series
            .labels
            .into_iter()
            .map(|l| (l.name, l.value))
            .collect();
        let samples = out.entry(labels).or_default();
        for chunk in series.chunks {
            let raw = chunk.raw.expect("raw chunk");
            assert_eq!(raw.hash, xxhash_rust::xxh64::xxh64(&raw.data, 0));
            let mut it = rthanos_chunkenc::XorIterator::new(&raw.data).expect("chunk");
            while let Some((t, v)) = it.next_sample().expect("sample") {
                if (min..=max).contains(&t) {
                    samples.push((t, v.to_bits()));
                }
            }
        }
    }
    out
}

/// How many remote reads Prometheus has answered.
fn remote_reads(prometheus: &Prometheus) -> u64 {
    let (_, text) = common::http_get(prometheus.port, "/metrics").expect("metrics");
    text.lines()
        .filter(|l| {
            l.starts_with("prometheus_http_requests_total{")
                && l.contains(r#"handler="/api/v1/read""#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// With `--tsdb.read-blocks` (the default) the sidecar reads Prometheus's persisted blocks
/// from its directory and only the head through remote read: the answers are sample for
/// sample those of remote read alone (Thanos's way, `--tsdb.read-blocks=false`), for series
/// that span the blocks and the head, and a range inside the blocks costs Prometheus no
/// remote read.
#[tokio::test(flavor = "multi_thread")]
async fn blocks_read_from_disk_answer_as_remote_read_does() {
    use prost::Message as _;
    use rthanos_storeapi::prometheus as prom;

    let blocks = PromtoolBlocks::create(&generate(&small_spec()), "2h");
    let data = tempfile::tempdir().expect("tmp");
    copy_dir(&blocks.data_dir(), data.path());
    let prometheus = Prometheus::start_with_flags(
        data.path(),
        EXTERNAL,
        rthanos_testkit::free_port(),
        &["--web.enable-remote-write-receiver"],
    );
    // The blocks end at `end`; the head gets 30 minutes after it for a third of the series.
    let end = std::fs::read_dir(data.path())
        .expect("data dir")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("meta.json")).ok())
        .filter_map(|meta| serde_json::from_str::<serde_json::Value>(&meta).ok())
        .filter_map(|meta| meta["maxTime"].as_i64())
        .max()
        .expect("blocks");
    let mut reads_blocks = Process::start(&sidecar_args(&prometheus, data.path(), &[]));
    reads_blocks.wait_ready(Duration::from_secs(60));
    let store_a = client(&reads_blocks);
    let everything = SeriesRequest {
        min_time: i64::MIN,
        max_time: i64::MAX,
        matchers: vec![matcher(2, "__name__", ".+")],
        ..Default::default()
    };
    let series = samples_by_series(&store_a, everything.clone()).await;
    let timeseries: Vec<prom::TimeSeries> = series
        .keys()
        .step_by(3)
        .map(|labels| prom::TimeSeries {
            labels: labels
                .iter()
                .filter(|(name, _)| name != "cluster" && name != "replica")
                .map(|(name, value)| prom::Label {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            samples: (0..60)
                .map(|k| prom::Sample {
                    value: f64::from(k) * 1.5,
                    timestamp: end + i64::from(k) * 30_000,
                })
                .collect(),
        })
        .collect();
    let body = snap::raw::Encoder::new()
        .compress_vec(&prom::WriteRequest { timeseries }.encode_to_vec())
        .expect("snappy");
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/write", prometheus.url()))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
        .await
        .expect("remote write");
    assert!(response.status().is_success(), "{response:?}");

    let mut remote_only = Process::start(&sidecar_args(
        &prometheus,
        data.path(),
        &["--tsdb.read-blocks=false".to_string()],
    ));
    remote_only.wait_ready(Duration::from_secs(60));
    let store_b = client(&remote_only);

    // The sidecar's view of Prometheus is refreshed every second (get_config_interval): it
    // reads from its blocks once it has seen the head's new first sample.
    let inside = SeriesRequest {
        min_time: end - 3_600_000,
        max_time: end - 1,
        ..everything.clone()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let before = remote_reads(&prometheus);
        let answer = samples_by_series(&store_a, inside.clone()).await;
        if remote_reads(&prometheus) == before {
            assert_eq!(answer, samples_by_series(&store_b, inside.clone()).await);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sidecar still reads its blocks through remote read"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    for request in [
        everything.clone(),
        // Across the boundary, and ending inside the head.
        SeriesRequest {
            min_time: end - 600_000,
            max_time: end + 600_000,
            ..everything.clone()
        },
        // The head alone.
        SeriesRequest {
            min_time: end,
            max_time: i64::MAX,
            ..everything.clone()
        },
        // A selection, with a matcher on an external label.
        SeriesRequest {
            matchers: vec![matcher(2, "code", "200|500"), matcher(0, "cluster", "eu1")],
            ..everything.clone()
        },
    ] {
        let ours = samples_by_series(&store_a, request.clone()).await;
        let theirs = samples_by_series(&store_b, request.clone()).await;
        assert!(!theirs.is_empty(), "{request:?}");
        assert_eq!(ours, theirs, "{request:?}");
    }
    // The head's samples are there: series written to have 60 more samples than the others.
    let all = samples_by_series(&store_a, everything.clone()).await;
    let longest = all.values().map(Vec::len).max().unwrap_or_default();
    let shortest = all.values().map(Vec::len).min().unwrap_or_default();
    assert_eq!(longest, shortest + 60);

    // A block deleted under the sidecar (as retention deletes the oldest) before it lists
    // the directory again: its first read fails, and remote read answers instead. Prometheus
    // still serves the block from its open files.
    let oldest = std::fs::read_dir(data.path())
        .expect("data dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("meta.json").exists())
        .min()
        .expect("a block");
    std::fs::remove_dir_all(&oldest).expect("remove block");
    assert_eq!(
        samples_by_series(&store_a, everything.clone()).await,
        samples_by_series(&store_b, everything).await
    );
}

/// A Prometheus that accepts out-of-order samples keeps some, older than its head's first
/// in-order sample, in an out-of-order head that no block has yet: its blocks are then read
/// through remote read only.
#[tokio::test(flavor = "multi_thread")]
async fn with_out_of_order_samples_on_blocks_are_read_through_remote_read() {
    let config = format!("{EXTERNAL}storage:\n  tsdb:\n    out_of_order_time_window: 1h\n");
    let setup = setup(&small_spec(), &config);
    let mut sidecar = Process::start(&sidecar_args(&setup.prometheus, setup.data.path(), &[]));
    sidecar.wait_ready(Duration::from_secs(60));
    let store = client(&sidecar);
    // Long enough for the sidecar's first listing of the directory (right after ready).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let request = SeriesRequest {
        min_time: 1_700_000_000_000,
        max_time: 1_700_003_600_000,
        matchers: vec![matcher(2, "__name__", ".+")],
        ..Default::default()
    };
    let before = remote_reads(&setup.prometheus);
    assert!(!samples_by_series(&store, request).await.is_empty());
    assert_eq!(remote_reads(&setup.prometheus), before + 1);
}
