//! `rthanos rule` over the global view: a real Prometheus 2.42 scraping itself, its sidecar,
//! `rthanos query`, and the ruler querying that querier. Every recorded sample equals
//! Prometheus's own answer to the rule's expression at the sample's time, at the evaluation
//! slots Prometheus would choose; a querier over the ruler's StoreAPI returns them; the
//! ruler's data directory is a TSDB promtool reads.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

const RULES: &str = "groups:
- name: global
  interval: 1s
  rules:
  - record: job:up:sum
    expr: sum by (job) (up)
  - record: rule:time
    expr: time()
  - record: job:head_series:max
    expr: max by (job) (prometheus_tsdb_head_series offset 3s)
  - record: version:build:count
    expr: count by (version) (prometheus_build_info)
  - alert: AlwaysFiring
    expr: vector(1)
    labels:
      severity: none
";

/// The samples of a `promtool tsdb dump` line set: `{labels} value timestamp`.
fn dumped(data_dir: &std::path::Path) -> Vec<(String, f64, i64)> {
    let copy = tempfile::tempdir().expect("tmp");
    rthanos_testkit::copy_dir(data_dir, copy.path());
    let text = rthanos_testkit::promtool_dump(copy.path());
    text.lines()
        .filter_map(|line| {
            let (labels, rest) = line.rsplit_once('}')?;
            let mut fields = rest.split_whitespace();
            let value = fields.next()?.parse().ok()?;
            let ts = fields.next()?.parse().ok()?;
            Some((format!("{labels}}}"), value, ts))
        })
        .collect()
}

