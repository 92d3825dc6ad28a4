//! The local HA stack of `deploy/local/run.sh`, end to end and time-compressed: two real
//! Prometheus 2.42 replicas with 54h of backfilled history each (promtool 2h blocks; each
//! replica misses a different 40 minutes), two sidecars, a store gateway, a compactor and a
//! querier on a FILESYSTEM bucket, run by the script itself on loopback ports.
//!
//! The stack ships the history, compacts it to a 2d block and downsamples that to 5m. Then:
//! - no block is lost or doubled: every shipped block is in exactly one raw block's sources,
//!   and raw blocks of a replica never overlap;
//! - answers through the querier (sidecars + store), and through a querier over the store
//!   alone, equal one complete Prometheus over the same history, the replicas' gaps filled;
//! - the store serves the 5m block with Thanos's aggregates;
//! - a replica killed and restarted leaves a gap that dedup fills from the other replica;
//! - a sidecar killed is reported by /api/v1/stores and gives partial answers, and after its
//!   restart every endpoint is healthy again;
//! - the script stopped and started again continues: nothing is uploaded twice or lost.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{Process, api_points, assert_same_points, close, instant_values, urlencode, without};
use rthanos_testkit::openmetrics::{Spec, generate};
use rthanos_testkit::{Prometheus, PromtoolBlocks, time};
use rthanos_tsdb::BlockMeta;

/// The stack's first port: between the tests' own ports (10000-31999) and the ephemeral
/// range, so nothing else of a parallel run takes them.
const PORTS_FROM: u16 = 32_100;
const PROMETHEUS: [u16; 2] = [PORTS_FROM, PORTS_FROM + 1];
const SIDECAR_HTTP: [u16; 2] = [PORTS_FROM + 3, PORTS_FROM + 5];
const STORE_GRPC: u16 = PORTS_FROM + 6;
const STORE_HTTP: u16 = PORTS_FROM + 7;
const QUERY_HTTP: u16 = PORTS_FROM + 9;
const COMPACT_HTTP: u16 = PORTS_FROM + 10;
const ALERTMANAGER_HTTP: u16 = PORTS_FROM + 11;
const RULE_HTTP: u16 = PORTS_FROM + 13;

const HOUR: i64 = 3600;
/// The test's whole time: every wait ends by it, before nextest's limit for this test (600s,
/// .config/nextest.toml), so that a failure prints its message and the stack's logs.
const BUDGET: Duration = Duration::from_secs(500);
/// Hours of history before and after the 2d boundary the history straddles.
const BEFORE: i64 = 50;
const AFTER: i64 = 4;

/// `deploy/local/run.sh` running, and where its data is.
struct Stack {
    script: Option<Child>,
    data: PathBuf,
}

