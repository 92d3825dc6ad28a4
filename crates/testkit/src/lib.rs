//! The real peers rthanos's tests run against, started on 127.0.0.1 and stopped when dropped:
//! `moto_server` (a real S3 API), and TSDB blocks made by Prometheus's own `promtool` from
//! generated OpenMetrics data; a misbehaving loopback link ([`Link`]) for uploads that take a
//! while, and the tests' clock and time budgets ([`time`]). `scripts/test.sh` installs the
//! programs; a test that cannot find one fails, saying how to get it, rather than passing
//! without checking anything.

pub mod openmetrics;
pub mod pki;
pub mod time;
pub use pki::Pki;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released for the peer to take).
///
/// Ports come from 10000–31999, below Linux's ephemeral range (32768–60999): a port taken
/// from the ephemeral range can be handed, before the peer binds it, to any outgoing
/// connection of the many processes a parallel test run starts. Each test process walks its
/// own stretch of the range (by process ID), so two processes rarely try the same ports.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 10_000;
    const SPAN: u32 = 22_000;
    let base = (std::process::id() % 550) * 40;
    for _ in 0..SPAN {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + (base + offset) % SPAN;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in 10000-31999")
}

/// Waits until something listens on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, what: &str, limit: Duration) {
    let deadline = time::deadline_after(limit);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port} {}",
            time::gave_up(limit, deadline)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `moto_server` on a free loopback port, killed when dropped.
pub struct Moto {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl Moto {
    /// Starts moto_server, or panics saying how to install it.
    pub fn start() -> Moto {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("moto_server could not be started ({e}); scripts/test.sh installs it (pip install 'moto[server]')"));
        let moto = Moto { child, port };
        wait_for_port(port, "moto_server", Duration::from_secs(30));
        moto
    }

    /// The S3 endpoint, `127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (moto accepts unsigned requests).
    pub fn create_bucket(&self, name: &str) {
        use std::io::{Read, Write};
        let mut conn =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect moto");
        write!(conn, "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", self.port)
            .expect("send");
        let mut answer = String::new();
        conn.read_to_string(&mut answer).expect("read");
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "create bucket {name}: {answer}"
        );
    }

    /// An objstore.yml for `bucket` on this server.
    pub fn objstore_yaml(&self, bucket: &str) -> String {
        s3_objstore_yaml(self.port, bucket)
    }
}

/// A real DNS server (dnsmasq) answering only the records it is given, on `ip`:53 (a loopback
/// address of its own, e.g. 127.0.0.77, so it never meets a system resolver). Needs root.
pub struct Dnsmasq {
    child: Child,
    /// The address it answers on.
    pub ip: std::net::Ipv4Addr,
}