#[test]
fn recorded_samples_are_prometheus_answers_at_aligned_slots() {
    let port = rthanos_testkit::free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  external_labels:\n    cluster: eu1\n    replica: a\nscrape_configs:\n- job_name: prometheus\n  static_configs:\n  - targets: ['127.0.0.1:{port}']\n"
    );
    let data = tempfile::tempdir().expect("tmp");
    let prometheus = rthanos_testkit::Prometheus::start_with_flags(data.path(), &config, port, &[]);
    let mut sidecar = common::Process::start(&[
        "sidecar".to_string(),
        format!("--prometheus.url={}", prometheus.url()),
        format!("--tsdb.path={}", data.path().display()),
    ]);
    sidecar.wait_ready(Duration::from_secs(60));
    let query = common::start_query([&sidecar], &[]);

    let dir = tempfile::tempdir().expect("tmp");
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).expect("rules");
    let ruler_data = dir.path().join("data");
    let mut ruler = common::Process::start(&[
        "rule".to_string(),
        format!("--rule-file={}", rules.display()),
        format!("--data-dir={}", ruler_data.display()),
        format!("--query=127.0.0.1:{}", query.http_port),
        "--label=ruler_cluster=\"eu1\"".to_string(),
    ]);
    ruler.wait_ready(Duration::from_secs(30));
    // Thanos's group key: the rewritten file under the data directory, and the name.
    let key_file = rthanos_rule::manager::thanos_group_file(
        &ruler_data,
        rthanos_rule::rulefmt::PartialResponseStrategy::Abort,
        &rules.display().to_string(),
    );
    let key = format!("{key_file};global");
    let evaluations =
        format!("prometheus_rule_evaluations_total{{rule_group=\"{key}\",strategy=\"abort\"}}");
    // Once every rule has results (the querier sees the first scrapes; ALERTS are written
    // from the second evaluation on), seven more evaluations of the five rules.
    let returned = format!(
        "prometheus_rule_group_last_evaluation_samples{{rule_group=\"{key}\",strategy=\"abort\"}}"
    );
    ruler.wait_for(Duration::from_secs(60), "every rule with results", |r| {
        r.metric(&returned).is_some_and(|n| n >= 6.0)
    });
    let so_far = ruler.metric(&evaluations).unwrap_or(0.0);
    ruler.wait_for(Duration::from_secs(60), "7 more evaluations", |r| {
        r.metric(&evaluations).is_some_and(|n| n >= so_far + 35.0)
    });
    // A querier with the ruler among its endpoints returns the recorded series and ALERTS,
    // with the ruler's `--label`.
    let global = common::start_query([&ruler], &[]);
    let recorded = common::api_data(
        global.http_port,
        &format!("/api/v1/query?query={}", common::urlencode("job:up:sum")),
    );
    assert_eq!(
        recorded["result"][0]["metric"],
        serde_json::json!({"__name__": "job:up:sum", "job": "prometheus", "ruler_cluster": "eu1"}),
        "{recorded}"
    );
    assert_eq!(recorded["result"][0]["value"][1], "1");
    let alerts = common::api_data(
        global.http_port,
        &format!("/api/v1/query?query={}", common::urlencode("ALERTS")),
    );
    assert_eq!(
        alerts["result"][0]["metric"]["alertstate"], "firing",
        "{alerts}"
    );
    let labels = common::api_data(global.http_port, "/api/v1/label/__name__/values");
    assert!(
        labels
            .as_array()
            .is_some_and(|names| names.iter().any(|n| n == "ALERTS_FOR_STATE")),
        "{labels}"
    );
    drop(global);

    // The rules API answers as Prometheus's does for the same file: a Prometheus 2.42 that
    // loads it is asked too.
    let reference_data = tempfile::tempdir().expect("tmp");
    let reference_port = rthanos_testkit::free_port();
    let reference = rthanos_testkit::Prometheus::start_with_flags(
        reference_data.path(),
        &format!(
            "global:\n  evaluation_interval: 1s\nrule_files:\n- {}\n",
            rules.display()
        ),
        reference_port,
        &[],
    );
    let deadline = rthanos_testkit::time::deadline_after(Duration::from_secs(30));
    let theirs = loop {
        let alerts = common::api_data(reference_port, "/api/v1/alerts");
        if alerts["alerts"].as_array().is_some_and(|a| !a.is_empty()) {
            break common::api_data(reference_port, "/api/v1/rules");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus evaluates no rules"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let ours = common::api_data(ruler.http_port, "/api/v1/rules");
    let summary = |groups: &serde_json::Value| -> Vec<serde_json::Value> {
        groups["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| {
                let rules: Vec<serde_json::Value> = g["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        // Prometheus leaves out a recording rule's empty labels; Thanos's
                        // rulespb (and so rthanos) writes `{}`.
                        let labels = if r["labels"].is_null() {
                            serde_json::json!({})
                        } else {
                            r["labels"].clone()
                        };
                        serde_json::json!([
                            r["type"],
                            r["name"],
                            r["query"],
                            labels,
                            r["annotations"],
                            r["duration"],
                            r["health"],
                            r["state"],
                            r["alerts"].as_array().map(|a| a
                                .iter()
                                .map(|a| serde_json::json!([
                                    a["labels"],
                                    a["annotations"],
                                    a["state"],
                                    a["value"]
                                ]))
                                .collect::<Vec<_>>())
                        ])
                    })
                    .collect();
                serde_json::json!([g["name"], g["file"], g["interval"], g["limit"], rules])
            })
            .collect()
    };
    assert_eq!(
        summary(&ours),
        summary(&theirs),
        "ours: {ours}\ntheirs: {theirs}"
    );
    assert_eq!(ours["groups"][0]["partialResponseStrategy"], "ABORT");
    let alerts = common::api_data(ruler.http_port, "/api/v1/alerts");
    assert_eq!(
        alerts["alerts"][0]["labels"]["alertname"], "AlwaysFiring",
        "{alerts}"
    );
    assert_eq!(alerts["alerts"][0]["value"], "1e+00");
    drop(reference);
    let failures = format!(
        "prometheus_rule_evaluation_failures_total{{rule_group=\"{key}\",strategy=\"abort\"}}"
    );
    assert_eq!(ruler.metric(&failures), Some(0.0), "{}", ruler.log());
    // Prometheus's duration summaries, with Thanos's strategy label.
    for summary in [
        "prometheus_rule_evaluation_duration_seconds",
        "prometheus_rule_group_duration_seconds",
    ] {
        assert!(
            ruler
                .metric(&format!("{summary}_count{{strategy=\"abort\"}}"))
                .is_some_and(|n| n >= 7.0),
            "{summary}"
        );
        assert!(
            ruler
                .metric(&format!(
                    "{summary}{{strategy=\"abort\",quantile=\"0.99\"}}"
                ))
                .is_some_and(|d| d > 0.0 && d < 60.0),
            "{summary}"
        );
    }
    stop(&mut ruler);

    let samples = dumped(&ruler_data);
    let mut by_series: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for (labels, value, ts) in &samples {
        by_series
            .entry(labels.clone())
            .or_default()
            .push((*ts, *value));
    }
    let series: Vec<&String> = by_series.keys().collect();
    assert!(
        series
            .iter()
            .any(|s| s.starts_with("{__name__=\"job:up:sum\"")),
        "{series:?}"
    );

    // Every sample at one of the group's slots: Thanos's key decides the offset.
    let interval = Duration::from_secs(1);
    let offset_ms = rthanos_rule::schedule::offset_nanos("global", &key_file, interval) / 1_000_000;
    for (labels, _, ts) in &samples {
        assert_eq!(
            (ts - offset_ms).rem_euclid(1000),
            0,
            "{labels} at {ts}: not at the slot offset {offset_ms}ms"
        );
    }

    // Each recorded sample is what Prometheus answers for the expression at that time.
    let prometheus_port = port;
    let mut compared = 0;
    for (name, expr) in [
        ("job:up:sum", "sum by (job) (up)"),
        ("rule:time", "time()"),
        (
            "job:head_series:max",
            "max by (job) (prometheus_tsdb_head_series offset 3s)",
        ),
        (
            "version:build:count",
            "count by (version) (prometheus_build_info)",
        ),
    ] {
        let recorded: Vec<&(String, f64, i64)> = samples
            .iter()
            .filter(|(l, _, _)| l.starts_with(&format!("{{__name__=\"{name}\"")))
            .collect();
        assert!(recorded.len() >= 6, "{name}: {recorded:?}");
        for (labels, value, ts) in recorded {
            let path = format!(
                "/api/v1/query?query={}&time={}.{:03}",
                common::urlencode(expr),
                ts.div_euclid(1000),
                ts.rem_euclid(1000)
            );
            let data = common::api_data(prometheus_port, &path);
            let answer: Vec<(String, f64)> = match data["resultType"].as_str() {
                Some("scalar") => vec![(
                    String::new(),
                    data["result"][1]
                        .as_str()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(f64::NAN),
                )],
                _ => data["result"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        let labels: Vec<String> = s["metric"]
                            .as_object()
                            .into_iter()
                            .flatten()
                            .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or("")))
                            .collect();
                        (
                            labels.join(", "),
                            s["value"][1]
                                .as_str()
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(f64::NAN),
                        )
                    })
                    .collect(),
            };
            let own = labels
                .trim_start_matches(&format!("{{__name__=\"{name}\""))
                .trim_start_matches(", ")
                .trim_end_matches('}')
                .to_string();
            let expected = answer.iter().find(|(l, _)| *l == own);
            assert!(
                expected.is_some_and(|(_, v)| common::close(*v, *value)),
                "{name} {labels} at {ts}: recorded {value}, Prometheus answers {answer:?}"
            );
            compared += 1;
        }
    }
    assert!(compared >= 24, "{compared}");

    // The alert fires at once (`for: 0s`) and is written once its state is restored.
    let alerts: Vec<&String> = series
        .iter()
        .copied()
        .filter(|s| s.starts_with("{__name__=\"ALERTS\""))
        .collect();
    assert_eq!(
        alerts,
        [&"{__name__=\"ALERTS\", alertname=\"AlwaysFiring\", alertstate=\"firing\", severity=\"none\"}".to_string()]
    );
}

