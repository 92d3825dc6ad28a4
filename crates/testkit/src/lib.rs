//! The real peers rthanos's tests run against, started on 127.0.0.1 and stopped when dropped:
//! `moto_server` (a real S3 API), and TSDB blocks made by Prometheus's own `promtool` from
//! generated OpenMetrics data. `scripts/test.sh` installs the programs; a test that cannot find
//! one fails, saying how to get it, rather than passing without checking anything.

pub mod openmetrics;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released for the peer to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits until something listens on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port} within {limit:?}"
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
        format!(
            "type: S3\nconfig:\n  bucket: {bucket}\n  endpoint: {}\n  region: us-east-1\n  access_key: test\n  secret_key: test\n  insecure: true\n",
            self.endpoint()
        )
    }
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
    // promtool opens the directory as a database, which needs a WAL directory.
    std::fs::create_dir_all(data_dir.join("wal")).expect("wal dir");
    let out = Command::new(promtool())
        .args(["tsdb", "dump"])
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
