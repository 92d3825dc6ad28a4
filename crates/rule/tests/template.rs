//! Alert templates, case by case (`tests/template/cases.yml`): our expansion of each template
//! must equal the annotation a real Prometheus 2.42 wrote for the same alert, and our parse
//! errors what its `promtool check rules` printed. One test checks our side against the
//! fixture alone; the other starts Prometheus and proves the fixture true (and, with
//! `TEMPLATE_FIXTURE_RECORD=1`, records it).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rthanos_rule::template::{
    NoQueries, QueryFunc, QuerySample, TemplateData, check_alert_template, expand_alert_template,
};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
struct Case {
    name: String,
    #[serde(default)]
    data: Option<String>,
    template: String,
    #[serde(default)]
    want: Option<String>,
    #[serde(default)]
    parse_error: Option<String>,
}

/// The external URL Prometheus runs with (`--web.external-url`, trailing slash trimmed).
const EXTERNAL_URL: &str = "http://prom.example:9090/prefix";

/// An alert a template is expanded for: the rule's expression and what it yields.
struct Alert {
    name: &'static str,
    expr: &'static str,
    labels: &'static [(&'static str, &'static str)],
    value: f64,
}

// 3.14159 is a sample value the rule's expression writes, not an approximation of π.
#[allow(clippy::approx_constant)]
fn alerts() -> Vec<Alert> {
    vec![
        Alert {
            name: "main",
            expr: r#"label_replace(label_replace(vector(3.14159), "instance", "host.example:9090", "", ""), "job", "node", "", "")"#,
            labels: &[("instance", "host.example:9090"), ("job", "node")],
            value: 3.14159,
        },
        Alert {
            name: "big",
            expr: r#"label_replace(vector(1234567.891), "instance", "10.0.0.1:9100", "", "")"#,
            labels: &[("instance", "10.0.0.1:9100")],
            value: 1234567.891,
        },
        Alert {
            name: "zero",
            expr: "vector(0)",
            labels: &[],
            value: 0.0,
        },
        Alert {
            name: "neg",
            expr: "vector(-0.000123)",
            labels: &[],
            value: -0.000123,
        },
        Alert {
            name: "nan",
            expr: "vector(NaN)",
            labels: &[],
            value: f64::NAN,
        },
        Alert {
            name: "inf",
            expr: "vector(+Inf)",
            labels: &[],
            value: f64::INFINITY,
        },
        Alert {
            name: "ts",
            expr: "vector(1435065584.128)",
            labels: &[],
            value: 1435065584.128,
        },
        Alert {
            name: "small",
            expr: "vector(1.2345e-05)",
            labels: &[],
            value: 1.2345e-05,
        },
    ]
}

fn data_for(name: &str) -> (TemplateData, &'static str) {
    let all = alerts();
    let a = all
        .into_iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no alert data {name:?}"));
    let mut external_labels = BTreeMap::new();
    external_labels.insert("cluster".to_string(), "eu1".to_string());
    external_labels.insert("replica".to_string(), "a".to_string());
    let data = TemplateData {
        labels: a
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        external_labels,
        external_url: EXTERNAL_URL.to_string(),
        value: a.value,
    };
    (data, a.expr)
}

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/template/cases.yml")
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixture_path()).expect("read cases.yml");
    serde_yaml::from_str(&text).expect("parse cases.yml")
}

fn ours(case: &Case, query: &mut dyn QueryFunc) -> String {
    let (data, _) = data_for(case.data.as_deref().unwrap_or("main"));
    match expand_alert_template(&case.name, &case.template, &data, now_ms(), query) {
        Ok(s) => s,
        Err(e) => e.expansion_failure_text(),
    }
}

