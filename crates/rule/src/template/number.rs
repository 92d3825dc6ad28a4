//! Numeric constants as Go's template parser reads them (`strconv.ParseInt`, `ParseUint` and
//! `ParseFloat` with base prefixes and underscores), giving a [`Number`] node.

use super::node::Number;
use super::quote::{go_quote, unquote_rune};

/// Go's `strconv.underscoreOK`: underscores only between digits (or after a base prefix).
fn underscore_ok(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let b = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || hex && c.is_ascii_hexdigit() {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// `strconv.ParseUint(s, 0, 64)`.
fn parse_uint(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let (base, digits) = if let Some(r) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (16, r)
    } else if let Some(r) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        (8, r)
    } else if let Some(r) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
        (2, r)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    if s.contains('_') && !underscore_ok(s) {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if clean.is_empty() || clean.starts_with(['+', '-']) {
        return None;
    }
    u64::from_str_radix(&clean, base).ok()
}

/// `strconv.ParseInt(s, 0, 64)`.
fn parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let u = parse_uint(body)?;
    if neg {
        if u <= 1 << 63 {
            Some((u as i64).wrapping_neg())
        } else {
            None
        }
    } else {
        i64::try_from(u).ok()
    }
}

/// `strconv.ParseFloat(s, 64)` for what the lexer passes as a number: decimal or hexadecimal
/// (with a `p` exponent), with underscores.
pub(crate) fn parse_float(s: &str) -> Option<f64> {
    parse_float_checked(s).ok()
}

/// Why `strconv.ParseFloat` refused a text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FloatError {
    Syntax,
    Range,
}

/// `strconv.ParseFloat(s, 64)` (without the special values `Inf` and `NaN`).
pub(crate) fn parse_float_checked(s: &str) -> Result<f64, FloatError> {
    let v = parse_float_inner(s).ok_or(FloatError::Syntax)?;
    if v.is_infinite() {
        return Err(FloatError::Range);
    }
    Ok(v)
}

fn parse_float_inner(s: &str) -> Option<f64> {
    if s.contains('_') && !underscore_ok(s) {
        return None;
    }
    let clean: String = s.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, clean.as_str()),
    };
    let v = if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        parse_hex_float(hex)?
    } else {
        if body.is_empty()
            || body.starts_with(['+', '-'])
            || !body
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            return None;
        }
        body.parse::<f64>().ok()?
    };
    Some(if neg { -v } else { v })
}

fn parse_hex_float(s: &str) -> Option<f64> {
    let (mant, exp) = s.split_once(['p', 'P'])?;
    let exp: i32 = exp.parse().ok()?;
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    Some(v * 2f64.powi(exp))
}

/// Go's `strconv` reading of a complex literal such as `1+2i` (`fmt.Sscan` into complex128).
fn parse_complex(text: &str) -> Option<(f64, f64)> {
    let body = text.strip_suffix('i')?;
    let b = body.as_bytes();
    let split = (1..b.len())
        .rev()
        .find(|&i| matches!(b[i], b'+' | b'-') && !matches!(b[i - 1], b'e' | b'E' | b'p' | b'P'))?;
    Some((parse_float(&body[..split])?, parse_float(&body[split..])?))
}

/// Builds a number node from a number, complex or character-constant token (Go's
/// `newNumber`); the error is the parse error's text.
pub(crate) fn new_number(pos: usize, text: &str, kind: NumberToken) -> Result<Number, String> {
    let mut n = Number {
        pos,
        text: text.to_string(),
        int: None,
        uint: None,
        float: None,
        complex: None,
    };
    match kind {
        NumberToken::Char => {
            let r = unquote_rune(text)?;
            n.int = Some(i64::from(r));
            n.uint = Some(u64::from(r));
            n.float = Some(f64::from(r));
            return Ok(n);
        }
        NumberToken::Complex => {
            let c = parse_complex(text).ok_or_else(|| "expected integer".to_string())?;
            n.complex = Some(c);
            simplify_complex(&mut n);
            return Ok(n);
        }
        NumberToken::Number => {}
    }
    if let Some(im) = text.strip_suffix('i').and_then(parse_float) {
        n.complex = Some((0.0, im));
        simplify_complex(&mut n);
        return Ok(n);
    }
    let u = parse_uint(text);
    n.uint = u;
    if let Some(i) = parse_int(text) {
        n.int = Some(i);
        if i == 0 {
            n.uint = Some(0);
        }
    }
    if let Some(i) = n.int {
        n.float = Some(i as f64);
    } else if let Some(u) = n.uint {
        n.float = Some(u as f64);
    } else if let Some(f) = parse_float(text) {
        if !text.contains(['.', 'e', 'E', 'p', 'P']) {
            return Err(format!("integer overflow: {}", go_quote(text)));
        }
        n.float = Some(f);
        if f.fract() == 0.0 && (i64::MIN as f64..i64::MAX as f64).contains(&f) {
            n.int = Some(f as i64);
        }
        if f.fract() == 0.0 && (0.0..u64::MAX as f64).contains(&f) {
            n.uint = Some(f as u64);
        }
    }
    if n.int.is_none() && n.uint.is_none() && n.float.is_none() {
        return Err(format!("illegal number syntax: {}", go_quote(text)));
    }
    Ok(n)
}

fn simplify_complex(n: &mut Number) {
    let Some((re, im)) = n.complex else {
        return;
    };
    if im == 0.0 {
        n.float = Some(re);
        if re.fract() == 0.0 && re.abs() < 9.2e18 {
            n.int = Some(re as i64);
        }
        if re.fract() == 0.0 && (0.0..1.8e19).contains(&re) {
            n.uint = Some(re as u64);
        }
    }
}

/// The token a number node comes from.
#[derive(Clone, Copy)]
pub(crate) enum NumberToken {
    Number,
    Complex,
    Char,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(text: &str) -> Number {
        new_number(0, text, NumberToken::Number).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn integers_in_every_base() {
        assert_eq!(num("0x1F").int, Some(31));
        assert_eq!(num("0o17").int, Some(15));
        assert_eq!(num("017").int, Some(15));
        assert_eq!(num("0b101").int, Some(5));
        assert_eq!(num("1_000").int, Some(1000));
        assert_eq!(num("-7").uint, None);
        assert_eq!(num("9223372036854775808").int, None);
        assert_eq!(num("9223372036854775808").uint, Some(1 << 63));
    }

    #[test]
    fn floats_and_errors() {
        assert_eq!(num("1.5e3").float, Some(1500.0));
        assert_eq!(num("1.5e3").int, Some(1500));
        assert_eq!(num("0x1p-2").float, Some(0.25));
        assert_eq!(num("2i").complex, Some((0.0, 2.0)));
        assert_eq!(
            new_number(0, "99999999999999999999", NumberToken::Number).err(),
            Some("integer overflow: \"99999999999999999999\"".to_string())
        );
        assert_eq!(
            new_number(0, "1__0", NumberToken::Number).err(),
            Some("illegal number syntax: \"1__0\"".to_string())
        );
    }
}
