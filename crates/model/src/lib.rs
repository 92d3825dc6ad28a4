//! The Prometheus/Thanos data model shared by every crate: label sets and matchers, and value
//! syntaxes:
//! durations as Prometheus writes them
//! (`1h30m`, `2d`, `1y`) and byte sizes as Thanos's flags take them (`250MB`, `512MiB`). Flags,
//! `objstore.yml` and other configuration files all parse through these types, so a value copied
//! from a Thanos manifest means the same here.

pub mod gostrconv;
mod labels;
mod matcher;
pub mod regex_cache;
pub mod relabel;
mod timestamp;

pub use labels::{Label, Labels, is_valid_label_name, is_valid_metric_name, write_go_quoted};
pub use matcher::{MatchType, Matcher, MatcherError, go_regex, go_regex_refused, selector};
pub use timestamp::{TimeOrDuration, days_from_civil};

use std::fmt;
use std::str::FromStr;
use std::time::Duration as StdDuration;

/// A duration in Prometheus's syntax: units `y w d h m s ms` in that order, each at most once,
/// integer amounts (`1h30m`, `2d`, `48h`, `0`). A year is 365 days, as in Prometheus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct PromDuration(StdDuration);

/// Error for a flag value that is not in the expected syntax.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnitError {
    /// Not a Prometheus duration.
    #[error("not a valid duration string: {0:?} (examples: 30s, 5m, 1h30m, 2d, 1w, 1y)")]
    Duration(String),
    /// Not a byte size.
    #[error("not a valid size: {0:?} (examples: 512MB, 2GB, 1GiB)")]
    Size(String),
    /// Neither an RFC 3339 time nor a relative duration.
    #[error("not a valid time or duration: {0:?} (examples: 2024-01-31T00:00:00Z, -2w, -36h)")]
    Time(String),
}

const DURATION_UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

impl PromDuration {
    /// Wraps a standard duration.
    pub const fn new(d: StdDuration) -> Self {
        Self(d)
    }

    /// The duration as a standard library value.
    pub const fn as_std(self) -> StdDuration {
        self.0
    }

    /// The duration in milliseconds, the unit of TSDB timestamps.
    pub fn as_millis(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }

    /// Whether the duration is zero (Thanos uses 0 for "disabled" or "keep forever").
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl FromStr for PromDuration {
    type Err = UnitError;

    /// Parses Prometheus's syntax, and also Go's (`1.5h`, `300us`, `1h0m0s`), because some
    /// Thanos flags take Go durations: every value Thanos accepts is accepted here.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_prometheus_duration(s).or_else(|e| parse_go_duration(s).ok_or(e))
    }
}

fn parse_prometheus_duration(s: &str) -> Result<PromDuration, UnitError> {
    {
        let err = || UnitError::Duration(s.to_string());
        if s == "0" {
            return Ok(PromDuration(StdDuration::ZERO));
        }
        if s.is_empty() {
            return Err(err());
        }
        let mut rest = s;
        let mut total: u64 = 0;
        let mut next_unit = 0; // index into DURATION_UNITS: units must come in order, once each
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err());
            }
            let amount: u64 = rest[..digits].parse().map_err(|_| err())?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let pos = DURATION_UNITS[next_unit..]
                .iter()
                .position(|(name, _)| *name == unit)
                .ok_or_else(err)?;
            let (_, millis) = DURATION_UNITS[next_unit + pos];
            next_unit += pos + 1;
            total = amount
                .checked_mul(millis)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(err)?;
        }
        Ok(PromDuration(StdDuration::from_millis(total)))
    }
}

/// Go's `time.ParseDuration` for non-negative values: decimal amounts with units
/// `ns us µs ms s m h`, in any order.
fn parse_go_duration(s: &str) -> Option<PromDuration> {
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return None;
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let amount: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        nanos += amount * scale;
    }
    (nanos.is_finite() && nanos < u64::MAX as f64)
        .then(|| PromDuration(StdDuration::from_nanos(nanos as u64)))
}

impl TryFrom<String> for PromDuration {
    type Error = UnitError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for PromDuration {
    /// Formats as Prometheus does: largest units first, `0s` for zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return f.write_str("0s");
        }
        for (name, unit) in DURATION_UNITS {
            if ms >= unit {
                write!(f, "{}{}", ms / unit, name)?;
                ms %= unit;
            }
        }
        Ok(())
    }
}

