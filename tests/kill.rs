//! Kill tests: `rthanos sidecar` (next to a real Prometheus) and `rthanos compact --wait` run
//! together against one moto S3 bucket while each is killed with SIGKILL at seeded random
//! points, then restarted. After every kill, every block of the bucket that has a meta.json is
//! whole (all the files its meta.json lists, at their sizes), so a store never loads a partial
//! block; at the end, once both have finished their work, the bucket's raw blocks hold every
//! sample of the source blocks exactly once (promtool dump), each source in one block.
//!
//! `RTHANOS_KILL_RUNS` (default 3) runs from seed `RTHANOS_KILL_SEED` (default 1);
//! `scripts/kill-tests.sh` runs 20 and prints the lines docs/reliability.md records.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::Process;
use rthanos_objstore::Bucket;
use rthanos_testkit::openmetrics::{Rng, Spec, generate};
use rthanos_testkit::{Moto, Prometheus, PromtoolBlocks, copy_dir, promtool_dump};
use rthanos_tsdb::BlockMeta;

const EXTERNAL: &str = "global:\n  external_labels:\n    cluster: eu1\n    replica: a\n";
/// Kills per run, shared between the two components by the seed. Each kill's record says
/// what the bucket held when it landed: `whole+partial` block directories.
const KILLS: usize = 6;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("runtime")
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// Every block of the bucket with a meta.json has every file its meta.json lists, at the
/// listed size (or, when it lists none, its index and a chunk segment): a block that a store
/// would load is never partial. Returns the number of whole blocks and of block directories
/// without meta.json (uploads in flight or cut short).
fn check_whole_blocks(bucket: &Bucket) -> Result<(usize, usize), String> {
    runtime().block_on(async {
        let names = bucket.iter("", true).await.map_err(|e| e.to_string())?;
        let mut blocks: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for name in names {
            if let Some((dir, file)) = name.split_once('/')
                && dir.parse::<ulid::Ulid>().is_ok()
            {
                blocks
                    .entry(dir.to_string())
                    .or_default()
                    .push(file.to_string());
            }
        }
        let (mut whole, mut partial) = (0, 0);
        for (id, files) in &blocks {
            if !files.iter().any(|f| f == "meta.json") {
                partial += 1;
                continue;
            }
            // The running component may delete a block meanwhile: meta.json goes first.
            let bytes = match bucket.get(&format!("{id}/meta.json")).await {
                Ok(bytes) => bytes,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.to_string()),
            };
            let meta: BlockMeta = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{id}/meta.json unreadable: {e}"))?;
            let listed = meta
                .thanos
                .as_ref()
                .map(|t| t.files.clone())
                .unwrap_or_default();
            let mut fault = None;
            if listed.is_empty() {
                for needed in ["index", "chunks/000001"] {
                    if !files.iter().any(|f| f == needed) {
                        fault = Some(format!("{id} has meta.json but no {needed}: {files:?}"));
                    }
                }
            }
            for file in listed.iter().filter(|f| f.rel_path != "meta.json") {
                let name = format!("{id}/{}", file.rel_path);
                match bucket.attributes(&name).await {
                    Ok(a) if file.size_bytes.is_some_and(|want| a.size != want) => {
                        fault = Some(format!(
                            "{name}: {} bytes, meta.json says {:?}",
                            a.size, file.size_bytes
                        ));
                    }
                    Ok(_) => {}
                    Err(e) => fault = Some(format!("{name} listed in meta.json but missing: {e}")),
                }
            }
            if let Some(fault) = fault {
                // Unless the block was being deleted while it was read.
                if bucket
                    .exists(&format!("{id}/meta.json"))
                    .await
                    .unwrap_or(true)
                {
                    return Err(fault);
                }
                continue;
            }
            whole += 1;
        }
        Ok((whole, partial))
    })
}

/// The whole blocks of the bucket, by ULID, without those marked for deletion.
fn live_metas(bucket: &Bucket) -> BTreeMap<String, BlockMeta> {
    let rt = runtime();
    let seen = rt
        .block_on(rthanos_block::fetch_metas(bucket, 8))
        .expect("metas");
    assert!(seen.malformed.is_empty(), "{:?}", seen.malformed);
    seen.metas
        .into_iter()
        .filter(|(id, _)| {
            rt.block_on(rthanos_block::read_deletion_mark(bucket, *id))
                .expect("mark")
                .is_none()
        })
        .map(|(id, meta)| (id.to_string(), meta))
        .collect()
}

struct Run<'a> {
    tsdb: &'a Path,
    objstore: &'a Path,
    compact_dir: &'a Path,
    prometheus: &'a Prometheus,
}

impl Run<'_> {
    fn sidecar(&self) -> Process {
        Process::start(&[
            "sidecar".to_string(),
            format!("--prometheus.url={}", self.prometheus.url()),
            format!("--tsdb.path={}", self.tsdb.display()),
            format!("--objstore.config-file={}", self.objstore.display()),
            "--prometheus.ready_timeout=1m".to_string(),
        ])
    }

    fn compact_args(&self, wait: bool) -> Vec<String> {
        let mut args = vec![
            "compact".to_string(),
            format!("--objstore.config-file={}", self.objstore.display()),
            format!("--data-dir={}", self.compact_dir.display()),
            "--consistency-delay=0s".to_string(),
            "--delete-delay=0s".to_string(),
        ];
        if wait {
            args.extend(["--wait".to_string(), "--wait-interval=1s".to_string()]);
        }
        args
    }
}

