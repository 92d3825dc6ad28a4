//! The function table: text/template's builtins and Prometheus 2.42's template functions
//! (`template/template.go`), each with its Go parameter types so that argument checks and
//! their errors are Go's.

use std::rc::Rc;

use rthanos_model::gostrconv::NumError;

use super::builtins;
use super::exec::args_map;
use super::fmt::sprint1;
use super::goregexp;
use super::quote::go_quote;
use super::time::go_time_string;
use super::value::Value;
use super::{QuerySample, parse::FuncNames};

/// A Go parameter type of a template function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Param {
    /// `string`.
    Str,
    /// `interface {}`.
    Any,
    /// `reflect.Value` (builtins take their arguments unconverted).
    RValue,
    /// `template.queryResult`.
    Samples,
    /// `*template.sample`.
    SamplePtr,
}

impl Param {
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Param::Str => "string",
            Param::Any => "interface {}",
            Param::RValue => "reflect.Value",
            Param::Samples => "template.queryResult",
            Param::SamplePtr => "*template.sample",
        }
    }

    /// The zero value of a type that can be nil.
    pub(crate) fn zero(self) -> Option<Value> {
        match self {
            Param::Any | Param::RValue => Some(Value::Invalid),
            Param::Samples => Some(Value::Samples(None)),
            Param::SamplePtr => Some(Value::Sample(None)),
            Param::Str => None,
        }
    }

    /// Whether a value of this Go type is assignable to the parameter.
    pub(crate) fn accepts(self, v: &Value) -> bool {
        match self {
            Param::Any | Param::RValue => true,
            Param::Str => matches!(v, Value::Str(_)),
            Param::Samples => matches!(v, Value::Samples(_)),
            Param::SamplePtr => matches!(v, Value::Sample(_)),
        }
    }
}

/// What a function needs from the expansion: `query`, and the external URL.
pub(crate) trait FuncEnv {
    /// Runs a PromQL query at the expansion's timestamp.
    fn query(&mut self, expr: &str) -> Result<Vec<QuerySample>, String>;
    /// The external URL (`externalURL`).
    fn external_url(&self) -> &str;
}

/// A function's body: the checked arguments in, the value or the error text out.
pub(crate) type Impl = fn(&mut dyn FuncEnv, Vec<Value>) -> Result<Value, String>;

/// How a function is called.
#[derive(Clone, Copy)]
pub(crate) enum Call {
    /// `and`/`or`: evaluated lazily by the executor.
    AndOr { is_or: bool },
    /// Anything else.
    Fn(Impl),
}

/// A function: its fixed parameters, the variadic one, and its body.
#[derive(Clone, Copy)]
pub(crate) struct Func {
    pub(crate) params: &'static [Param],
    pub(crate) variadic: Option<Param>,
    pub(crate) call: Call,
}

impl Func {
    /// A method of `*time.Time` with `arity` string arguments (the executor calls it).
    pub(crate) fn method(arity: usize) -> Func {
        const ONE: &[Param] = &[Param::Str];
        Func {
            params: if arity == 0 { &[] } else { ONE },
            variadic: None,
            call: Call::Fn(|_, _| Ok(Value::Invalid)),
        }
    }
}

const fn f(params: &'static [Param], call: Impl) -> Func {
    Func {
        params,
        variadic: None,
        call: Call::Fn(call),
    }
}

const fn fv(params: &'static [Param], variadic: Param, call: Impl) -> Func {
    Func {
        params,
        variadic: Some(variadic),
        call: Call::Fn(call),
    }
}

use Param::{Any, RValue, SamplePtr, Samples, Str};

