//! Go's `strconv` number parsing, which Prometheus's API (times, durations, `step`) and Go's
//! template parser (number constants, `humanize` of strings) both use: decimal and
//! hexadecimal floats with a `p` exponent, base prefixes `0x` `0o` `0b` and a leading `0`
//! for octal integers, `_` between digits, `inf` / `infinity` / `nan` in any case.

/// Why Go's `strconv` refused a text (`strconv.ErrSyntax`, `strconv.ErrRange`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumError {
    /// Not a number in Go's syntax.
    Syntax,
    /// A number beyond the type's range.
    Range,
}

/// Go's `underscoreOK`: underscores only between digits, or after a base prefix.
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

/// `strconv.ParseUint(s, 0, 64)`: the base from the prefix.
///
/// # Errors
/// Not an unsigned integer, or beyond `u64`.
pub fn parse_uint(s: &str) -> Result<u64, NumError> {
    if s.is_empty() {
        return Err(NumError::Syntax);
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
        return Err(NumError::Syntax);
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if clean.is_empty() || !clean.chars().all(|c| c.is_digit(base)) {
        return Err(NumError::Syntax);
    }
    u64::from_str_radix(&clean, base).map_err(|_| NumError::Range)
}

/// `strconv.ParseInt(s, 0, 64)`.
///
/// # Errors
/// Not an integer, or beyond `i64`.
pub fn parse_int(s: &str) -> Result<i64, NumError> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = parse_uint(body)?;
    if negative {
        if magnitude <= 1 << 63 {
            Ok((magnitude as i64).wrapping_neg())
        } else {
            Err(NumError::Range)
        }
    } else {
        i64::try_from(magnitude).map_err(|_| NumError::Range)
    }
}

/// `strconv.ParseFloat(s, 64)`. An underflow is 0, as in Go.
///
/// # Errors
/// Not a float in Go's syntax, or beyond the float range (Go's ±Inf with `ErrRange`).
pub fn parse_float(s: &str) -> Result<f64, NumError> {
    let (sign, body) = match s.as_bytes().first() {
        Some(b'+') => (1.0, &s[1..]),
        Some(b'-') => (-1.0, &s[1..]),
        _ => (1.0, s),
    };
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Ok(sign * f64::INFINITY);
    }
    if lower == "nan" {
        // Go reads a sign only before "inf".
        return if body.len() == s.len() {
            Ok(f64::NAN)
        } else {
            Err(NumError::Syntax)
        };
    }
    if lower.contains('_') && !underscore_ok(&lower) {
        return Err(NumError::Syntax);
    }
    let digits: String = lower.chars().filter(|&c| c != '_').collect();
    let value = match digits.strip_prefix("0x") {
        Some(hex) => parse_hex_float(hex).ok_or(NumError::Syntax)?,
        None => {
            // Rust's parser takes what Go's does, less the forms handled above.
            if digits.is_empty()
                || digits.starts_with(['+', '-'])
                || !digits
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b".e+-".contains(&b))
            {
                return Err(NumError::Syntax);
            }
            digits.parse::<f64>().map_err(|_| NumError::Syntax)?
        }
    };
    if value.is_infinite() {
        return Err(NumError::Range);
    }
    Ok(sign * value)
}

/// A hexadecimal float after its `0x`, lower-cased: mantissa digits (one `.` at most), then
/// a `p` exponent, which Go requires.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mantissa, exponent) = s.split_once('p')?;
    let exponent: i32 = match exponent.strip_prefix('+') {
        Some(e) if !e.starts_with(['+', '-']) => e.parse().ok()?,
        _ => exponent.parse().ok()?,
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut value = 0f64;
    for c in int.chars().chain(frac.chars()) {
        value = value * 16.0 + f64::from(c.to_digit(16)?);
    }
    let shift = i64::from(exponent) - 4 * frac.len() as i64;
    Some(value * 2f64.powi(i32::try_from(shift.clamp(-2000, 2000)).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_go_reads_them() {
        for (text, want) in [
            ("1", Ok(1.0)),
            ("-1.5e3", Ok(-1500.0)),
            ("1_000.5", Ok(1000.5)),
            ("0x1p-2", Ok(0.25)),
            ("0X1.8P1", Ok(3.0)),
            ("+Inf", Ok(f64::INFINITY)),
            ("-infinity", Ok(f64::NEG_INFINITY)),
            ("1e400", Err(NumError::Range)),
            ("1e-400", Ok(0.0)),
            ("0x1", Err(NumError::Syntax)),
            ("1__0", Err(NumError::Syntax)),
            ("_1", Err(NumError::Syntax)),
            ("+-1", Err(NumError::Syntax)),
            ("", Err(NumError::Syntax)),
            ("+nan", Err(NumError::Syntax)),
            ("1h", Err(NumError::Syntax)),
        ] {
            assert_eq!(parse_float(text), want, "{text}");
        }
        assert!(parse_float("NaN").is_ok_and(f64::is_nan));
        for (text, want) in [
            ("0x_1f", Ok(31)),
            ("0o17", Ok(15)),
            ("017", Ok(15)),
            ("0b101", Ok(5)),
            ("-9223372036854775808", Ok(i64::MIN)),
            ("9223372036854775808", Err(NumError::Range)),
            ("08", Err(NumError::Syntax)),
            ("1_", Err(NumError::Syntax)),
        ] {
            assert_eq!(parse_int(text), want, "{text}");
        }
        assert_eq!(parse_uint("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_uint("-1"), Err(NumError::Syntax));
    }
}
