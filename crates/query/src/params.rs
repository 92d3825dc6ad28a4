//! The HTTP API's time and duration parameters, read exactly as Prometheus 2.42's Go code reads
//! them, so that every input gets Prometheus's answer: the same accepted forms (Go's
//! `strconv.ParseFloat`, with hexadecimal floats and `_` separators, then RFC 3339, then
//! Prometheus's own minimum and maximum times), the same errors, and, for floats beyond the
//! int64 range, the same times after Go's conversions (NaN and out-of-range floats become the
//! minimum int64, and int64 arithmetic wraps). Nothing here panics or overflows.

/// An invalid parameter: Prometheus's `invalid parameter "<name>": <message>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid parameter \"{name}\": {message}")]
pub struct InvalidParam {
    /// The parameter.
    pub name: String,
    /// What is wrong with it.
    pub message: String,
}

impl InvalidParam {
    fn new(name: &str, message: String) -> Self {
        Self {
            name: name.to_string(),
            message,
        }
    }
}

/// A point in time as Go's `time.Time` holds it: seconds (of the Unix epoch; Go keeps them
/// from year 1, which only matters for comparisons: see [`GoTime::before`]) and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoTime {
    sec: i64,
    nsec: i64,
}

/// Seconds from year 1 to the Unix epoch (Go's `unixToInternal`).
const UNIX_TO_INTERNAL: i64 = 62_135_596_800;

impl GoTime {
    /// Prometheus's `MinTime` (`-292273086-05-16T16:47:06Z`).
    pub const MIN: GoTime = GoTime {
        sec: i64::MIN / 1000 + 62_135_596_801,
        nsec: 0,
    };
    /// Prometheus's `MaxTime` (`292277025-08-18T07:12:54.999999999Z`).
    pub const MAX: GoTime = GoTime {
        sec: i64::MAX / 1000 - 62_135_596_801,
        nsec: 999_999_999,
    };

    /// Go's `time.Unix(sec, nsec)`: nanoseconds outside [0, 1e9) carried into the seconds,
    /// wrapping as Go's int64 arithmetic does.
    pub fn unix(sec: i64, nsec: i64) -> GoTime {
        let (mut sec, mut nsec) = (sec, nsec);
        if !(0..1_000_000_000).contains(&nsec) {
            let n = nsec / 1_000_000_000;
            sec = sec.wrapping_add(n);
            nsec -= n * 1_000_000_000;
            if nsec < 0 {
                nsec += 1_000_000_000;
                sec = sec.wrapping_sub(1);
            }
        }
        GoTime { sec, nsec }
    }

    /// A time of milliseconds since the epoch.
    pub fn from_millis(ms: i64) -> GoTime {
        GoTime::unix(ms.div_euclid(1000), ms.rem_euclid(1000) * 1_000_000)
    }

    /// Go's `timestamp.FromTime` (the metadata APIs' milliseconds): `Unix()*1000 +
    /// Nanosecond()/1e6`, wrapping.
    pub fn from_time_ms(self) -> i64 {
        self.sec
            .wrapping_mul(1000)
            .wrapping_add(self.nsec / 1_000_000)
    }

    /// The query engine's milliseconds: `UnixNano() / 1e6`, wrapping.
    pub fn engine_ms(self) -> i64 {
        self.sec.wrapping_mul(1_000_000_000).wrapping_add(self.nsec) / 1_000_000
    }

    /// Go's internal seconds, from year 1 (wrapping, as Go's do).
    fn internal(self) -> i64 {
        self.sec.wrapping_add(UNIX_TO_INTERNAL)
    }

    /// Go's `t.Before(u)`.
    pub fn before(self, other: GoTime) -> bool {
        (self.internal(), self.nsec) < (other.internal(), other.nsec)
    }

    /// Go's `t.Sub(u)` (`t` since `u`) in nanoseconds, saturating at the int64 range as Go's does.
    pub fn since(self, other: GoTime) -> i64 {
        let d = (i128::from(self.internal()) - i128::from(other.internal())) * 1_000_000_000
            + i128::from(self.nsec - other.nsec);
        i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
    }
}

/// Go's conversion of a float64 to int64 on amd64: truncation, and the minimum int64 for NaN
/// and for values out of range.
pub fn go_int64(v: f64) -> i64 {
    // 2^63: the first float beyond the range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if v.is_nan() || !(-LIMIT..LIMIT).contains(&v) {
        i64::MIN
    } else {
        v as i64
    }
}

