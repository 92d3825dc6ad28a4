//! Numeric constants as Go's template parser reads them (`strconv.ParseInt`, `ParseUint` and
//! `ParseFloat` with base prefixes and underscores, in `rthanos_model::gostrconv`), giving a
//! [`Number`] node.

use rthanos_model::gostrconv;

use super::node::Number;
use super::quote::{go_quote, unquote_rune};

/// `strconv.ParseUint(s, 0, 64)`.
fn parse_uint(s: &str) -> Option<u64> {
    gostrconv::parse_uint(s).ok()
}

/// `strconv.ParseInt(s, 0, 64)`.
fn parse_int(s: &str) -> Option<i64> {
    gostrconv::parse_int(s).ok()
}

/// `strconv.ParseFloat(s, 64)` of what the lexer passes as a number.
pub(crate) fn parse_float(s: &str) -> Option<f64> {
    gostrconv::parse_float(s).ok()
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