impl Stack {
    fn start(data: &Path) -> Stack {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/local/run.sh");
        let child = Command::new("bash")
            .arg(script)
            .env("RTHANOS_LOCAL_DATA", data)
            .env("RTHANOS_BIN", env!("CARGO_BIN_EXE_rthanos"))
            .env("RTHANOS_LOCAL_PORTS_FROM", PORTS_FROM.to_string())
            .env("RTHANOS_LOCAL_SCRAPE_INTERVAL", "2s")
            .env("RTHANOS_LOCAL_STORE_ARGS", "--sync-block-duration=2s")
            // Blocks made by promtool a moment ago are old enough after 30s (long enough that
            // an upload in progress is never taken for an abandoned one); sources go at once.
            .env(
                "RTHANOS_LOCAL_COMPACT_ARGS",
                "--wait-interval=2s --consistency-delay=30s --delete-delay=0s",
            )
            .stdout(script_output(data))
            .stderr(script_output(data))
            .spawn()
            .expect("run deploy/local/run.sh");
        let mut stack = Stack {
            script: Some(child),
            data: data.to_path_buf(),
        };
        let limit = Duration::from_secs(120);
        let deadline = time::deadline_after(limit);
        let ready = || common::http_get(QUERY_HTTP, "/-/ready").is_some_and(|(s, _)| s == 200);
        while !ready() {
            let exited = stack
                .script
                .as_mut()
                .and_then(|script| script.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "the querier not ready {} (script exit: {exited:?})\n{}",
                time::gave_up(limit, deadline),
                stack.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        stack
    }

    fn wait_for(&self, limit: Duration, what: &str, check: impl Fn() -> bool) {
        let deadline = time::deadline_after(limit);
        while !check() {
            assert!(
                Instant::now() < deadline,
                "{what}: not {}\n{}",
                time::gave_up(limit, deadline),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The tail of every component's log, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        for name in [
            "run",
            "prometheus-0",
            "prometheus-1",
            "sidecar-0",
            "sidecar-1",
            "store",
            "compact",
            "query",
        ] {
            let log =
                std::fs::read_to_string(self.data.join(format!("{name}.log"))).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            out.push_str(&format!("--- {name}\n{tail}\n"));
        }
        out
    }

    fn pid(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.data.join(format!("run/{name}.pid")))
            .ok()
            .map(|p| p.trim().to_string())
    }

    /// SIGKILLs one component, as a crash would.
    fn kill(&self, name: &str) {
        let pid = self.pid(name).expect("pid file");
        let status = Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {name}");
        self.wait_for(Duration::from_secs(10), "the process gone", || {
            !Path::new(&format!("/proc/{pid}")).exists() || zombie(&pid)
        });
    }

    /// Starts a killed component again from the script's launcher, in the background of a
    /// shell that exits at once: the component is nobody's child here, as after a restart by
    /// hand, and the script's stop finds it through its pid file.
    fn restart(&self, name: &str) {
        let status = Command::new("sh")
            .arg("-c")
            .arg("\"$0\" >/dev/null 2>&1 &")
            .arg(self.data.join(format!("run/{name}.sh")))
            .status()
            .expect("restart");
        assert!(status.success(), "restart {name}");
    }

    /// SIGTERM to the script, which stops every component (giving each its grace period
    /// before SIGKILL); all must be gone within `grace`, by the test's deadline at the latest.
    fn stop(&mut self) {
        let left = self.terminate(Duration::from_secs(180));
        assert!(left.is_empty(), "still running after stop: {left:?}");
    }

    /// Stops the script and its components, waiting up to `grace`; kills what is left then
    /// and returns its process IDs.
    fn terminate(&mut self, grace: Duration) -> Vec<String> {
        let Some(mut script) = self.script.take() else {
            return Vec::new();
        };
        let pids: Vec<String> = std::fs::read_dir(self.data.join("run"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .map(|p| p.trim().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let _ = Command::new("kill")
            .args(["-TERM", &script.id().to_string()])
            .status();
        let deadline = time::deadline_after(grace);
        while script.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = script.kill();
        let _ = script.wait();
        let left: Vec<String> = pids
            .into_iter()
            .filter(|p| Path::new(&format!("/proc/{p}")).exists() && !zombie(p))
            .collect();
        for pid in &left {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
        left
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The failure is reported already: stop quickly, before the runner's kill.
            self.terminate(Duration::from_secs(10));
            return;
        }
        self.stop();
    }
}

/// The script's own output, appended to `run.log` beside the components' logs.
fn script_output(data: &Path) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.join("run.log"))
        .map_or_else(|_| Stdio::null(), Stdio::from)
}

/// Whether a process has exited and waits to be reaped (its leader a zombie and no other
/// thread of it still running).
fn zombie(pid: &str) -> bool {
    let leader_exited = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    });
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count);
    leader_exited && threads <= 1
}

/// The bucket's whole blocks (with meta.json), and how many carry a deletion mark.
fn bucket_blocks(bucket: &Path) -> (BTreeMap<String, BlockMeta>, usize) {
    let mut metas = BTreeMap::new();
    let mut marked = 0;
    for entry in std::fs::read_dir(bucket).into_iter().flatten().flatten() {
        let dir = entry.path();
        let Ok(bytes) = std::fs::read(dir.join("meta.json")) else {
            continue;
        };
        let Ok(meta) = serde_json::from_slice::<BlockMeta>(&bytes) else {
            continue;
        };
        if dir.join("deletion-mark.json").exists() {
            marked += 1;
        }
        metas.insert(entry.file_name().to_string_lossy().to_string(), meta);
    }
    (metas, marked)
}