/// Go's `strconv.ParseFloat(s, 64)`, when it succeeds (see [`rthanos_model::gostrconv`]).
pub fn go_parse_float(s: &str) -> Option<f64> {
    rthanos_model::gostrconv::parse_float(s).ok()
}

/// Prometheus's `parseTime`: a float of Unix seconds, RFC 3339, or its own minimum and
/// maximum times.
pub fn parse_time(name: &str, value: &str) -> Result<GoTime, InvalidParam> {
    if let Some(t) = go_parse_float(value) {
        // Go: s, ns := math.Modf(t); ns = math.Round(ns*1000)/1000.
        let (whole, frac) = (t.trunc(), t - t.trunc());
        let frac = if t.is_infinite() { f64::NAN } else { frac };
        let ns = (frac * 1000.0).round() / 1000.0;
        return Ok(GoTime::unix(go_int64(whole), go_int64(ns * 1e9)));
    }
    if let Some(t) = parse_rfc3339(value) {
        return Ok(t);
    }
    match value {
        "-292273086-05-16T16:47:06Z" => Ok(GoTime::MIN),
        "292277025-08-18T07:12:54.999999999Z" => Ok(GoTime::MAX),
        _ => Err(InvalidParam::new(
            name,
            format!("cannot parse {value:?} to a valid timestamp"),
        )),
    }
}

/// A time parameter that may be absent or empty (Prometheus's `parseTimeParam`): `default`
/// then.
pub fn parse_time_or(
    name: &str,
    value: Option<&str>,
    default: GoTime,
) -> Result<GoTime, InvalidParam> {
    match value {
        None | Some("") => Ok(default),
        Some(v) => parse_time(name, v),
    }
}

