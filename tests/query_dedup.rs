//! Deduplication end to end: two real Prometheus 2.42 replicas (replica=a and b) hold the same
//! scrapes, each missing a different interval, behind two sidecars. Through `rthanos query`:
//! - with dedup, each series' raw samples are exactly what Thanos's penalty algorithm makes of
//!   the two replicas' samples, and equal one complete Prometheus except for at most a sample
//!   or two next to each switch between replicas (never a doubled or invented sample);
//! - the counter functions (`rate`, `increase`, `irate`, `resets`, deduplicated as Thanos
//!   deduplicates counters) answer inside each gap as the complete Prometheus does;
//! - `dedup=false` returns both replicas;
//! - with one sidecar down, the answer is partial with a warning, or an error when partial
//!   responses are off.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Process, without};
use rthanos_promql::Sample;
use rthanos_testkit::openmetrics::{Spec, generate};
use rthanos_testkit::{Prometheus, PromtoolBlocks};

const START: i64 = 1_700_000_000;

/// Samples as (time, value bits): NaN compares equal to NaN.
type Raw = BTreeMap<String, Vec<(i64, u64)>>;

/// The raw samples of every series of an instant range-vector answer, by labels without
/// `cluster` and `replica`.
fn raw(body: &str) -> Raw {
    let json: serde_json::Value = serde_json::from_str(body).expect("json");
    assert_eq!(json["status"], "success", "{body}");
    let mut out = Raw::new();
    for series in json["data"]["result"].as_array().expect("matrix") {
        let mut labels: Vec<(String, String)> = series["metric"]
            .as_object()
            .expect("metric")
            .iter()
            .filter(|(k, _)| k.as_str() != "cluster" && k.as_str() != "replica")
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        labels.sort();
        let key = format!("{labels:?}");
        let values = series["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().expect("time") * 1000.0).round() as i64;
                let v: f64 = p[1].as_str().and_then(|v| v.parse().ok()).expect("value");
                (t, v.to_bits())
            })
            .collect();
        assert!(out.insert(key, values).is_none(), "series twice: {body}");
    }
    out
}

fn get(port: u16, path: &str) -> (u16, String) {
    common::http_get(port, path).expect("answer")
}

