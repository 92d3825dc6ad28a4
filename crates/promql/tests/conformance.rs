//! Prometheus 2.42's own PromQL test files (`load` / `eval` / `clear`, see
//! ../shared/conformance/README.md), run against our engine. Every eval that does not pass is
//! listed, with why, in `tests/conformance-exceptions.txt`; a failure not listed fails this
//! test, and so does a listed eval that passes (it must leave the list).
//! `PROMQL_CONFORMANCE_BLESS=1` rewrites the list from the current results.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use promql_parser::label::MatchOp;
use promql_parser::parser::{Expr, parse};
use rthanos_model::Labels;
use rthanos_promql::{Engine, MemoryStorage, Sample, Value};

const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

fn testdata_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PROMQL_CONFORMANCE_DIR") {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        manifest.join("../../../shared/conformance/promql-testdata"),
        PathBuf::from("/work/shared/conformance/promql-testdata"),
    ];
    for c in &candidates {
        if c.is_dir() {
            return c.clone();
        }
    }
    panic!(
        "Prometheus's PromQL test files not found (looked in {candidates:?}); set PROMQL_CONFORMANCE_DIR"
    );
}

fn parse_float(s: &str) -> Result<f64, String> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" | "nan" => Ok(f64::NAN),
        _ => s.parse::<f64>().map_err(|e| format!("{s:?}: {e}")),
    }
}

fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let d: rthanos_model::PromDuration = s.parse().map_err(|e| format!("{s:?}: {e:?}"))?;
    Ok(d.as_millis())
}

/// Labels of a series description (`metric{a="b"}`).
fn series_labels(text: &str) -> Result<Labels, String> {
    let expr = parse(text).map_err(|e| format!("{text:?}: {e}"))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!("{text:?} is not a series"));
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(name) = vs.name {
        pairs.push(("__name__".into(), name));
    }
    for m in vs.matchers.matchers {
        if matches!(m.op, MatchOp::Equal) {
            pairs.push((m.name, m.value));
        }
    }
    Ok(Labels::from_pairs(pairs))
}

/// Values of a `load` line, expanded: `None` where a step has no sample.
fn expand_values(tokens: &[&str]) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for tok in tokens {
        if *tok == "_" {
            out.push(None);
            continue;
        }
        if *tok == "stale" {
            out.push(Some(f64::from_bits(STALE_NAN)));
            continue;
        }
        if let Some(x) = tok.rfind('x')
            && let Ok(times) = tok[x + 1..].parse::<usize>()
        {
            let base = &tok[..x];
            if base == "_" {
                out.extend(std::iter::repeat_n(None, times));
                continue;
            }
            let bytes = base.as_bytes();
            let split = (1..bytes.len()).find(|&i| {
                (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E')
            });
            let (start, inc) = match split {
                Some(i) => (parse_float(&base[..i])?, parse_float(&base[i..])?),
                None => (parse_float(base)?, 0.0),
            };
            for k in 0..=times {
                out.push(Some(start + k as f64 * inc));
            }
            continue;
        }
        out.push(Some(parse_float(tok)?));
    }
    Ok(out)
}