/// SIGTERM, and wait for the ruler to close its TSDB.
fn stop(process: &mut common::Process) {
    let pid = process.pid();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    assert_eq!(
        process.wait_exit(Duration::from_secs(30)),
        Some(0),
        "{}",
        process.log()
    );
}

/// Alertmanager's alerts (`GET /api/v2/alerts`, active only).
fn alertmanager_alerts(port: u16) -> Vec<serde_json::Value> {
    let (status, body) = common::http_get(port, "/api/v2/alerts").expect("alertmanager answers");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Vec<serde_json::Value>>(&body).expect("json")
}

#[test]
fn alerts_reach_a_real_alertmanager_firing_then_resolved() {
    let alertmanager = rthanos_testkit::Alertmanager::start();
    // A querier without stores still answers `vector(1)` and `time()`.
    let query = common::start_query(std::iter::empty::<&common::Process>(), &[]);
    let dir = tempfile::tempdir().expect("tmp");
    // The alert holds for a few seconds, then its condition ends: the ruler evaluates at
    // its slots on the system clock, so the end is on that clock too.
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 8;
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        format!(
            "groups:\n- name: alerts\n  interval: 1s\n  rules:\n  - alert: ShortLived\n    expr: vector(1) and on() (vector(time()) < {until})\n    labels:\n      severity: page\n    annotations:\n      summary: the rule fired\n      description: '{{{{ $externalLabels.ruler_cluster }}}}: value {{{{ $value }}}}, query {{{{ query \"vector(7)\" | first | value }}}}'\n"
        ),
    )
    .expect("rules");
    let mut ruler = common::Process::start(&[
        "rule".to_string(),
        format!("--rule-file={}", rules.display()),
        format!("--data-dir={}", dir.path().join("data").display()),
        format!("--query=127.0.0.1:{}", query.http_port),
        format!("--alertmanagers.url={}", alertmanager.url()),
        "--label=ruler_cluster=\"eu1\"".to_string(),
        "--label=replica=\"r1\"".to_string(),
        "--alert.label-drop=replica".to_string(),
        "--alert.query-url=http://thanos.example".to_string(),
    ]);
    ruler.wait_ready(Duration::from_secs(30));

    let deadline = rthanos_testkit::time::deadline_after(Duration::from_secs(30));
    let alert = loop {
        if let Some(a) = alertmanager_alerts(alertmanager.port).into_iter().next() {
            break a;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no alert reached Alertmanager:\n{}",
            ruler.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        alert["labels"],
        serde_json::json!({"alertname": "ShortLived", "severity": "page", "ruler_cluster": "eu1"}),
        "external labels added, --alert.label-drop removed: {alert}"
    );
    assert_eq!(alert["annotations"]["summary"], "the rule fired");
    assert_eq!(
        alert["annotations"]["description"], "eu1: value 1, query 7",
        "rendered with Prometheus's template language, `query` through the querier"
    );
    assert_eq!(alert["status"]["state"], "active");
    let url = alert["generatorURL"].as_str().unwrap_or_default();
    assert!(
        url.starts_with(
            "http://thanos.example/graph?g0.expr=vector%281%29+and+on%28%29+%28vector%28time%28%29%29+%3C+"
        ) && url.ends_with("%29&g0.tab=1"),
        "{url}"
    );
    // Firing alerts are valid for four resend delays (1m > the 1s interval).
    let starts =
        chrono::DateTime::parse_from_rfc3339(alert["startsAt"].as_str().unwrap_or_default())
            .expect("startsAt");
    let ends = chrono::DateTime::parse_from_rfc3339(alert["endsAt"].as_str().unwrap_or_default())
        .expect("endsAt");
    assert!((ends - starts).num_seconds() >= 235, "{alert}");

    // The condition ends: the resolution is sent at once with endsAt now, so Alertmanager
    // stops listing the alert long before the four minutes.
    let deadline = rthanos_testkit::time::deadline_after(Duration::from_secs(40));
    while !alertmanager_alerts(alertmanager.port).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the alert was not resolved:\n{}",
            ruler.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let sent = format!(
        "thanos_alert_sender_alerts_sent_total{{alertmanager=\"127.0.0.1:{}\"}}",
        alertmanager.port
    );
    assert!(
        ruler.metric(&sent).is_some_and(|n| n >= 2.0),
        "{:?}",
        ruler.metric(&sent)
    );
    assert_eq!(
        ruler.metric("thanos_alert_sender_alerts_dropped_total"),
        Some(0.0)
    );
}

