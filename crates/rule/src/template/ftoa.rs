//! Go's `strconv.FormatFloat` for float64: shortest and fixed-precision `%e %f %g`, and `%x`
//! and `%b`, from exact decimal digits so rounding (half to even) is Go's.

/// Decimal digits `d` (no trailing zeros) with the decimal point `dp` places from their
/// start: the value is `0.d × 10^dp`.
struct Digits {
    d: Vec<u8>,
    dp: i32,
}

/// The exact decimal expansion of a finite, non-negative float.
fn exact_digits(v: f64) -> Digits {
    if v == 0.0 {
        return Digits {
            d: Vec::new(),
            dp: 0,
        };
    }
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    let (mant, e2) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1 << 52), exp - 1075)
    };
    // Little-endian limbs of base 10^9.
    const BASE: u64 = 1_000_000_000;
    let mut limbs: Vec<u64> = vec![mant % BASE, mant / BASE % BASE, mant / BASE / BASE];
    let mul = |limbs: &mut Vec<u64>, m: u64| {
        let mut carry = 0u64;
        for l in limbs.iter_mut() {
            let x = *l * m + carry;
            *l = x % BASE;
            carry = x / BASE;
        }
        while carry > 0 {
            limbs.push(carry % BASE);
            carry /= BASE;
        }
    };
    let (mut n, factor, chunk, chunk_pow) = if e2 >= 0 {
        (e2, 2u64, 1u64 << 29, 29)
    } else {
        (-e2, 5u64, 1_220_703_125u64, 13)
    };
    while n >= chunk_pow {
        mul(&mut limbs, chunk);
        n -= chunk_pow;
    }
    for _ in 0..n {
        mul(&mut limbs, factor);
    }
    while limbs.len() > 1 && limbs.last() == Some(&0) {
        limbs.pop();
    }
    let mut s = String::new();
    for (i, l) in limbs.iter().rev().enumerate() {
        if i == 0 {
            s.push_str(&l.to_string());
        } else {
            s.push_str(&format!("{l:09}"));
        }
    }
    let mut d: Vec<u8> = s.into_bytes();
    let len = d.len() as i32;
    let dp = if e2 >= 0 { len } else { len + e2 };
    while d.last() == Some(&b'0') {
        d.pop();
    }
    Digits { d, dp }
}

/// The shortest digits that read back as `v` (finite, non-negative).
fn shortest_digits(v: f64) -> Digits {
    if v == 0.0 {
        return Digits {
            d: Vec::new(),
            dp: 0,
        };
    }
    let s = format!("{v:e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while d.last() == Some(&b'0') {
        d.pop();
    }
    Digits { d, dp: exp + 1 }
}

impl Digits {
    /// Rounds to `nd` digits, half to even (Go's `decimal.Round`).
    fn round(&mut self, nd: i32) {
        if nd < 0 || nd as usize >= self.d.len() {
            return;
        }
        let n = nd as usize;
        let up = if self.d[n] == b'5' && n + 1 == self.d.len() {
            n > 0 && (self.d[n - 1] - b'0') % 2 == 1
        } else {
            self.d[n] >= b'5'
        };
        self.d.truncate(n);
        if up {
            let mut i = n;
            loop {
                if i == 0 {
                    self.d.insert(0, b'1');
                    self.d.truncate(1);
                    self.dp += 1;
                    break;
                }
                i -= 1;
                if self.d[i] < b'9' {
                    self.d[i] += 1;
                    self.d.truncate(i + 1);
                    break;
                }
            }
        }
        while self.d.last() == Some(&b'0') {
            self.d.pop();
        }
    }
}

fn fmt_e(out: &mut String, d: &Digits, prec: i32, e: char) {
    out.push(d.d.first().map_or('0', |&c| c as char));
    if prec > 0 {
        out.push('.');
        for i in 1..=prec as usize {
            out.push(d.d.get(i).map_or('0', |&c| c as char));
        }
    }
    out.push(e);
    let mut exp = if d.d.is_empty() { 0 } else { d.dp - 1 };
    if exp < 0 {
        out.push('-');
        exp = -exp;
    } else {
        out.push('+');
    }
    if exp < 10 {
        out.push('0');
    }
    out.push_str(&exp.to_string());
}

