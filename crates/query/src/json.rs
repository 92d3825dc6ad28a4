//! The query API's answer written straight from the engine's result, byte for byte as
//! Prometheus 2.42 writes it (its jsoniter encoders): times as seconds with the milliseconds
//! printed as three digits (`MarshalTimestamp`), values as quoted Go floats (`MarshalValue`),
//! labels as Go's `encoding/json` writes a map (sorted keys, HTML-safe escapes). Large answers are
//! streamed in chunks as they are written, so the body never exists twice in memory.

use std::io::Write as _;

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use rthanos_model::Labels;
use rthanos_promql::Value;
use rthanos_storeapi::thanos;

/// A chunk is sent once it holds this much.
const CHUNK_BYTES: usize = 64 * 1024;

/// `MarshalTimestamp`: whole seconds, then `.` and the milliseconds as three digits unless
/// they are zero (`1.500`, `-0.250`).
pub(crate) fn write_timestamp(out: &mut Vec<u8>, ms: i64) {
    if ms < 0 {
        out.push(b'-');
    }
    let ms = ms.unsigned_abs();
    let _ = write!(out, "{}", ms / 1000);
    let fraction = ms % 1000;
    if fraction != 0 {
        let _ = write!(out, ".{fraction:03}");
    }
}

/// `MarshalValue`: a quoted Go float, `'f'` format with the shortest digits, `'e'` below
/// 1e-6 and from 1e21 in magnitude (exponent signed, two digits at least).
pub(crate) fn write_value(out: &mut Vec<u8>, v: f64) {
    out.push(b'"');
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else {
        let abs = v.abs();
        if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
            let start = out.len();
            let _ = write!(out, "{v:e}");
            // Rust writes `1e-7` and `1.5e21`; Go writes `1e-07` and `1.5e+21`.
            if let Some(e) = out[start..].iter().position(|&b| b == b'e') {
                let exponent = out.split_off(start + e + 1);
                let (sign, digits) = match exponent.split_first() {
                    Some((b'-', digits)) => (b'-', digits),
                    _ => (b'+', &exponent[..]),
                };
                out.push(sign);
                if digits.len() < 2 {
                    out.push(b'0');
                }
                out.extend_from_slice(digits);
            }
        } else {
            // Rust's Display is the shortest form that reads back, without exponent: Go's
            // 'f' with precision -1 (and `-0` for negative zero, as Go).
            let _ = write!(out, "{v}");
        }
    }
    out.push(b'"');
}

/// A JSON string as Go's `encoding/json` (Go 1.19, HTML escaping on) writes it.
pub(crate) fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    // Bytes are scanned, not chars: everything Go escapes is ASCII except U+2028 and
    // U+2029, whose UTF-8 starts with 0xE2. Runs that need nothing are copied whole.
    while i < bytes.len() {
        let b = bytes[i];
        if !NEEDS_LOOK[usize::from(b)] {
            i += 1;
            continue;
        }
        let (escape, len): (&[u8], usize) = match b {
            b'"' => (b"\\\"", 1),
            b'\\' => (b"\\\\", 1),
            b'\n' => (b"\\n", 1),
            b'\r' => (b"\\r", 1),
            b'\t' => (b"\\t", 1),
            0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA8) => {
                (b"\\u2028", 3)
            }
            0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA9) => {
                (b"\\u2029", 3)
            }
            0xE2 => {
                i += 1;
                continue;
            }
            // Other control characters, `<`, `>` and `&`: `\u00XX`.
            _ => (b"", 1),
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        i += len;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The bytes [`write_string`] must look at: those Go's JSON encoder escapes (control
/// characters, `"`, `\\`, `<`, `>`, `&`) and 0xE2, the first byte of U+2028 and U+2029.
static NEEDS_LOOK: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table[b'<' as usize] = true;
    table[b'>' as usize] = true;
    table[b'&' as usize] = true;
    table[0xE2] = true;
    table
};

/// Labels as a JSON object (they are sorted by name, as Go sorts a map's keys).
pub(crate) fn write_labels(out: &mut Vec<u8>, labels: &Labels) {
    write_pairs(
        out,
        labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
    );
}

