//! Bad and extreme input to every HTTP endpoint of the querier, sent to a real Prometheus 2.42
//! and to `rthanos query` over the same data (the Prometheus's sidecar): each answer must have
//! Prometheus's HTTP status and `errorType`, and the querier, run under a 6 GiB address-space
//! limit, must stay up and its probes answer throughout.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use rthanos_testkit::PromtoolBlocks;
use rthanos_testkit::openmetrics::{Spec, generate};

/// One request: method, path and parameters (values as bytes: some are not UTF-8).
struct Case {
    post: bool,
    path: String,
    params: Vec<(String, Vec<u8>)>,
}

impl Case {
    fn get(path: &str, params: &[(&str, &str)]) -> Case {
        Case {
            post: false,
            path: path.to_string(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    fn post(path: &str, params: &[(&str, &str)]) -> Case {
        Case {
            post: true,
            ..Case::get(path, params)
        }
    }

    fn raw(path: &str, name: &str, value: &[u8]) -> Case {
        Case {
            post: false,
            path: path.to_string(),
            params: vec![(name.to_string(), value.to_vec())],
        }
    }

    fn with(mut self, name: &str, value: &str) -> Case {
        self.params
            .push((name.to_string(), value.as_bytes().to_vec()));
        self
    }

    fn encoded(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k.as_bytes()), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The case as one line for a failure message (long values cut).
    fn describe(&self) -> String {
        let mut line = format!(
            "{} {}?{}",
            if self.post { "POST" } else { "GET" },
            self.path,
            self.encoded()
        );
        if line.len() > 160 {
            line = format!("{}… ({} bytes)", &line[..160], line.len());
        }
        line
    }
}

fn encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An answer: status, `errorType` (empty on success) and, not compared, the error message.
#[derive(Debug)]
struct Answer(
    u16,
    String,
    #[allow(dead_code, reason = "printed in a failure")] String,
);

impl PartialEq for Answer {
    fn eq(&self, other: &Self) -> bool {
        (self.0, &self.1) == (other.0, &other.1)
    }
}

/// What an answer is compared on: status and `errorType` (none on success); `None` when no
/// HTTP answer came (connection reset, timeout).
fn answer(port: u16, case: &Case) -> Option<Answer> {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let body = case.encoded();
    let request = if case.post {
        format!(
            "POST {} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            case.path,
            body.len()
        )
    } else if body.is_empty() {
        format!("GET {} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", case.path)
    } else {
        format!(
            "GET {}?{body} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
            case.path
        )
    };
    conn.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let status: u16 = text.get(9..12)?.parse().ok()?;
    let json: Option<serde_json::Value> = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok());
    let (kind, message) = match json {
        Some(j) => (
            j["errorType"].as_str().unwrap_or("").to_string(),
            j["error"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect(),
        ),
        None => ("(not JSON)".to_string(), String::new()),
    };
    Some(Answer(status, kind, message))
}

fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

/// Query expressions: literals, durations, `@` and offsets beyond range, selectors and
/// regexes that do not compile, deep nesting, evaluation errors.
fn expressions() -> Vec<String> {
    let mut out: Vec<String> = [
        "",
        " ",
        "http_requests_total",
        "1e400",
        "-1e400",
        "0x1p3",
        "NaN",
        "Inf",
        "-Inf",
        "1e-400",
        "9223372036854775807",
        "0x",
        "1_000",
        "http_requests_total offset -1e400",
        "http_requests_total offset -1e16",
        "http_requests_total offset 1e16",
        "http_requests_total offset 5m",
        "http_requests_total offset -5m",
        "http_requests_total offset 292y",
        "http_requests_total offset 293y",
        "http_requests_total offset -293y",
        "http_requests_total offset 106751d",
        "http_requests_total offset 106752d",
        "http_requests_total offset 9999999999999999999y",
        "http_requests_total offset 9223372036854775807ms",
        "http_requests_total offset 9223372036854775808ms",
        "http_requests_total offset 1y1y",
        "http_requests_total offset 1h5m",
        "http_requests_total offset 5m1h",
        "http_requests_total offset 1.5m",
        "http_requests_total offset 60",
        "http_requests_total[1e400]",
        "http_requests_total[293y]",
        "http_requests_total[292y]",
        "rate(http_requests_total[292y])",
        "rate(http_requests_total[0s])",
        "http_requests_total[0s]",
        "http_requests_total[-5m]",
        "http_requests_total[5M]",
        "http_requests_total[]",
        "http_requests_total[300]",
        "http_requests_total[5m:0s]",
        "http_requests_total[5m:-1m]",
        "http_requests_total[5m:1e400]",
        "http_requests_total[5m:292y]",
        "max_over_time(http_requests_total[292y:1d])",
        "max_over_time(http_requests_total[10m:1ms])",
        "max_over_time(http_requests_total[1d:293y])",
        "max_over_time(rate(http_requests_total[5m])[1h:1m] offset 292y)",
        "http_requests_total @ 1e400",
        "http_requests_total @ -1e400",
        "http_requests_total @ NaN",
        "http_requests_total @ Inf",
        "http_requests_total @ -Inf",
        "http_requests_total @ 9223372036854775807",
        "http_requests_total @ 9223372036854775.807",
        "http_requests_total @ 9223372036854776",
        "http_requests_total @ 9.3e18",
        "http_requests_total @ 1e16",
        "http_requests_total @ -1e16",
        "http_requests_total @ 0x10",
        "http_requests_total @ start()",
        "http_requests_total @ end()",
        "http_requests_total @ 1 @ 2",
        "http_requests_total offset 5m @ 1e16",
        "rate(http_requests_total[5m] @ 9.2e15)",
        "rate(http_requests_total[5m] @ -9.2e15 offset -292y)",
        "timestamp(http_requests_total @ 9.2e15)",
        "http_requests_total{",
        "http_requests_total{code=}",
        "http_requests_total{code=\"200\",}",
        "http_requests_total{,}",
        "http_requests_total{0code=\"1\"}",
        "{}",
        "{code=\"\"}",
        "{code=~\".*\"}",
        "{code=~\".+\"}",
        "{__name__=\"\"}",
        "http_requests_total{__name__=\"x\"}",
        "{__name__=~\"(\"}",
        "http_requests_total{code=~\"[a-\"}",
        "http_requests_total{code=~\"(?P<n>2)..\"}",
        "http_requests_total{code=~\"(?<n>2)..\"}",
        "http_requests_total{code=~\"\\\\p{Foo}\"}",
        "http_requests_total{code=~\"\\\\C\"}",
        "http_requests_total{code=~\"a{1000}\"}",
        "http_requests_total{code=~\"a{1001}\"}",
        "http_requests_total{code=~\"(a{999}){999}\"}",
        "http_requests_total{code=~\"\\\\\"}",
        "http_requests_total{code=~\"\\\\8\"}",
        "http_requests_total{code=~\"(?i)A\"}",
        "http_requests_total{code=~\"(?z)A\"}",
        "http_requests_total{code!~\"\"}",
        "http_requests_total{code=\"\\xff\"}",
        "http_requests_total{code=\"\\u\"}",
        "http_requests_total{code=\"\\q\"}",
        "\"abc\"",
        "\"\\xZZ\"",
        "'unterminated",
        "`raw`",
        "label_replace(http_requests_total, \"x\", \"$1\", \"code\", \"(\")",
        "label_replace(http_requests_total, \"0bad\", \"$1\", \"code\", \"(.*)\")",
        "label_replace(http_requests_total, \"x\", \"$1\", \"0bad\", \"(.*)\")",
        "label_join(http_requests_total, \"0bad\", \",\", \"code\")",
        "label_join(http_requests_total, \"x\", \",\", \"0bad\")",
        "histogram_quantile(1e400, http_requests_total)",
        "quantile(NaN, http_requests_total)",
        "quantile_over_time(-1, http_requests_total[5m])",
        "topk(1e400, http_requests_total)",
        "topk(-1, http_requests_total)",
        "topk(9223372036854775807, http_requests_total)",
        "topk(9223372036854775808, http_requests_total)",
        "topk(NaN, http_requests_total)",
        "topk(Inf, http_requests_total)",
        "bottomk(-Inf, http_requests_total)",
        "topk(\"a\", http_requests_total)",
        "count_values(\"0bad\", http_requests_total)",
        "count_values(\"\", http_requests_total)",
        "count_values(\"__name__\", http_requests_total)",
        "round(http_requests_total, 0)",
        "round(http_requests_total, 1e400)",
        "vector(1) / 0",
        "1 % 0",
        "-1 ^ 0.5",
        "predict_linear(http_requests_total[5m], 1e400)",
        "holt_winters(http_requests_total[5m], 2, 0.5)",
        "holt_winters(http_requests_total[5m], 0.5, 0.5)",
        "clamp(http_requests_total, 1e400, -1e400)",
        "clamp(http_requests_total, NaN, 1)",
        "absent_over_time(nothing[292y])",
        "time() > bool 1e400",
        "scalar(http_requests_total)",
        "http_requests_total == bool http_requests_total",
        "1 and 1",
        "http_requests_total and 1",
        "http_requests_total + on(code) group_left http_requests_total",
        "http_requests_total + ignoring(code) http_requests_total",
        "http_requests_total + on(instance) group_left(code) temperature_celsius",
        "sum by (code) (http_requests_total) / on() group_left sum(http_requests_total)",
        "sum without (__name__) (http_requests_total)",
        "sum(http_requests_total) by (0bad)",
        "rate(temperature_celsius)",
        "rate(1)",
        "rate(http_requests_total)",
        "rate()",
        "rate(http_requests_total[5m], 1)",
        "nonexistent(http_requests_total)",
        "double_exponential_smoothing(http_requests_total[5m], 0.5, 0.5)",
        "limitk(1, http_requests_total)",
        "step()",
        "info(http_requests_total)",
        "sort_by_label(http_requests_total, \"code\")",
        "http_requests_total{code=\"200\" or code=\"500\"}",
        "\"a\" + 1",
        "-\"a\"",
        "-(http_requests_total[5m])",
        "(http_requests_total[5m])",
        "http_requests_total[5m][5m]",
        "http_requests_total[5m:1m][5m:1m]",
        "http_requests_total @ \"a\"",
        "days_in_month(vector(1e400))",
        "year(vector(9.3e18))",
        "timestamp(vector(1))",
        "vector(time() * 1e300)",
        "absent(nothing{a=\"b\",a=\"c\"})",
        "http_requests_total{a=\"b\",a=\"c\"}",
        "\u{0}",
        "http_requests_total # a comment",
        "# only a comment",
        "http_requests_total\n+\n",
        "((((http_requests_total)))",
        "http_requests_total)",
        "sum(http_requests_total",
        "@",
        "[5m]",
        "offset 5m",
        "bool",
        "by",
        "1 +",
        "+",
        "...",
        "http_requests_total and on() group_left temperature_celsius",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Nested thousands deep, and long flat expressions.
    // (Deeper takes Prometheus minutes; rthanos's own tests go deeper.)
    for depth in [1_000, 5_000] {
        out.push(nested("(", "1", ")", depth));
        out.push(format!("{}1", "-".repeat(depth)));
        out.push(format!("1{}", "+1".repeat(depth)));
        out.push(format!("1{}", " ^ 1".repeat(depth)));
        out.push(nested("abs(", "temperature_celsius", ")", depth));
        out.push(nested("sum(", "temperature_celsius", ")", depth));
        out.push(nested("(", "", "", depth));
        out.push(nested("", "1", ")", depth));
        out.push(nested("{", "", "", depth));
        out.push(nested("[", "", "", depth));
    }
    out.push(nested("(", "1", ")", 50_000));
    out.extend(token_soup(400));
    for depth in [100, 1_000] {
        out.push(nested(
            "max_over_time(",
            "temperature_celsius",
            "[10m:5m])",
            depth,
        ));
    }
    out
}

/// Seeded random sequences of PromQL's tokens (and some that are not): mostly nonsense, each
/// one's answer must still be Prometheus's.
fn token_soup(count: usize) -> Vec<String> {
    const TOKENS: &[&str] = &[
        "http_requests_total",
        "temperature_celsius",
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        ",",
        "=",
        "!=",
        "=~",
        "!~",
        "\"200\"",
        "\".*\"",
        "code",
        "5m",
        "1m:",
        ":",
        "0s",
        "1e400",
        "-1",
        "1",
        "0x1f",
        "NaN",
        "Inf",
        "+",
        "-",
        "*",
        "/",
        "%",
        "^",
        "==",
        "!=",
        ">",
        "<",
        ">=",
        "<=",
        "bool",
        "and",
        "or",
        "unless",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "by",
        "without",
        "sum",
        "topk",
        "count_values",
        "quantile",
        "rate",
        "abs",
        "label_replace",
        "vector",
        "time",
        "offset",
        "@",
        "start()",
        "end()",
        "292y",
        "293y",
        "1e16",
        "#",
        "\n",
        "'",
        "`",
        "\\",
        "\u{fffd}",
        "é",
        "__name__",
        "0bad",
        "step",
    ];
    let mut rng = rthanos_testkit::openmetrics::Rng(0x5eed);
    (0..count)
        .map(|_| {
            let len = 1 + (rng.next_u64() % 12) as usize;
            (0..len)
                .map(|_| TOKENS[(rng.next_u64() % TOKENS.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Times as clients send them: floats of every size, RFC 3339 at and beyond the edges.
const TIMES: &[&str] = &[
    "",
    "abc",
    "NaN",
    "nan",
    "Inf",
    "+Inf",
    "-Inf",
    "infinity",
    "1e400",
    "-1e400",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775.807",
    "9223372036854776",
    "-9223372036854776",
    "9223372036854775",
    "1e16",
    "-1e16",
    "1e19",
    "0",
    "-0",
    "-1",
    "0.0001",
    "0.0005",
    "1700007000.5",
    "0x10",
    "0x1p30",
    "1_000",
    "+1e9",
    " 1e9",
    "1e9 ",
    "1e",
    "2023-11-15T00:30:00Z",
    "2023-11-15T00:30:00.123456789Z",
    "2023-11-15T00:30:00.1234567891Z",
    "2023-11-15T00:30:00+23:59",
    "2023-11-15T00:30:00+24:00",
    "2023-11-15T00:30:00",
    "2023-11-15",
    "2023-11-15 00:30:00Z",
    "2023-11-15t00:30:00z",
    "2023-02-30T00:00:00Z",
    "2023-11-15T24:00:00Z",
    "2023-11-15T23:59:60Z",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999Z",
    "10000-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "-292273086-05-16T16:47:06Z",
    "292277025-08-18T07:12:54.999999999Z",
    "-292273086-05-16T16:47:07Z",
    "292277025-08-18T07:12:54.999Z",
];

/// Durations (`step`, `timeout`, `max_source_resolution`, …): floats and Prometheus durations.
const DURATIONS: &[&str] = &[
    "",
    "abc",
    "0",
    "-0",
    "-1",
    "NaN",
    "Inf",
    "-Inf",
    "1e400",
    "1e-400",
    "1e-10",
    "0.0001",
    "0.001",
    "0.0015",
    "1ms",
    "15s",
    "-15s",
    "1.5s",
    "1y",
    "5m1h",
    "1h5m",
    "292y",
    "293y",
    "9223372036",
    "9223372037",
    "1e16",
    "9223372036854775807",
    "9223372036854775807ms",
    "0x10",
];

fn battery() -> Vec<Case> {
    let at = "1700007000";
    let (start, end) = ("1699999200", "1700013600");
    let mut cases = Vec::new();
    for expr in expressions() {
        let post = expr.len() > 4_000;
        let make = |path: &str, params: &[(&str, &str)]| {
            if post {
                Case::post(path, params)
            } else {
                Case::get(path, params)
            }
        };
        cases.push(make("/api/v1/query", &[("query", &expr), ("time", at)]));
        // The other endpoints parse as this one does: deep nesting is sent here only.
        if expr.len() < 4_000 {
            cases.push(make(
                "/api/v1/query_range",
                &[
                    ("query", &expr),
                    ("start", start),
                    ("end", end),
                    ("step", "60"),
                ],
            ));
            cases.push(make(
                "/api/v1/query_exemplars",
                &[("query", &expr), ("start", start), ("end", end)],
            ));
        }
    }
    // Non-UTF-8 and odd bytes in the query and in parameter names.
    for bytes in [
        &b"\xff"[..],
        b"http_requests_total{code=\"\xff\"}",
        b"\xc0\x80",
        b"http_requests_total\x00",
        b"\xef\xbb\xbfhttp_requests_total",
    ] {
        cases.push(Case::raw("/api/v1/query", "query", bytes).with("time", at));
        cases.push(Case::raw("/api/v1/series", "match[]", bytes));
        cases.push(Case::raw("/api/v1/labels", "match[]", bytes));
    }
    cases.push(Case::get("/api/v1/query", &[]));
    cases.push(Case::get("/api/v1/query", &[("time", at)]));
    cases.push(Case::get("/api/v1/query_range", &[]));
    cases.push(Case::get("/api/v1/query_exemplars", &[]));
    // A huge query: 4 MiB of a string literal, by POST.
    let huge = format!("\"{}\"", "a".repeat(4 << 20));
    cases.push(Case::post(
        "/api/v1/query",
        &[("query", &huge), ("time", at)],
    ));
    let sum = "sum(rate(http_requests_total[5m]))";
    for t in TIMES {
        cases.push(Case::get("/api/v1/query", &[("query", sum), ("time", t)]));
        cases.push(Case::get(
            "/api/v1/query",
            &[("query", "time()"), ("time", t)],
        ));
        cases.push(Case::get(
            "/api/v1/query",
            &[("query", "http_requests_total offset -5m"), ("time", t)],
        ));
        cases.push(Case::get(
            "/api/v1/query_range",
            &[("query", sum), ("start", t), ("end", end), ("step", "60")],
        ));
        cases.push(Case::get(
            "/api/v1/query_range",
            &[("query", sum), ("start", start), ("end", t), ("step", "60")],
        ));
        for path in [
            "/api/v1/series",
            "/api/v1/labels",
            "/api/v1/label/code/values",
        ] {
            let m = ("match[]", "http_requests_total");
            cases.push(Case::get(path, &[m, ("start", t)]));
            cases.push(Case::get(path, &[m, ("end", t)]));
        }
        cases.push(Case::get(
            "/api/v1/query_exemplars",
            &[("query", sum), ("start", t), ("end", end)],
        ));
        cases.push(Case::get(
            "/api/v1/query_exemplars",
            &[("query", sum), ("start", start), ("end", t)],
        ));
    }
    for d in DURATIONS {
        cases.push(Case::get(
            "/api/v1/query_range",
            &[("query", sum), ("start", start), ("end", end), ("step", d)],
        ));
        // A timeout of a few milliseconds is a race: Prometheus reads its own disk, rthanos
        // asks a sidecar over gRPC. Zero and negative ones are not.
        if let Some(ns) = rthanos_query::params::parse_duration("timeout", d).ok()
            && ns > 0
            && ns < 100_000_000
        {
            continue;
        }
        cases.push(Case::get(
            "/api/v1/query",
            &[("query", sum), ("time", at), ("timeout", d)],
        ));
        cases.push(Case::get(
            "/api/v1/query_range",
            &[
                ("query", sum),
                ("start", start),
                ("end", end),
                ("step", "60"),
                ("timeout", d),
            ],
        ));
    }
    // Grafana's and promtool's extreme ranges: all time, with steps that keep the points under
    // Prometheus's 11,000 and steps that do not.
    let min = "-292273086-05-16T16:47:06Z";
    let max = "292277025-08-18T07:12:54.999999999Z";
    for (s, e) in [
        (min, max),
        ("0", max),
        (min, "0"),
        ("-9.2e15", "9.2e15"),
        ("0", "1e16"),
        ("9.2e15", "9.2e15"),
        ("1700000000", "1700000000"),
        (end, start),
    ] {
        for step in ["1e15", "1e16", "9.2e15", "1e12", "60", "0.001", "1e-3"] {
            for q in [sum, "time()", "http_requests_total offset 1h", "vector(1)"] {
                cases.push(Case::get(
                    "/api/v1/query_range",
                    &[("query", q), ("start", s), ("end", e), ("step", step)],
                ));
            }
        }
        for path in [
            "/api/v1/series",
            "/api/v1/labels",
            "/api/v1/label/code/values",
        ] {
            cases.push(Case::get(
                path,
                &[("match[]", "http_requests_total"), ("start", s), ("end", e)],
            ));
        }
    }
    // Selectors of the metadata APIs.
    for m in [
        "",
        "http_requests_total",
        "{}",
        "{code=\"\"}",
        "{code=~\".*\"}",
        "{code=~\".+\"}",
        "http_requests_total{",
        "{__name__=~\"(\"}",
        "rate(http_requests_total[5m])",
        "http_requests_total[5m]",
        "1",
        "\"a\"",
        "http_requests_total offset 5m",
        "http_requests_total @ 100",
        "http_requests_total{code=~\"a{1001}\"}",
        "up or down",
    ] {
        for path in [
            "/api/v1/series",
            "/api/v1/labels",
            "/api/v1/label/code/values",
        ] {
            cases.push(Case::get(path, &[("match[]", m)]));
            cases.push(Case::post(path, &[("match[]", m)]));
        }
    }
    cases.push(Case::get("/api/v1/series", &[]));
    cases.push(Case::post("/api/v1/series", &[]));
    cases.push(Case::get("/api/v1/labels", &[]));
    cases.push(Case::get(
        "/api/v1/series",
        &[
            ("match[]", "http_requests_total"),
            ("match[]", "{__name__=~\"(\"}"),
        ],
    ));
    // Label names in the path.
    for name in [
        "code", "__name__", "0bad", "a.b", "a-b", "%FF", "%20", "x%2Fy", "_", "é",
    ] {
        cases.push(Case::get(&format!("/api/v1/label/{name}/values"), &[]));
    }
    // The metadata API's parameters.
    for limit in [
        "",
        "abc",
        "-1",
        "0",
        "1",
        "1e400",
        "1.5",
        "9223372036854775808",
        "NaN",
    ] {
        cases.push(Case::get("/api/v1/metadata", &[("limit", limit)]));
    }
    for metric in ["", "http_requests_total", "{}", "0bad"] {
        cases.push(Case::get("/api/v1/metadata", &[("metric", metric)]));
    }
    cases.push(Case::raw("/api/v1/metadata", "metric", b"\xff"));
    cases
}

#[test]
fn bad_input_gets_prometheus_answer_and_never_a_crash() {
    let blocks = PromtoolBlocks::create(
        &generate(&Spec {
            series: 6,
            samples: 480,
            interval: 30,
            ..Spec::default()
        }),
        "2h",
    );
    let replica = common::Replica::start(
        &blocks.data_dir(),
        "global:\n  external_labels:\n    replica: a\n",
    );
    let prometheus_port = replica.prometheus.port;
    // 6 GiB of address space: the querier must live within it whatever it is asked.
    let mut query = common::Process::start_wrapped(
        "prlimit --as=6442450944 --",
        &[
            "query".to_string(),
            "--query.replica-label=replica".to_string(),
            format!("--endpoint={}", replica.sidecar.grpc_addr()),
        ],
    );
    query.wait_ready(Duration::from_secs(60));
    query.wait_for(Duration::from_secs(30), "the sidecar healthy", |q| {
        common::http_get(q.http_port, "/api/v1/stores").is_some_and(|(_, b)| b.contains("sidecar"))
    });

    let cases = battery();
    let started = Instant::now();
    let mut mismatches = Vec::new();
    for case in &cases {
        let want = answer(prometheus_port, case);
        let got = answer(query.http_port, case);
        if got.is_none() || got != want {
            mismatches.push(format!(
                "{}\n    Prometheus {want:?}, rthanos {got:?}",
                case.describe()
            ));
        }
        if got.is_none() && query.http_status("/-/healthy").is_none() {
            panic!("the querier died on {}:\n{}", case.describe(), query.log());
        }
    }
    assert_eq!(
        query.http_status("/-/healthy"),
        Some(200),
        "{}",
        query.log()
    );
    assert!(
        mismatches.is_empty(),
        "{} of {} inputs differ from Prometheus ({:?}):\n{}",
        mismatches.len(),
        cases.len(),
        started.elapsed(),
        mismatches.join("\n")
    );
}
