//! `--min-time` / `--max-time` values: an RFC 3339 time, or a duration relative to now
//! (`-2w`, `-1d`, `2h45m`), as Thanos's `model.TimeOrDurationValue` takes them.

use std::fmt;
use std::str::FromStr;

use crate::{PromDuration, UnitError};

/// An absolute time or an offset from now, resolved to Unix milliseconds when used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeOrDuration {
    /// Unix milliseconds.
    Time(i64),
    /// Milliseconds relative to now (negative: in the past).
    Relative(i64),
}

impl TimeOrDuration {
    /// The earliest time Thanos's flags can name: `0000-01-01T00:00:00Z`.
    pub const MIN: TimeOrDuration = TimeOrDuration::Time(-62_167_219_200_000);
    /// The latest time Thanos's flags can name: `9999-12-31T23:59:59Z`.
    pub const MAX: TimeOrDuration = TimeOrDuration::Time(253_402_300_799_000);

    /// Unix milliseconds, with relative values taken from `now_ms`.
    pub fn resolve(self, now_ms: i64) -> i64 {
        match self {
            TimeOrDuration::Time(t) => t,
            TimeOrDuration::Relative(d) => now_ms.saturating_add(d),
        }
    }
}

impl FromStr for TimeOrDuration {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(ms) = parse_rfc3339(s) {
            return Ok(TimeOrDuration::Time(ms));
        }
        let (negative, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let d: PromDuration = body.parse().map_err(|_| UnitError::Time(s.to_string()))?;
        let ms = d.as_millis();
        Ok(TimeOrDuration::Relative(if negative { -ms } else { ms }))
    }
}

impl fmt::Display for TimeOrDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TimeOrDuration::Time(ms) => write!(f, "{}", format_rfc3339(ms)),
            TimeOrDuration::Relative(ms) if ms < 0 => {
                let d = PromDuration::new(std::time::Duration::from_millis(ms.unsigned_abs()));
                write!(f, "-{d}")
            }
            TimeOrDuration::Relative(ms) => {
                write!(
                    f,
                    "{}",
                    PromDuration::new(std::time::Duration::from_millis(ms as u64))
                )
            }
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]` to Unix milliseconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &frac[..digits.min(3)]);
        millis = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && &rest[3..4] == ":" =>
        {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (rest.get(1..3)?.parse::<i64>().ok()? * 60
                + rest.get(4..6)?.parse::<i64>().ok()?)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(secs * 1000 + millis)
}

fn format_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let base = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    match ms.rem_euclid(1000) {
        0 => format!("{base}Z"),
        frac => format!("{base}.{frac:03}Z"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_times() {
        let t = |s: &str| s.parse::<TimeOrDuration>().expect(s);
        assert_eq!(t("1970-01-01T00:00:00Z"), TimeOrDuration::Time(0));
        assert_eq!(
            t("2024-02-29T12:30:15.5Z"),
            TimeOrDuration::Time(1_709_209_815_500)
        );
        assert_eq!(
            t("2024-02-29T14:30:15.500+02:00"),
            TimeOrDuration::Time(1_709_209_815_500)
        );
        assert_eq!(t("0000-01-01T00:00:00Z"), TimeOrDuration::MIN);
        assert_eq!(t("9999-12-31T23:59:59Z"), TimeOrDuration::MAX);
        assert_eq!(TimeOrDuration::MIN.to_string(), "0000-01-01T00:00:00Z");
        assert_eq!(
            TimeOrDuration::Time(1_709_209_815_500).to_string(),
            "2024-02-29T12:30:15.500Z"
        );
    }

    #[test]
    fn relative_times() {
        let t = |s: &str| s.parse::<TimeOrDuration>().expect(s);
        assert_eq!(t("-2w"), TimeOrDuration::Relative(-14 * 86_400_000));
        assert_eq!(t("2h45m"), TimeOrDuration::Relative(165 * 60_000));
        assert_eq!(t("-1d").resolve(86_400_000), 0);
        assert_eq!(t("-2w").to_string(), "-2w");
        for bad in ["", "yesterday", "2024-13-01T00:00:00Z", "--1d"] {
            assert!(bad.parse::<TimeOrDuration>().is_err(), "{bad}");
        }
    }
}