/// Name-value pairs, in the order given, as a JSON object.
fn write_pairs<'a>(out: &mut Vec<u8>, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
    out.push(b'{');
    for (i, (name, value)) in pairs.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(out, name);
        out.push(b':');
        write_string(out, value);
    }
    out.push(b'}');
}

/// `[time,"value"]`.
fn write_point(out: &mut Vec<u8>, t: i64, v: f64) {
    out.push(b'[');
    write_timestamp(out, t);
    out.push(b',');
    write_value(out, v);
    out.push(b']');
}

/// The answer's pieces, written as the body is read.
struct Answer {
    out: Vec<u8>,
    series: std::vec::IntoIter<rthanos_promql::Series>,
    samples: std::vec::IntoIter<rthanos_promql::InstantSample>,
    first: bool,
    tail: Option<Vec<u8>>,
}

impl Answer {
    fn new(value: Value, warnings: &[String]) -> Answer {
        let mut out = Vec::with_capacity(CHUNK_BYTES + 4096);
        out.extend_from_slice(br#"{"status":"success","data":{"resultType":"#);
        let (mut series, mut samples) = (Vec::new(), Vec::new());
        let list = matches!(value, Value::Vector(_) | Value::Matrix(_));
        match value {
            Value::Scalar { t, v } => {
                out.extend_from_slice(br#""scalar","result":"#);
                write_point(&mut out, t, v);
            }
            Value::String { t, s } => {
                out.extend_from_slice(br#""string","result":["#);
                write_timestamp(&mut out, t);
                out.push(b',');
                write_string(&mut out, &s);
                out.push(b']');
            }
            Value::Vector(v) => {
                out.extend_from_slice(br#""vector","result":["#);
                samples = v;
            }
            Value::Matrix(m) => {
                out.extend_from_slice(br#""matrix","result":["#);
                series = m;
            }
        }
        let mut tail = Vec::new();
        if list {
            tail.push(b']');
        }
        tail.push(b'}');
        write_warnings(&mut tail, warnings);
        tail.push(b'}');
        Answer {
            out,
            series: series.into_iter(),
            samples: samples.into_iter(),
            first: true,
            tail: Some(tail),
        }
    }

    fn comma(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    /// The next chunk of the body, or none at the end.
    fn next_chunk(&mut self) -> Option<Bytes> {
        while self.out.len() < CHUNK_BYTES {
            if let Some(s) = self.series.next() {
                self.comma();
                self.out.extend_from_slice(br#"{"metric":"#);
                write_labels(&mut self.out, &s.labels);
                self.out.extend_from_slice(br#","values":["#);
                for (i, p) in s.samples.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    write_point(&mut self.out, p.t, p.v);
                }
                self.out.extend_from_slice(b"]}");
            } else if let Some(s) = self.samples.next() {
                self.comma();
                self.out.extend_from_slice(br#"{"metric":"#);
                write_labels(&mut self.out, &s.labels);
                self.out.extend_from_slice(br#","value":"#);
                write_point(&mut self.out, s.t, s.v);
                self.out.push(b'}');
            } else if let Some(tail) = self.tail.take() {
                self.out.extend_from_slice(&tail);
                break;
            } else {
                break;
            }
        }
        if self.out.is_empty() {
            return None;
        }
        let capacity = CHUNK_BYTES + 4096;
        Some(Bytes::from(std::mem::replace(
            &mut self.out,
            Vec::with_capacity(capacity),
        )))
    }

    /// The whole body at once.
    #[cfg(test)]
    fn into_bytes(mut self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(chunk) = self.next_chunk() {
            all.extend_from_slice(&chunk);
        }
        all
    }
}

/// The success answer of a query: written in one piece when small, streamed otherwise.
pub(crate) fn success(value: Value, warnings: &[String]) -> Response {
    let mut answer = Answer::new(value, warnings);
    let first = answer.next_chunk().unwrap_or_default();
    let body = if answer.tail.is_none() && answer.out.is_empty() {
        Body::from(first)
    } else {
        let rest = futures::stream::iter(std::iter::from_fn(move || answer.next_chunk()))
            .map(Ok::<_, std::convert::Infallible>);
        Body::from_stream(futures::stream::once(async move { Ok(first) }).chain(rest))
    };
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

/// The success answer of `/api/v1/query_exemplars`, as Prometheus 2.42 writes it (each
/// exemplar's `labels`, `value`, `timestamp`; times as `MarshalTimestamp` writes them).
pub(crate) fn exemplars(data: &[thanos::ExemplarData], warnings: &[String]) -> Vec<u8> {
    fn label_set(out: &mut Vec<u8>, set: Option<&thanos::LabelSet>) {
        let labels = set.map(|s| &s.labels[..]).unwrap_or_default();
        write_pairs(
            out,
            labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
        );
    }
    let mut out = br#"{"status":"success","data":["#.to_vec();
    for (i, series) in data.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"seriesLabels":"#);
        label_set(&mut out, series.series_labels.as_ref());
        out.extend_from_slice(br#","exemplars":["#);
        for (j, e) in series.exemplars.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"labels":"#);
            label_set(&mut out, e.labels.as_ref());
            out.extend_from_slice(br#","value":"#);
            write_value(&mut out, e.value);
            out.extend_from_slice(br#","timestamp":"#);
            write_timestamp(&mut out, e.ts);
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
    }
    out.push(b']');
    write_warnings(&mut out, warnings);
    out.push(b'}');
    out
}

/// `,"warnings":[…]` when there are any.
fn write_warnings(out: &mut Vec<u8>, warnings: &[String]) {
    if warnings.is_empty() {
        return;
    }
    out.extend_from_slice(br#","warnings":["#);
    for (i, w) in warnings.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(out, w);
    }
    out.push(b']');
}

/// The success answer as bytes.
#[cfg(test)]
pub(crate) fn success_bytes(value: Value, warnings: &[String]) -> Vec<u8> {
    Answer::new(value, warnings).into_bytes()
}

#[cfg(test)]
mod tests {
    use rthanos_model::Labels;
    use rthanos_promql::{InstantSample, Sample, Series, Value};

    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn timestamps_are_prometheus_s_marshal_timestamp() {
        for (ms, want) in [
            (0, "0"),
            (1_500, "1.500"),
            (1_001, "1.001"),
            (1_010, "1.010"),
            (1_700_046_007_000, "1700046007"),
            (-250, "-0.250"),
            (-1_500, "-1.500"),
        ] {
            assert_eq!(text(|o| write_timestamp(o, ms)), want, "{ms}");
        }
    }

    #[test]
    fn values_are_go_floats() {
        for (v, want) in [
            (0.0, "\"0\""),
            (-0.0, "\"-0\""),
            (1.0, "\"1\""),
            (0.1 + 0.2, "\"0.30000000000000004\""),
            (1e-6, "\"0.000001\""),
            (1e-7, "\"1e-07\""),
            (-2.5e-10, "\"-2.5e-10\""),
            (1e21, "\"1e+21\""),
            (1.5e300, "\"1.5e+300\""),
            (123_456_789_012.0, "\"123456789012\""),
            (123_456_789_012_345_680_000.0, "\"123456789012345680000\""),
            (f64::NAN, "\"NaN\""),
            (f64::INFINITY, "\"+Inf\""),
            (f64::NEG_INFINITY, "\"-Inf\""),
        ] {
            assert_eq!(text(|o| write_value(o, v)), want, "{v}");
        }
    }

    #[test]
    fn strings_are_escaped_as_go_s_encoding_json() {
        for (s, want) in [
            ("plain", r#""plain""#),
            ("a\"b\\c", r#""a\"b\\c""#),
            ("x<y>&z", r#""x\u003cy\u003e\u0026z""#),
            ("tab\tnl\ncr\r", r#""tab\tnl\ncr\r""#),
            ("\u{1}\u{8}\u{c}\u{1f}", r#""\u0001\u0008\u000c\u001f""#),
            ("\u{2028}\u{2029}é", "\"\\u2028\\u2029é\""),
            // Neighbours of U+2028 that share its first byte stay as they are.
            (
                "€\u{2027}\u{202a}x\u{2028}",
                "\"€\u{2027}\u{202a}x\\u2028\"",
            ),
            ("\u{7f}end\u{e2}", "\"\u{7f}endâ\""),
        ] {
            assert_eq!(text(|o| write_string(o, s)), want, "{s:?}");
        }
    }

    #[test]
    fn exemplars_are_written_as_prometheus_writes_them() {
        use rthanos_storeapi::thanos::{Exemplar, ExemplarData, Label, LabelSet};
        let set = |pairs: &[(&str, &str)]| {
            Some(LabelSet {
                labels: pairs
                    .iter()
                    .map(|(n, v)| Label {
                        name: n.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
            })
        };
        let data = [ExemplarData {
            series_labels: set(&[("__name__", "rpc_seconds_bucket"), ("le", "0.5")]),
            exemplars: vec![
                Exemplar {
                    labels: set(&[("trace_id", "a<b")]),
                    value: 0.25,
                    ts: 1_700_000_001_500,
                },
                Exemplar {
                    labels: set(&[]),
                    value: 1e21,
                    ts: -2_000,
                },
            ],
        }];
        let text =
            String::from_utf8(super::exemplars(&data, &["partial".to_string()])).expect("utf8");
        assert_eq!(
            text,
            r#"{"status":"success","data":[{"seriesLabels":{"__name__":"rpc_seconds_bucket","le":"0.5"},"exemplars":[{"labels":{"trace_id":"a\u003cb"},"value":"0.25","timestamp":1700000001.500},{"labels":{},"value":"1e+21","timestamp":-2}]}],"warnings":["partial"]}"#
        );
        assert_eq!(
            String::from_utf8(super::exemplars(&[], &[])).expect("utf8"),
            r#"{"status":"success","data":[]}"#
        );
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn answers_are_prometheus_s_bytes() {
        let vector = Value::Vector(vec![
            InstantSample {
                labels: labels(&[("__name__", "up"), ("job", "a")]),
                t: 1_500,
                v: 1.0,
            },
            InstantSample {
                labels: Labels::default(),
                t: 1_500,
                v: f64::NAN,
            },
        ]);
        assert_eq!(
            String::from_utf8(success_bytes(vector, &[])).expect("utf-8"),
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1.500,"1"]},{"metric":{},"value":[1.500,"NaN"]}]}}"#
        );
        let matrix = Value::Matrix(vec![Series {
            labels: labels(&[("job", "a")]),
            samples: vec![Sample { t: 0, v: 2.0 }, Sample { t: 60_000, v: 0.5 }],
            chunks: Vec::new(),
            deferred: None,
        }]);
        assert_eq!(
            String::from_utf8(success_bytes(matrix, &["partial".to_string()])).expect("utf-8"),
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"a"},"values":[[0,"2"],[60,"0.5"]]}]},"warnings":["partial"]}"#
        );
        for (value, want) in [
            (
                Value::Matrix(Vec::new()),
                r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
            ),
            (
                Value::Vector(Vec::new()),
                r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
            ),
            (
                Value::Scalar { t: 1_000, v: 2.0 },
                r#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#,
            ),
            (
                Value::String {
                    t: 1_000,
                    s: "a<b".into(),
                },
                r#"{"status":"success","data":{"resultType":"string","result":[1,"a\u003cb"]}}"#,
            ),
        ] {
            assert_eq!(
                String::from_utf8(success_bytes(value, &[])).expect("utf-8"),
                want
            );
        }
    }

    #[test]
    fn a_large_matrix_comes_in_chunks_that_join_into_valid_json() {
        let series: Vec<Series> = (0..200)
            .map(|i| Series {
                labels: labels(&[("i", &i.to_string())]),
                samples: (0..100)
                    .map(|k| Sample {
                        t: k * 15_000,
                        v: k as f64,
                    })
                    .collect(),
                chunks: Vec::new(),
                deferred: None,
            })
            .collect();
        let mut answer = Answer::new(Value::Matrix(series), &[]);
        let mut chunks = 0;
        let mut all = Vec::new();
        while let Some(chunk) = answer.next_chunk() {
            chunks += 1;
            all.extend_from_slice(&chunk);
        }
        assert!(chunks > 3, "{chunks} chunks");
        let json: serde_json::Value = serde_json::from_slice(&all).expect("json");
        assert_eq!(json["data"]["result"].as_array().map(Vec::len), Some(200));
    }
}