impl Dnsmasq {
    /// Starts dnsmasq with `records` as dnsmasq options (`--srv-host=…`, `--host-record=…`),
    /// or panics saying how to install it.
    pub fn start(ip: std::net::Ipv4Addr, records: &[String]) -> Dnsmasq {
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--port=53",
                "--pid-file=",
                "--user=root",
                "--log-facility=-",
            ])
            .arg(format!("--listen-address={ip}"))
            .args(records)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("dnsmasq could not be started ({e}); scripts/test.sh installs it (apt-get install dnsmasq-base)"));
        let dns = Dnsmasq { child, ip };
        // Listening shows in /proc/net/udp as the address in little-endian hex, port 0035.
        let [a, b, c, d] = ip.octets();
        let socket = format!("{d:02X}{c:02X}{b:02X}{a:02X}:0035");
        let deadline = time::deadline_after(Duration::from_secs(20));
        while !std::fs::read_to_string("/proc/net/udp").is_ok_and(|t| t.contains(&socket)) {
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not listen on {ip}:53 (it needs root)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        dns
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An objstore.yml for an S3 API on 127.0.0.1:`port` (moto, or a proxy in front of it), with
/// test credentials over plain HTTP. Its `config:` keys end the text, so a caller may append
/// more (indented two spaces) or a top-level `prefix:`.
pub fn s3_objstore_yaml(port: u16, bucket: &str) -> String {
    format!(
        "type: S3\nconfig:\n  bucket: {bucket}\n  endpoint: 127.0.0.1:{port}\n  region: us-east-1\n  access_key: test\n  secret_key: test\n  insecure: true\n"
    )
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Path of Prometheus's `promtool`, or a panic saying how to install it.
pub fn promtool() -> &'static str {
    match Command::new("promtool").arg("--version").output() {
        Ok(out) if out.status.success() => "promtool",
        _ => panic!("promtool not found; scripts/test.sh installs Debian's prometheus package"),
    }
}

/// Blocks made by `promtool tsdb create-blocks-from openmetrics` from `openmetrics` text, in a
/// fresh directory that lives as long as the returned value.
pub struct PromtoolBlocks {
    /// The directory holding the blocks (a TSDB data directory).
    pub dir: tempfile::TempDir,
    /// Each block's directory, in ULID (time) order.
    pub blocks: Vec<PathBuf>,
}

impl PromtoolBlocks {
    /// Runs promtool on the text; `block_duration` as promtool's `--max-block-duration` (e.g. "2h").
    pub fn create(openmetrics: &str, block_duration: &str) -> PromtoolBlocks {
        let dir = tempfile::tempdir().expect("tmp");
        let input = dir.path().join("input.om");
        std::fs::write(&input, openmetrics).expect("write input");
        let data = dir.path().join("data");
        let out = Command::new(promtool())
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(format!("--max-block-duration={block_duration}"))
            .arg(&input)
            .arg(&data)
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool create-blocks-from failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_file(&input).expect("remove input");
        let mut blocks: Vec<PathBuf> = std::fs::read_dir(&data)
            .expect("data dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("meta.json").is_file())
            .collect();
        blocks.sort();
        assert!(!blocks.is_empty(), "promtool made no block");
        PromtoolBlocks { dir, blocks }
    }

    /// The TSDB data directory holding the blocks.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

/// Runs `promtool tsdb dump` on a data directory, returning its lines.
pub fn promtool_dump(data_dir: &Path) -> String {
    promtool_dump_matching(data_dir, &[])
}

/// `promtool tsdb dump` with extra arguments (`--match=…`, `--min-time=…`, `--max-time=…`).
pub fn promtool_dump_matching(data_dir: &Path, args: &[&str]) -> String {
    // promtool opens the directory as a database, which needs a WAL directory.
    std::fs::create_dir_all(data_dir.join("wal")).expect("wal dir");
    let out = Command::new(promtool())
        .args(["tsdb", "dump"])
        .args(args)
        .arg(data_dir)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool tsdb dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8 dump")
}

/// A real Prometheus (Debian's 2.42) on a free loopback port, over a data directory; killed
/// when dropped. Retention is 100y so that old test blocks are served, not deleted.
pub struct Prometheus {
    child: Child,
    /// The HTTP port.
    pub port: u16,
    _config: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus on `data_dir` with `config` as its prometheus.yml, and waits until
    /// it is ready.
    pub fn start(data_dir: &Path, config: &str) -> Prometheus {
        Self::start_on(data_dir, config, free_port())
    }

    /// Starts Prometheus on a given port (to restart one where its clients expect it).
    pub fn start_on(data_dir: &Path, config: &str, port: u16) -> Prometheus {
        Self::start_with_flags(data_dir, config, port, &[])
    }

    /// Starts Prometheus with extra command-line flags (e.g. `--enable-feature=…`).
    pub fn start_with_flags(
        data_dir: &Path,
        config: &str,
        port: u16,
        flags: &[&str],
    ) -> Prometheus {
        let config_dir = tempfile::tempdir().expect("tmp");
        let config_path = config_dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write config");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", data_dir.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args([
                "--storage.tsdb.retention.time=100y",
                "--storage.tsdb.min-block-duration=2h",
                "--storage.tsdb.max-block-duration=2h",
                "--log.level=warn",
            ])
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("prometheus could not be started ({e}); scripts/test.sh installs Debian's prometheus"));
        let prometheus = Prometheus {
            child,
            port,
            _config: config_dir,
        };
        wait_for_port(port, "prometheus", Duration::from_secs(60));
        let limit = Duration::from_secs(60);
        let deadline = time::deadline_after(limit);
        while !prometheus.ready() {
            assert!(
                Instant::now() < deadline,
                "prometheus not ready {}",
                time::gave_up(limit, deadline)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        prometheus
    }

    fn ready(&self) -> bool {
        answers_ready(self.port)
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The base URL, e.g. for `promtool query`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Whether the server on `port` answers `GET /-/ready` with 200 (Prometheus, Alertmanager).
fn answers_ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = write!(
        conn,
        "GET /-/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    );
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// A real Alertmanager (Debian's `prometheus-alertmanager`, 0.25) on a free loopback port,
/// clustering off, every alert routed to a receiver that sends nothing; killed when dropped.
pub struct Alertmanager {
    child: Child,
    /// The HTTP port.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts Alertmanager and waits until it is ready.
    pub fn start() -> Alertmanager {
        let dir = tempfile::tempdir().expect("tmp");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: none\n  group_wait: 0s\nreceivers:\n- name: none\n",
        )
        .expect("write config");
        let port = free_port();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("prometheus-alertmanager could not be started ({e}); scripts/test.sh installs Debian's prometheus-alertmanager"));
        let alertmanager = Alertmanager {
            child,
            port,
            _dir: dir,
        };
        wait_for_port(port, "alertmanager", Duration::from_secs(60));
        // The port opens before the API serves: alerts sent in between would be refused.
        let limit = Duration::from_secs(60);
        let deadline = time::deadline_after(limit);
        while !answers_ready(port) {
            assert!(
                Instant::now() < deadline,
                "alertmanager not ready {}",
                time::gave_up(limit, deadline)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        alertmanager
    }

    /// The base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `promtool query <args…>` against `url`, returning its output (panics on failure).
pub fn promtool_query(url: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(promtool());
    cmd.arg("query").arg(args[0]).arg(url).args(&args[1..]);
    let out = cmd.output().expect("run promtool query");
    assert!(
        out.status.success(),
        "promtool query {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// Copies a directory tree (for giving a Prometheus its own writable copy of test blocks).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// A network link on loopback that misbehaves: a TCP proxy to 127.0.0.1:`to` that is slow
/// ([`Link::slow`], for uploads that take a while, as to a distant object store) or that cuts
/// each connection after a number of answer bytes ([`Link::cutting`], a peer that dies
/// mid-answer). Stops accepting when dropped.
pub struct Link {
    /// The port to connect to instead of `to`.
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Link {
    /// The client-to-server direction carries at most `bytes_per_second`; the answers come
    /// back at full speed.
    pub fn slow(to: u16, bytes_per_second: usize) -> Link {
        Link::start(to, bytes_per_second, usize::MAX)
    }

    /// Each connection is closed, both ways, once `after_bytes` of answers have passed.
    pub fn cutting(to: u16, after_bytes: usize) -> Link {
        Link::start(to, usize::MAX, after_bytes)
    }

    fn start(to: u16, bytes_per_second: usize, answer_limit: usize) -> Link {
        use std::sync::atomic::{AtomicBool, Ordering};
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the link");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", to)) else {
                            continue;
                        };
                        let (Ok(client_out), Ok(server_in)) =
                            (client.try_clone(), server.try_clone())
                        else {
                            continue;
                        };
                        std::thread::spawn(move || {
                            forward(client, server, bytes_per_second, usize::MAX);
                        });
                        std::thread::spawn(move || {
                            forward(server_in, client_out, usize::MAX, answer_limit);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Link { port, stop }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Copies `from` to `to` (in slices of a twentieth of the rate, one every 50ms, when the rate
/// is limited) until either side closes or `limit` bytes have passed; then closes both
/// directions.
fn forward(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    bytes_per_second: usize,
    limit: usize,
) {
    use std::io::{Read, Write};
    let slice = (bytes_per_second / 20).clamp(1, 64 * 1024);
    let mut buffer = vec![0u8; slice];
    let mut passed = 0usize;
    while passed < limit {
        let started = Instant::now();
        let want = slice.min(limit - passed);
        let n = match from.read(&mut buffer[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
        passed += n;
        if bytes_per_second != usize::MAX {
            let due = Duration::from_secs_f64(n as f64 / bytes_per_second as f64);
            std::thread::sleep(due.saturating_sub(started.elapsed()));
        }
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}
