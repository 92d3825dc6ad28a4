//! Arbitrary text as the HTTP API's time and duration parameters, read as Prometheus's Go code
//! reads them: an answer or an error, never a panic or an overflow; and what Go's comparison
//! and subtraction of two times give, saturated as Go's are.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rthanos_query::params::{GoTime, go_parse_float, parse_duration, parse_time, parse_time_or};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Two values: the text split at its first NUL, so that pairs of times meet.
    let (a, b) = text.split_once('\0').unwrap_or((text, ""));
    let _ = go_parse_float(a);
    let _ = parse_duration("step", a);
    if let (Ok(start), Ok(end)) = (
        parse_time("start", a),
        parse_time_or("end", Some(b), GoTime::MAX),
    ) {
        let _ = end.before(start);
        let span = end.since(start);
        if let Ok(step) = parse_duration("step", b)
            && step > 0
        {
            let _ = span / step;
        }
        let _ = (start.engine_ms(), start.from_time_ms(), end.engine_ms());
    }
});
