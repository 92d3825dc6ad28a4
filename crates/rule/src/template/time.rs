//! `*time.Time` values (what `toTime` returns): Go's `Time.String()`, `Format` with Go's
//! reference-time layouts, and the few methods a template may call. Times are UTC, as
//! Prometheus makes them.

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::value::Value;

fn to_datetime(ns: i128) -> Option<DateTime<Utc>> {
    let secs = i64::try_from(ns.div_euclid(1_000_000_000)).ok()?;
    let nanos = u32::try_from(ns.rem_euclid(1_000_000_000)).ok()?;
    DateTime::from_timestamp(secs, nanos)
}

/// Go's `Time.String()` for a UTC time: `2006-01-02 15:04:05.999999999 +0000 UTC`.
pub(crate) fn go_time_string(ns: i128) -> String {
    format_layout(ns, "2006-01-02 15:04:05.999999999 -0700 MST")
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// `Time.Format(layout)` for a UTC time.
pub(crate) fn format_layout(ns: i128, layout: &str) -> String {
    let Some(t) = to_datetime(ns) else {
        return format!("<time {ns}ns out of range>");
    };
    let mut out = String::new();
    let mut rest = layout;
    let month = t.month0() as usize;
    let weekday = t.weekday().num_days_from_sunday() as usize;
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    while !rest.is_empty() {
        // Longest tokens first, as Go's nextStdChunk distinguishes them.
        let tokens: &[(&str, String)] = &[
            ("January", MONTHS[month].to_string()),
            ("Jan", MONTHS[month][..3].to_string()),
            ("Monday", DAYS[weekday].to_string()),
            ("Mon", DAYS[weekday][..3].to_string()),
            ("MST", "UTC".to_string()),
            ("2006", format!("{:04}", t.year())),
            ("-07:00:00", "+00:00:00".to_string()),
            ("-0700", "+0000".to_string()),
            ("-07:00", "+00:00".to_string()),
            ("-07", "+00".to_string()),
            ("Z07:00:00", "Z".to_string()),
            ("Z07:00", "Z".to_string()),
            ("Z0700", "Z".to_string()),
            ("Z07", "Z".to_string()),
            ("002", format!("{:03}", t.ordinal())),
            ("01", format!("{:02}", t.month())),
            ("02", format!("{:02}", t.day())),
            ("_2", format!("{:>2}", t.day())),
            ("03", format!("{hour12:02}")),
            ("04", format!("{:02}", t.minute())),
            ("05", format!("{:02}", t.second())),
            ("06", format!("{:02}", t.year().rem_euclid(100))),
            ("15", format!("{:02}", t.hour())),
            ("PM", if t.hour() >= 12 { "PM" } else { "AM" }.to_string()),
            ("pm", if t.hour() >= 12 { "pm" } else { "am" }.to_string()),
            ("1", t.month().to_string()),
            ("2", t.day().to_string()),
            ("3", hour12.to_string()),
            ("4", t.minute().to_string()),
            ("5", t.second().to_string()),
        ];
        if let Some(frac) = fraction_token(rest) {
            // A fraction follows a seconds field: `.000` keeps zeros, `.999` trims them.
            let digits = frac.len() - 1;
            let nanos = format!("{:09}", t.nanosecond());
            let mut f = nanos[..digits.min(9)].to_string();
            if frac.as_bytes()[1] == b'9' {
                f = f.trim_end_matches('0').to_string();
                if !f.is_empty() {
                    out.push(frac.as_bytes()[0] as char);
                    out.push_str(&f);
                }
            } else {
                out.push(frac.as_bytes()[0] as char);
                out.push_str(&f);
            }
            rest = &rest[frac.len()..];
            continue;
        }
        if let Some((tok, val)) = tokens.iter().find(|(tok, _)| rest.starts_with(tok)) {
            out.push_str(val);
            rest = &rest[tok.len()..];
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// `.000`, `,999` and the like, when not followed by another digit.
fn fraction_token(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    if b.len() < 2 || !(b[0] == b'.' || b[0] == b',') || !(b[1] == b'0' || b[1] == b'9') {
        return None;
    }
    let d = b[1];
    let n = b[1..].iter().take_while(|&&c| c == d).count();
    if b.get(1 + n).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some(&s[..1 + n])
}

/// The methods of `*time.Time` a template may call, with how many arguments they take.
pub(crate) fn method_arity(name: &str) -> Option<usize> {
    Some(match name {
        "Format" => 1,
        "Unix" | "UnixMilli" | "UnixMicro" | "UnixNano" | "Year" | "YearDay" | "Day" | "Hour"
        | "Minute" | "Second" | "Nanosecond" | "String" | "UTC" | "Local" | "Month" | "Weekday"
        | "IsZero" => 0,
        _ => return None,
    })
}

/// Calls a `*time.Time` method (the arity is checked already).
pub(crate) fn call_method(ns: i128, name: &str, args: &[Value]) -> Value {
    let t = to_datetime(ns);
    let int = |f: &dyn Fn(&DateTime<Utc>) -> i64| Value::Int(t.as_ref().map_or(0, f));
    match name {
        "Format" => Value::str(&format_layout(
            ns,
            args.first().and_then(Value::as_str).unwrap_or(""),
        )),
        "Unix" => Value::Int(ns.div_euclid(1_000_000_000) as i64),
        "UnixMilli" => Value::Int(ns.div_euclid(1_000_000) as i64),
        "UnixMicro" => Value::Int(ns.div_euclid(1_000) as i64),
        "UnixNano" => Value::Int(ns as i64),
        "Year" => int(&|t| i64::from(t.year())),
        "YearDay" => int(&|t| i64::from(t.ordinal())),
        "Day" => int(&|t| i64::from(t.day())),
        "Hour" => int(&|t| i64::from(t.hour())),
        "Minute" => int(&|t| i64::from(t.minute())),
        "Second" => int(&|t| i64::from(t.second())),
        "Nanosecond" => int(&|t| i64::from(t.nanosecond())),
        "Month" => Value::str(t.map_or("", |t| MONTHS[t.month0() as usize])),
        "Weekday" => {
            Value::str(t.map_or("", |t| DAYS[t.weekday().num_days_from_sunday() as usize]))
        }
        "IsZero" => Value::Bool(ns == -62_135_596_800_000_000_000),
        "UTC" | "Local" => Value::Time(Some(ns)),
        _ => Value::str(&go_time_string(ns)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_like_go() {
        assert_eq!(go_time_string(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            go_time_string(1_435_065_584_128_000_000),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(
            go_time_string(-1_500_000_000),
            "1969-12-31 23:59:58.5 +0000 UTC"
        );
        assert_eq!(
            format_layout(0, "Jan 2, 2006 at 3:04pm (MST)"),
            "Jan 1, 1970 at 12:00am (UTC)"
        );
        assert_eq!(format_layout(1_500_000_000, "15:04:05.000"), "00:00:01.500");
    }
}
