//! Durable writes, checked on the real system calls: the compactor and the sidecar run under
//! `strace -ff`, and each thread's calls show that every file is fsynced before it takes its
//! name, and that the directory of every new name (a renamed file or block, a new directory)
//! is fsynced after it. Covered: blocks written by the block writer (the compactor's outputs),
//! objects of a FILESYSTEM bucket (blocks, meta.json, deletion marks) and the sidecar's
//! `thanos.shipper.json`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Process;
use rthanos_objstore::Bucket;
use rthanos_testkit::openmetrics::{Spec, generate};
use rthanos_testkit::{Prometheus, PromtoolBlocks};

/// One traced system call of interest, in a thread's order.
#[derive(Debug)]
enum Call {
    Fsync(PathBuf),
    Rename { from: PathBuf, to: PathBuf },
    Mkdir(PathBuf),
}

/// The wrapper that traces a process: every thread into `<prefix>.<tid>`.
fn strace(prefix: &Path) -> String {
    assert!(
        std::process::Command::new("strace")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success()),
        "strace is missing; scripts/test.sh installs it (apt-get install strace)"
    );
    format!(
        "strace -ff -y -qq -e trace=fsync,fdatasync,rename,renameat,renameat2,mkdir,mkdirat -o {}",
        prefix.display()
    )
}

/// Each traced thread's successful calls, in order.
fn traced(dir: &Path) -> Vec<Vec<Call>> {
    let mut threads = Vec::new();
    for entry in std::fs::read_dir(dir).expect("trace dir") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("trace");
        threads.push(text.lines().filter_map(parse).collect());
    }
    threads
}

/// A line of strace's output, when the call succeeded.
fn parse(line: &str) -> Option<Call> {
    if !line.trim_end().ends_with("= 0") {
        return None;
    }
    let (name, args) = line.split_once('(')?;
    // Paths strace prints for descriptors (`-y`): `7</path>`.
    let fd_path = |s: &str| -> Option<PathBuf> {
        let start = s.find('<')? + 1;
        let end = s[start..].find('>')? + start;
        Some(PathBuf::from(&s[start..end]))
    };
    // Quoted path arguments, in order.
    let quoted: Vec<PathBuf> = args
        .split('"')
        .skip(1)
        .step_by(2)
        .map(PathBuf::from)
        .collect();
    match name.trim() {
        "fsync" | "fdatasync" => fd_path(args).map(Call::Fsync),
        "rename" | "renameat" | "renameat2" if quoted.len() == 2 => Some(Call::Rename {
            from: quoted[0].clone(),
            to: quoted[1].clone(),
        }),
        "mkdir" | "mkdirat" => quoted.first().cloned().map(Call::Mkdir),
        _ => None,
    }
}

