//! The query and probes benchmarks' setup: two Prometheus 2.42 replicas over copies of the
//! shared dataset (external labels replica=a / b), a sidecar each, and `rthanos query` over
//! both sidecars, deduplicating by `replica`. Everything is stopped when dropped.
// Shared by benches that use different parts of it; the fields keep the processes running.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::time::Duration;

use rthanos_testkit::Prometheus;

use crate::common::Process;
use crate::dataset::data_dir;

/// The running setup.
pub struct Stack {
    /// The querier.
    pub query: Process,
    /// The sidecars, one per replica.
    pub sidecars: Vec<Process>,
    /// The replicas, with their data directories.
    pub replicas: Vec<(tempfile::TempDir, Prometheus)>,
}

impl Stack {
    /// Starts it, the querier with `query_args` besides its endpoints and replica label.
    pub fn start(query_args: &[String]) -> Stack {
        let (replicas, sidecars) = replicas_with_sidecars(&data_dir().join("data"));
        let mut args = vec![
            "query".to_string(),
            "--query.replica-label=replica".to_string(),
            "--log.level=warn".to_string(),
        ];
        args.extend_from_slice(query_args);
        args.extend(
            sidecars
                .iter()
                .map(|s| format!("--endpoint={}", s.grpc_addr())),
        );
        let mut query = Process::start(&args);
        query.wait_ready(Duration::from_secs(60));
        Stack {
            query,
            sidecars,
            replicas,
        }
    }
}

/// Two Prometheus replicas over copies of `data` (external labels `cluster="bench"` and
/// `replica` a / b), each with a ready sidecar.
pub fn replicas_with_sidecars(data: &Path) -> (Vec<(tempfile::TempDir, Prometheus)>, Vec<Process>) {
    let mut replicas = Vec::new();
    let mut sidecars = Vec::new();
    for name in ["a", "b"] {
        let dir = tempfile::tempdir().expect("tmp");
        rthanos_testkit::copy_dir(data, dir.path());
        let prometheus = Prometheus::start(
            dir.path(),
            &format!("global:\n  external_labels:\n    cluster: bench\n    replica: {name}\n"),
        );
        let mut sidecar = Process::start(&[
            "sidecar".to_string(),
            format!("--prometheus.url={}", prometheus.url()),
            format!("--tsdb.path={}", dir.path().display()),
            "--log.level=warn".to_string(),
        ]);
        sidecar.wait_ready(Duration::from_secs(120));
        sidecars.push(sidecar);
        replicas.push((dir, prometheus));
    }
    (replicas, sidecars)
}