fn replica_of(meta: &BlockMeta) -> String {
    meta.thanos
        .as_ref()
        .and_then(|t| t.labels.get("replica").cloned())
        .unwrap_or_default()
}

/// Whether the compactor is done with the shipped history: nothing marked, each replica's
/// 2d block made and downsampled to 5m.
fn settled(bucket: &Path) -> bool {
    let (metas, marked) = bucket_blocks(bucket);
    marked == 0
        && ["0", "1"].iter().all(|r| {
            let mine: Vec<&BlockMeta> = metas.values().filter(|m| replica_of(m) == *r).collect();
            mine.iter()
                .any(|m| m.resolution() == 0 && m.compaction.level == 3)
                && mine.iter().any(|m| m.resolution() == 300_000)
        })
}

/// The 2d boundary the history straddles, for a test run at `now` (Unix seconds): the latest
/// one at least 6h back (the history ends 4h after it, so none of it is in the replicas'
/// heads, and the 2d range before it is filled whole) that is not also a 14d boundary. Before
/// a 14d boundary the 2d block and the 2h block ahead of it share a 14d range that is not the
/// newest, and the compactor (as Thanos's planner) rightly merges them into one level-4 block;
/// before any other 2d boundary the 2d block stays at level 3, which [`settled`] waits for
/// (crates/compact/tests/planner_cycle.rs checks both against the planner's rules).
fn history_boundary(now: i64) -> i64 {
    let two_days = 48 * HOUR;
    let latest = (now - 6 * HOUR).div_euclid(two_days) * two_days;
    if latest.rem_euclid(14 * 24 * HOUR) == 0 {
        latest - two_days
    } else {
        latest
    }
}

#[test]
fn the_history_never_straddles_a_14d_boundary() {
    // Every hour of four weeks, among them 2026-12-03 to 2026-12-05 (the 2d boundary
    // 2026-12-03T00:00Z is a 14d one).
    let from = 1_796_256_000 - 14 * 24 * HOUR;
    for hour in 0..28 * 24 {
        let now = from + hour * HOUR;
        let boundary = history_boundary(now);
        assert_eq!(boundary.rem_euclid(48 * HOUR), 0, "{now}");
        assert_ne!(boundary.rem_euclid(14 * 24 * HOUR), 0, "{now}");
        assert!(
            boundary + AFTER * HOUR <= now - 2 * HOUR,
            "{now}: the history is too new"
        );
        assert!(
            boundary >= now - 6 * HOUR - 4 * 24 * HOUR,
            "{now}: the history is too old"
        );
    }
}