/// The `activeAt` of the one alert the ruler lists, in ms.
fn active_at_ms(ruler: &common::Process) -> Option<i64> {
    let alerts = common::api_data(ruler.http_port, "/api/v1/alerts");
    let at = alerts["alerts"][0]["activeAt"].as_str()?;
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[test]
fn after_sigkill_nothing_committed_is_lost_and_for_state_is_restored() {
    let query = common::start_query(std::iter::empty::<&common::Process>(), &[]);
    let dir = tempfile::tempdir().expect("tmp");
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n- name: g\n  interval: 1s\n  rules:\n  - record: rule:time\n    expr: time()\n  - alert: Held\n    expr: vector(1)\n    for: 1m\n",
    )
    .expect("rules");
    let data = dir.path().join("data");
    let args = [
        "rule".to_string(),
        format!("--rule-file={}", rules.display()),
        format!("--data-dir={}", data.display()),
        format!("--query=127.0.0.1:{}", query.http_port),
        // `for` state is restored only for alerts whose `for` exceeds the grace period.
        "--for-grace-period=2s".to_string(),
    ];
    let mut ruler = common::Process::start(&args);
    ruler.wait_ready(Duration::from_secs(30));
    let key_file = rthanos_rule::manager::thanos_group_file(
        &data,
        rthanos_rule::rulefmt::PartialResponseStrategy::Abort,
        &rules.display().to_string(),
    );
    let last_evaluation = format!(
        "prometheus_rule_group_last_evaluation_timestamp_seconds{{rule_group=\"{key_file};g\",strategy=\"abort\"}}"
    );
    // Pending for a few seconds, ALERTS_FOR_STATE written (from the second evaluation on).
    ruler.wait_for(Duration::from_secs(30), "6 evaluations", |r| {
        r.metric(&format!(
            "prometheus_rule_evaluations_total{{rule_group=\"{key_file};g\",strategy=\"abort\"}}"
        ))
        .is_some_and(|n| n >= 12.0)
    });
    let first_active = active_at_ms(&ruler).expect("a pending alert");
    // Every evaluation up to this one was committed before the metric moved.
    let committed = ruler.metric(&last_evaluation).expect("evaluated");
    ruler.kill();
    let restarted_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    std::thread::sleep(Duration::from_secs(2));

    let mut ruler = common::Process::start(&args);
    ruler.wait_ready(Duration::from_secs(30));
    // Restored after the second evaluation: active since before the restart, moved later by
    // the outage (so `for` counts only the time the ruler was up).
    ruler.wait_for(Duration::from_secs(30), "the alert restored", |r| {
        active_at_ms(r).is_some_and(|at| at < restarted_at)
    });
    let restored = active_at_ms(&ruler).expect("alert");
    assert!(
        restored > first_active,
        "moved by the outage: {first_active} → {restored}"
    );
    let mut stopping = ruler;
    stop(&mut stopping);

    // Every slot of the first run up to its last committed evaluation is in the TSDB.
    let times: Vec<i64> = dumped(&data)
        .into_iter()
        .filter(|(labels, _, _)| labels == "{__name__=\"rule:time\"}")
        .map(|(_, _, ts)| ts)
        .collect();
    let committed_ms = (committed * 1000.0).round() as i64;
    let first = *times.first().expect("samples");
    let before_kill: Vec<i64> = times
        .iter()
        .copied()
        .filter(|t| *t <= committed_ms)
        .collect();
    assert_eq!(
        before_kill.len() as i64,
        (committed_ms - first) / 1000 + 1,
        "one sample a second, none lost: {before_kill:?}"
    );
    assert!(
        times.iter().any(|t| *t > restarted_at),
        "the second run appended too"
    );

    // Prometheus 2.42 opened on a copy of the data directory (its WAL replayed into its
    // head) returns the same samples.
    let copy = tempfile::tempdir().expect("tmp");
    rthanos_testkit::copy_dir(&data, copy.path());
    let prometheus = rthanos_testkit::Prometheus::start(copy.path(), "global: {}\n");
    let last = *times.last().expect("samples");
    let path = format!(
        "/api/v1/query_range?query={}&start={}.{:03}&end={}.{:03}&step=1",
        common::urlencode("rule:time"),
        first / 1000,
        first % 1000,
        last / 1000,
        last % 1000
    );
    let theirs: Vec<(f64, f64)> = common::api_points(prometheus.port, &path)
        .into_values()
        .next()
        .unwrap_or_default();
    // The range query steps over the slots, each step seeing the sample at or before it:
    // the values are the samples' own (time() at each slot).
    let ours: std::collections::BTreeSet<i64> = times.iter().map(|t| t / 1000).collect();
    let seen: std::collections::BTreeSet<i64> = theirs.iter().map(|(_, v)| *v as i64).collect();
    assert_eq!(seen, ours, "Prometheus's samples against the dump's");
}