/// Go's `time.Parse(time.RFC3339Nano, s)`: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm)` with a
/// four-digit year, an upper-case `T` and `Z`, a valid date and time (no leap second), up to
/// nine fractional digits, and an offset of up to 99 hours.
fn parse_rfc3339(s: &str) -> Option<GoTime> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let mut i = 19;
    let mut nanos = 0i64;
    if matches!(b.get(i), Some(b'.' | b',')) && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        // Up to nine digits, as Go's RFC3339Nano layout reads them.
        let digits = &s[start..i];
        if digits.len() > 9 {
            return None;
        }
        let kept: String = digits
            .chars()
            .chain(std::iter::repeat('0'))
            .take(9)
            .collect();
        nanos = kept.parse().ok()?;
    }
    let offset = match b.get(i) {
        Some(b'Z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && at(i + 3, b':') => {
            let minutes = num(i + 1, 2)? * 60 + num(i + 4, 2)?;
            if sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    if !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if day < 1 || day > days_in_month[usize::try_from(month - 1).ok()?] {
        return None;
    }
    let days = rthanos_model::days_from_civil(year, month, day);
    let sec = days * 86_400 + hour * 3600 + minute * 60 + second - offset * 60;
    Some(GoTime::unix(sec, nanos))
}

/// Prometheus's `parseDuration`, in nanoseconds: a float of seconds (refused when it
/// overflows int64), or a Prometheus duration (`1h30m`).
pub fn parse_duration(name: &str, value: &str) -> Result<i64, InvalidParam> {
    if let Some(d) = go_parse_float(value) {
        let ns = d * 1e9;
        // Go compares with float64(MaxInt64), which is 2^63: 2^63 itself passes, and converts
        // to the minimum int64.
        // NaN passes, as Go's comparisons let it.
        if !ns.is_nan()
            && !(-9_223_372_036_854_775_808.0..=9_223_372_036_854_775_807.0).contains(&ns)
        {
            return Err(InvalidParam::new(
                name,
                format!("cannot parse {value:?} to a valid duration. It overflows int64"),
            ));
        }
        return Ok(go_int64(ns));
    }
    prometheus_duration(value).ok_or_else(|| {
        InvalidParam::new(name, format!("cannot parse {value:?} to a valid duration"))
    })
}

/// `model.ParseDuration` (Prometheus 2.42): `0`, or units y, w, d, h, m, s, ms in that order,
/// each at most once, within ~292 years; in nanoseconds.
fn prometheus_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut rest = s;
    let mut next_unit = 0;
    let mut total_ms: i64 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let (number, after) = rest.split_at(digits);
        // "ms" before "m": the longer unit name first.
        let (unit, mult) = UNITS[next_unit..]
            .iter()
            .enumerate()
            .filter(|(_, (u, _))| after.starts_with(u))
            .max_by_key(|(_, (u, _))| u.len())
            .map(|(k, &(u, m))| {
                next_unit += k + 1;
                (u, m)
            })?;
        let n: i64 = number.parse().unwrap_or(i64::MAX);
        total_ms = n.checked_mul(mult).and_then(|v| total_ms.checked_add(v))?;
        rest = &after[unit.len()..];
    }
    total_ms.checked_mul(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_as_go_reads_them() {
        for (s, want) in [
            ("1", Some(1.0)),
            ("-1.5", Some(-1.5)),
            ("1e3", Some(1000.0)),
            (".5", Some(0.5)),
            ("5.", Some(5.0)),
            ("1_000", Some(1000.0)),
            ("0x1p30", Some(1073741824.0)),
            ("0x1.8p1", Some(3.0)),
            ("0x_1p0", Some(1.0)),
            ("-Inf", Some(f64::NEG_INFINITY)),
            ("infinity", Some(f64::INFINITY)),
            ("1e-400", Some(0.0)),
            ("0x10", None),
            ("1__0", None),
            ("_1", None),
            ("1_", None),
            ("1e400", None),
            ("+nan", None),
            ("", None),
            (" 1", None),
            ("1e", None),
            ("abc", None),
        ] {
            let got = go_parse_float(s);
            assert_eq!(got, want, "{s:?}");
        }
        assert!(go_parse_float("NaN").is_some_and(f64::is_nan));
    }

    #[test]
    fn times_as_prometheus_reads_them() {
        let ms = |s: &str| parse_time("time", s).map(GoTime::engine_ms);
        assert_eq!(ms("1700000000.5"), Ok(1_700_000_000_500));
        assert_eq!(ms("2023-11-15T00:30:00.123456789Z"), Ok(1_700_008_200_123));
        assert_eq!(ms("2023-11-15T00:30:00+24:00"), Ok(1_699_921_800_000));
        assert_eq!(ms("-0"), Ok(0));
        for bad in [
            "2023-11-15t00:30:00z",
            "2023-11-15 00:30:00Z",
            "2023-11-15T23:59:60Z",
            "2023-02-29T00:00:00Z",
            "10000-01-01T00:00:00Z",
            "2023-11-15T00:30:00",
            "2023-11-15T00:30:00.1234567891Z",
            "1e400",
            "",
        ] {
            assert!(parse_time("time", bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_time("t", "-292273086-05-16T16:47:06Z").map(GoTime::from_time_ms),
            Ok(-9_223_309_901_257_974_000)
        );
        // NaN and floats beyond int64 become Go's minimum int64 of seconds, wrapped.
        assert_eq!(parse_time("t", "NaN"), Ok(GoTime::unix(i64::MIN, i64::MIN)));
        assert_eq!(parse_time("t", "1e19"), Ok(GoTime::unix(i64::MIN, 0)));
    }

    #[test]
    fn durations_as_prometheus_reads_them() {
        let ns = |s: &str| parse_duration("step", s);
        assert_eq!(ns("60"), Ok(60_000_000_000));
        assert_eq!(ns("1h5m"), Ok(3_900_000_000_000));
        assert_eq!(ns("1ms"), Ok(1_000_000));
        assert_eq!(ns("0"), Ok(0));
        assert_eq!(ns("NaN"), Ok(i64::MIN));
        assert_eq!(ns("9223372036.854775808"), Ok(i64::MIN));
        for bad in [
            "5m1h",
            "1.5s",
            "-15s",
            "293y",
            "1e400",
            "Inf",
            "9223372037",
            "",
            "1y1y",
        ] {
            assert!(ns(bad).is_err(), "{bad:?}");
        }
        assert_eq!(ns("292y"), Ok(292 * 365 * 86_400_000_000_000));
    }

    #[test]
    fn go_time_arithmetic_wraps_and_saturates_as_go() {
        let a = GoTime::from_millis(1000);
        let b = GoTime::from_millis(-1000);
        assert!(b.before(a));
        assert_eq!(a.since(b), 2_000_000_000);
        assert_eq!(GoTime::MAX.since(GoTime::MIN), i64::MAX);
        assert_eq!(GoTime::MIN.since(GoTime::MAX), i64::MIN);
        assert_eq!(GoTime::from_millis(-1).engine_ms(), -1);
    }
}