#[test]
fn the_local_stack_ships_compacts_downsamples_and_answers_as_one_complete_prometheus() {
    time::set_budget(BUDGET);
    let boundary = history_boundary(time::test_now_s());
    let start = boundary - BEFORE * HOUR;
    let complete = generate(&Spec {
        series: 6,
        start,
        samples: ((BEFORE + AFTER) * 60) as usize,
        interval: 60,
        seed: 9,
    });
    // Each replica misses 40 minutes the other has, away from the hourly query steps.
    let gaps = [
        (boundary - 30 * HOUR + 600, boundary - 30 * HOUR + 3000),
        (boundary - 10 * HOUR + 600, boundary - 10 * HOUR + 3000),
    ];
    let full = PromtoolBlocks::create(&complete, "2h");
    let reference = Prometheus::start(&full.data_dir(), "global: {}\n");

    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("stack");
    let mut backfilled = [BTreeSet::new(), BTreeSet::new()];
    for (i, gap) in gaps.iter().enumerate() {
        let blocks = PromtoolBlocks::create(&without(&complete, gap.0, gap.1), "2h");
        let tsdb = data.join(format!("prometheus-{i}"));
        std::fs::create_dir_all(&tsdb).expect("tsdb dir");
        rthanos_testkit::copy_dir(&blocks.data_dir(), &tsdb);
        backfilled[i] = blocks
            .blocks
            .iter()
            .filter_map(|b| b.file_name()?.to_str().map(str::to_string))
            .collect();
    }

    let mut stack = Stack::start(&data);
    let bucket = data.join("bucket");

    // Shipped, compacted and downsampled; the store has loaded what the bucket holds.
    stack.wait_for(Duration::from_secs(240), "history shipped", || {
        (0..2).all(|i| {
            common::shipped_record(&data.join(format!("prometheus-{i}")))
                .iter()
                .eq(backfilled[i].iter())
        })
    });
    stack.wait_for(Duration::from_secs(300), "history compacted", || {
        settled(&bucket)
    });
    stack.wait_for(Duration::from_secs(60), "the store in sync", || {
        let (metas, _) = bucket_blocks(&bucket);
        common::metric_on(STORE_HTTP, "thanos_bucket_store_blocks_loaded")
            == Some(metas.len() as f64)
    });
    stack.wait_for(Duration::from_secs(60), "every endpoint healthy", || {
        healthy_endpoints() == 4
    });

    // Each replica scrapes itself, the other and every rthanos component; the compactor
    // runs on.
    for port in PROMETHEUS {
        stack.wait_for(Duration::from_secs(30), "every target up", || {
            let up = instant_values(port, "/api/v1/query?query=up", &[]);
            up.len() == 8 && up.values().all(|&v| v == 1.0)
        });
    }
    assert_eq!(
        common::metric_on(COMPACT_HTTP, "thanos_compact_halted"),
        Some(0.0)
    );

    // The ruler evaluates the guide's alerts and a recording rule over the deduplicated view
    // (the querier's one target counts once, not once per replica), and the querier lists its
    // rules; Alertmanager, where its alerts go, runs.
    stack.wait_for(
        Duration::from_secs(60),
        "the ruler's series in the querier",
        || {
            let recorded = instant_values(
                QUERY_HTTP,
                &format!(
                    "/api/v1/query?query={}",
                    urlencode("job:up:sum{job=\"thanos-query\"}")
                ),
                &[],
            );
            recorded.len() == 1 && recorded.values().all(|&v| v == 1.0)
        },
    );
    let rules = common::api_data(QUERY_HTTP, "/api/v1/rules");
    let names: Vec<&str> = rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["name"].as_str())
        .collect();
    for name in [
        "ThanosSidecarDown",
        "ThanosCompactorNotRunning",
        "ThanosObjectStoreUploadFailures",
        "job:up:sum",
    ] {
        assert!(names.contains(&name), "{name} not listed: {rules}");
    }
    assert_eq!(
        common::metric_on(RULE_HTTP, "thanos_rule_config_last_reload_successful"),
        Some(1.0)
    );
    assert_eq!(
        common::http_get(ALERTMANAGER_HTTP, "/api/v2/status").map(|(s, _)| s),
        Some(200)
    );

    // No block lost or doubled: the raw blocks of each replica hold every shipped block
    // exactly once and do not overlap; the 5m block comes from the 2d block.
    let (metas, _) = bucket_blocks(&bucket);
    for (i, shipped_ids) in backfilled.iter().enumerate() {
        let replica = i.to_string();
        let raw: Vec<&BlockMeta> = metas
            .values()
            .filter(|m| replica_of(m) == replica && m.resolution() == 0)
            .collect();
        common::assert_sources_once(&raw, shipped_ids, &format!("replica {i}"));
        let two_days: Vec<&&BlockMeta> = raw.iter().filter(|m| m.compaction.level == 3).collect();
        assert_eq!(two_days.len(), 1, "replica {i}");
        let five: Vec<&BlockMeta> = metas
            .values()
            .filter(|m| replica_of(m) == replica && m.resolution() == 300_000)
            .collect();
        assert_eq!(five.len(), 1, "replica {i}");
        assert_eq!(five[0].compaction.sources, two_days[0].compaction.sources);
    }

    // The querier over a store alone, to see what the store serves.
    let mut over_store = Process::start(&[
        "query".to_string(),
        "--query.replica-label=replica".to_string(),
        format!("--endpoint=127.0.0.1:{STORE_GRPC}"),
    ]);
    over_store.wait_ready(Duration::from_secs(60));
    over_store.wait_for(Duration::from_secs(30), "the store healthy", |q| {
        common::http_get(q.http_port, "/api/v1/stores")
            .is_some_and(|(_, b)| b.contains("\"lastError\":null"))
    });

    // Through the stack's querier and through the store alone: the complete history, the
    // gaps filled from the other replica. Steps fall 30s past each hour, clear of the samples
    // the penalty algorithm skips at a switch between replicas (10-12 minutes past).
    let (from, to) = (start + HOUR + 30, boundary + (AFTER - 1) * HOUR + 30);
    for query in [
        "temperature_celsius",
        "rate(http_requests_total[20m])",
        "max_over_time(temperature_celsius[20m])",
        "count_over_time(http_requests_total[20m])",
        "histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[20m])))",
    ] {
        let path = format!(
            "/api/v1/query_range?query={}&start={from}&end={to}&step=3600",
            urlencode(query)
        );
        let want = api_points(reference.port, &path);
        assert!(!want.is_empty(), "{query}: no data in the reference");
        assert_same_points(
            &api_points(QUERY_HTTP, &path),
            &want,
            &format!("stack: {query}"),
        );
        assert_same_points(
            &api_points(over_store.http_port, &path),
            &want,
            &format!("store alone: {query}"),
        );
    }

    // Dedup fills the gaps: inside replica 0's gap only replica 1 has the samples.
    for (i, gap) in gaps.iter().enumerate() {
        let at = gap.0 + 1200;
        let expr = urlencode("temperature_celsius");
        let undeduplicated = instant_values(
            QUERY_HTTP,
            &format!("/api/v1/query?query={expr}&time={at}&dedup=false"),
            &["cluster"],
        );
        let other = format!("replica=\"{}\"", 1 - i);
        assert!(
            !undeduplicated.is_empty() && undeduplicated.keys().all(|k| k.contains(&other)),
            "gap of replica {i}: {undeduplicated:?}"
        );
        let deduplicated = instant_values(
            QUERY_HTTP,
            &format!("/api/v1/query?query={expr}&time={at}"),
            &["cluster"],
        );
        let want = instant_values(
            reference.port,
            &format!("/api/v1/query?query={expr}&time={at}"),
            &[],
        );
        assert_eq!(deduplicated, want, "gap of replica {i}");
    }

    // The store serves the 5m block with Thanos's aggregates: max and min of whole 5m windows
    // are the raw ones (hours inside the 2d block, clear of the gaps).
    for hour in [5, 12, 40] {
        let at = format!("{}.999", boundary - 48 * HOUR + hour * HOUR - 1);
        for function in ["max_over_time", "min_over_time"] {
            let expr = urlencode(&format!("{function}(temperature_celsius[3599999ms])"));
            let want = instant_values(
                reference.port,
                &format!("/api/v1/query?query={expr}&time={at}"),
                &[],
            );
            let got = instant_values(
                over_store.http_port,
                &format!("/api/v1/query?query={expr}&time={at}&max_source_resolution=5m"),
                &["cluster"],
            );
            assert_eq!(got.len(), want.len(), "{function} at {at}");
            for (series, v) in &want {
                assert!(close(got[series], *v), "{function} at {at} of {series}");
            }
        }
        let expr = urlencode("count_over_time(temperature_celsius[3599999ms])");
        let windows = instant_values(
            over_store.http_port,
            &format!("/api/v1/query?query={expr}&time={at}&max_source_resolution=5m"),
            &["cluster"],
        );
        assert!(windows.values().all(|&n| n == 12.0), "{windows:?}");
    }
    drop(over_store);

    // Replica 0 down for a while: its scrapes stop, replica 1's go on, and after its restart
    // dedup fills replica 0's gap from replica 1.
    stack.kill("prometheus-0");
    let down_at = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    std::thread::sleep(Duration::from_secs(20));
    let (status, body) = common::http_get(
        QUERY_HTTP,
        &format!(
            "/api/v1/query?query={}",
            urlencode("up{job=\"thanos-query\"}")
        ),
    )
    .expect("answer");
    assert_eq!(status, 200, "{body}");
    stack.restart("prometheus-0");
    stack.wait_for(Duration::from_secs(60), "replica 0 back", || {
        common::http_get(SIDECAR_HTTP[0], "/-/ready").is_some_and(|(s, _)| s == 200)
    });
    stack.wait_for(Duration::from_secs(60), "every endpoint healthy", || {
        healthy_endpoints() == 4
    });
    // Let both replicas scrape a few times after the restart.
    std::thread::sleep(Duration::from_secs(5));
    let window = format!(
        "count_over_time(up{{job=\"thanos-query\"}}[{}s])",
        (SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64()
            - down_at
            + 5.0) as i64
    );
    let counts = instant_values(
        QUERY_HTTP,
        &format!("/api/v1/query?query={}&dedup=false", urlencode(&window)),
        &["cluster", "instance", "job"],
    );
    let (of_0, of_1) = (counts["replica=\"0\""], counts["replica=\"1\""]);
    assert!(of_0 + 5.0 < of_1, "replica 0 missed no scrapes: {counts:?}");
    let deduplicated = instant_values(
        QUERY_HTTP,
        &format!("/api/v1/query?query={}", urlencode(&window)),
        &["cluster", "instance", "job"],
    );
    let filled = deduplicated[""];
    assert!(
        filled >= of_1 * 0.9 - 2.0 && filled > of_0 + 3.0,
        "dedup did not fill replica 0's gap: {filled} of {counts:?}"
    );

    // Sidecar 1 killed: reported unhealthy, answers are partial with a warning; restarted:
    // every endpoint healthy again.
    stack.kill("sidecar-1");
    stack.wait_for(Duration::from_secs(60), "the dead sidecar reported", || {
        healthy_endpoints() == 3
    });
    let (status, body) = common::http_get(
        QUERY_HTTP,
        &format!("/api/v1/query?query={}", urlencode("up")),
    )
    .expect("answer");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"warnings\""), "no warning: {body}");
    stack.restart("sidecar-1");
    stack.wait_for(
        Duration::from_secs(60),
        "every endpoint healthy again",
        || healthy_endpoints() == 4,
    );

    // Stopped and started again: nothing shipped twice, nothing lost.
    stack.stop();
    let before = bucket_blocks(&bucket).0;
    let mut again = Stack::start(&data);
    again.wait_for(Duration::from_secs(60), "every endpoint healthy", || {
        healthy_endpoints() == 4
    });
    // The sidecars' first sync runs at start; give them and the compactor a few rounds.
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(
        bucket_blocks(&bucket).0.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    let path = format!(
        "/api/v1/query_range?query={}&start={from}&end={to}&step=3600",
        urlencode("temperature_celsius")
    );
    assert_same_points(
        &api_points(QUERY_HTTP, &path),
        &api_points(reference.port, &path),
        "after a restart",
    );
    again.stop();
}

/// How many endpoints the stack's querier reports healthy (no last error).
fn healthy_endpoints() -> usize {
    let Some((200, body)) = common::http_get(QUERY_HTTP, "/api/v1/stores") else {
        return 0;
    };
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    json["data"]
        .as_object()
        .map(|by_type| {
            by_type
                .values()
                .filter_map(|list| list.as_array())
                .flatten()
                .filter(|e| e["lastError"].is_null())
                .count()
        })
        .unwrap_or(0)
}