/// Splits `selector value` at the last whitespace outside braces and quotes.
fn split_series_line(line: &str) -> Option<(&str, &str)> {
    let (mut depth, mut quote) = (0i32, None::<char>);
    let mut split = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) => {
                if c == q && prev != '\\' {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' | '`' => quote = Some(c),
                '{' => depth += 1,
                '}' => depth -= 1,
                c if c.is_whitespace() && depth == 0 && split.is_none() => split = Some(i),
                _ => {}
            },
        }
        prev = c;
    }
    let i = split?;
    Some((line[..i].trim(), line[i..].trim()))
}

fn almost_equal(a: f64, b: f64) -> bool {
    const EPSILON: f64 = 0.000001;
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || diff < MIN_NORMAL {
        return diff < EPSILON * MIN_NORMAL;
    }
    diff / (a.abs() + b.abs()) < EPSILON
}

enum Expected {
    Scalar(f64),
    Series(Vec<(Labels, f64)>),
}

struct EvalCase {
    id: String,
    expr: String,
    at: i64,
    ordered: bool,
    fail: bool,
    expected: Expected,
}

/// Compares a result with the expectation; `Err` says how they differ.
fn check(case: &EvalCase, got: Result<Value, rthanos_promql::QueryError>) -> Result<(), String> {
    let got = match (got, case.fail) {
        (Err(_), true) => return Ok(()),
        (Ok(_), true) => return Err("expected an error, got a result".into()),
        (Err(e), false) => return Err(format!("error: {e}")),
        (Ok(v), false) => v,
    };
    match (&case.expected, got) {
        (Expected::Scalar(want), Value::Scalar { v, .. }) => {
            if almost_equal(*want, v) {
                Ok(())
            } else {
                Err(format!("scalar {v}, expected {want}"))
            }
        }
        (Expected::Series(want), Value::Vector(samples)) => {
            if want.len() != samples.len() {
                return Err(format!(
                    "{} series, expected {}: got {:?}",
                    samples.len(),
                    want.len(),
                    samples
                        .iter()
                        .map(|s| format!("{} {}", s.labels, s.v))
                        .collect::<Vec<_>>()
                ));
            }
            if case.ordered {
                for (i, ((labels, v), s)) in want.iter().zip(&samples).enumerate() {
                    if *labels != s.labels || !almost_equal(*v, s.v) {
                        return Err(format!(
                            "position {i}: {} {}, expected {labels} {v}",
                            s.labels, s.v
                        ));
                    }
                }
                return Ok(());
            }
            let got: BTreeMap<&Labels, f64> = samples.iter().map(|s| (&s.labels, s.v)).collect();
            for (labels, v) in want {
                match got.get(labels) {
                    None => return Err(format!("missing {labels}")),
                    Some(g) if !almost_equal(*g, *v) => {
                        return Err(format!("{labels}: {g}, expected {v}"));
                    }
                    Some(_) => {}
                }
            }
            Ok(())
        }
        (Expected::Series(want), Value::Matrix(m)) if want.is_empty() && m.is_empty() => Ok(()),
        (_, other) => Err(format!("unexpected result type: {other:?}")),
    }
}

/// The points of a range result at `t`, as an instant result of the expected kind.
fn middle_step(value: Value, t: i64, expected: &Expected) -> Value {
    let Value::Matrix(series) = value else {
        return value;
    };
    let samples: Vec<rthanos_promql::InstantSample> = series
        .into_iter()
        .filter_map(|s| {
            s.samples
                .iter()
                .find(|p| p.t == t)
                .map(|p| rthanos_promql::InstantSample {
                    labels: s.labels.clone(),
                    t,
                    v: p.v,
                })
        })
        .collect();
    match expected {
        Expected::Scalar(_) => Value::Scalar {
            t,
            v: samples.first().map_or(f64::NAN, |s| s.v),
        },
        Expected::Series(_) => Value::Vector(samples),
    }
}

/// Runs one file; returns (case id, outcome) for every eval.
async fn run_file(path: &Path) -> Vec<(String, Result<(), String>)> {
    let text = std::fs::read_to_string(path).expect("read test file");
    let file = path
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().to_string());
    let lines: Vec<&str> = text.lines().collect();
    let mut storage = MemoryStorage::new();
    let engine = Engine::default();
    let mut results = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        let lineno = i + 1;
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let indented = |l: &str| l.starts_with(' ') || l.starts_with('\t');
        if line == "clear" {
            storage.clear();
            continue;
        }
        if let Some(step) = line.strip_prefix("load ") {
            let step = parse_duration_ms(step.trim()).expect("load step");
            while i < lines.len() && indented(lines[i]) && !lines[i].trim().is_empty() {
                let def = lines[i].trim();
                i += 1;
                if def.starts_with('#') {
                    continue;
                }
                let (selector, values) = split_series_line(def).expect("series line");
                let labels = series_labels(selector).expect("series labels");
                let tokens: Vec<&str> = values.split_whitespace().collect();
                let values = expand_values(&tokens).expect("values");
                storage.append(
                    labels,
                    values.into_iter().enumerate().filter_map(|(k, v)| {
                        v.map(|v| Sample {
                            t: k as i64 * step,
                            v,
                        })
                    }),
                );
            }
            continue;
        }
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        if !kind.starts_with("eval") {
            panic!("{file}:{lineno}: unknown command {line:?}");
        }
        let rest = rest.trim_start();
        let Some(rest) = rest.strip_prefix("instant at ") else {
            panic!("{file}:{lineno}: only instant evals exist in 2.42's files: {line:?}");
        };
        let (at, expr) = rest.split_once(' ').unwrap_or((rest, ""));
        let at = parse_duration_ms(at).expect("eval time");
        let mut want = Vec::new();
        let mut scalar = None;
        while i < lines.len() && indented(lines[i]) && !lines[i].trim().is_empty() {
            let l = lines[i].trim();
            i += 1;
            match split_series_line(l) {
                Some((selector, value)) => {
                    let labels = if selector.starts_with('{') && selector.trim() == "{}" {
                        Labels::default()
                    } else {
                        series_labels(selector).expect("expected labels")
                    };
                    want.push((labels, parse_float(value).expect("expected value")));
                }
                None => scalar = Some(parse_float(l).expect("expected scalar")),
            }
        }
        let case = EvalCase {
            id: format!("{file}:{lineno}"),
            expr: expr.to_string(),
            at,
            ordered: kind == "eval_ordered",
            fail: kind == "eval_fail",
            expected: match scalar {
                Some(v) => Expected::Scalar(v),
                None => Expected::Series(want),
            },
        };
        let got = engine.instant_query(&storage, &case.expr, case.at).await;
        let mut outcome = check(&case, got);
        // As Prometheus's runner: the same query in range mode (a step before and after)
        // must give the same answer at the eval time.
        if outcome.is_ok() && !case.fail {
            let ranged = engine
                .range_query(
                    &storage,
                    &case.expr,
                    case.at - 60_000,
                    case.at + 60_000,
                    60_000,
                )
                .await
                .map(|value| middle_step(value, case.at, &case.expected));
            let unordered = EvalCase {
                ordered: false,
                ..case
            };
            outcome = check(&unordered, ranged).map_err(|e| format!("range mode: {e}"));
            results.push((
                unordered.id,
                outcome.map_err(|e| format!("{} — {e}", unordered.expr)),
            ));
            continue;
        }
        let outcome = outcome.map_err(|e| format!("{} — {e}", case.expr));
        results.push((case.id, outcome));
    }
    results
}

#[tokio::test]
async fn prometheus_promql_test_files() {
    let dir = testdata_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("testdata dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    files.sort();
    let mut failures: BTreeMap<String, String> = BTreeMap::new();
    let mut total = 0;
    for file in &files {
        for (id, outcome) in run_file(file).await {
            total += 1;
            if let Err(why) = outcome {
                failures.insert(id, why.replace('\n', " "));
            }
        }
    }
    let list_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance-exceptions.txt");
    if std::env::var_os("PROMQL_CONFORMANCE_BLESS").is_some() {
        let mut text = String::from(
            "# Evals of Prometheus 2.42's PromQL test files that our engine does not pass yet, one per\n# line: <file>:<line>\\t<query> — <why>. Enforced by tests/conformance.rs.\n",
        );
        for (id, why) in &failures {
            text.push_str(&format!("{id}\t{why}\n"));
        }
        std::fs::write(&list_path, text).expect("write exceptions");
    }
    let listed: BTreeMap<String, String> = std::fs::read_to_string(&list_path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (id, why) = l.split_once('\t').unwrap_or((l, ""));
            (id.to_string(), why.to_string())
        })
        .collect();
    let new: Vec<String> = failures
        .iter()
        .filter(|(id, _)| !listed.contains_key(*id))
        .map(|(id, why)| format!("{id}: {why}"))
        .collect();
    let fixed: Vec<&String> = listed
        .keys()
        .filter(|id| !failures.contains_key(*id))
        .collect();
    eprintln!(
        "{total} evals, {} passing, {} listed as not passing",
        total - failures.len(),
        failures.len()
    );
    assert!(
        new.is_empty(),
        "evals failing that are not in tests/conformance-exceptions.txt:\n{}",
        new.join("\n")
    );
    assert!(
        fixed.is_empty(),
        "evals now passing: remove them from tests/conformance-exceptions.txt: {fixed:?}"
    );
}

/// Our own cases, in the same format: all must pass.
#[tokio::test]
async fn own_test_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata");
    let mut failures = Vec::new();
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/testdata") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "test") {
            for (id, outcome) in run_file(&path).await {
                total += 1;
                if let Err(why) = outcome {
                    failures.push(format!("{id}: {why}"));
                }
            }
        }
    }
    assert!(total > 0);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
