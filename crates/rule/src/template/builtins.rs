//! text/template's builtin functions over our values: comparisons (with Go's kind rules),
//! `index`, `slice`, `len`, `call`, and the `html`, `js` and `urlquery` escapers.

use std::rc::Rc;

use super::fmt::sprint;
use super::quote::is_print;
use super::value::{Kind, Value};

const BAD_COMPARISON_TYPE: &str = "invalid type for comparison";
const BAD_COMPARISON: &str = "incompatible types for comparison";

/// Go's `basicKind`: the comparable kinds, or `None`.
fn basic_kind(v: &Value) -> Option<Kind> {
    match v.kind() {
        k @ (Kind::Bool | Kind::Int | Kind::Uint | Kind::Float | Kind::Complex | Kind::String) => {
            Some(k)
        }
        _ => None,
    }
}

fn int_of(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        _ => 0,
    }
}

fn uint_of(v: &Value) -> u64 {
    match v {
        Value::Uint8(u) => u64::from(*u),
        _ => 0,
    }
}

fn float_of(v: &Value) -> f64 {
    match v {
        Value::Float(f) => *f,
        _ => 0.0,
    }
}

/// `eq arg1 arg2...`: true when arg1 equals any of the others.
pub(crate) fn eq(arg1: &Value, rest: &[Value]) -> Result<bool, String> {
    let a = arg1.indirect_interface();
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let k1 = basic_kind(a);
    for arg in rest {
        let b = arg.indirect_interface();
        let k2 = basic_kind(b);
        let truth = if k1 != k2 {
            match (k1, k2) {
                (Some(Kind::Int), Some(Kind::Uint)) => {
                    int_of(a) >= 0 && int_of(a) as u64 == uint_of(b)
                }
                (Some(Kind::Uint), Some(Kind::Int)) => {
                    int_of(b) >= 0 && uint_of(a) == int_of(b) as u64
                }
                _ => {
                    if !matches!(a, Value::Invalid) && !matches!(b, Value::Invalid) {
                        return Err(BAD_COMPARISON.into());
                    }
                    false
                }
            }
        } else {
            match k1 {
                Some(Kind::Bool) => matches!((a, b), (Value::Bool(x), Value::Bool(y)) if x == y),
                Some(Kind::Complex) => {
                    matches!((a, b), (Value::Complex(r1, i1), Value::Complex(r2, i2)) if r1 == r2 && i1 == i2)
                }
                Some(Kind::Float) => float_of(a) == float_of(b),
                Some(Kind::Int) => int_of(a) == int_of(b),
                Some(Kind::String) => a.as_str() == b.as_str(),
                Some(Kind::Uint) => uint_of(a) == uint_of(b),
                _ => compare_other(a, b)?,
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `eq` on two values of no basic kind: nil checks, pointer identity, or an error.
fn compare_other(a: &Value, b: &Value) -> Result<bool, String> {
    let (ka, kb) = (a.kind(), b.kind());
    if ka != kb && ka != Kind::Invalid && kb != Kind::Invalid {
        return Err(format!(
            "non-comparable types {}: {}, {}: {}",
            super::fmt::sprint1(a),
            a.type_name(),
            b.type_name(),
            super::fmt::sprint1(b)
        ));
    }
    if a.is_nil() || b.is_nil() {
        return Ok(a.is_nil() == b.is_nil());
    }
    match (a, b) {
        (Value::Sample(Some(x)), Value::Sample(Some(y))) => Ok(Rc::ptr_eq(x, y)),
        (Value::Time(Some(x)), Value::Time(Some(y))) => Ok(x == y),
        _ => Err(format!(
            "non-comparable type {}: {}",
            super::fmt::sprint1(b),
            b.type_name()
        )),
    }
}

/// `lt arg1 arg2`.
pub(crate) fn lt(arg1: &Value, arg2: &Value) -> Result<bool, String> {
    let a = arg1.indirect_interface();
    let k1 = basic_kind(a).ok_or(BAD_COMPARISON_TYPE)?;
    let b = arg2.indirect_interface();
    let k2 = basic_kind(b).ok_or(BAD_COMPARISON_TYPE)?;
    if k1 != k2 {
        return match (k1, k2) {
            (Kind::Int, Kind::Uint) => Ok(int_of(a) < 0 || (int_of(a) as u64) < uint_of(b)),
            (Kind::Uint, Kind::Int) => Ok(int_of(b) >= 0 && uint_of(a) < int_of(b) as u64),
            _ => Err(BAD_COMPARISON.into()),
        };
    }
    match k1 {
        Kind::Bool | Kind::Complex => Err(BAD_COMPARISON_TYPE.into()),
        Kind::Float => Ok(float_of(a) < float_of(b)),
        Kind::Int => Ok(int_of(a) < int_of(b)),
        Kind::String => Ok(a.as_str() < b.as_str()),
        _ => Ok(uint_of(a) < uint_of(b)),
    }
}

/// `le arg1 arg2`.
pub(crate) fn le(arg1: &Value, arg2: &Value) -> Result<bool, String> {
    if lt(arg1, arg2)? {
        return Ok(true);
    }
    eq(arg1, std::slice::from_ref(arg2))
}

/// Go's `indexArg`: an integer index within `0..=cap`.
fn index_arg(index: &Value, cap: usize) -> Result<usize, String> {
    let x: i64 = match index.indirect_interface() {
        Value::Int(i) => *i,
        Value::Uint8(u) => i64::from(*u),
        Value::Invalid => return Err("cannot index slice/array with nil".into()),
        other => {
            return Err(format!(
                "cannot index slice/array with type {}",
                other.type_name()
            ));
        }
    };
    if x < 0 || x as u64 > cap as u64 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

/// Dereferences pointers and interfaces (Go's `indirect`); `Err` for a nil one.
fn deref(v: &Value) -> Result<Value, ()> {
    match v {
        Value::Iface(inner) => deref(inner),
        Value::NilIface | Value::Sample(None) | Value::Time(None) => Err(()),
        v => Ok(v.clone()),
    }
}

/// The type name after dereferencing a pointer (for `can't index item of type …`).
fn elem_type_name(v: &Value) -> &'static str {
    match v {
        Value::Sample(Some(_)) => "template.sample",
        Value::Time(Some(_)) => "time.Time",
        v => v.type_name(),
    }
}

/// `index item k1 k2...`.
pub(crate) fn index(item: &Value, indexes: &[Value]) -> Result<Value, String> {
    let mut item = item.indirect_interface().clone();
    if let Value::Invalid = item {
        return Err("index of untyped nil".into());
    }
    for index in indexes {
        let index = index.indirect_interface();
        item = deref(&item).map_err(|()| "index of nil pointer".to_string())?;
        item = match &item {
            Value::Str(s) | Value::Html(s) => {
                let x = index_arg(index, s.len())?;
                match s.as_bytes().get(x) {
                    Some(b) => Value::Uint8(*b),
                    None => return Err("reflect: string index out of range".into()),
                }
            }
            Value::Samples(v) => {
                let v: &[Rc<super::QuerySample>] = v.as_deref().map_or(&[], |v| v.as_slice());
                let x = index_arg(index, v.len())?;
                match v.get(x) {
                    Some(s) => Value::Sample(Some(Rc::clone(s))),
                    None => return Err("reflect: slice index out of range".into()),
                }
            }
            Value::StrMap(_) | Value::AnyMap(_) => {
                let key = match index {
                    Value::Str(k) => Rc::clone(k),
                    Value::Invalid => return Err("value is nil; should be of type string".into()),
                    other => {
                        return Err(format!(
                            "value has type {}; should be string",
                            other.type_name()
                        ));
                    }
                };
                match &item {
                    Value::StrMap(m) => Value::str(m.get(key.as_ref()).map_or("", String::as_str)),
                    Value::AnyMap(m) => match m.get(key.as_ref()) {
                        None | Some(Value::Invalid | Value::NilIface) => Value::NilIface,
                        Some(v) => Value::Iface(Rc::new(v.clone())),
                    },
                    _ => Value::Invalid,
                }
            }
            other => {
                return Err(format!(
                    "can't index item of type {}",
                    elem_type_name(other)
                ));
            }
        };
    }
    Ok(item)
}

/// `slice item i j k`.
pub(crate) fn slice(item: &Value, indexes: &[Value]) -> Result<Value, String> {
    let item = item.indirect_interface();
    if let Value::Invalid = item {
        return Err("slice of untyped nil".into());
    }
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match item {
        Value::Str(s) | Value::Html(s) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::Samples(v) => v.as_ref().map_or(0, |v| v.len()),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut idx = [0, len, len];
    for (i, index) in indexes.iter().enumerate() {
        idx[i] = index_arg(index, len)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    Ok(match item {
        Value::Str(s) => Value::str(&String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]])),
        Value::Html(s) => Value::Html(Rc::from(
            String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]]).as_ref(),
        )),
        Value::Samples(Some(v)) => Value::Samples(Some(Rc::new(v[idx[0]..idx[1]].to_vec()))),
        other => other.clone(),
    })
}