#[test]
fn replicas_with_different_gaps_are_deduplicated_as_thanos_does() {
    let complete = generate(&Spec {
        series: 10,
        samples: 480,
        interval: 30,
        ..Spec::default()
    });
    // Replica a misses 30 minutes from 01:00 into the data, replica b 15 minutes from 02:00.
    let gap_a = (START + 3_600, START + 5_400);
    let gap_b = (START + 7_200, START + 8_100);
    let sources = [
        ("a", without(&complete, gap_a.0, gap_a.1)),
        ("b", without(&complete, gap_b.0, gap_b.1)),
        ("complete", complete.clone()),
    ];
    let mut prometheus = BTreeMap::new();
    let mut dirs = Vec::new();
    for (name, text) in &sources {
        let blocks = PromtoolBlocks::create(text, "2h");
        let config =
            format!("global:\n  external_labels:\n    cluster: eu1\n    replica: {name}\n");
        prometheus.insert(*name, Prometheus::start(&blocks.data_dir(), &config));
        dirs.push(blocks);
    }
    let mut sidecars = BTreeMap::new();
    for (name, dir) in [("a", &dirs[0]), ("b", &dirs[1])] {
        let mut sidecar = Process::start(&[
            "sidecar".to_string(),
            format!("--prometheus.url={}", prometheus[name].url()),
            format!("--tsdb.path={}", dir.data_dir().display()),
        ]);
        sidecar.wait_ready(Duration::from_secs(60));
        sidecars.insert(name, sidecar);
    }
    let query = common::start_query([&sidecars["a"], &sidecars["b"]], &[]);

    // Every raw sample of the 4h of data.
    let at = START + 480 * 30;
    let selection = format!("/api/v1/query?query=%7B__name__%3D~%22.%2B%22%7D%5B5h%5D&time={at}");
    let replica_a = raw(&get(prometheus["a"].port, &selection).1);
    let replica_b = raw(&get(prometheus["b"].port, &selection).1);
    let whole = raw(&get(prometheus["complete"].port, &selection).1);
    let (status, body) = get(query.http_port, &selection);
    assert_eq!(status, 200, "{body}");
    let deduplicated = raw(&body);
    assert_eq!(
        deduplicated.keys().collect::<Vec<_>>(),
        whole.keys().collect::<Vec<_>>()
    );
    assert!(whole.len() >= 30, "{} series", whole.len());

    let samples = |points: &[(i64, u64)]| -> Vec<Sample> {
        points
            .iter()
            .map(|(t, v)| Sample {
                t: *t,
                v: f64::from_bits(*v),
            })
            .collect()
    };
    for (series, got) in &deduplicated {
        // Exactly the penalty algorithm over the two replicas.
        let (a, b) = (samples(&replica_a[series]), samples(&replica_b[series]));
        let expected: Vec<(i64, u64)> =
            rthanos_query::dedup::merge_replicas(&[a.as_slice(), b.as_slice()], false)
                .into_iter()
                .map(|s| (s.t, s.v.to_bits()))
                .collect();
        assert_eq!(got, &expected, "{series}");

        // The gaps are filled: every sample is one of the complete Prometheus's, and at most
        // two samples are missing next to each of the two switches (a → b in a's gap, b → a
        // in b's gap).
        let complete = &whole[series];
        let mut missing = Vec::new();
        let mut theirs = complete.iter().peekable();
        for sample in got {
            while let Some(c) = theirs.next_if(|c| c.0 < sample.0) {
                missing.push(c.0);
            }
            assert_eq!(
                theirs.next(),
                Some(sample),
                "{series}: not in the complete data"
            );
        }
        missing.extend(theirs.map(|c| c.0));
        assert!(
            missing.len() <= 4,
            "{series}: {} samples missing: {missing:?}",
            missing.len()
        );
        for t in &missing {
            let near = |switch: i64| (t - switch * 1000).abs() <= 90_000;
            assert!(
                near(gap_a.0) || near(gap_a.1) || near(gap_b.0) || near(gap_b.1),
                "{series}: sample at {t} missing away from any switch"
            );
        }
        // Samples inside each gap are there: filled from the other replica.
        for (from, to) in [gap_a, gap_b] {
            let inside = |p: &&(i64, u64)| p.0 >= from * 1000 + 60_000 && p.0 < to * 1000 - 60_000;
            assert_eq!(
                got.iter().filter(inside).count(),
                complete.iter().filter(inside).count(),
                "{series}: gap [{from}, {to}) not filled"
            );
        }
    }

    // Counter functions (rate, increase, irate, resets: Thanos's counters, deduplicated with
    // resets adjusted) answer inside each replica's gap, and away from both, as the complete
    // Prometheus does.
    let instant = |port: u16, expr: &str, t: i64| -> BTreeMap<String, f64> {
        let (status, body) = get(
            port,
            &format!("/api/v1/query?query={}&time={t}", common::urlencode(expr)),
        );
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        json["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let mut labels: Vec<(String, String)> = s["metric"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| k.as_str() != "cluster" && k.as_str() != "replica")
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                labels.sort();
                let v = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (format!("{labels:?}"), v)
            })
            .collect()
    };
    for function in ["rate", "increase", "irate", "resets"] {
        // Windows wholly inside a's gap, inside b's gap, before both, and at the end.
        for t in [gap_a.0 + 900, gap_b.0 + 600, START + 1_800, at] {
            let expr = format!("{function}(http_requests_total[5m])");
            let ours = instant(query.http_port, &expr, t);
            let theirs = instant(prometheus["complete"].port, &expr, t);
            assert!(!theirs.is_empty(), "{expr} at {t}");
            assert_eq!(
                ours.keys().collect::<Vec<_>>(),
                theirs.keys().collect::<Vec<_>>(),
                "{expr} at {t}"
            );
            for (series, v) in &theirs {
                assert!(
                    common::close(ours[series], *v),
                    "{expr} at {t}: {series}: {} against Prometheus's {v}",
                    ours[series]
                );
            }
        }
    }

    // dedup=false: both replicas, told apart by their replica label.
    let (_, body) = get(query.http_port, &format!("{selection}&dedup=false"));
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    let result = json["data"]["result"].as_array().expect("matrix");
    assert_eq!(result.len(), 2 * whole.len());
    let replicas: std::collections::BTreeSet<&str> = result
        .iter()
        .filter_map(|s| s["metric"]["replica"].as_str())
        .collect();
    assert_eq!(replicas.into_iter().collect::<Vec<_>>(), ["a", "b"]);

    // A sidecar down: a partial answer with a warning naming it, or an error without partial
    // responses.
    let down = sidecars["b"].grpc_addr();
    if let Some(mut sidecar) = sidecars.remove("b") {
        sidecar.kill();
    }
    let sum = format!("/api/v1/query?query=count(temperature_celsius)&time={at}");
    let (status, body) = get(query.http_port, &sum);
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    let warnings = json["warnings"].as_array().cloned().unwrap_or_default();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains(&down))),
        "{body}"
    );
    assert_eq!(json["data"]["result"][0]["value"][1], "10", "{body}");
    let (status, body) = get(query.http_port, &format!("{sum}&partial_response=false"));
    assert_eq!(status, 422, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["errorType"], "execution");
    assert!(
        json["error"].as_str().is_some_and(|e| e.contains(&down)),
        "{body}"
    );
}
