//! When a group is evaluated: Prometheus 2.42's slotting (`Group.EvalTimestamp` in
//! `rules/manager.go`). Each group has a fixed offset within its interval, the hash of its
//! name and file modulo the interval, so that groups spread over the interval and a
//! restarted ruler, or a second replica with the same files, evaluates at the same instants
//! and writes the same timestamps.

use std::time::Duration;

/// Prometheus's label-set hash of `{file="<file>", name="<name>"}`: xxHash64 of each label's
/// name and value in name order, each followed by 0xff.
fn group_hash(name: &str, file: &str) -> u64 {
    let mut bytes = Vec::with_capacity(name.len() + file.len() + 12);
    for (n, v) in [("file", file), ("name", name)] {
        bytes.extend_from_slice(n.as_bytes());
        bytes.push(0xff);
        bytes.extend_from_slice(v.as_bytes());
        bytes.push(0xff);
    }
    xxhash_rust::xxh64::xxh64(&bytes, 0)
}

/// The group's offset within its interval, in nanoseconds.
pub fn offset_nanos(name: &str, file: &str, interval: Duration) -> i64 {
    let interval = interval_nanos(interval);
    (group_hash(name, file) % interval as u64) as i64
}

fn interval_nanos(interval: Duration) -> i64 {
    i64::try_from(interval.as_nanos())
        .unwrap_or(i64::MAX)
        .max(1)
}

/// The evaluation time of the group's slot at or before `now_nanos` (Unix nanoseconds):
/// the timestamp its rules' results carry.
pub fn eval_timestamp_nanos(name: &str, file: &str, interval: Duration, now_nanos: i64) -> i64 {
    let step = interval_nanos(interval);
    let offset = offset_nanos(name, file, interval);
    let adjusted = now_nanos.saturating_sub(offset);
    adjusted - adjusted.rem_euclid(step) + offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_the_offset_past_each_interval() {
        let interval = Duration::from_secs(60);
        let offset = offset_nanos("g", "/rules/a.yml", interval);
        assert!((0..60_000_000_000).contains(&offset));
        let slot = eval_timestamp_nanos("g", "/rules/a.yml", interval, 1_700_000_000_000_000_000);
        assert!(slot <= 1_700_000_000_000_000_000);
        assert!(1_700_000_000_000_000_000 - slot < 60_000_000_000);
        assert_eq!((slot - offset).rem_euclid(60_000_000_000), 0);
        // Every instant of a slot maps to it.
        assert_eq!(
            eval_timestamp_nanos("g", "/rules/a.yml", interval, slot + 59_999_999_999),
            slot
        );
        assert_eq!(
            eval_timestamp_nanos("g", "/rules/a.yml", interval, slot),
            slot
        );
        // Another group, another offset.
        assert_ne!(offset_nanos("h", "/rules/a.yml", interval), offset);
    }

    /// xxHash64 (seed 0) of the empty input, a known value, so the hash is the one Go's
    /// `cespare/xxhash` gives.
    #[test]
    fn the_hash_is_xxhash64() {
        assert_eq!(xxhash_rust::xxh64::xxh64(b"", 0), 0xef46_db37_51d8_e999);
    }
}