/// `len item`.
pub(crate) fn length(item: &Value) -> Result<Value, String> {
    let item = deref(item).map_err(|()| "len of nil pointer".to_string())?;
    let n = match &item {
        Value::Str(s) | Value::Html(s) => s.len(),
        Value::StrMap(m) => m.len(),
        Value::AnyMap(m) => m.len(),
        Value::Samples(v) => v.as_ref().map_or(0, |v| v.len()),
        Value::Invalid => return Err("reflect: call of reflect.Value.Type on zero Value".into()),
        other => return Err(format!("len of type {}", elem_type_name(other))),
    };
    Ok(Value::Int(n as i64))
}

/// `call fn args...`: no template value is a function, so this always fails as Go's does.
pub(crate) fn call(args: &[Value]) -> Result<Value, String> {
    match args.first().map(Value::indirect_interface) {
        None | Some(Value::Invalid) => Err("call of nil".into()),
        Some(v) => Err(format!("non-function of type {}", v.type_name())),
    }
}

/// Go's `evalArgs` for the escapers: a lone string as is, else `fmt.Sprint` of the
/// arguments with pointers dereferenced.
pub(crate) fn eval_args(args: &[Value]) -> String {
    if let [Value::Str(s)] = args {
        return s.to_string();
    }
    let printable: Vec<Value> = args
        .iter()
        .map(|a| match a {
            Value::Sample(Some(_)) => Value::str(&super::fmt::print_action_value(a)),
            other => other.clone(),
        })
        .collect();
    // A dereferenced sample is a struct, not a string, for Sprint's spacing.
    let mut out = String::new();
    let mut prev_string = false;
    for (i, (orig, p)) in args.iter().zip(&printable).enumerate() {
        let is_string = orig.indirect_interface().as_str().is_some();
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        out.push_str(&sprint(std::slice::from_ref(p)));
        prev_string = is_string;
    }
    out
}

