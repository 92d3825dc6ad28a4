//! Flag parsing: the exact argv of the seed guide's manifests and of prometheus-operator's
//! sidecar container parse for their component, with Thanos's meaning.

use clap::Parser;

use crate::{Cli, Command};

fn parse(argv: &[&str]) -> Cli {
    let mut full = vec!["rthanos"];
    full.extend_from_slice(argv);
    match Cli::try_parse_from(full) {
        Ok(cli) => cli,
        Err(e) => panic!("{argv:?} does not parse:\n{e}"),
    }
}

#[test]
fn seed_query_deployment() {
    let cli = parse(&[
        "query",
        "--http-address=0.0.0.0:10902",
        "--grpc-address=0.0.0.0:10901",
        "--log.level=info",
        "--log.format=logfmt",
        "--query.replica-label=replica",
        "--query.replica-label=prometheus_replica",
        "--endpoint=dnssrv+_grpc._tcp.prometheus-operated.monitoring.svc.cluster.local",
        "--endpoint=thanos-store.monitoring.svc.cluster.local:10901",
    ]);
    let Command::Query(q) = cli.command else {
        panic!("not query")
    };
    assert_eq!(q.replica_labels, ["replica", "prometheus_replica"]);
    assert_eq!(q.endpoints.len(), 2);
    assert_eq!(
        q.endpoints[0],
        "dnssrv+_grpc._tcp.prometheus-operated.monitoring.svc.cluster.local"
    );
    assert!(
        !q.no_partial_response,
        "partial response is on by default, as in Thanos"
    );
    assert_eq!(q.timeout.to_string(), "2m");
    assert_eq!(q.http.address, "0.0.0.0:10902");
}

#[test]
fn seed_store_statefulset() {
    let cli = parse(&[
        "store",
        "--data-dir=/var/thanos/store",
        "--grpc-address=0.0.0.0:10901",
        "--http-address=0.0.0.0:10902",
        "--log.level=info",
        "--objstore.config-file=/etc/thanos/objstore.yml",
        "--index-cache-size=2GB",
        "--chunk-pool-size=2GB",
    ]);
    let Command::Store(s) = cli.command else {
        panic!("not store")
    };
    assert_eq!(
        s.index_cache_size.bytes(),
        2 << 30,
        "Thanos sizes are base 2"
    );
    assert_eq!(s.chunk_pool_size.bytes(), 2 << 30);
    assert_eq!(s.data_dir, std::path::Path::new("/var/thanos/store"));
    assert_eq!(
        s.objstore.config_file.as_deref(),
        Some(std::path::Path::new("/etc/thanos/objstore.yml"))
    );
    assert_eq!(s.sync_block_duration.to_string(), "15m");
    assert_eq!(s.ignore_deletion_marks_delay.to_string(), "1d");
}

#[test]
fn seed_compactor_statefulset() {
    let cli = parse(&[
        "compact",
        "--data-dir=/var/thanos/compactor",
        "--http-address=0.0.0.0:10902",
        "--log.level=info",
        "--objstore.config-file=/etc/thanos/objstore.yml",
        "--retention.resolution-raw=30d",
        "--retention.resolution-5m=90d",
        "--retention.resolution-1h=1y",
        "--compact.concurrency=1",
        "--delete-delay=48h",
        "--wait",
    ]);
    let Command::Compact(c) = cli.command else {
        panic!("not compact")
    };
    let days = |d: rthanos_model::PromDuration| d.as_millis() / 86_400_000;
    assert_eq!(days(c.retention_raw), 30);
    assert_eq!(days(c.retention_5m), 90);
    assert_eq!(days(c.retention_1h), 365);
    assert_eq!(days(c.delete_delay), 2);
    assert!(c.wait);
    assert_eq!(c.consistency_delay.to_string(), "30m");
}

