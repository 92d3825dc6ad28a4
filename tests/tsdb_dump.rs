//! `rthanos tools tsdb dump` against `promtool tsdb dump`, line for line, on blocks made by
//! promtool from generated OpenMetrics data (counters with resets, gauges with NaN and ±Inf,
//! classic histograms; thousands of series over several 2h blocks).

use std::process::Command;

use rthanos_testkit::openmetrics::{Spec, generate};
use rthanos_testkit::{PromtoolBlocks, promtool_dump};

fn rthanos_dump(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rthanos"))
        .args(["tools", "tsdb", "dump"])
        .args(args)
        .output()
        .expect("run rthanos");
    assert!(
        out.status.success(),
        "rthanos tools tsdb dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

#[test]
fn dump_equals_promtool_line_for_line() {
    let spec = Spec {
        series: 1500,
        samples: 500,
        interval: 30,
        ..Spec::default()
    };
    let made = PromtoolBlocks::create(&generate(&spec), "2h");
    assert!(made.blocks.len() >= 2, "data should span several blocks");
    let data = made.data_dir();
    let flag = format!("--storage.tsdb.path={}", data.display());
    let ours = rthanos_dump(&[&flag]);
    let theirs = promtool_dump(&data);
    assert!(
        theirs.lines().count() > 500_000,
        "too little data: {}",
        theirs.lines().count()
    );
    if ours != theirs {
        let first = ours.lines().zip(theirs.lines()).position(|(a, b)| a != b);
        panic!(
            "dumps differ ({} vs {} lines); first difference at line {:?}: ours {:?}, promtool {:?}",
            ours.lines().count(),
            theirs.lines().count(),
            first,
            first.and_then(|i| ours.lines().nth(i)),
            first.and_then(|i| theirs.lines().nth(i)),
        );
    }
}

#[test]
fn dump_of_one_block_and_a_time_range() {
    let spec = Spec {
        series: 20,
        samples: 400,
        interval: 60,
        ..Spec::default()
    };
    let made = PromtoolBlocks::create(&generate(&spec), "2h");
    let data = made.data_dir();
    let flag = format!("--storage.tsdb.path={}", data.display());
    let ulid = made.blocks[1]
        .file_name()
        .and_then(|n| n.to_str())
        .expect("ulid")
        .to_string();
    let block = rthanos_dump(&[&flag, &format!("--block={ulid}")]);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(made.blocks[1].join("meta.json")).expect("meta"))
            .expect("json");
    assert_eq!(
        block.lines().count() as u64,
        meta["stats"]["numSamples"].as_u64().expect("numSamples")
    );
    let (min, max) = (1_700_003_000_000i64, 1_700_004_000_000i64);
    let ranged = rthanos_dump(&[
        &flag,
        &format!("--min-time={min}"),
        &format!("--max-time={max}"),
    ]);
    assert!(!ranged.is_empty());
    for line in ranged.lines() {
        let t: i64 = line
            .rsplit(' ')
            .next()
            .and_then(|t| t.parse().ok())
            .expect("timestamp");
        assert!((min..=max).contains(&t), "{line}");
    }
}

#[test]
fn dump_of_a_missing_block_is_an_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let flag = format!("--storage.tsdb.path={}", dir.path().display());
    let out = Command::new(env!("CARGO_BIN_EXE_rthanos"))
        .args([
            "tools",
            "tsdb",
            "dump",
            &flag,
            "--block=01HNOSUCHBLOCK0000000000000",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("01HNOSUCHBLOCK0000000000000"));
}