fn fmt_f(out: &mut String, d: &Digits, prec: i32) {
    if d.dp > 0 {
        for i in 0..d.dp as usize {
            out.push(d.d.get(i).map_or('0', |&c| c as char));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 0..prec {
            let j = d.dp + i;
            let c = if j >= 0 {
                d.d.get(j as usize).copied()
            } else {
                None
            };
            out.push(c.map_or('0', char::from));
        }
    }
}

/// `strconv.FormatFloat(v, fmt, prec, 64)` for `fmt` in `e E f g G x X b`; `prec` < 0 is
/// the shortest representation.
pub(crate) fn format_float(v: f64, fmt: char, prec: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let mut out = String::new();
    if v.is_sign_negative() {
        out.push('-');
    }
    let a = v.abs();
    match fmt {
        'x' | 'X' => {
            fmt_x(&mut out, a, prec, fmt);
            return out;
        }
        'b' => {
            let bits = a.to_bits();
            let exp = ((bits >> 52) & 0x7ff) as i64;
            let frac = bits & ((1 << 52) - 1);
            let (mant, e) = if exp == 0 {
                (frac, -1074)
            } else {
                (frac | 1 << 52, exp - 1075)
            };
            out.push_str(&format!("{mant}p{}{e}", if e >= 0 { "+" } else { "" }));
            return out;
        }
        _ => {}
    }
    let shortest = prec < 0;
    let mut prec = prec;
    let digs = if shortest {
        let d = shortest_digits(a);
        let nd = d.d.len() as i32;
        prec = match fmt {
            'e' | 'E' => (nd - 1).max(0),
            'f' => (nd - d.dp).max(0),
            _ => nd,
        };
        d
    } else {
        let mut d = exact_digits(a);
        match fmt {
            'e' | 'E' => d.round(prec + 1),
            'f' => d.round(d.dp + prec),
            _ => {
                if prec == 0 {
                    prec = 1;
                }
                d.round(prec);
            }
        }
        d
    };
    match fmt {
        'e' | 'E' => fmt_e(&mut out, &digs, prec, fmt),
        'f' => fmt_f(&mut out, &digs, prec),
        'g' | 'G' => {
            let nd = digs.d.len() as i32;
            let mut eprec = prec;
            if eprec > nd && nd >= digs.dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = digs.dp - 1;
            let e = if fmt == 'g' { 'e' } else { 'E' };
            if exp < -4 || exp >= eprec {
                let p = prec.min(nd);
                fmt_e(&mut out, &digs, p - 1, e);
            } else {
                let p = if prec > digs.dp { nd } else { prec };
                fmt_f(&mut out, &digs, (p - digs.dp).max(0));
            }
        }
        _ => {
            out.push('%');
            out.push(fmt);
        }
    }
    out
}

/// `%x`: hexadecimal mantissa and binary exponent (Go's `fmtX`).
fn fmt_x(out: &mut String, a: f64, prec: i32, fmt: char) {
    let bits = a.to_bits();
    let bexp = ((bits >> 52) & 0x7ff) as i32;
    let mut mant = bits & ((1 << 52) - 1);
    let mut exp = if bexp == 0 { -1022 } else { bexp - 1023 };
    if bexp != 0 {
        mant |= 1 << 52;
    }
    if mant == 0 {
        exp = 0;
    }
    // Shift so the leading 1 is at bit 60.
    mant <<= 60 - 52;
    while mant != 0 && mant & (1 << 60) == 0 {
        mant <<= 1;
        exp -= 1;
    }
    if (0..15).contains(&prec) {
        let shift = (prec * 4) as u32;
        let extra = (mant << shift) & ((1 << 60) - 1);
        mant >>= 60 - shift;
        if extra | (mant & 1) > 1 << 59 {
            mant += 1;
        }
        mant <<= 60 - shift;
        if mant & (1 << 61) != 0 {
            mant >>= 1;
            exp += 1;
        }
    }
    let digits: &[u8] = if fmt == 'X' {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    out.push('0');
    out.push(if fmt == 'X' { 'X' } else { 'x' });
    out.push(char::from(b'0' + ((mant >> 60) & 1) as u8));
    mant <<= 4;
    if prec < 0 && mant != 0 {
        out.push('.');
        while mant != 0 {
            out.push(char::from(digits[((mant >> 60) & 15) as usize]));
            mant <<= 4;
        }
    } else if prec > 0 {
        out.push('.');
        for _ in 0..prec {
            out.push(char::from(digits[((mant >> 60) & 15) as usize]));
            mant <<= 4;
        }
    }
    out.push(if fmt == 'X' { 'P' } else { 'p' });
    if exp < 0 {
        out.push('-');
        exp = -exp;
    } else {
        out.push('+');
    }
    if exp < 10 {
        out.push('0');
    }
    out.push_str(&exp.to_string());
}

#[cfg(test)]
mod tests {
    use super::format_float as ff;

    #[test]
    fn shortest_like_go() {
        assert_eq!(ff(1e6, 'g', -1), "1e+06");
        assert_eq!(ff(100000.0, 'g', -1), "100000");
        assert_eq!(ff(1.2345e-5, 'g', -1), "1.2345e-05");
        assert_eq!(ff(0.0001, 'g', -1), "0.0001");
        assert_eq!(ff(1.23456, 'g', -1), "1.23456");
        assert_eq!(ff(-0.0, 'g', -1), "-0");
        assert_eq!(ff(12345678.0, 'g', -1), "1.2345678e+07");
        assert_eq!(ff(1e21, 'g', -1), "1e+21");
        assert_eq!(ff(5e-324, 'g', -1), "5e-324");
        assert_eq!(ff(1.5, 'e', -1), "1.5e+00");
        assert_eq!(ff(0.1, 'f', -1), "0.1");
    }

    #[test]
    fn fixed_precision_rounds_half_to_even() {
        assert_eq!(ff(0.125, 'f', 2), "0.12");
        assert_eq!(ff(0.375, 'f', 2), "0.38");
        assert_eq!(ff(2.5, 'f', 0), "2");
        assert_eq!(ff(0.5, 'f', 0), "0");
        assert_eq!(ff(1.005, 'f', 2), "1.00");
        assert_eq!(ff(9.9999, 'f', 2), "10.00");
        assert_eq!(ff(1234.5678, 'g', 4), "1235");
        assert_eq!(ff(100.0, 'g', 4), "100");
        assert_eq!(ff(1234567.0, 'g', 4), "1.235e+06");
        assert_eq!(ff(0.0, 'g', 4), "0");
        assert_eq!(ff(0.0001234, 'g', 4), "0.0001234");
        assert_eq!(ff(1.23456, 'e', 3), "1.235e+00");
        assert_eq!(ff(1e100, 'f', 0).len(), 101);
    }

    #[test]
    fn hex_and_binary() {
        assert_eq!(ff(1.0, 'x', -1), "0x1p+00");
        assert_eq!(ff(1.23456, 'x', -1), "0x1.3c0c1fc8f3238p+00");
        assert_eq!(ff(1.0, 'b', -1), "4503599627370496p-52");
    }
}
