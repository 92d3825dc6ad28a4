//! `rthanos compact` end to end, on 28 promtool-made 2h blocks (54h of data) uploaded with
//! sidecar-style meta.json to a FILESYSTEM bucket and to S3 (moto): the compactor merges them
//! level by level into 8h and 2d blocks and downsamples the 2d block to 5m; promtool and
//! Prometheus 2.42 read the compacted blocks and find every sample of the sources exactly
//! once; the querier over the store answers from the 5m block with Thanos's aggregates;
//! overlapping replicas halt the compactor without vertical compaction and are deduplicated
//! offline with it; retention marks exactly the expired blocks.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::{Process, api_data as data, close, urlencode};
use rthanos_objstore::Bucket;
use rthanos_testkit::openmetrics::{Spec, generate};
use rthanos_testkit::{Moto, Prometheus, PromtoolBlocks, promtool, promtool_dump};
use rthanos_tsdb::BlockMeta;

/// 2023-11-14T22:13:20Z; the 48h range from 2023-11-15T00:00Z is filled whole.
const START: i64 = 1_700_000_000;
/// 2023-11-15T00:00:00Z, a 2d (and 5m) boundary.
const DAY_ONE: i64 = 1_700_006_400;
const HOURS: usize = 54;

fn spec(seed: u64) -> Spec {
    Spec {
        series: 6,
        start: START,
        samples: HOURS * 60,
        interval: 60,
        seed,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("runtime")
}

/// The bucket's whole blocks, by ULID, read as the compactor left them.
fn metas(bucket: &Bucket) -> BTreeMap<String, BlockMeta> {
    let seen = runtime()
        .block_on(rthanos_block::fetch_metas(bucket, 8))
        .expect("metas");
    assert!(seen.malformed.is_empty(), "{:?}", seen.malformed);
    seen.metas
        .into_iter()
        .map(|(id, meta)| (id.to_string(), meta))
        .collect()
}

/// Whether block `id` carries a deletion mark.
fn marked(bucket: &Bucket, id: &str) -> bool {
    runtime()
        .block_on(rthanos_block::read_deletion_mark(
            bucket,
            id.parse().expect("ulid"),
        ))
        .expect("mark")
        .is_some()
}

/// Runs `rthanos compact` once (no --wait) to its end; returns its exit code and log.
fn compact_once(objstore: &Path, data_dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec![
        "compact".to_string(),
        format!("--objstore.config-file={}", objstore.display()),
        format!("--data-dir={}", data_dir.display()),
        "--consistency-delay=0s".to_string(),
    ];
    if !extra.iter().any(|a| a.starts_with("--delete-delay")) {
        args.push("--delete-delay=0s".to_string());
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    let mut compact = Process::start(&args);
    let code = compact.wait_exit(Duration::from_secs(300));
    (code, compact.log())
}

/// The single value of an instant query answer, per series (labels without `cluster`).
fn values(port: u16, path: &str) -> BTreeMap<String, f64> {
    common::instant_values(port, path, &["cluster"])
}

/// The whole scenario on one bucket.
fn compacts_downsamples_and_keeps_every_sample(objstore_yaml: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let objstore = dir.path().join("objstore.yml");
    std::fs::write(&objstore, objstore_yaml).expect("objstore.yml");
    let bucket = Bucket::from_yaml(objstore_yaml, &prometheus::Registry::new()).expect("bucket");
    let sources = PromtoolBlocks::create(&generate(&spec(42)), "2h");
    let source_ids = common::upload_blocks(&bucket, &sources.data_dir(), &[("cluster", "eu1")]);
    assert!(source_ids.len() >= 12, "{} source blocks", source_ids.len());

    let (code, log) = compact_once(&objstore, &dir.path().join("compact-data"), &[]);
    assert_eq!(code, Some(0), "{log}");
    let after = metas(&bucket);
    // Sources are gone (delete delay 0); the 48h block is level 3 and downsampled to 5m.
    for id in &source_ids {
        assert!(
            !after.contains_key(id) || after[id].compaction.level == 1 && !marked(&bucket, id),
            "source {id} left behind"
        );
    }
    let raw: Vec<&BlockMeta> = after.values().filter(|m| m.resolution() == 0).collect();
    let two_days: Vec<&&BlockMeta> = raw.iter().filter(|m| m.compaction.level == 3).collect();
    assert_eq!(
        two_days.len(),
        1,
        "{:?}\n{log}",
        after
            .values()
            .map(|m| (m.min_time, m.max_time, m.compaction.level, m.resolution()))
            .collect::<Vec<_>>()
    );
    let two_days = two_days[0];
    // promtool's blocks span their samples: the first minute of the 2d range to its last.
    assert!((DAY_ONE * 1000..DAY_ONE * 1000 + 60_000).contains(&two_days.min_time));
    assert!(two_days.max_time - two_days.min_time > 47 * 3_600_000);
    assert_eq!(two_days.compaction.sources.len(), 24);
    let thanos = two_days.thanos.as_ref().expect("thanos");
    assert_eq!(thanos.source, "compactor");
    assert_eq!(
        thanos.labels.get("cluster").map(String::as_str),
        Some("eu1")
    );
    let five: Vec<&BlockMeta> = after
        .values()
        .filter(|m| m.resolution() == 300_000)
        .collect();
    assert_eq!(five.len(), 1, "{after:#?}");
    assert_eq!(five[0].compaction.sources, two_days.compaction.sources);
    // Every source block is in exactly one raw block's sources; no raw blocks overlap.
    common::assert_sources_once(&raw, &source_ids, "compacted");

    // promtool reads every sample of the sources, once.
    let local = tempfile::tempdir().expect("tmp");
    common::download_raw(&bucket, &after, local.path());
    let sorted = |text: String| -> Vec<String> {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    let expected = sorted(promtool_dump(&sources.data_dir()));
    assert!(expected.len() > 50_000, "{} samples", expected.len());
    assert!(
        sorted(promtool_dump(local.path())) == expected,
        "samples differ"
    );
    let analyze = std::process::Command::new(promtool())
        .args(["tsdb", "analyze"])
        .arg(local.path())
        .arg(&two_days.ulid)
        .output()
        .expect("promtool analyze");
    assert!(
        analyze.status.success(),
        "{}",
        String::from_utf8_lossy(&analyze.stderr)
    );

    // Prometheus over the compacted blocks answers as over the sources.
    let over_sources = Prometheus::start(&sources.data_dir(), "global: {}\n");
    let over_compacted = Prometheus::start(local.path(), "global: {}\n");
    let (start, end) = (START, START + HOURS as i64 * 3600);
    for query in [
        "rate(http_requests_total[5m])",
        "temperature_celsius",
        "sum by (le) (rate(request_duration_seconds_bucket[10m]))",
        "count by (__name__) ({__name__!=\"\"})",
    ] {
        let path = format!(
            "/api/v1/query_range?query={}&start={start}&end={end}&step=600",
            urlencode(query)
        );
        assert_eq!(
            data(over_compacted.port, &path),
            data(over_sources.port, &path),
            "{query}"
        );
    }

    // The querier over the store answers from the 5m block with Thanos's aggregates: the
    // max, min and sum of each hour of 12 windows are those of the raw samples, and
    // count_over_time counts the windows.
    let mut store = Process::start(&[
        "store".to_string(),
        format!("--objstore.config-file={}", objstore.display()),
        format!("--data-dir={}", dir.path().join("store-data").display()),
    ]);
    store.wait_ready(Duration::from_secs(60));
    let mut query = common::start_query([&store], &[]);
    query.wait_for(Duration::from_secs(30), "the store healthy", |q| {
        common::http_get(q.http_port, "/api/v1/stores").is_some_and(|(_, b)| b.contains("eu1"))
    });
    for hour in [5, 17, 30, 47] {
        // The last millisecond of a 5m window: the hour before it is 12 whole windows.
        let at = format!("{}.999", DAY_ONE + hour * 3600 - 1);
        for function in ["max_over_time", "min_over_time", "sum_over_time"] {
            let expr = urlencode(&format!("{function}(http_requests_total[3599999ms])"));
            let raw = values(
                over_sources.port,
                &format!("/api/v1/query?query={expr}&time={at}"),
            );
            let downsampled = values(
                query.http_port,
                &format!("/api/v1/query?query={expr}&time={at}&max_source_resolution=5m"),
            );
            assert_eq!(raw.len(), 6, "{function} at {at}");
            assert_eq!(
                raw.keys().collect::<Vec<_>>(),
                downsampled.keys().collect::<Vec<_>>()
            );
            for (series, v) in &raw {
                assert!(
                    close(*v, downsampled[series]),
                    "{function} at {at} of {series}: raw {v}, 5m {}",
                    downsampled[series]
                );
            }
        }
        // rate() and increase() read the counter aggregate with its resets removed (Thanos's
        // counter semantics): close to the raw answer, not equal (window ends, not samples).
        for function in ["increase", "rate"] {
            let expr = urlencode(&format!("{function}(http_requests_total[3599999ms])"));
            let raw = values(
                over_sources.port,
                &format!("/api/v1/query?query={expr}&time={at}"),
            );
            let downsampled = values(
                query.http_port,
                &format!("/api/v1/query?query={expr}&time={at}&max_source_resolution=5m"),
            );
            for (series, v) in &raw {
                let d = downsampled[series];
                assert!(
                    (d - v).abs() <= 0.1 * v.abs().max(1.0),
                    "{function} at {at} of {series}: raw {v}, 5m {d}"
                );
            }
        }
        let expr = urlencode("count_over_time(http_requests_total[3599999ms])");
        let windows = values(
            query.http_port,
            &format!("/api/v1/query?query={expr}&time={at}&max_source_resolution=5m"),
        );
        assert!(windows.values().all(|&n| n == 12.0), "{windows:?}");
        let raw = values(
            query.http_port,
            &format!("/api/v1/query?query={expr}&time={at}"),
        );
        assert!(raw.values().all(|&n| n == 60.0), "{raw:?}");
    }

    // A second run finds nothing to do.
    let (code, log) = compact_once(&objstore, &dir.path().join("compact-data"), &[]);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(metas(&bucket), after);
}

#[test]
fn compaction_on_a_filesystem_bucket() {
    let dir = tempfile::tempdir().expect("tmp");
    compacts_downsamples_and_keeps_every_sample(&common::filesystem_yaml(
        &dir.path().join("bucket"),
    ));
}

#[test]
fn compaction_on_s3() {
    let moto = Moto::start();
    moto.create_bucket("blocks");
    compacts_downsamples_and_keeps_every_sample(&moto.objstore_yaml("blocks"));
}

/// Two replicas of the same targets (external label `replica`): their blocks overlap once
/// the replica label is removed. Without vertical compaction the group halts
/// (thanos_compact_halted 1); with it, each pair of overlapping blocks becomes one block
/// holding every sample of both replicas once, without the replica label.
#[test]
fn replicas_halt_without_vertical_compaction_and_dedup_offline_with_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let yaml = common::filesystem_yaml(&dir.path().join("bucket"));
    let objstore = dir.path().join("objstore.yml");
    std::fs::write(&objstore, &yaml).expect("objstore.yml");
    let bucket = Bucket::from_yaml(&yaml, &prometheus::Registry::new()).expect("bucket");
    // 6 hours per replica, each scraping at its own jitter.
    let replica = |seed| {
        PromtoolBlocks::create(
            &generate(&Spec {
                samples: 360,
                ..spec(seed)
            }),
            "2h",
        )
    };
    let (a, b) = (replica(1), replica(2));
    common::upload_blocks(
        &bucket,
        &a.data_dir(),
        &[("cluster", "eu1"), ("replica", "a")],
    );
    common::upload_blocks(
        &bucket,
        &b.data_dir(),
        &[("cluster", "eu1"), ("replica", "b")],
    );
    let before = metas(&bucket);

    let mut halted = Process::start(&[
        "compact".to_string(),
        format!("--objstore.config-file={}", objstore.display()),
        format!("--data-dir={}", dir.path().join("halted").display()),
        "--consistency-delay=0s".to_string(),
        "--deduplication.replica-label=replica".to_string(),
        "--wait".to_string(),
    ]);
    halted.wait_for(Duration::from_secs(60), "the halt", |p| {
        p.metric("thanos_compact_halted") == Some(1.0)
    });
    assert!(halted.log().contains("overlap"), "{}", halted.log());
    let (_, metrics) = common::http_get(halted.http_port, "/metrics").expect("metrics");
    for name in [
        "thanos_compact_halted",
        "thanos_compact_iterations_total",
        "thanos_compact_group_compactions_total",
        "thanos_compact_group_compactions_failures_total",
        "thanos_compact_downsample_total",
        "thanos_compact_downsample_failures_total",
        "thanos_compact_blocks_cleaned_total",
        "thanos_compact_block_cleanup_failures_total",
        "thanos_compact_blocks_marked_total",
        "thanos_compact_todo_compactions",
        "thanos_objstore_bucket_operations_total",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "{name} not exported"
        );
    }
    assert!(
        metrics.contains("thanos_compact_group_compactions_failures_total{group=\"0@"),
        "the halted group's failure is counted"
    );
    halted.kill();
    assert_eq!(metas(&bucket), before, "a halted compactor changes nothing");

    let (code, log) = compact_once(
        &objstore,
        &dir.path().join("dedup"),
        &[
            "--deduplication.replica-label=replica",
            "--compact.enable-vertical-compaction",
        ],
    );
    assert_eq!(code, Some(0), "{log}");
    let after = metas(&bucket);
    let mut spans: Vec<(i64, i64)> = after.values().map(|m| (m.min_time, m.max_time)).collect();
    spans.sort();
    assert!(
        spans.windows(2).all(|w| w[0].1 <= w[1].0),
        "overlaps left: {spans:?}"
    );
    assert!(
        after.values().all(|m| m
            .thanos
            .as_ref()
            .is_some_and(|t| !t.labels.contains_key("replica"))),
        "{after:#?}"
    );
    let local = tempfile::tempdir().expect("tmp");
    common::download_raw(&bucket, &after, local.path());
    // promtool dump lines are `{labels} value timestamp`; a sample is (labels, timestamp).
    let key = |line: &str| -> (String, String) {
        let mut words = line.rsplitn(3, ' ');
        let t = words.next().unwrap_or_default().to_string();
        let _value = words.next();
        (words.next().unwrap_or_default().to_string(), t)
    };
    let mut union: BTreeSet<String> = BTreeSet::new();
    for replica in [&a, &b] {
        union.extend(
            promtool_dump(&replica.data_dir())
                .lines()
                .map(str::to_string),
        );
    }
    let keys: BTreeSet<(String, String)> = union.iter().map(|l| key(l)).collect();
    let merged: Vec<String> = promtool_dump(local.path())
        .lines()
        .map(str::to_string)
        .collect();
    // Every timestamp of either replica once (where both scraped at the same millisecond,
    // one of their samples), each sample one of theirs.
    assert_eq!(merged.len(), keys.len(), "every sample once");
    assert_eq!(merged.iter().map(|l| key(l)).collect::<BTreeSet<_>>(), keys);
    assert!(merged.iter().all(|l| union.contains(l)));
}

/// Retention: with raw retention reaching back to 2023-11-16T00:00Z, exactly the blocks that
/// end before it are marked for deletion (the delete delay keeps them to be seen).
#[test]
fn retention_marks_exactly_the_expired_blocks() {
    let dir = tempfile::tempdir().expect("tmp");
    let yaml = common::filesystem_yaml(&dir.path().join("bucket"));
    let objstore = dir.path().join("objstore.yml");
    std::fs::write(&objstore, &yaml).expect("objstore.yml");
    let bucket = Bucket::from_yaml(&yaml, &prometheus::Registry::new()).expect("bucket");
    let blocks = PromtoolBlocks::create(&generate(&spec(7)), "2h");
    common::upload_blocks(&bucket, &blocks.data_dir(), &[("cluster", "eu1")]);
    // Blocks of another cluster, left out by --selector.relabel-config: never touched.
    let other = PromtoolBlocks::create(&generate(&spec(8)), "2h");
    let other_ids = common::upload_blocks(&bucket, &other.data_dir(), &[("cluster", "eu2")]);
    // The cutoff lands at 2023-11-15T23:00Z (to the minute), an hour from every block edge.
    let cutoff = DAY_ONE + 23 * 3600;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let minutes = (now - cutoff) / 60;
    let retention = format!("--retention.resolution-raw={minutes}m");
    let (code, log) = compact_once(
        &objstore,
        &dir.path().join("data"),
        &[
            retention.as_str(),
            "--delete-delay=48h",
            "--downsampling.disable",
            "--selector.relabel-config=[{source_labels: [cluster], regex: eu1, action: keep}]",
        ],
    );
    assert_eq!(code, Some(0), "{log}");
    let mut after = metas(&bucket);
    for id in &other_ids {
        let meta = after.remove(id).expect("other cluster's block kept");
        assert_eq!(meta.compaction.level, 1, "not compacted");
        assert!(!marked(&bucket, id), "not marked");
    }
    let mut expired = 0;
    for (id, meta) in &after {
        // Blocks another block holds whole were marked as compaction sources: not judged.
        let sources: BTreeSet<&String> = meta.compaction.sources.iter().collect();
        let held = after.values().any(|m| {
            m.compaction.sources.len() > sources.len()
                && sources.iter().all(|s| m.compaction.sources.contains(s))
        });
        if held {
            continue;
        }
        let should = meta.max_time < cutoff * 1000;
        expired += usize::from(should);
        assert_eq!(
            marked(&bucket, id),
            should,
            "block {id} {}..{}",
            meta.min_time,
            meta.max_time
        );
    }
    assert!(expired > 0, "some blocks expired: {after:#?}");
}

/// Partial uploads (a block without meta.json): one whose ULID is younger than 48h may still
/// be uploading and is left alone, however long nothing was written to it; an older one is
/// marked for deletion and deleted after the delete delay, as any marked block.
#[test]
fn partial_uploads_are_marked_only_past_48h_and_deleted_after_the_delete_delay() {
    let dir = tempfile::tempdir().expect("tmp");
    let bucket_dir = dir.path().join("bucket");
    let yaml = common::filesystem_yaml(&bucket_dir);
    let objstore = dir.path().join("objstore.yml");
    std::fs::write(&objstore, &yaml).expect("objstore.yml");
    // The compactor judges a partial upload's age by the clock, so the ULIDs are made from
    // it: an hour either side of the 48h threshold, whatever the date.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let hour = 3_600_000;
    let partial = |age_ms: u64| {
        let id = ulid::Ulid::from_parts(now_ms - age_ms, 7).to_string();
        let chunks = bucket_dir.join(&id).join("chunks");
        std::fs::create_dir_all(&chunks).expect("chunks dir");
        std::fs::write(chunks.join("000001"), b"half a block").expect("chunk file");
        id
    };
    let young = partial(47 * hour);
    let old = partial(49 * hour);
    let data = dir.path().join("data");

    let (code, log) = compact_once(&objstore, &data, &["--delete-delay=1h"]);
    assert_eq!(code, Some(0), "{log}");
    assert!(
        bucket_dir.join(&young).join("chunks/000001").exists(),
        "a partial upload younger than 48h was deleted:\n{log}"
    );
    assert!(!bucket_dir.join(&young).join("deletion-mark.json").exists());
    assert!(
        bucket_dir.join(&old).join("deletion-mark.json").exists(),
        "the old partial upload is not marked:\n{log}"
    );
    assert!(
        bucket_dir.join(&old).join("chunks/000001").exists(),
        "deleted before the delete delay"
    );

    let (code, log) = compact_once(&objstore, &data, &["--delete-delay=0s"]);
    assert_eq!(code, Some(0), "{log}");
    assert!(!bucket_dir.join(&old).exists(), "not deleted:\n{log}");
    assert!(bucket_dir.join(&young).join("chunks/000001").exists());
}

/// The compactor killed with SIGKILL at 20 points of its work, each time on a fresh copy
/// of the same bucket, then run to its end: every time, the bucket holds every sample of the
/// sources exactly once, in blocks that do not overlap, with no partial upload or marked
/// block left.
#[test]
fn killed_at_any_point_the_compactor_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let pristine = dir.path().join("pristine");
    let bucket_dir = dir.path().join("bucket");
    let sources = PromtoolBlocks::create(&generate(&spec(11)), "2h");
    let source_ids = {
        let bucket = Bucket::from_yaml(
            &common::filesystem_yaml(&pristine),
            &prometheus::Registry::new(),
        )
        .expect("bucket");
        common::upload_blocks(&bucket, &sources.data_dir(), &[("cluster", "eu1")])
    };
    let expected = {
        let mut lines: Vec<String> = promtool_dump(&sources.data_dir())
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    let yaml = common::filesystem_yaml(&bucket_dir);
    let objstore = dir.path().join("objstore.yml");
    std::fs::write(&objstore, &yaml).expect("objstore.yml");
    let bucket = Bucket::from_yaml(&yaml, &prometheus::Registry::new()).expect("bucket");
    let data_dir = dir.path().join("data");
    let args = vec![
        "compact".to_string(),
        format!("--objstore.config-file={}", objstore.display()),
        format!("--data-dir={}", data_dir.display()),
        "--consistency-delay=0s".to_string(),
        "--delete-delay=0s".to_string(),
    ];
    let fresh_bucket = || {
        let _ = std::fs::remove_dir_all(&bucket_dir);
        rthanos_testkit::copy_dir(&pristine, &bucket_dir);
    };
    // A whole run, and when each of its log lines appeared. The kills are spread over it,
    // each anchored to the log line before it (then the time since that line), so that a run
    // slower or faster than the first is still cut at the same step.
    // The faster of two whole runs: the first is cold (page cache, binary), and on a busy
    // machine either may be slowed; a timeline slower than the runs it schedules lets them
    // finish before their kill.
    let mut timelines = Vec::new();
    for _ in 0..2 {
        fresh_bucket();
        let mut compact = Process::start(&args);
        timelines.push(log_timeline(&mut compact));
        assert_eq!(
            compact.wait_exit(Duration::from_secs(5)),
            Some(0),
            "{}",
            compact.log()
        );
    }
    let Some((whole, lines)) = timelines.into_iter().min_by_key(|(whole, _)| *whole) else {
        panic!("no timeline");
    };
    let mut cut_short = 0;
    for run in 0..20u32 {
        fresh_bucket();
        let at = whole * (2 * run + 1) / 44;
        let after_line = lines.iter().filter(|&&t| t <= at).count();
        let since = at
            - after_line
                .checked_sub(1)
                .map_or(Duration::ZERO, |i| lines[i]);
        let mut compact = Process::start(&args);
        if wait_for_log_lines(&mut compact, after_line) {
            std::thread::sleep(since);
            if compact.wait_exit_within(Duration::ZERO).is_none() {
                cut_short += 1;
            }
        }
        compact.kill();
        let (code, log) = compact_once(&objstore, &data_dir, &[]);
        assert_eq!(
            code,
            Some(0),
            "run {run}, killed {since:?} after log line {after_line}: {log}"
        );

        let after = metas(&bucket);
        let partial = runtime()
            .block_on(rthanos_block::fetch_metas(&bucket, 8))
            .expect("metas")
            .partial;
        assert!(
            partial.is_empty(),
            "run {run}: partial blocks left: {partial:?}"
        );
        for id in after.keys() {
            assert!(!marked(&bucket, id), "run {run}: marked block {id} left");
        }
        let raw: Vec<&BlockMeta> = after.values().filter(|m| m.resolution() == 0).collect();
        common::assert_sources_once(&raw, &source_ids, &format!("run {run}"));
        let five = after.values().filter(|m| m.resolution() == 300_000).count();
        assert_eq!(five, 1, "run {run}: one 5m block");
        let local = tempfile::tempdir().expect("tmp");
        common::download_raw(&bucket, &after, local.path());
        let mut lines: Vec<String> = promtool_dump(local.path())
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        assert!(lines == expected, "run {run}: samples differ");
    }
    eprintln!("{cut_short} of 20 runs cut short");
    // Only a run much faster than the first outruns its kill.
    assert!(
        cut_short >= 15,
        "only {cut_short} of 20 runs were cut short"
    );
}

/// Follows a process's log until it exits: how long it ran, and how long after its start
/// each log line appeared.
fn log_timeline(process: &mut Process) -> (Duration, Vec<Duration>) {
    let started = std::time::Instant::now();
    let deadline = rthanos_testkit::time::deadline_after(Duration::from_secs(120));
    let mut lines = Vec::new();
    loop {
        let exited = process.wait_exit_within(Duration::ZERO).is_some();
        let now = started.elapsed();
        let count = process.log().lines().count();
        lines.resize(count.max(lines.len()), now);
        if exited {
            return (now, lines);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the compactor did not finish:\n{}",
            process.log()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until a process has logged `count` lines: false if it exited first.
fn wait_for_log_lines(process: &mut Process, count: usize) -> bool {
    let deadline = rthanos_testkit::time::deadline_after(Duration::from_secs(120));
    while process.log().lines().count() < count {
        if std::time::Instant::now() >= deadline
            || process.wait_exit_within(Duration::ZERO).is_some()
        {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}