fn our_parse_error(case: &Case) -> String {
    match check_alert_template(&case.name, &case.template) {
        Ok(()) => "<parses>".to_string(),
        Err(e) => e.go_error().to_string(),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[test]
fn fixture_matches_our_expansion() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases() {
        if let Some(want) = &case.parse_error {
            checked += 1;
            let got = our_parse_error(&case);
            if &got != want {
                failures.push(format!(
                    "{}: parse error\n  want {want:?}\n  got  {got:?}",
                    case.name
                ));
            }
            continue;
        }
        // Query cases need a Prometheus to query: the other test checks them.
        if case.template.contains("query") {
            continue;
        }
        let Some(want) = &case.want else {
            failures.push(format!("{}: no expectation recorded", case.name));
            continue;
        };
        checked += 1;
        let got = ours(&case, &mut NoQueries);
        if &got != want {
            failures.push(format!(
                "{}: {:?}\n  want {want:?}\n  got  {got:?}",
                case.name, case.template
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// GET on the loopback Prometheus, HTTP/1.0 so the answer comes whole and unchunked.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// JSON answers read as YAML (a superset), with the crate's own YAML dependency.
fn json(text: &str) -> serde_yaml::Value {
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn parse_value(v: &serde_yaml::Value) -> f64 {
    let s = v
        .get(1)
        .and_then(serde_yaml::Value::as_str)
        .unwrap_or("NaN");
    s.parse().unwrap_or(f64::NAN)
}

/// `query` through the Prometheus's HTTP API, answering as its rule engine does.
struct PrometheusQueries {
    port: u16,
}

impl QueryFunc for PrometheusQueries {
    fn query(&mut self, expr: &str, timestamp_ms: i64) -> Result<Vec<QuerySample>, String> {
        let path = format!(
            "/api/v1/query?query={}&time={}",
            url_encode(expr),
            timestamp_ms as f64 / 1000.0
        );
        let body = http_get(self.port, &path).ok_or("query request failed")?;
        let answer = json(&body);
        if answer["status"].as_str() != Some("success") {
            let err = answer["error"].as_str().unwrap_or("unknown error");
            return Err(err
                .trim_start_matches("invalid parameter \"query\": ")
                .to_string());
        }
        let data = &answer["data"];
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"]
                .as_sequence()
                .map(|v| v.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|s| QuerySample {
                    labels: s["metric"]
                        .as_mapping()
                        .map(|m| {
                            m.iter()
                                .filter_map(|(k, v)| {
                                    Some((k.as_str()?.to_string(), v.as_str()?.to_string()))
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    value: parse_value(&s["value"]),
                })
                .collect()),
            Some("scalar") => Ok(vec![QuerySample {
                labels: BTreeMap::new(),
                value: parse_value(&data["result"]),
            }]),
            _ => Err("rule result is not a vector or scalar".to_string()),
        }
    }
}

fn rule_file(cases: &[&Case]) -> String {
    let rules: Vec<serde_yaml::Value> = cases
        .iter()
        .map(|c| {
            let (_, expr) = data_for(c.data.as_deref().unwrap_or("main"));
            let mut annotations = serde_yaml::Mapping::new();
            annotations.insert("t".into(), c.template.clone().into());
            let mut rule = serde_yaml::Mapping::new();
            rule.insert("alert".into(), c.name.clone().into());
            rule.insert("expr".into(), expr.into());
            rule.insert("for".into(), "0s".into());
            rule.insert("annotations".into(), annotations.into());
            rule.into()
        })
        .collect();
    let mut group = serde_yaml::Mapping::new();
    group.insert("name".into(), "templates".into());
    group.insert("interval".into(), "1s".into());
    group.insert("rules".into(), rules.into());
    let mut top = serde_yaml::Mapping::new();
    top.insert("groups".into(), vec![serde_yaml::Value::from(group)].into());
    serde_yaml::to_string(&top).expect("rule file")
}

/// What `promtool check rules` says of each parse-error case's template.
fn promtool_parse_errors(dir: &std::path::Path, cases: &[&Case]) -> BTreeMap<String, String> {
    let path = dir.join("bad.yml");
    std::fs::write(&path, rule_file(cases)).expect("write bad.yml");
    let out = std::process::Command::new(rthanos_testkit::promtool())
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut found = BTreeMap::new();
    for line in text.lines() {
        // bad.yml: group "templates", rule 3, "NAME": annotation "t": ERROR
        let Some((_, rest)) = line.split_once(", rule ") else {
            continue;
        };
        let Some((_, rest)) = rest.split_once(", \"") else {
            continue;
        };
        let Some((name, err)) = rest.split_once("\": annotation \"t\": ") else {
            continue;
        };
        found.insert(name.to_string(), err.to_string());
    }
    assert!(
        !found.is_empty() || cases.is_empty(),
        "promtool reported nothing:\n{text}"
    );
    found
}

/// Prometheus's annotations, by alert name, once every rule has fired.
fn prometheus_annotations(
    port: u16,
    expected: usize,
    limit: Duration,
) -> Result<BTreeMap<String, String>, String> {
    let deadline = Instant::now() + limit;
    loop {
        let mut got = BTreeMap::new();
        if let Some(body) = http_get(port, "/api/v1/alerts") {
            let answer = json(&body);
            for alert in answer["data"]["alerts"]
                .as_sequence()
                .map(|v| v.as_slice())
                .unwrap_or_default()
            {
                if alert["state"].as_str() != Some("firing") {
                    continue;
                }
                let name = alert["labels"]["alertname"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let t = alert["annotations"]["t"].as_str().unwrap_or("").to_string();
                got.insert(name, t);
            }
        }
        if got.len() >= expected {
            return Ok(got);
        }
        if Instant::now() > deadline {
            let rules = http_get(port, "/api/v1/rules").unwrap_or_default();
            return Err(format!(
                "{} of {expected} alerts firing after {limit:?}; rules:\n{rules}",
                got.len()
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// JSON's quoting, which YAML reads as a double-quoted scalar.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{fffd}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write_fixture(cases: &[Case]) {
    let text = std::fs::read_to_string(fixture_path()).expect("read cases.yml");
    let header: Vec<&str> = text
        .lines()
        .take_while(|l| l.starts_with('#') || l.is_empty())
        .collect();
    let mut out = header.join("\n");
    out.push('\n');
    for c in cases {
        out.push_str(&format!("- name: {}\n", c.name));
        if let Some(d) = &c.data {
            out.push_str(&format!("  data: {d}\n"));
        }
        out.push_str(&format!("  template: {}\n", quote(&c.template)));
        match (&c.parse_error, &c.want) {
            (Some(p), _) => out.push_str(&format!("  parse_error: {}\n", quote(p))),
            (None, Some(w)) => out.push_str(&format!("  want: {}\n", quote(w))),
            (None, None) => out.push_str("  want: null\n"),
        }
    }
    std::fs::write(fixture_path(), out).expect("write cases.yml");
}

#[test]
fn templates_expand_as_prometheus_2_42_does() {
    let record = std::env::var_os("TEMPLATE_FIXTURE_RECORD").is_some();
    let mut cases = cases();
    let dir = tempfile::tempdir().expect("tmp");

    let parse_cases: Vec<&Case> = cases.iter().filter(|c| c.data.is_none()).collect();
    let promtool = promtool_parse_errors(dir.path(), &parse_cases);

    let expand_cases: Vec<&Case> = cases.iter().filter(|c| c.data.is_some()).collect();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, rule_file(&expand_cases)).expect("write rules.yml");
    let config = format!(
        "global:\n  evaluation_interval: 1s\n  external_labels:\n    cluster: eu1\n    replica: a\nrule_files:\n  - {}\n",
        rules.display()
    );
    let data = tempfile::tempdir().expect("tmp");
    let prometheus = rthanos_testkit::Prometheus::start_with_flags(
        data.path(),
        &config,
        rthanos_testkit::free_port(),
        &[
            &format!("--web.external-url={EXTERNAL_URL}/"),
            "--web.route-prefix=/",
        ],
    );
    let annotations =
        prometheus_annotations(prometheus.port, expand_cases.len(), Duration::from_secs(45))
            .unwrap_or_else(|e| panic!("Prometheus did not fire every rule: {e}"));

    let mut queries = PrometheusQueries {
        port: prometheus.port,
    };
    let mut failures = Vec::new();
    let mut matched = 0;
    for case in &mut cases {
        if case.data.is_none() {
            let Some(theirs) = promtool.get(&case.name) else {
                failures.push(format!(
                    "{}: promtool accepted {:?}",
                    case.name, case.template
                ));
                continue;
            };
            if record {
                case.parse_error = Some(theirs.clone());
            }
            let ours = our_parse_error(case);
            if case.parse_error.as_ref() != Some(theirs) {
                failures.push(format!(
                    "{}: fixture says {:?}, promtool {theirs:?}",
                    case.name, case.parse_error
                ));
            } else if &ours != theirs {
                failures.push(format!(
                    "{}: {:?}\n  promtool {theirs:?}\n  ours     {ours:?}",
                    case.name, case.template
                ));
            } else {
                matched += 1;
            }
            continue;
        }
        let Some(theirs) = annotations.get(&case.name) else {
            failures.push(format!("{}: Prometheus has no alert", case.name));
            continue;
        };
        if record {
            case.want = Some(theirs.clone());
        }
        let ours = ours(case, &mut queries);
        if case.want.as_ref() != Some(theirs) {
            failures.push(format!(
                "{}: fixture says {:?}, Prometheus {theirs:?}",
                case.name, case.want
            ));
        } else if &ours != theirs {
            failures.push(format!(
                "{}: {:?}\n  prometheus {theirs:?}\n  ours       {ours:?}",
                case.name, case.template
            ));
        } else {
            matched += 1;
        }
    }
    if record {
        write_fixture(&cases);
    }
    println!(
        "{matched} of {} template cases match Prometheus 2.42",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
