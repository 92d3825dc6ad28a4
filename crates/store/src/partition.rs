//! Coalescing byte ranges into fewer, larger reads: ranges closer than a gap are fetched as
//! one, as Thanos's partitioner does (object stores charge per request, and a request costs
//! more than a few extra bytes between neighbours).

use std::ops::Range;

/// The gap under which neighbouring ranges are read together. Thanos uses 512 KiB; with it,
/// a selective query reads the postings lists lying between the ones it needs (7× the chunk
/// bytes it returns in benches/store.rs). 16 KiB costs a few more requests there and reads
/// 1.6× (docs/performance.md); broad queries, whose ranges touch, read the same either way.
pub const MAX_GAP: u64 = 16 * 1024;

/// One read: its range, and the indexes (into the input) of the ranges it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// Bytes to read.
    pub range: Range<u64>,
    /// Which input ranges it serves.
    pub members: Vec<usize>,
}

/// Groups `ranges` (any order, may overlap) into reads, merging those within `max_gap` of
/// each other.
pub fn partition(ranges: &[Range<u64>], max_gap: u64) -> Vec<Part> {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&i| (ranges[i].start, ranges[i].end));
    let mut parts: Vec<Part> = Vec::new();
    for i in order {
        let r = &ranges[i];
        match parts.last_mut() {
            Some(last) if r.start <= last.range.end.saturating_add(max_gap) => {
                last.range.end = last.range.end.max(r.end);
                last.members.push(i);
            }
            _ => parts.push(Part {
                range: r.clone(),
                members: vec![i],
            }),
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_ranges_are_read_together() {
        let parts = partition(&[100..200, 0..10, 205..300, 10_000..10_010], 10);
        assert_eq!(
            parts,
            vec![
                Part {
                    range: 0..10,
                    members: vec![1]
                },
                Part {
                    range: 100..300,
                    members: vec![0, 2]
                },
                Part {
                    range: 10_000..10_010,
                    members: vec![3]
                },
            ]
        );
        assert!(partition(&[], 10).is_empty());
        // Overlapping and contained ranges.
        let parts = partition(&[0..100, 50..60, 90..120], 0);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].range, 0..120);
    }
}