#[test]
fn cut_blocks_are_shipped_with_the_ruler_labels_and_pass_promtool() {
    let query = common::start_query(std::iter::empty::<&common::Process>(), &[]);
    let dir = tempfile::tempdir().expect("tmp");
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n- name: g\n  interval: 1s\n  rules:\n  - record: rule:time\n    expr: time()\n",
    )
    .expect("rules");
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).expect("bucket");
    let mut ruler = common::Process::start(&[
        "rule".to_string(),
        format!("--rule-file={}", rules.display()),
        format!("--data-dir={}", dir.path().join("data").display()),
        format!("--query=127.0.0.1:{}", query.http_port),
        "--label=ruler=\"r1\"".to_string(),
        // Short blocks, so one is cut and shipped within seconds.
        "--tsdb.block-duration=3s".to_string(),
        format!("--objstore.config={}", common::filesystem_yaml(&bucket)),
    ]);
    ruler.wait_ready(Duration::from_secs(30));
    let shipped = |bucket: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(bucket)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("meta.json").exists())
            .collect()
    };
    ruler.wait_for(Duration::from_secs(40), "a block shipped", |_| {
        !shipped(&bucket).is_empty()
    });
    let block = shipped(&bucket).remove(0);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(block.join("meta.json")).expect("meta.json"))
            .expect("json");
    assert_eq!(meta["thanos"]["source"], "ruler", "{meta}");
    assert_eq!(meta["thanos"]["labels"], serde_json::json!({"ruler": "r1"}));
    assert_eq!(meta["compaction"]["level"], 1);
    let copy = tempfile::tempdir().expect("tmp");
    let id = block.file_name().and_then(|n| n.to_str()).expect("ulid");
    rthanos_testkit::copy_dir(&block, &copy.path().join(id));
    let out = std::process::Command::new(rthanos_testkit::promtool())
        .args(["tsdb", "analyze"])
        .arg(copy.path())
        .arg(id)
        .output()
        .expect("promtool tsdb analyze");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Series: 1\n"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_querier_lists_the_rules_and_alerts_of_its_rulers_once_per_replica_set() {
    let query = common::start_query(std::iter::empty::<&common::Process>(), &[]);
    let dir = tempfile::tempdir().expect("tmp");
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n- name: g\n  interval: 1s\n  rules:\n  - record: rule:time\n    expr: time()\n  - alert: Always\n    expr: vector(1)\n    labels:\n      severity: none\n",
    )
    .expect("rules");
    let rulers: Vec<common::Process> = ["a", "b"]
        .iter()
        .map(|replica| {
            let mut ruler = common::Process::start(&[
                "rule".to_string(),
                format!("--rule-file={}", rules.display()),
                format!("--data-dir={}", dir.path().join(replica).display()),
                format!("--query=127.0.0.1:{}", query.http_port),
                format!("--label=replica=\"{replica}\""),
            ]);
            ruler.wait_ready(Duration::from_secs(30));
            ruler
        })
        .collect();
    // `--query.replica-label=replica`: the two rulers are replicas of one.
    let mut global = common::start_query(rulers.iter(), &[]);
    global.wait_for(Duration::from_secs(30), "the rulers' alert listed", |g| {
        common::http_get(g.http_port, "/api/v1/alerts")
            .is_some_and(|(_, body)| body.contains("\"Always\""))
    });
    let listed = common::api_data(global.http_port, "/api/v1/rules");
    let groups = listed["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 1, "{listed}");
    assert_eq!(groups[0]["file"], rules.display().to_string());
    let names: Vec<&str> = groups[0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["Always", "rule:time"],
        "one of each, alerting rules first: {listed}"
    );
    let alerts = common::api_data(global.http_port, "/api/v1/alerts");
    assert_eq!(
        alerts["alerts"].as_array().map(Vec::len),
        Some(1),
        "{alerts}"
    );
    assert_eq!(alerts["alerts"][0]["labels"]["alertname"], "Always");
    let only_recording = common::api_data(global.http_port, "/api/v1/rules?type=record");
    assert_eq!(
        only_recording["groups"][0]["rules"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{only_recording}"
    );
    let (status, body) =
        common::http_get(global.http_port, "/api/v1/rules?type=nope").expect("answer");
    assert_eq!(status, 400, "{body}");
}

/// The raw samples of `series` (a selector) in the last `range` on a Prometheus, as
/// (timestamp ms, value), oldest first.
fn raw_samples(port: u16, series: &str, range: &str) -> Vec<(i64, f64)> {
    let data = common::api_data(
        port,
        &format!(
            "/api/v1/query?query={}",
            common::urlencode(&format!("{series}[{range}]"))
        ),
    );
    data["result"][0]["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let t = p[0].as_f64()?;
            let v = p[1].as_str()?.parse().ok()?;
            Some(((t * 1000.0).round() as i64, v))
        })
        .collect()
}

