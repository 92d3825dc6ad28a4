//! `rthanos tools bucket` on a FILESYSTEM bucket of promtool-made blocks: ls, inspect,
//! verify (overlaps and a corrupt index found), mark and unmark, cleanup, retention and
//! downsample.

mod common;

use std::path::Path;
use std::process::Command;

use rthanos_objstore::Bucket;
use rthanos_testkit::PromtoolBlocks;
use rthanos_testkit::openmetrics::{Spec, generate};

struct Tool {
    objstore: String,
}

impl Tool {
    /// Runs `rthanos tools bucket <args>`: (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_rthanos"))
            .args(["tools", "bucket", &self.objstore])
            .args(args)
            .output()
            .expect("run rthanos");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        out
    }
}

fn ids(tool: &Tool) -> Vec<String> {
    tool.ok(&["ls"]).lines().map(str::to_string).collect()
}

fn exists(root: &Path, object: &str) -> bool {
    root.join(object).exists()
}

#[test]
fn bucket_tools_work_on_a_bucket() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("bucket");
    let yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        root.display()
    );
    let bucket = Bucket::from_yaml(&yaml, &prometheus::Registry::new()).expect("bucket");
    // 54h of 2h blocks, compacted (not downsampled) into blocks up to 2d long.
    let blocks = PromtoolBlocks::create(
        &generate(&Spec {
            series: 3,
            samples: 54 * 60,
            interval: 60,
            ..Spec::default()
        }),
        "2h",
    );
    common::upload_blocks(&bucket, &blocks.data_dir(), &[("cluster", "eu1")]);
    let objstore = dir.path().join("objstore.yml");
    std::fs::write(&objstore, &yaml).expect("objstore.yml");
    let mut compact = common::Process::start(&[
        "compact".to_string(),
        format!("--objstore.config-file={}", objstore.display()),
        format!("--data-dir={}", dir.path().join("compact").display()),
        "--consistency-delay=0s".to_string(),
        "--delete-delay=0s".to_string(),
        "--downsampling.disable".to_string(),
    ]);
    assert_eq!(
        compact.wait_exit(std::time::Duration::from_secs(120)),
        Some(0),
        "{}",
        compact.log()
    );
    let tool = Tool {
        objstore: format!("--objstore.config={yaml}"),
    };
    let uploaded = ids(&tool);
    let span = |id: &String| -> i64 {
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.join(id).join("meta.json")).expect("meta"))
                .expect("json");
        meta["maxTime"].as_i64().unwrap_or(0) - meta["minTime"].as_i64().unwrap_or(0)
    };
    let long: Vec<&String> = uploaded
        .iter()
        .filter(|id| span(id) >= 40 * 3_600_000)
        .collect();
    assert_eq!(long.len(), 1, "one block of 40h or more");
    let long = long[0].clone();
    let n = uploaded.len();

    // ls: one ULID per line; wide and json forms.
    let wide = tool.ok(&["ls", "-o", "wide"]);
    assert!(
        wide.lines().any(|l| l.contains("Source: compactor")),
        "{wide}"
    );
    let json = tool.ok(&["ls", "-o", "json"]);
    for line in json.lines() {
        let meta: serde_json::Value = serde_json::from_str(line).expect("json line");
        assert_eq!(meta["thanos"]["labels"]["cluster"], "eu1");
    }

    // inspect: a table with a header and a row per block; csv too.
    let table = tool.ok(&["inspect", "-l", "cluster=eu1"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2 + n, "{table}");
    assert!(
        lines[0].contains("ULID") && lines[0].contains("#SAMPLES"),
        "{table}"
    );
    assert!(lines[2].contains(&uploaded[0]), "sorted by FROM: {table}");
    let csv = tool.ok(&["inspect", "--output=csv", "--sort-by=#SERIES"]);
    assert_eq!(csv.lines().count(), 1 + n, "{csv}");
    assert_eq!(
        tool.ok(&["inspect", "-l", "cluster=us1"]).lines().count(),
        2
    );

    // verify: healthy, then an overlapping block and a corrupt index are reported.
    assert!(
        tool.ok(&[
            "verify",
            &format!("--data-dir={}", dir.path().join("v").display())
        ])
        .contains("no issues found")
    );
    let twin = PromtoolBlocks::create(
        &generate(&Spec {
            series: 3,
            samples: 120,
            interval: 60,
            seed: 9,
            ..Spec::default()
        }),
        "2h",
    );
    let twin_ids = common::upload_blocks(&bucket, &twin.data_dir(), &[("cluster", "eu1")]);
    let corrupt = &uploaded[n - 1];
    let index = root.join(corrupt).join("index");
    let mut bytes = std::fs::read(&index).expect("index");
    let at = bytes.len() / 3;
    bytes[at] ^= 0x55;
    std::fs::write(&index, &bytes).expect("corrupt");
    let (code, out, _) = tool.run(&[
        "verify",
        &format!("--data-dir={}", dir.path().join("v").display()),
    ]);
    assert_ne!(code, Some(0));
    assert!(
        out.contains("overlapped_blocks") && out.contains(&twin_ids[0]),
        "{out}"
    );
    assert!(
        out.contains("index_known_issues") && out.contains(corrupt.as_str()),
        "{out}"
    );
    let (code, _, err) = tool.run(&["verify", "--repair"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("--repair"), "{err}");

    // mark and unmark.
    let twin = &twin_ids[0];
    tool.ok(&[
        "mark",
        "--id",
        twin,
        "--marker=no-compact-mark.json",
        "--details=testing",
    ]);
    let mark: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join(twin).join("no-compact-mark.json")).expect("mark"),
    )
    .expect("json");
    assert_eq!(
        (mark["reason"].as_str(), mark["details"].as_str()),
        (Some("manual"), Some("testing"))
    );
    tool.ok(&[
        "mark",
        "--id",
        twin,
        "--marker=no-compact-mark.json",
        "--remove",
    ]);
    assert!(!exists(&root, &format!("{twin}/no-compact-mark.json")));
    let (code, _, err) = tool.run(&[
        "mark",
        "--id",
        "01H0000000000000000000000X",
        "--marker=deletion-mark.json",
    ]);
    assert_ne!(code, Some(0), "{err}");

    // cleanup: a block marked for deletion goes once the delay has passed.
    tool.ok(&[
        "mark",
        "--id",
        twin,
        "--marker=deletion-mark.json",
        "--details=overlap",
    ]);
    tool.ok(&["cleanup", "--delete-delay=1h"]);
    assert!(
        exists(&root, &format!("{twin}/meta.json")),
        "kept during the delay"
    );
    tool.ok(&["cleanup", "--delete-delay=0s"]);
    assert!(!root.join(twin).exists(), "deleted");
    std::fs::write(&index, {
        bytes[at] ^= 0x55;
        &bytes
    })
    .expect("repair");

    // downsample: the 2d block gets its 5m block.
    tool.ok(&[
        "downsample",
        "--consistency-delay=0s",
        &format!("--data-dir={}", dir.path().join("ds").display()),
    ]);
    let json = tool.ok(&["ls", "-o", "json"]);
    let downsampled: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .filter(|m| m["thanos"]["downsample"]["resolution"] == 300_000)
        .collect();
    assert_eq!(downsampled.len(), 1, "{json}");
    let long_meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join(&long).join("meta.json")).expect("meta"))
            .expect("json");
    assert_eq!(
        downsampled[0]["compaction"]["sources"],
        long_meta["compaction"]["sources"]
    );

    // retention: everything here is from 2023, past 30 days of raw retention; 5m kept.
    tool.ok(&[
        "retention",
        "--retention.resolution-raw=30d",
        "--consistency-delay=0s",
    ]);
    for id in &uploaded {
        assert!(
            exists(&root, &format!("{id}/deletion-mark.json")),
            "{id} marked"
        );
    }
    let five = downsampled[0]["ulid"].as_str().expect("ulid");
    assert!(!exists(&root, &format!("{five}/deletion-mark.json")));
}