/// Looks a function up: Prometheus's first, then the builtins (Go's `findFunction`).
pub(crate) fn lookup(name: &str) -> Option<Func> {
    Some(match name {
        // Prometheus 2.42's template/template.go.
        "query" => f(&[Str], |env, a| {
            let q = a[0].as_str().unwrap_or("");
            let samples = env.query(q)?;
            Ok(Value::Samples(Some(Rc::new(
                samples.into_iter().map(Rc::new).collect(),
            ))))
        }),
        "first" => f(&[Samples], |_, a| match &a[0] {
            Value::Samples(Some(v)) if !v.is_empty() => Ok(Value::Sample(Some(Rc::clone(&v[0])))),
            _ => Err("first() called on vector with no elements".into()),
        }),
        "label" => f(&[Str, SamplePtr], |_, a| {
            let s = sample(&a[1])?;
            Ok(Value::str(
                s.labels
                    .get(a[0].as_str().unwrap_or(""))
                    .map_or("", String::as_str),
            ))
        }),
        "value" => f(&[SamplePtr], |_, a| Ok(Value::Float(sample(&a[0])?.value))),
        "strvalue" => f(&[SamplePtr], |_, a| {
            Ok(Value::str(
                sample(&a[0])?
                    .labels
                    .get("__value__")
                    .map_or("", String::as_str),
            ))
        }),
        "args" => fv(&[], Any, |_, a| Ok(args_map(a))),
        "reReplaceAll" => f(&[Str, Str, Str], |_, a| {
            let pattern = s(&a[0]);
            let re = goregexp::compile(pattern).map_err(|e| {
                let q = if super::quote::can_backquote(pattern) {
                    format!("`{pattern}`")
                } else {
                    go_quote(pattern)
                };
                format!("regexp: Compile({q}): {e}")
            })?;
            Ok(Value::str(&goregexp::replace_all(&re, s(&a[2]), s(&a[1]))))
        }),
        "safeHtml" => f(&[Str], |_, a| Ok(Value::Html(Rc::from(s(&a[0]))))),
        "match" => f(&[Str, Str], |_, a| {
            let re = goregexp::compile(s(&a[0]))?;
            Ok(Value::Bool(re.is_match(s(&a[1]))))
        }),
        "title" => f(&[Str], |_, a| Ok(Value::str(&go_title(s(&a[0]))))),
        "toUpper" => f(&[Str], |_, a| Ok(Value::str(&map_runes(s(&a[0]), true)))),
        "toLower" => f(&[Str], |_, a| Ok(Value::str(&map_runes(s(&a[0]), false)))),
        "graphLink" => f(&[Str], |_, a| {
            Ok(Value::str(&format!(
                "/graph?g0.expr={}&g0.tab=0",
                builtins::query_escape(s(&a[0]))
            )))
        }),
        "tableLink" => f(&[Str], |_, a| {
            Ok(Value::str(&format!(
                "/graph?g0.expr={}&g0.tab=1",
                builtins::query_escape(s(&a[0]))
            )))
        }),
        "sortByLabel" => f(&[Str, Samples], |_, a| {
            let label = s(&a[0]);
            let Value::Samples(Some(v)) = &a[1] else {
                return Ok(a[1].clone());
            };
            let mut sorted: Vec<Rc<QuerySample>> = v.as_ref().clone();
            let key = |x: &Rc<QuerySample>| x.labels.get(label).cloned().unwrap_or_default();
            sorted.sort_by_key(key);
            Ok(Value::Samples(Some(Rc::new(sorted))))
        }),
        "stripPort" => f(&[Str], |_, a| {
            let hp = s(&a[0]);
            Ok(Value::str(split_host_port(hp).map_or(hp, |(h, _)| h)))
        }),
        "stripDomain" => f(&[Str], |_, a| Ok(Value::str(&strip_domain(s(&a[0]))))),
        "humanize" => f(&[Any], |_, a| {
            humanize(to_float(&a[0])?).map(|s| Value::str(&s))
        }),
        "humanize1024" => f(&[Any], |_, a| {
            let mut v = to_float(&a[0])?;
            if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
                return Ok(Value::str(&g4(v)));
            }
            let mut prefix = "";
            for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
                if v.abs() < 1024.0 {
                    break;
                }
                prefix = p;
                v /= 1024.0;
            }
            Ok(Value::str(&format!("{}{prefix}", g4(v))))
        }),
        "humanizeDuration" => f(&[Any], |_, a| {
            Ok(Value::str(&humanize_duration(to_float(&a[0])?)))
        }),
        "humanizePercentage" => f(&[Any], |_, a| {
            Ok(Value::str(&format!("{}%", g4(to_float(&a[0])? * 100.0))))
        }),
        "humanizeTimestamp" => f(&[Any], |_, a| {
            let v = to_float(&a[0])?;
            match float_to_time(v)? {
                None => Ok(Value::str(&g4(v))),
                Some(ns) => Ok(Value::str(&go_time_string(ns))),
            }
        }),
        "toTime" => f(&[Any], |_, a| {
            let v = to_float(&a[0])?;
            match float_to_time(v)? {
                None => Err("value is NaN or Inf".into()),
                Some(ns) => Ok(Value::Time(Some(ns))),
            }
        }),
        "pathPrefix" => f(&[], |env, _| Ok(Value::str(&url_path(env.external_url())))),
        "externalURL" => f(&[], |env, _| Ok(Value::str(env.external_url()))),
        "parseDuration" => f(&[Str], |_, a| parse_duration(s(&a[0])).map(Value::Float)),
        // text/template's builtins.
        "and" => Func {
            params: &[RValue],
            variadic: Some(RValue),
            call: Call::AndOr { is_or: false },
        },
        "or" => Func {
            params: &[RValue],
            variadic: Some(RValue),
            call: Call::AndOr { is_or: true },
        },
        "not" => f(&[RValue], |_, a| Ok(Value::Bool(!a[0].truth()))),
        "call" => fv(&[RValue], RValue, |_, a| builtins::call(&a)),
        "html" => fv(&[], Any, |_, a| {
            Ok(Value::str(&builtins::html_escape(&builtins::eval_args(&a))))
        }),
        "js" => fv(&[], Any, |_, a| {
            Ok(Value::str(&builtins::js_escape(&builtins::eval_args(&a))))
        }),
        "urlquery" => fv(&[], Any, |_, a| {
            Ok(Value::str(&builtins::query_escape(&builtins::eval_args(
                &a,
            ))))
        }),
        "index" => fv(&[RValue], RValue, |_, a| builtins::index(&a[0], &a[1..])),
        "slice" => fv(&[RValue], RValue, |_, a| builtins::slice(&a[0], &a[1..])),
        "len" => f(&[RValue], |_, a| builtins::length(&a[0])),
        "print" => fv(&[], Any, |_, a| Ok(Value::str(&super::fmt::sprint(&a)))),
        "printf" => fv(&[Str], Any, |_, a| {
            Ok(Value::str(&super::fmt::sprintf(s(&a[0]), &a[1..])))
        }),
        "println" => fv(&[], Any, |_, a| Ok(Value::str(&super::fmt::sprintln(&a)))),
        "eq" => fv(&[RValue], RValue, |_, a| {
            builtins::eq(&a[0], &a[1..]).map(Value::Bool)
        }),
        "ne" => f(&[RValue, RValue], |_, a| {
            builtins::eq(&a[0], &a[1..]).map(|b| Value::Bool(!b))
        }),
        "lt" => f(&[RValue, RValue], |_, a| {
            builtins::lt(&a[0], &a[1]).map(Value::Bool)
        }),
        "le" => f(&[RValue, RValue], |_, a| {
            builtins::le(&a[0], &a[1]).map(Value::Bool)
        }),
        "gt" => f(&[RValue, RValue], |_, a| {
            builtins::le(&a[0], &a[1]).map(|b| Value::Bool(!b))
        }),
        "ge" => f(&[RValue, RValue], |_, a| {
            builtins::lt(&a[0], &a[1]).map(|b| Value::Bool(!b))
        }),
        _ => return None,
    })
}

