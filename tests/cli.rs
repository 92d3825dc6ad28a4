//! End-to-end runs of the real `rthanos` binary: flags, start-up validation, exit codes and logs.

use std::process::{Command, Output};

fn rthanos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rthanos"))
        .args(args)
        .output()
        .expect("run rthanos")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["sidecar", "query", "store", "compact", "tools"] {
        let out = rthanos(&[sub, "--help"]);
        assert!(out.status.success(), "{sub} --help: {}", stderr(&out));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Usage: rthanos"), "{help}");
    }
    let help = String::from_utf8_lossy(&rthanos(&["store", "--help"]).stdout).into_owned();
    for flag in [
        "--objstore.config-file",
        "--index-cache-size",
        "--http-address",
        "--grpc-address",
        "--data-dir",
    ] {
        assert!(help.contains(flag), "store --help lacks {flag}");
    }
}

#[test]
fn version_names_revision() {
    let out = rthanos(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("rthanos version "), "{text}");
    assert!(text.contains("revision: "), "{text}");
}

#[test]
fn unknown_flag_exits_2_naming_it() {
    let out = rthanos(&["sidecar", "--prometheus.urll=http://x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--prometheus.urll"),
        "{}",
        stderr(&out)
    );
    let out = rthanos(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("frobnicate"));
}

#[test]
fn bad_flag_value_exits_2_naming_it() {
    let out = rthanos(&["compact", "--retention.resolution-raw=30 days"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--retention.resolution-raw"),
        "{}",
        stderr(&out)
    );
}

/// Loopback addresses on free ports, so tests never collide with each other or a real Thanos.
const LOCAL: [&str; 2] = ["--http-address=127.0.0.1:0", "--grpc-address=127.0.0.1:0"];

#[test]
fn bad_objstore_config_stops_startup_naming_the_field() {
    let dir = tempfile::tempdir().expect("tmp");
    let cases = [
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  acess_key: typo\n",
            "acess_key",
        ),
        ("type: S3\nconfig:\n  bucket: b\n", "config.endpoint"),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: s3.amazonaws.com\n  sse_config:\n    type: SSE-X\n",
            "config.sse_config.type",
        ),
        ("type: GCS\nconfig: {}\n", "config.bucket"),
        (
            "type: AZURE\nconfig:\n  storage_account: a\n",
            "config.container",
        ),
        ("type: FILESYSTEM\nconfig:\n  dir: /tmp/x\n", "dir"),
        ("type: SWIFT\nconfig: {}\n", "type"),
        ("typ: S3\n", "typ"),
    ];
    for (i, (yaml, field)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("objstore-{i}.yml"));
        std::fs::write(&file, yaml).expect("write");
        let flag = format!("--objstore.config-file={}", file.display());
        let out = rthanos(&["store", &flag, LOCAL[0], LOCAL[1]]);
        assert_eq!(out.status.code(), Some(1), "{yaml}");
        let err = stderr(&out);
        assert!(
            err.contains(field),
            "error for {yaml:?} does not name {field}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let missing = rthanos(&[
        "compact",
        "--objstore.config-file=/nonexistent/objstore.yml",
        LOCAL[0],
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("/nonexistent/objstore.yml"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn bad_web_config_stops_startup() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("web.yml");
    std::fs::write(&file, "basic_auth_users:\n  admin: not-a-bcrypt-hash\n").expect("write");
    let flag = format!("--http.config={}", file.display());
    let out = rthanos(&["query", &flag, LOCAL[0], LOCAL[1]]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("basic_auth_users"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn logs_in_json_when_asked() {
    let out = rthanos(&["compact", "--log.format=json", LOCAL[0]]);
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.contains("objstore.config"))
        .expect("error line");
    let value: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
    assert_eq!(value["level"], "error");
    assert!(value["ts"].as_str().is_some_and(|ts| ts.ends_with('Z')));
    let out = rthanos(&["compact", "--log.format=logfmt", LOCAL[0]]);
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.starts_with("ts=") && l.contains(" level=error ")),
        "{err}"
    );
}

#[test]
fn taken_port_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let flag = format!("--http-address={addr}");
    let out = rthanos(&[
        "compact",
        &flag,
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: /tmp/rthanos-unused\n",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("listen HTTP on {addr}")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rules_check_names_file_group_rule_and_cause() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/crates/rule/tests/rulefmt");
    let good = format!("--rules={fixtures}/good.yml");
    let out = rthanos(&["tools", "rules-check", &good]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 2 rules found"));

    let bad = format!("--rules={fixtures}/badrecord.yml");
    let out = rthanos(&["tools", "rules-check", &good, &bad]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "badrecord.yml: group \"a\", rule 1, \"bad name\": invalid recording rule name: bad name"
        ),
        "{stdout}"
    );
    assert!(
        stderr(&out).contains("1 of 2 rule files are invalid"),
        "{}",
        stderr(&out)
    );
}
