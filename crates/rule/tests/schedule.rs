//! Group slotting against Prometheus 2.42: groups evaluated by a real Prometheus write their
//! results at the timestamps `schedule::eval_timestamp_nanos` gives, so a ruler replacing
//! it (or running beside it) evaluates at the same instants.

use std::time::{Duration, Instant};

use rthanos_rule::schedule::{eval_timestamp_nanos, offset_nanos};

/// The sample timestamps (ms) of `series` over the last minute, from promtool's output.
fn timestamps(url: &str, series: &str) -> Vec<i64> {
    let out = rthanos_testkit::promtool_query(url, &["instant", &format!("{series}[1m]")]);
    out.lines()
        .filter_map(|l| l.split_once("@[")?.1.strip_suffix(']').map(str::to_string))
        .filter_map(|t| {
            let (s, ms) = t.split_once('.').unwrap_or((&t, "0"));
            let ms = format!("{ms:0<3}");
            Some(s.parse::<i64>().ok()? * 1000 + ms[..3].parse::<i64>().ok()?)
        })
        .collect()
}

#[test]
fn groups_are_evaluated_in_prometheus_slots() {
    let dir = tempfile::tempdir().expect("tmp");
    let rules = dir.path().join("rules.yml");
    let groups = ["slotted-a", "slotted-b", "another group"];
    let mut text = String::from("groups:\n");
    for (i, g) in groups.iter().enumerate() {
        text += &format!(
            "- name: {g:?}\n  interval: 2s\n  rules:\n  - record: rec_{i}\n    expr: vector({i})\n"
        );
    }
    std::fs::write(&rules, text).expect("rules");
    let file = rules.display().to_string();
    let data = tempfile::tempdir().expect("tmp");
    let prometheus =
        rthanos_testkit::Prometheus::start(data.path(), &format!("rule_files: [{file:?}]\n"));
    let interval = Duration::from_secs(2);
    let deadline = Instant::now() + Duration::from_secs(60);
    for (i, g) in groups.iter().enumerate() {
        let series = format!("rec_{i}");
        let seen = loop {
            let seen = timestamps(&prometheus.url(), &series);
            if seen.len() >= 2 {
                break seen;
            }
            assert!(Instant::now() < deadline, "{series}: {seen:?}");
            std::thread::sleep(Duration::from_millis(200));
        };
        let offset_ms = offset_nanos(g, &file, interval) / 1_000_000;
        for t in &seen {
            // The slot of an instant within the sample's millisecond is that sample's time.
            let slot = eval_timestamp_nanos(g, &file, interval, t * 1_000_000 + 999_999);
            assert_eq!(
                slot / 1_000_000,
                *t,
                "group {g:?} (offset {offset_ms} ms): {seen:?}"
            );
        }
    }
}