/// `html`: Go's `HTMLEscapeString`.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `js`: Go's `JSEscapeString`.
pub(crate) fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u00{:02X}", c as u32)),
            c if c.is_ascii() => out.push(c),
            c if is_print(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_follow_gos_kind_rules() {
        assert_eq!(
            eq(&Value::Int(1), &[Value::Int(2), Value::Int(1)]),
            Ok(true)
        );
        assert_eq!(
            eq(&Value::Float(1.0), &[Value::Int(1)]),
            Err(BAD_COMPARISON.to_string())
        );
        assert_eq!(eq(&Value::str("a"), &[Value::Invalid]), Ok(false));
        assert_eq!(lt(&Value::Int(1), &[Value::Uint8(2)][0]), Ok(true));
        assert_eq!(
            lt(&Value::Bool(true), &Value::Bool(false)),
            Err(BAD_COMPARISON_TYPE.to_string())
        );
        assert_eq!(le(&Value::str("a"), &Value::str("a")), Ok(true));
    }

    #[test]
    fn escapers() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&#34;x&#34;&gt;&amp;&#39;"
        );
        assert_eq!(
            js_escape("a'b\"<=>\n"),
            "a\\'b\\\"\\u003C\\u003D\\u003E\\u000A"
        );
        assert_eq!(query_escape("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn index_and_slice() {
        assert!(matches!(
            index(&Value::str("abc"), &[Value::Int(1)]),
            Ok(Value::Uint8(b'b'))
        ));
        assert_eq!(
            index(&Value::str("abc"), &[Value::Int(3)]).err(),
            Some("reflect: string index out of range".to_string())
        );
        assert_eq!(
            index(&Value::str("abc"), &[Value::Int(4)]).err(),
            Some("index out of range: 4".to_string())
        );
        assert!(
            matches!(slice(&Value::str("abcd"), &[Value::Int(1), Value::Int(3)]), Ok(Value::Str(s)) if &*s == "bc")
        );
    }
}