/// A byte size in Thanos's flag syntax (alecthomas/units base-2 parsing): `KB`/`KiB` = 1024,
/// `MB`/`MiB` = 1024², `GB`/`GiB` = 1024³, and so on; `B` for bytes; parts may be combined
/// (`1GB512MB`) and may have a fraction (`1.5GB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(u64);

impl ByteSize {
    /// A size of `bytes` bytes.
    pub const fn new(bytes: u64) -> Self {
        Self(bytes)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

fn size_unit(unit: &str) -> Option<u64> {
    let pow = match unit {
        "B" => 0,
        "KB" | "KiB" => 1,
        "MB" | "MiB" => 2,
        "GB" | "GiB" => 3,
        "TB" | "TiB" => 4,
        "PB" | "PiB" => 5,
        "EB" | "EiB" => 6,
        _ => return None,
    };
    Some(1u64 << (10 * pow))
}

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || UnitError::Size(s.to_string());
        if s == "0" {
            return Ok(Self(0));
        }
        if s.is_empty() {
            return Err(err());
        }
        let mut rest = s;
        let mut total: f64 = 0.0;
        while !rest.is_empty() {
            let num_len = rest
                .bytes()
                .take_while(|b| b.is_ascii_digit() || *b == b'.')
                .count();
            let amount: f64 = rest[..num_len].parse().map_err(|_| err())?;
            rest = &rest[num_len..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = size_unit(&rest[..unit_len]).ok_or_else(err)?;
            rest = &rest[unit_len..];
            total += amount * unit as f64;
        }
        if !total.is_finite() || total > u64::MAX as f64 {
            return Err(err());
        }
        Ok(Self(total as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, pow) in [
            ("EiB", 6),
            ("PiB", 5),
            ("TiB", 4),
            ("GiB", 3),
            ("MiB", 2),
            ("KiB", 1),
        ] {
            let unit = 1u64 << (10 * pow);
            if self.0 >= unit && self.0 % unit == 0 {
                return write!(f, "{}{}", self.0 / unit, name);
            }
        }
        write!(f, "{}B", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dur(s: &str) -> Result<u64, UnitError> {
        s.parse::<PromDuration>()
            .map(|d| d.as_std().as_millis() as u64)
    }

    #[test]
    fn durations_in_prometheus_syntax() {
        let h = 3_600_000;
        for (text, ms) in [
            ("0", 0),
            ("30s", 30_000),
            ("5m", 300_000),
            ("48h", 48 * h),
            ("2d", 48 * h),
            ("1w", 168 * h),
            ("1y", 365 * 24 * h),
            ("1h30m", 90 * 60_000),
            ("1d2h3m4s5ms", 24 * h + 2 * h + 3 * 60_000 + 4_000 + 5),
            ("250ms", 250),
        ] {
            assert_eq!(dur(text), Ok(ms), "{text}");
        }
        // Go's syntax, which some Thanos flags take.
        assert_eq!(dur("1.5h"), Ok(90 * 60_000));
        assert_eq!(dur("1h0m0s"), Ok(h));
        assert_eq!(dur("30m1h"), Ok(h + 30 * 60_000));
        assert_eq!(dur("1500us"), Ok(1));
        for bad in ["", "5", "1h1d", "-5m", "5 m", "5M", "h", "1hm", "1.2.3s"] {
            assert!(dur(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn durations_display_like_prometheus() {
        for text in ["0s", "30s", "1h30m", "2d", "1w", "1y", "1d2h3m4s5ms"] {
            let d: PromDuration = text.parse().expect(text);
            assert_eq!(d.to_string(), text);
        }
    }

    #[test]
    fn sizes_in_thanos_syntax() {
        let mib = 1024 * 1024;
        for (text, bytes) in [
            ("0", 0),
            ("512B", 512),
            ("1KB", 1024),
            ("250MB", 250 * mib),
            ("512MiB", 512 * mib),
            ("2GB", 2048 * mib),
            ("1.5GB", 1536 * mib),
            ("1GB512MB", 1536 * mib),
        ] {
            assert_eq!(
                text.parse::<ByteSize>().map(ByteSize::bytes),
                Ok(bytes),
                "{text}"
            );
        }
        for bad in ["", "12", "2gb", "GB", "1.2.3GB", "5XB"] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad} should not parse");
        }
        assert_eq!(ByteSize::new(2048 * mib).to_string(), "2GiB");
    }
}