/// One seeded run on a fresh bucket; returns its line for docs/reliability.md.
fn one_run(moto: &Moto, sources: &PromtoolBlocks, expected: &[String], seed: u64) -> String {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tmp");
    let bucket_name = format!("kill-{seed}");
    moto.create_bucket(&bucket_name);
    let yaml = moto.objstore_yaml(&bucket_name);
    let objstore = dir.path().join("objstore.yml");
    std::fs::write(&objstore, &yaml).expect("objstore.yml");
    let bucket = Bucket::from_yaml(&yaml, &prometheus::Registry::new()).expect("bucket");
    let tsdb = dir.path().join("prometheus");
    copy_dir(&sources.data_dir(), &tsdb);
    let source_ids: Vec<String> = std::fs::read_dir(&tsdb)
        .expect("tsdb")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("meta.json").exists())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    let prometheus = Prometheus::start(&tsdb, EXTERNAL);
    let compact_dir = dir.path().join("compact");
    let run = Run {
        tsdb: &tsdb,
        objstore: &objstore,
        compact_dir: &compact_dir,
        prometheus: &prometheus,
    };

    let mut rng = Rng(seed);
    let mut sidecar = Some(run.sidecar());
    let mut compactor = Some(Process::start(&run.compact_args(true)));
    let mut kills = Vec::new();
    for kill in 0..KILLS {
        // Uploads of a 2h block take tens of milliseconds: kill within the first seconds.
        let delay = Duration::from_millis(50 + rng.next_u64() % 1_500);
        std::thread::sleep(delay);
        let victim = if rng.next_u64() % 2 == 0 {
            "sidecar"
        } else {
            "compactor"
        };
        let slot = if victim == "sidecar" {
            &mut sidecar
        } else {
            &mut compactor
        };
        if let Some(mut p) = slot.take() {
            p.kill();
        }
        match check_whole_blocks(&bucket) {
            // What the bucket held when the kill landed: whole blocks and cut uploads.
            Ok((whole, partial)) => kills.push(format!(
                "{victim}@{}ms ({whole}+{partial})",
                delay.as_millis()
            )),
            Err(e) => panic!(
                "seed {seed}, after kill {kill} ({kills:?}): a partial block is loadable: {e}"
            ),
        }
        *slot = Some(if victim == "sidecar" {
            run.sidecar()
        } else {
            Process::start(&run.compact_args(true))
        });
    }

    // The next runs finish the work: the sidecar ships every block and records it...
    let mut sidecar = sidecar.expect("sidecar");
    let mut want_shipped = source_ids.clone();
    want_shipped.sort();
    sidecar.wait_for(Duration::from_secs(120), "every block shipped", |_| {
        common::shipped_record(&tsdb) == want_shipped
    });
    sidecar.kill();
    if let Some(mut c) = compactor.take() {
        c.kill();
    }
    // ... and a compaction run to its end compacts, collects and deletes what is left over.
    let mut compact = Process::start(&run.compact_args(false));
    let code = compact.wait_exit(Duration::from_secs(300));
    assert_eq!(code, Some(0), "seed {seed}: {}", compact.log());
    let (whole, partial) =
        check_whole_blocks(&bucket).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert_eq!(
        partial, 0,
        "seed {seed}: partial uploads left over ({kills:?})"
    );

    let live = live_metas(&bucket);
    let raw: Vec<&BlockMeta> = live.values().filter(|m| m.resolution() == 0).collect();
    common::assert_sources_once(&raw, &source_ids, &format!("seed {seed} ({kills:?})"));
    let local = tempfile::tempdir().expect("tmp");
    common::download_raw(&bucket, &live, local.path());
    let got = sorted_lines(&promtool_dump(local.path()));
    assert!(
        got == expected,
        "seed {seed} ({kills:?}): {} samples in the bucket, {} in the sources",
        got.len(),
        expected.len()
    );
    format!(
        "| {seed} | {} | {} raw blocks, {whole} in all | {} samples, each once | {:.0} s |",
        kills.join(", "),
        raw.len(),
        got.len(),
        started.elapsed().as_secs_f64()
    )
}

#[test]
fn killed_sidecars_and_compactors_lose_and_double_nothing() {
    // Runs take about 15 s each here: the budget (and nextest's limit for this binary,
    // .config/nextest.toml) allows three on a busy machine.
    rthanos_testkit::time::set_budget(Duration::from_secs(300));
    // 30h at 60 s: 15 blocks of 2h, which the compactor merges into 8h blocks while they
    // arrive.
    let sources = PromtoolBlocks::create(
        &generate(&Spec {
            series: 6,
            samples: 30 * 60,
            interval: 60,
            ..Spec::default()
        }),
        "2h",
    );
    let expected = sorted_lines(&promtool_dump(&sources.data_dir()));
    assert!(expected.len() > 10_000, "{} samples", expected.len());
    let moto = Moto::start();
    let first = env_number("RTHANOS_KILL_SEED", 1);
    let runs = env_number("RTHANOS_KILL_RUNS", 3);
    for seed in first..first + runs {
        let line = one_run(&moto, &sources, &expected, seed);
        println!("{line}");
    }
}
