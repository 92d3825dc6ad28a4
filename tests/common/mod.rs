//! Running the real `rthanos` binary in end-to-end tests: start a component on loopback ports,
//! wait for it, read its probes and metrics, stop it (gracefully or with SIGKILL).
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rthanos_testkit::{free_port, time};

/// A running `rthanos <component>`; killed when dropped.
pub struct Process {
    child: Option<Child>,
    /// Its HTTP port.
    pub http_port: u16,
    /// Its gRPC port.
    pub grpc_port: u16,
    log: std::path::PathBuf,
    _log_dir: tempfile::TempDir,
    /// Started through a wrapper in a process group of its own: killed as a group, since a
    /// wrapper such as `strace` leaves its child running when it alone is killed.
    group: bool,
}

impl Process {
    /// Starts `rthanos <args…>` with its HTTP and gRPC servers on free loopback ports.
    pub fn start(args: &[String]) -> Process {
        // RTHANOS_WRAPPER runs the binary under a tool, e.g. "valgrind --tool=callgrind".
        let wrapper = std::env::var("RTHANOS_WRAPPER").unwrap_or_default();
        Self::start_wrapped(&wrapper, args)
    }

    /// As [`Process::start`], run through `wrapper` (a command line that ends with the
    /// program to run, e.g. `unshare -m …`).
    pub fn start_wrapped(wrapper: &str, args: &[String]) -> Process {
        let http_port = free_port();
        let grpc_port = free_port();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(tool) => {
                let mut c = Command::new(tool);
                c.args(words).arg(env!("CARGO_BIN_EXE_rthanos"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_rthanos")),
        };
        command
            .args(args)
            .arg(format!("--http-address=127.0.0.1:{http_port}"));
        // The compactor serves no gRPC.
        if args.first().is_none_or(|c| c != "compact") {
            command.arg(format!("--grpc-address=127.0.0.1:{grpc_port}"));
        }
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut process = Self::spawn(command, http_port, grpc_port);
        process.group = true;
        process
    }

    /// `rthanos <args…>` exactly as given, its addresses among them (`http_port` and
    /// `grpc_port` say which they are).
    pub fn start_as_given(args: &[String], http_port: u16, grpc_port: u16) -> Process {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rthanos"));
        command.args(args);
        Self::spawn(command, http_port, grpc_port)
    }

    fn spawn(mut command: Command, http_port: u16, grpc_port: u16) -> Process {
        let log_dir = tempfile::tempdir().expect("tmp");
        let log = log_dir.path().join("stderr.log");
        let child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start rthanos");
        Process {
            child: Some(child),
            http_port,
            grpc_port,
            log,
            _log_dir: log_dir,
            group: false,
        }
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The gRPC address.
    pub fn grpc_addr(&self) -> String {
        format!("127.0.0.1:{}", self.grpc_port)
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/-/ready` answers 200 (panics with the log after `limit`).
    pub fn wait_ready(&mut self, limit: Duration) {
        self.wait_for(limit, "ready", |p| p.http_status("/-/ready") == Some(200));
    }

    /// Waits until `check` holds, polling every 100ms; panics with the log after `limit`.
    pub fn wait_for(&mut self, limit: Duration, what: &str, check: impl Fn(&Process) -> bool) {
        let deadline = time::deadline_after(limit);
        loop {
            if check(self) {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("rthanos exited ({status}) before {what}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "not {what} {}:\n{}",
                time::gave_up(limit, deadline),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Status code of `GET path` on the HTTP port, or `None` when nothing answers.
    pub fn http_status(&self, path: &str) -> Option<u16> {
        http_get(self.http_port, path).map(|(status, _)| status)
    }

    /// The value of a metric line (`name` with its labels, as printed) on `/metrics`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        metric_on(self.http_port, series)
    }

    /// Waits for the process to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = time::deadline_after(limit);
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "still running: did not exit {}",
                time::gave_up(limit, deadline)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit code if the process has exited within `limit`, else `None` (still running).
    pub fn wait_exit_within(&mut self, limit: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status.code());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.group {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain HTTP/1.1 GET on loopback: (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_get_within(port, path, Duration::from_secs(10))
}

/// As [`http_get`], waiting up to `limit` for each read (a slow query's answer).
pub fn http_get_within(port: u16, path: &str, limit: Duration) -> Option<(u16, String)> {
    // HTTP/1.0: the answer comes whole, never chunked, and the connection closes after it.
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(limit)).ok()?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer.get(9..12)?.parse().ok()?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// A real Prometheus with an `rthanos sidecar` next to it, over a data directory of its own.
pub struct Replica {
    /// The sidecar (dropped first: killed before its Prometheus).
    pub sidecar: Process,
    /// The Prometheus.
    pub prometheus: rthanos_testkit::Prometheus,
    /// Its data directory.
    pub data: tempfile::TempDir,
}

impl Replica {
    /// Prometheus with `config` over a copy of `blocks` (a TSDB directory), and its sidecar;
    /// both ready.
    pub fn start(blocks: &std::path::Path, config: &str) -> Replica {
        Self::start_with(Some(blocks), config, &[], &[])
    }

    /// As [`Replica::start`], with no blocks or with some, extra Prometheus flags and extra
    /// sidecar arguments.
    pub fn start_with(
        blocks: Option<&std::path::Path>,
        config: &str,
        prometheus_flags: &[&str],
        sidecar_args: &[String],
    ) -> Replica {
        let data = tempfile::tempdir().expect("tmp");
        if let Some(blocks) = blocks {
            rthanos_testkit::copy_dir(blocks, data.path());
        }
        let prometheus = rthanos_testkit::Prometheus::start_with_flags(
            data.path(),
            config,
            free_port(),
            prometheus_flags,
        );
        let mut args = vec![
            "sidecar".to_string(),
            format!("--prometheus.url={}", prometheus.url()),
            format!("--tsdb.path={}", data.path().display()),
        ];
        args.extend_from_slice(sidecar_args);
        let mut sidecar = Process::start(&args);
        sidecar.wait_ready(Duration::from_secs(60));
        Replica {
            sidecar,
            prometheus,
            data,
        }
    }
}

/// `rthanos query --query.replica-label=replica` over the gRPC `endpoints`, with `extra`
/// arguments; ready.
pub fn start_query<'a>(
    endpoints: impl IntoIterator<Item = &'a Process>,
    extra: &[&str],
) -> Process {
    let mut args = vec![
        "query".to_string(),
        "--query.replica-label=replica".to_string(),
    ];
    args.extend(
        endpoints
            .into_iter()
            .map(|p| format!("--endpoint={}", p.grpc_addr())),
    );
    args.extend(extra.iter().map(|a| a.to_string()));
    let mut query = Process::start(&args);
    query.wait_ready(Duration::from_secs(60));
    query
}

/// The objstore.yml of a FILESYSTEM bucket in `dir`.
pub fn filesystem_yaml(dir: &std::path::Path) -> String {
    format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.display()
    )
}

/// Uploads every block of `data` to `bucket` as a sidecar ships it: chunks, index, then a
/// meta.json with the `thanos` section (external labels, source, files).
pub fn upload_blocks(
    bucket: &rthanos_objstore::Bucket,
    data: &std::path::Path,
    labels: &[(&str, &str)],
) -> Vec<String> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(data).expect("data dir") {
        let dir = entry.expect("entry").path();
        if !dir.join("meta.json").is_file() {
            continue;
        }
        let id = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        let mut meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("meta.json")).expect("meta"))
                .expect("json");
        let mut files = Vec::new();
        let mut segments = Vec::new();
        let mut chunk_files: Vec<_> = std::fs::read_dir(dir.join("chunks"))
            .expect("chunks")
            .map(|e| e.expect("entry").path())
            .collect();
        chunk_files.sort();
        for file in chunk_files.iter().chain([&dir.join("index")]) {
            let rel = file
                .strip_prefix(&dir)
                .expect("rel")
                .to_string_lossy()
                .to_string();
            let bytes = std::fs::read(file).expect("read");
            files.push(serde_json::json!({"rel_path": rel, "size_bytes": bytes.len()}));
            if let Some(name) = rel.strip_prefix("chunks/") {
                segments.push(name.to_string());
            }
            runtime
                .block_on(bucket.upload(&format!("{id}/{rel}"), bytes.into()))
                .expect("upload");
        }
        files.push(serde_json::json!({"rel_path": "meta.json"}));
        let labels: std::collections::BTreeMap<&str, &str> = labels.iter().copied().collect();
        meta["thanos"] = serde_json::json!({
            "labels": labels, "downsample": {"resolution": 0}, "source": "sidecar",
            "segment_files": segments, "files": files, "version": 1,
        });
        runtime
            .block_on(bucket.upload(
                &format!("{id}/meta.json"),
                serde_json::to_vec(&meta).expect("json").into(),
            ))
            .expect("upload meta");
        ids.push(id);
    }
    ids.sort();
    ids
}

/// The OpenMetrics text without the samples whose time falls in [from, to) (Unix seconds).
pub fn without(text: &str, from: i64, to: i64) -> String {
    text.lines()
        .filter(|line| {
            if line.starts_with('#') {
                return true;
            }
            let t = line
                .rsplit(' ')
                .next()
                .and_then(|t| t.parse::<f64>().ok())
                .unwrap_or(0.0);
            !(t >= from as f64 && t < to as f64)
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Percent-encodes a query parameter's value.
pub fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `data` section of a successful Prometheus API answer.
pub fn api_data(port: u16, path: &str) -> serde_json::Value {
    let (status, body) = http_get(port, path).expect("answer");
    assert_eq!(status, 200, "{path}: {body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    json["data"].clone()
}

/// A series' labels as one sortable key, leaving out the `dropped` ones (external labels the
/// other side of a comparison does not have).
pub fn series_key(metric: &serde_json::Value, dropped: &[&str]) -> String {
    let mut labels: Vec<String> = metric
        .as_object()
        .expect("metric")
        .iter()
        .filter(|(k, _)| !dropped.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    labels.sort();
    labels.join(",")
}

/// The value of each series of an instant query answer, by [`series_key`].
pub fn instant_values(
    port: u16,
    path: &str,
    dropped: &[&str],
) -> std::collections::BTreeMap<String, f64> {
    let data = api_data(port, path);
    let mut out = std::collections::BTreeMap::new();
    for series in data["result"].as_array().expect("result") {
        let v = series["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .expect("value");
        out.insert(series_key(&series["metric"], dropped), v);
    }
    out
}

/// Equal, or within float rounding of each other (sums taken in another order).
pub fn close(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// An instant or range query's answer as (labels without `cluster`) → (time, value) points,
/// from Prometheus's JSON.
pub fn api_points(port: u16, path: &str) -> std::collections::BTreeMap<String, Vec<(f64, f64)>> {
    let data = api_data(port, path);
    let mut out = std::collections::BTreeMap::new();
    for series in data["result"].as_array().expect("result") {
        let points: Vec<&serde_json::Value> = match series.get("values") {
            Some(values) => values.as_array().expect("values").iter().collect(),
            None => vec![&series["value"]],
        };
        let points = points
            .into_iter()
            .map(|p| {
                let v = p[1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (p[0].as_f64().unwrap_or_default(), v)
            })
            .collect();
        out.insert(series_key(&series["metric"], &["cluster"]), points);
    }
    out
}

/// Two answers of [`api_points`] hold the same series, steps and values (by [`close`]).
pub fn assert_same_points(
    ours: &std::collections::BTreeMap<String, Vec<(f64, f64)>>,
    theirs: &std::collections::BTreeMap<String, Vec<(f64, f64)>>,
    what: &str,
) {
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{what}"
    );
    for (labels, points) in ours {
        let want = &theirs[labels];
        assert_eq!(points.len(), want.len(), "{what} {labels}");
        for ((t, v), (wt, wv)) in points.iter().zip(want) {
            assert_eq!(t, wt, "{what} {labels}");
            assert!(close(*v, *wv), "{what} {labels} at {t}: {v} != {wv}");
        }
    }
}

/// The value of a series (name and labels, written as in the exposition) in the `/metrics`
/// of the process on `port`.
pub fn metric_on(port: u16, series: &str) -> Option<f64> {
    let (_, body) = http_get(port, "/metrics")?;
    body.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// The sum of a metric's series whose labels include `labels` (in any order), from the
/// `/metrics` of `port`; 0 when none matches.
pub fn metric_sum(port: u16, name: &str, labels: &[(&str, &str)]) -> f64 {
    let Some((_, body)) = http_get(port, "/metrics") else {
        return 0.0;
    };
    body.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (label_part, value) = match rest.strip_prefix('{') {
                Some(rest) => rest.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            labels
                .iter()
                .all(|(k, v)| label_part.contains(&format!("{k}=\"{v}\"")))
                .then(|| value.trim().parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// Raw blocks of one group hold every source block exactly once (by their compaction sources)
/// and do not overlap in time: nothing lost, nothing doubled.
pub fn assert_sources_once<'a>(
    raw: &[&rthanos_tsdb::BlockMeta],
    sources: impl IntoIterator<Item = &'a String>,
    what: &str,
) {
    let mut covered: Vec<&String> = raw.iter().flat_map(|m| &m.compaction.sources).collect();
    covered.sort();
    let mut expected: Vec<&String> = sources.into_iter().collect();
    expected.sort();
    assert_eq!(covered, expected, "{what}: each source once");
    let mut spans: Vec<(i64, i64)> = raw.iter().map(|m| (m.min_time, m.max_time)).collect();
    spans.sort();
    assert!(
        spans.windows(2).all(|w| w[0].1 <= w[1].0),
        "{what}: raw blocks overlap: {spans:?}"
    );
}

/// The block IDs a sidecar recorded as shipped (its TSDB directory's thanos.shipper.json,
/// version 1), sorted; none before its first upload.
pub fn shipped_record(tsdb: &std::path::Path) -> Vec<String> {
    let Ok(bytes) = std::fs::read(tsdb.join("thanos.shipper.json")) else {
        return Vec::new();
    };
    // Written atomically (temporary file, then rename): never seen half-written.
    let state: serde_json::Value = serde_json::from_slice(&bytes).expect("thanos.shipper.json");
    assert_eq!(state["version"], 1, "thanos.shipper.json version");
    let mut ids: Vec<String> = state["uploaded"]
        .as_array()
        .expect("uploaded")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// Downloads the raw blocks of the bucket into a TSDB directory.
pub fn download_raw(
    bucket: &rthanos_objstore::Bucket,
    metas: &std::collections::BTreeMap<String, rthanos_tsdb::BlockMeta>,
    dir: &std::path::Path,
) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for (id, meta) in metas {
        if meta.resolution() == 0 {
            rt.block_on(rthanos_block::download_block(
                bucket,
                id.parse().expect("ulid"),
                dir,
            ))
            .expect("download");
        }
    }
}