/// The parser's view of the table.
pub(crate) struct AllFuncs;

impl FuncNames for AllFuncs {
    fn has_function(&self, name: &str) -> bool {
        lookup(name).is_some()
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

const NIL_DEREFERENCE: &str = "runtime error: invalid memory address or nil pointer dereference";

fn sample(v: &Value) -> Result<&QuerySample, String> {
    match v {
        Value::Sample(Some(s)) => Ok(s),
        _ => Err(NIL_DEREFERENCE.into()),
    }
}

/// `%.4g`.
fn g4(v: f64) -> String {
    super::fmt::sprintf("%.4g", &[Value::Float(v)])
}

/// Prometheus's `convertToFloat`.
fn to_float(v: &Value) -> Result<f64, String> {
    match v.indirect_interface() {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => go_parse_float(s),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

/// `strconv.ParseFloat(s, 64)` with its error texts.
pub(crate) fn go_parse_float(s: &str) -> Result<f64, String> {
    rthanos_model::gostrconv::parse_float(s).map_err(|e| {
        let why = match e {
            NumError::Syntax => "invalid syntax",
            NumError::Range => "value out of range",
        };
        format!("strconv.ParseFloat: parsing {}: {why}", go_quote(s))
    })
}

fn humanize(mut v: f64) -> Result<String, String> {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return Ok(g4(v));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    Ok(format!("{}{prefix}", g4(v)))
}

fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    if v == 0.0 {
        return format!("{}s", g4(v));
    }
    if v.abs() >= 1.0 {
        let mut sign = "";
        if v < 0.0 {
            sign = "-";
            v = -v;
        }
        let duration = v as i64;
        let seconds = duration % 60;
        let minutes = (duration / 60) % 60;
        let hours = (duration / 60 / 60) % 24;
        let days = duration / 60 / 60 / 24;
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", g4(v));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", g4(v))
}

/// Prometheus's `floatToTime`: `None` for NaN and infinities; the time is truncated to
/// milliseconds (it goes through `model.Time`).
fn float_to_time(v: f64) -> Result<Option<i128>, String> {
    if v.is_nan() || v.is_infinite() {
        return Ok(None);
    }
    let ts = v * 1e9;
    if ts > i64::MAX as f64 || ts < i64::MIN as f64 {
        return Err(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            sprint1(&Value::Float(v))
        ));
    }
    let ns = ts as i64;
    let ms = ns / 1_000_000;
    Ok(Some(i128::from(ms) * 1_000_000))
}

/// Go's `net.SplitHostPort`.
fn split_host_port(hp: &str) -> Option<(&str, &str)> {
    let i = hp.rfind(':')?;
    let (host, j, k);
    if hp.starts_with('[') {
        let end = hp.find(']')?;
        if end + 1 != i {
            return None;
        }
        host = &hp[1..end];
        j = 1;
        k = end + 1;
    } else {
        host = &hp[..i];
        if host.contains(':') {
            return None;
        }
        j = 0;
        k = 0;
    }
    if hp[j..].contains('[') || hp[k..].contains(']') {
        return None;
    }
    Some((host, &hp[i + 1..]))
}

fn strip_domain(hp: &str) -> String {
    let (host, port) = split_host_port(hp).unwrap_or((hp, ""));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return hp.to_string();
    }
    let host = host.split('.').next().unwrap_or("");
    if port.is_empty() {
        return host.to_string();
    }
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A URL's path, decoded (Go's `url.URL.Path`).
fn url_path(url: &str) -> String {
    let rest = match url.find("://") {
        Some(i) => &url[i + 3..],
        None => url,
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let path = match (url.contains("://"), rest.find('/')) {
        (true, Some(i)) => &rest[i..],
        (true, None) => "",
        (false, _) => rest,
    };
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 3 <= b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            if let Ok(v) = u8::from_str_radix(&path[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Go's `unicode.ToUpper`/`ToLower` rune by rune (simple case mapping: `ß` stays).
fn map_runes(s: &str, upper: bool) -> String {
    s.chars()
        .map(|c| {
            let mut m: Vec<char> = if upper {
                c.to_uppercase().collect()
            } else {
                c.to_lowercase().collect()
            };
            if m.len() == 1 { m.remove(0) } else { c }
        })
        .collect()
}

/// Go's `unicode.ToTitle` for one rune.
fn to_title(c: char) -> char {
    match c {
        'Ǆ' | 'ǅ' | 'ǆ' => 'ǅ',
        'Ǉ' | 'ǈ' | 'ǉ' => 'ǈ',
        'Ǌ' | 'ǋ' | 'ǌ' => 'ǋ',
        'Ǳ' | 'ǲ' | 'ǳ' => 'ǲ',
        c => {
            let mut u = c.to_uppercase();
            match (u.next(), u.next()) {
                (Some(x), None) => x,
                _ => c,
            }
        }
    }
}

/// Go's `strings.Title`: the first letter of each word in title case.
fn go_title(s: &str) -> String {
    let is_separator = |r: char| {
        if r.is_ascii() {
            return !(r.is_ascii_alphanumeric() || r == '_');
        }
        if r.is_alphabetic() || r.is_numeric() {
            return false;
        }
        r.is_whitespace()
    };
    let mut prev = ' ';
    s.chars()
        .map(|r| {
            let out = if is_separator(prev) { to_title(r) } else { r };
            prev = r;
            out
        })
        .collect()
}

/// Prometheus's `model.ParseDuration` (common v0.39), in seconds.
fn parse_duration(d: &str) -> Result<f64, String> {
    match d {
        "0" => return Ok(0.0),
        "" => return Err("empty duration string".into()),
        _ => {}
    }
    let invalid = || format!("not a valid duration string: {}", go_quote(d));
    const UNITS: [(&str, u64); 7] = [
        ("y", 1000 * 60 * 60 * 24 * 365),
        ("w", 1000 * 60 * 60 * 24 * 7),
        ("d", 1000 * 60 * 60 * 24),
        ("h", 1000 * 60 * 60),
        ("m", 1000 * 60),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut rest = d;
    let mut next_unit = 0;
    let mut total: i128 = 0;
    let mut overflow = false;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let (num, after) = rest.split_at(digits);
        let unit_len = if after.starts_with("ms") {
            2
        } else {
            after.chars().next().map_or(0, char::len_utf8)
        };
        let unit = &after[..unit_len.min(after.len())];
        let Some(pos) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(invalid());
        };
        if pos < next_unit {
            return Err(invalid());
        }
        next_unit = pos + 1;
        let n: i128 = num.parse().unwrap_or(i128::MAX / 4);
        let mult = UNITS[pos].1;
        if n > i128::from(i64::MAX as u64 / mult / 1_000_000) {
            overflow = true;
        }
        total = total.saturating_add(n.saturating_mul(i128::from(mult)));
        if total * 1_000_000 > i128::from(i64::MAX) {
            overflow = true;
        }
        rest = &after[unit.len()..];
    }
    if overflow {
        return Err("duration out of range".into());
    }
    Ok(total as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanizers() {
        assert_eq!(humanize(1234567.0), Ok("1.235M".to_string()));
        assert_eq!(humanize(0.001234), Ok("1.234m".to_string()));
        assert_eq!(humanize_duration(3661.0), "1h 1m 1s");
        assert_eq!(humanize_duration(0.5), "500ms");
        assert_eq!(humanize_duration(59.5), "59.5s");
        assert_eq!(float_to_time(1.5), Ok(Some(1_500_000_000)));
    }

    #[test]
    fn strings_and_hosts() {
        assert_eq!(
            go_title("hello wORLD foo_bar a-b"),
            "Hello WORLD Foo_bar A-B"
        );
        assert_eq!(map_runes("straße", true), "STRAßE");
        assert_eq!(split_host_port("[::1]:80"), Some(("::1", "80")));
        assert_eq!(split_host_port("host"), None);
        assert_eq!(strip_domain("foo.example.com:9090"), "foo:9090");
        assert_eq!(strip_domain("10.0.0.1:9090"), "10.0.0.1:9090");
        assert_eq!(url_path("http://a.example:9090/prefix%20x"), "/prefix x");
        assert_eq!(parse_duration("1h30m"), Ok(5400.0));
        assert_eq!(
            parse_duration("1.5h"),
            Err("not a valid duration string: \"1.5h\"".to_string())
        );
    }
}