/// What prometheus-operator (kube-prometheus-stack) runs next to Prometheus, v0.70 to v0.77.
#[test]
fn operator_sidecar_argv() {
    let cli = parse(&[
        "sidecar",
        "--prometheus.url=http://localhost:9090/",
        "--grpc-address=:10901",
        "--http-address=:10902",
        "--objstore.config=type: S3\nconfig:\n  bucket: prometheus-metrics\n  endpoint: s3.amazonaws.com\n",
        "--tsdb.path=/prometheus",
        "--log.level=info",
        "--log.format=logfmt",
        r#"--prometheus.http-client={"tls_config": {"insecure_skip_verify":true}}"#,
    ]);
    let Command::Sidecar(s) = cli.command else {
        panic!("not sidecar")
    };
    assert_eq!(s.prometheus_url, "http://localhost:9090/");
    assert_eq!(s.grpc.address, ":10901");
    assert_eq!(s.tsdb_path, std::path::Path::new("/prometheus"));
    assert!(
        s.objstore
            .content()
            .expect("inline")
            .is_some_and(|c| c.contains("type: S3"))
    );
    assert_eq!(s.min_time, rthanos_model::TimeOrDuration::MIN);
}

/// prometheus-operator v0.78+ passes the HTTP client configuration as a file.
#[test]
fn operator_sidecar_argv_with_client_file() {
    let cli = parse(&[
        "sidecar",
        "--prometheus.url=http://localhost:9090/",
        "--grpc-address=:10901",
        "--http-address=:10902",
        "--objstore.config-file=/etc/thanos/objstore.yml",
        "--tsdb.path=/prometheus",
        "--prometheus.http-client-file=/etc/thanos/config/prometheus.http-client-file.yaml",
        "--min-time=-2w",
        "--prometheus.ready_timeout=15m",
    ]);
    let Command::Sidecar(s) = cli.command else {
        panic!("not sidecar")
    };
    assert_eq!(
        s.min_time,
        rthanos_model::TimeOrDuration::Relative(-14 * 86_400_000)
    );
    assert_eq!(s.prometheus_ready_timeout.to_string(), "15m");
}

#[test]
fn thanos_defaults() {
    let Command::Sidecar(s) = parse(&["sidecar"]).command else {
        panic!()
    };
    assert_eq!(s.http.address, "0.0.0.0:10902");
    assert_eq!(s.grpc.address, "0.0.0.0:10901");
    assert_eq!(s.http.grace_period.to_string(), "2m");
    assert_eq!(s.grpc.grace_period.to_string(), "2m");
    assert_eq!(s.prometheus_url, "http://localhost:9090");
    let Command::Store(st) = parse(&["store"]).command else {
        panic!()
    };
    assert_eq!(st.index_cache_size.bytes(), 250 << 20);
    assert_eq!(st.chunk_pool_size.bytes(), 2 << 30);
    let Command::Compact(c) = parse(&["compact"]).command else {
        panic!()
    };
    assert_eq!(c.wait_interval.to_string(), "5m");
    assert_eq!(c.delete_delay.to_string(), "2d");
    assert!(c.retention_raw.is_zero());
}

#[test]
fn kingpin_style_negations() {
    let Command::Query(q) = parse(&["query", "--no-query.partial-response"]).command else {
        panic!()
    };
    assert!(q.no_partial_response);
    let Command::Query(q) = parse(&[
        "query",
        "--no-query.partial-response",
        "--query.partial-response",
    ])
    .command
    else {
        panic!()
    };
    assert!(!q.no_partial_response, "the last one wins");
}

#[test]
fn bad_values_and_unknown_flags_are_usage_errors() {
    for argv in [
        vec!["rthanos", "sidecar", "--no-such-flag"],
        vec!["rthanos", "store", "--index-cache-size=lots"],
        vec!["rthanos", "compact", "--wait-interval=5 minutes"],
        vec!["rthanos", "query", "--log.level=verbose"],
        vec![
            "rthanos",
            "sidecar",
            "--objstore.config=a",
            "--objstore.config-file=b",
        ],
    ] {
        let err = Cli::try_parse_from(&argv).expect_err("must fail");
        assert_eq!(err.exit_code(), 2, "{argv:?}");
    }
}

#[test]
fn help_is_well_formed() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