/// Checks one thread's calls for the renames `wanted` selects (by source and target): the
/// source fsynced before (a directory: every file under its final name fsynced under the
/// source, and the source and its subdirectories), the target's directory fsynced after;
/// and for the new directories it selects (as both source and target), their parent fsynced
/// after. Returns how many renames it checked.
fn check(calls: &[Call], wanted: impl Fn(&Path, &Path) -> bool) -> usize {
    let synced_before = |i: usize, path: &Path| {
        calls[..i]
            .iter()
            .any(|c| matches!(c, Call::Fsync(p) if p == path))
    };
    let synced_after = |i: usize, path: &Path| {
        calls[i + 1..]
            .iter()
            .any(|c| matches!(c, Call::Fsync(p) if p == path))
    };
    let mut checked = 0;
    for (i, call) in calls.iter().enumerate() {
        match call {
            Call::Rename { from, to } if wanted(from, to) => {
                checked += 1;
                if to.is_dir() {
                    for file in files_under(to) {
                        let rel = file.strip_prefix(to).expect("under the block");
                        let staged = from.join(rel);
                        assert!(
                            synced_before(i, &staged),
                            "{} renamed before {} was fsynced",
                            from.display(),
                            staged.display()
                        );
                        let dir = staged.parent().expect("a parent");
                        assert!(
                            synced_before(i, dir),
                            "{} renamed before the names in {} were fsynced",
                            from.display(),
                            dir.display()
                        );
                    }
                } else {
                    assert!(
                        synced_before(i, from),
                        "{} took its name before it was fsynced",
                        to.display()
                    );
                }
                let parent = to.parent().expect("a parent");
                assert!(
                    synced_after(i, parent),
                    "{} renamed, its directory {} never fsynced after",
                    to.display(),
                    parent.display()
                );
            }
            Call::Mkdir(dir) if wanted(dir, dir) => {
                let parent = dir.parent().expect("a parent");
                assert!(
                    synced_after(i, parent),
                    "{} made, its parent never fsynced after",
                    dir.display()
                );
            }
            _ => {}
        }
    }
    checked
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The compactor merges 2h blocks into larger ones (the block writer, then uploads to a
/// FILESYSTEM bucket, then deletion marks on the sources): every rename into the bucket and
/// every block made in its data directory is durable.
#[test]
fn the_compactors_blocks_objects_and_marks_are_durable() {
    let dir = tempfile::tempdir().expect("tmp");
    let bucket_dir = dir.path().join("bucket");
    let yaml = common::filesystem_yaml(&bucket_dir);
    let bucket = Bucket::from_yaml(&yaml, &prometheus::Registry::new()).expect("bucket");
    let sources = PromtoolBlocks::create(
        &generate(&Spec {
            series: 10,
            samples: 24 * 60,
            interval: 30,
            ..Spec::default()
        }),
        "2h",
    );
    common::upload_blocks(&bucket, &sources.data_dir(), &[("cluster", "eu1")]);
    let data = dir.path().join("data");
    let traces = dir.path().join("trace");
    std::fs::create_dir_all(&traces).expect("trace dir");
    let mut compact = Process::start_wrapped(
        &strace(&traces.join("compact")),
        &[
            "compact".to_string(),
            format!("--objstore.config={yaml}"),
            format!("--data-dir={}", data.display()),
            "--consistency-delay=0s".to_string(),
            "--delete-delay=1h".to_string(),
        ],
    );
    assert_eq!(
        compact.wait_exit(Duration::from_secs(120)),
        Some(0),
        "{}",
        compact.log()
    );

    let (mut blocks, mut objects) = (0, 0);
    for calls in traced(&traces) {
        blocks += check(&calls, |from, _| {
            from.to_string_lossy().ends_with(".tmp-for-creation")
        });
        objects += check(&calls, |_, to| to.starts_with(&bucket_dir));
    }
    assert!(blocks > 0, "no block written by the compactor was traced");
    let marks = std::fs::read_dir(&bucket_dir)
        .expect("bucket")
        .flatten()
        .filter(|e| e.path().join("deletion-mark.json").exists())
        .count();
    assert!(marks > 0, "no deletion mark written");
    // Every object of each new block, and every mark.
    assert!(
        objects >= blocks * 3 + marks,
        "{objects} bucket objects traced"
    );
}

/// The sidecar ships blocks to a FILESYSTEM bucket and records them: each object and each
/// write of `thanos.shipper.json` is durable.
#[test]
fn the_sidecars_uploads_and_shipper_record_are_durable() {
    let blocks = PromtoolBlocks::create(&generate(&Spec::default()), "2h");
    let tsdb = tempfile::tempdir().expect("tmp");
    rthanos_testkit::copy_dir(&blocks.data_dir(), tsdb.path());
    let prometheus = Prometheus::start(
        tsdb.path(),
        "global:\n  external_labels:\n    cluster: eu1\n    replica: a\n",
    );
    let dir = tempfile::tempdir().expect("tmp");
    let bucket_dir = dir.path().join("bucket");
    let traces = dir.path().join("trace");
    std::fs::create_dir_all(&traces).expect("trace dir");
    let mut sidecar = Process::start_wrapped(
        &strace(&traces.join("sidecar")),
        &[
            "sidecar".to_string(),
            format!("--prometheus.url={}", prometheus.url()),
            format!("--tsdb.path={}", tsdb.path().display()),
            format!("--objstore.config={}", common::filesystem_yaml(&bucket_dir)),
        ],
    );
    let shipped = blocks.blocks.len() as f64;
    sidecar.wait_for(Duration::from_secs(60), "every block shipped", |p| {
        p.metric("thanos_shipper_uploads_total") == Some(shipped)
    });
    sidecar.kill();

    let record = tsdb.path().join("thanos.shipper.json");
    let (mut objects, mut records) = (0, 0);
    for calls in traced(&traces) {
        objects += check(&calls, |_, to| to.starts_with(&bucket_dir));
        records += check(&calls, |_, to| to == record);
    }
    assert!(
        objects >= blocks.blocks.len() * 3,
        "{objects} bucket objects traced"
    );
    assert!(records >= 1, "no write of thanos.shipper.json traced");
}