#[test]
fn stateless_ruler_remote_writes_every_committed_sample_through_outages() {
    // The source: a Prometheus scraping itself, read through its sidecar.
    let source_port = rthanos_testkit::free_port();
    let source_data = tempfile::tempdir().expect("tmp");
    let source = rthanos_testkit::Prometheus::start_with_flags(
        source_data.path(),
        &format!(
            "global:\n  scrape_interval: 1s\n  external_labels: {{cluster: eu1}}\nscrape_configs:\n- job_name: prometheus\n  static_configs:\n  - targets: ['127.0.0.1:{source_port}']\n"
        ),
        source_port,
        &[],
    );
    let mut source_sidecar = common::Process::start(&[
        "sidecar".to_string(),
        format!("--prometheus.url={}", source.url()),
        format!("--tsdb.path={}", source_data.path().display()),
    ]);
    // The target: a Prometheus 2.42 taking remote write, also read through a sidecar, so the
    // ruler restores `for` state from what it sent there.
    let target_port = rthanos_testkit::free_port();
    let target_data = tempfile::tempdir().expect("tmp");
    let target_config = "global:\n  external_labels: {receiver: rw}\n";
    let target_flags = ["--web.enable-remote-write-receiver"];
    let target = rthanos_testkit::Prometheus::start_with_flags(
        target_data.path(),
        target_config,
        target_port,
        &target_flags,
    );
    let mut target_sidecar = common::Process::start(&[
        "sidecar".to_string(),
        format!("--prometheus.url={}", target.url()),
        format!("--tsdb.path={}", target_data.path().display()),
        "--prometheus.get_config_interval=1s".to_string(),
    ]);
    source_sidecar.wait_ready(Duration::from_secs(60));
    target_sidecar.wait_ready(Duration::from_secs(60));
    let query = common::start_query([&source_sidecar, &target_sidecar], &[]);

    let dir = tempfile::tempdir().expect("tmp");
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n- name: g\n  interval: 1s\n  partial_response_strategy: warn\n  rules:\n  - record: rule:time\n    expr: time()\n  - record: job:up:sum\n    expr: sum by (job) (up)\n  - alert: Held\n    expr: vector(1)\n    for: 1m\n",
    )
    .expect("rules");
    let data = dir.path().join("data");
    let url = format!("http://127.0.0.1:{target_port}/api/v1/write");
    let args = [
        "rule".to_string(),
        format!("--rule-file={}", rules.display()),
        format!("--data-dir={}", data.display()),
        format!("--query=127.0.0.1:{}", query.http_port),
        "--label=ruler=\"r1\"".to_string(),
        "--for-grace-period=2s".to_string(),
        // What comes back through the querier carries the ruler's label and the target's
        // external label: left out before the `for` state series is matched, as in Thanos.
        "--restore-ignored-label=ruler".to_string(),
        "--restore-ignored-label=receiver".to_string(),
        format!(
            "--remote-write.config=remote_write:\n- url: {url}\n  name: target\n  queue_config:\n    batch_send_deadline: 500ms\n    min_backoff: 100ms\n    max_backoff: 500ms\n"
        ),
    ];
    let mut ruler = common::Process::start(&args);
    ruler.wait_ready(Duration::from_secs(30));
    let key_file = rthanos_rule::manager::thanos_group_file(
        &data,
        rthanos_rule::rulefmt::PartialResponseStrategy::Warn,
        &rules.display().to_string(),
    );
    let last_evaluation = format!(
        "prometheus_rule_group_last_evaluation_timestamp_seconds{{rule_group=\"{key_file};g\",strategy=\"warn\"}}"
    );
    let wait = |what: &str, limit: Duration, check: &dyn Fn() -> bool, ruler: &common::Process| {
        let deadline = rthanos_testkit::time::deadline_after(limit);
        while !check() {
            assert!(
                std::time::Instant::now() < deadline,
                "not {what} {}:\n{}",
                rthanos_testkit::time::gave_up(limit, deadline),
                ruler.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait(
        "3 samples at the target",
        Duration::from_secs(60),
        &|| raw_samples(target_port, "rule:time", "10m").len() >= 3,
        &ruler,
    );
    // The ruler keeps no TSDB and serves no series: a querier with it as endpoint lists its
    // rules only.
    let global = common::start_query([&ruler], &[]);
    wait(
        "the ruler's rules listed by a querier",
        Duration::from_secs(30),
        &|| common::api_data(global.http_port, "/api/v1/rules")["groups"][0]["name"] == "g",
        &ruler,
    );
    let listed = common::api_data(global.http_port, "/api/v1/rules");
    assert_eq!(
        listed["groups"][0]["rules"].as_array().map(Vec::len),
        Some(3)
    );
    let stores = common::api_data(global.http_port, "/api/v1/query?query=rule:time");
    assert_eq!(stores["result"], serde_json::json!([]), "{stores}");
    drop(global);
    let first_active = active_at_ms(&ruler).expect("a pending alert");

    // The target goes down: evaluations go on, requests are retried, nothing is dropped.
    drop(target);
    let retried = |ruler: &common::Process| {
        common::metric_sum(
            ruler.http_port,
            "prometheus_remote_storage_samples_retried_total",
            &[("remote_name", "target")],
        )
    };
    ruler.wait_for(Duration::from_secs(30), "requests retried", |r| {
        retried(r) > 0.0
    });
    let down_at = ruler.metric(&last_evaluation).expect("evaluated");
    ruler.wait_for(Duration::from_secs(30), "3 evaluations more", |r| {
        r.metric(&last_evaluation)
            .is_some_and(|t| t >= down_at + 3.0)
    });
    assert_eq!(
        common::metric_sum(
            ruler.http_port,
            "prometheus_remote_storage_samples_failed_total",
            &[]
        ),
        0.0
    );
    // And the ruler is killed while the target is down: what it committed is in its log.
    // (A slot it missed, on a busy machine, has no sample to lose.)
    let missed = common::metric_sum(
        ruler.http_port,
        "prometheus_rule_group_iterations_missed_total",
        &[],
    ) as i64;
    let committed = ruler.metric(&last_evaluation).expect("evaluated");
    ruler.kill();

    // The target comes back (its own WAL replayed) and the querier sees it again.
    let _target = rthanos_testkit::Prometheus::start_with_flags(
        target_data.path(),
        target_config,
        target_port,
        &target_flags,
    );
    wait(
        "the target seen by the querier",
        Duration::from_secs(60),
        &|| {
            let found = common::api_data(
                query.http_port,
                &format!(
                    "/api/v1/query?query={}",
                    common::urlencode("ALERTS_FOR_STATE")
                ),
            );
            found["result"].as_array().is_some_and(|r| !r.is_empty())
        },
        &ruler,
    );
    let mut ruler = common::Process::start(&args);
    ruler.wait_ready(Duration::from_secs(30));
    // Times are the ruler's own: the first run evaluated at most one slot after `committed`
    // (read just before the kill); everything later is the second run's.
    let committed_ms = (committed * 1000.0).round() as i64;
    let first_run_end = committed_ms + 1000;
    // The backlog is sent from the saved position, and new evaluations after it.
    wait(
        "samples after the restart at the target",
        Duration::from_secs(60),
        &|| {
            raw_samples(target_port, "rule:time", "10m")
                .last()
                .is_some_and(|(t, _)| *t > first_run_end)
        },
        &ruler,
    );
    // `for` state came back through the querier from the target: active since the first
    // run (Thanos's range query sees the series up to now, so no outage is counted); until
    // restored, the second run has it active since its own first evaluation.
    ruler.wait_for(Duration::from_secs(30), "the alert restored", |r| {
        active_at_ms(r).is_some_and(|at| at < committed_ms)
    });
    let restored = active_at_ms(&ruler).expect("alert");
    // Seconds in the series' value, and the outage seen as at most a step long.
    assert!(
        (restored - first_active).abs() < 3000,
        "restored {restored}, first active {first_active}"
    );
    stop(&mut ruler);

    // Every slot up to the last evaluation committed before the kill is at the target, once,
    // with its value (time() at the slot) and the ruler's label.
    let samples = raw_samples(target_port, "rule:time", "10m");
    let first = samples.first().expect("samples").0;
    let before_kill: Vec<(i64, f64)> = samples
        .iter()
        .copied()
        .filter(|(t, _)| *t <= committed_ms)
        .collect();
    assert_eq!(
        before_kill.len() as i64,
        (committed_ms - first) / 1000 + 1 - missed,
        "one sample a slot evaluated, none lost: {before_kill:?}"
    );
    for (t, v) in &samples {
        assert_eq!((*v * 1000.0).round() as i64, *t, "time() at its slot");
    }
    let series = common::api_data(
        target_port,
        &format!("/api/v1/series?match[]={}", common::urlencode("rule:time")),
    );
    assert_eq!(
        series,
        serde_json::json!([{"__name__": "rule:time", "ruler": "r1"}])
    );
    // Recorded from the source's scrapes, through the querier.
    let up = raw_samples(target_port, "job:up:sum", "10m");
    assert!(
        up.iter().all(|(_, v)| *v == 1.0) && !up.is_empty(),
        "{up:?}"
    );
    let alerts = common::api_data(
        target_port,
        &format!("/api/v1/series?match[]={}", common::urlencode("ALERTS")),
    );
    assert_eq!(
        alerts,
        serde_json::json!([{"__name__": "ALERTS", "alertname": "Held", "alertstate": "pending", "ruler": "r1"}])
    );
    drop(source);
}
