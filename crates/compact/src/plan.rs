//! What to compact: blocks are grouped by external labels and resolution, and each group is
//! planned as Thanos plans it (Prometheus's leveled planner over metas): overlapping blocks
//! first; else the first range of the next level (2h → 8h → 2d → 14d) whose blocks fill it or
//! lie before the newest block, leaving out the newest block and blocks marked no-compact;
//! else a large block with more than 5% tombstones.

use std::collections::{BTreeMap, BTreeSet};

use rthanos_tsdb::BlockMeta;

/// Thanos's compaction levels, in milliseconds: 2h, 8h, 2d, 14d.
pub const DEFAULT_RANGES: [i64; 4] = [
    2 * 3_600_000,
    8 * 3_600_000,
    48 * 3_600_000,
    14 * 24 * 3_600_000,
];

/// The key of a block's compaction group as Thanos writes it: `<resolution>@<labels hash>`,
/// the hash being Prometheus's `labels.Hash` (xxhash64 of `name\xffvalue\xff…`).
pub fn group_key(meta: &BlockMeta) -> String {
    let (labels, resolution) = meta
        .thanos
        .as_ref()
        .map_or((None, 0), |t| (Some(&t.labels), t.downsample.resolution));
    let mut bytes = Vec::new();
    for (name, value) in labels.into_iter().flatten() {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0xff);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0xff);
    }
    format!("{resolution}@{}", xxhash_rust::xxh64::xxh64(&bytes, 0))
}

/// Blocks by group key, each group sorted by minimum time (then ULID).
pub fn groups<'a>(
    metas: impl IntoIterator<Item = &'a BlockMeta>,
) -> BTreeMap<String, Vec<&'a BlockMeta>> {
    let mut out: BTreeMap<String, Vec<&BlockMeta>> = BTreeMap::new();
    for meta in metas {
        out.entry(group_key(meta)).or_default().push(meta);
    }
    for blocks in out.values_mut() {
        blocks.sort_by(|a, b| a.min_time.cmp(&b.min_time).then(a.ulid.cmp(&b.ulid)));
    }
    out
}

/// The blocks of one group (sorted by minimum time) to compact into one, or none.
pub fn plan<'a>(
    ranges: &[i64],
    no_compact: &BTreeSet<String>,
    by_min_time: &[&'a BlockMeta],
) -> Vec<&'a BlockMeta> {
    let Some(newest) = by_min_time.last() else {
        return Vec::new();
    };
    let included: Vec<&BlockMeta> = by_min_time
        .iter()
        .copied()
        .filter(|m| !no_compact.contains(&m.ulid))
        .collect();
    let overlapping = overlapping(&included);
    if !overlapping.is_empty() {
        return overlapping;
    }
    // The newest block stays out: the window in which an operator may still act on it.
    let mut included = included;
    if !no_compact.contains(&newest.ulid) {
        included.pop();
    }
    let planned = select(ranges, no_compact, &by_min_time[..by_min_time.len() - 1]);
    if !planned.is_empty() {
        return planned;
    }
    // A large block with many deleted series is rewritten alone.
    let Some(&half) = ranges.get(ranges.len() / 2) else {
        return Vec::new();
    };
    for meta in included.iter().rev() {
        if meta.max_time.saturating_sub(meta.min_time) < half {
            break;
        }
        if meta.stats.num_tombstones as f64 / (meta.stats.num_series as f64 + 1.0) > 0.05 {
            return vec![meta];
        }
    }
    Vec::new()
}

/// What a group still needs, as Thanos's compaction progress reckons it: the planner is run
/// again and again, each plan's blocks replaced by one block spanning them, until it plans
/// nothing. Returns the number of compactions and of source blocks they take in.
pub fn todo(
    ranges: &[i64],
    no_compact: &BTreeSet<String>,
    by_min_time: &[&BlockMeta],
) -> (usize, usize) {
    let mut blocks: Vec<BlockMeta> = by_min_time.iter().map(|m| (*m).clone()).collect();
    let (mut compactions, mut sources) = (0, 0);
    // Each compaction takes at least one block away or rewrites one with tombstones into one
    // without; the bound only guards against a planner that would not converge.
    let bound = 2 * blocks.len() + 1;
    while compactions < bound {
        let refs: Vec<&BlockMeta> = blocks.iter().collect();
        let planned: Vec<&BlockMeta> = plan(ranges, no_compact, &refs);
        let Some(first) = planned.first() else {
            break;
        };
        compactions += 1;
        sources += planned.len();
        let mut result = (*first).clone();
        result.ulid = format!("todo-{compactions:08}");
        result.min_time = planned
            .iter()
            .map(|m| m.min_time)
            .min()
            .unwrap_or(first.min_time);
        result.max_time = planned
            .iter()
            .map(|m| m.max_time)
            .max()
            .unwrap_or(first.max_time);
        result.stats.num_tombstones = 0;
        result.compaction.level = planned
            .iter()
            .map(|m| m.compaction.level)
            .max()
            .unwrap_or(1)
            + 1;
        result.compaction.failed = false;
        let taken: BTreeSet<String> = planned.iter().map(|m| m.ulid.clone()).collect();
        blocks.retain(|b| !taken.contains(&b.ulid));
        blocks.push(result);
        blocks.sort_by(|a, b| a.min_time.cmp(&b.min_time).then(a.ulid.cmp(&b.ulid)));
    }
    (compactions, sources)
}

/// The first run of overlapping blocks (sorted by minimum time), or none.
pub fn overlapping<'a>(by_min_time: &[&'a BlockMeta]) -> Vec<&'a BlockMeta> {
    let mut out: Vec<&BlockMeta> = Vec::new();
    let Some(first) = by_min_time.first() else {
        return out;
    };
    let mut max_time = first.max_time;
    for pair in by_min_time.windows(2) {
        let (previous, meta) = (pair[0], pair[1]);
        if meta.min_time < max_time {
            if out.is_empty() {
                out.push(previous);
            }
            out.push(meta);
        } else if !out.is_empty() {
            break;
        }
        max_time = max_time.max(meta.max_time);
    }
    out
}

fn select<'a>(
    ranges: &[i64],
    no_compact: &BTreeSet<String>,
    by_min_time: &[&'a BlockMeta],
) -> Vec<&'a BlockMeta> {
    let Some(last) = by_min_time.last() else {
        return Vec::new();
    };
    let high_time = last.min_time;
    // A range of zero or less plans nothing (and would divide by zero).
    for &range in ranges.iter().skip(1).filter(|&&r| r > 0) {
        for part in split_by_range(by_min_time, range) {
            if part.iter().any(|m| m.compaction.failed) || part.len() < 2 {
                continue;
            }
            let (min, max) = (part[0].min_time, part[part.len() - 1].max_time);
            // The range is full (gaps allowed), or lies before the newest block: no block of
            // this size can still arrive in it.
            if max.saturating_sub(min) != range && max > high_time {
                continue;
            }
            // Marked blocks split the run without shifting the ranges around them.
            let mut start = 0;
            for (i, meta) in part.iter().enumerate() {
                if no_compact.contains(&meta.ulid) {
                    if i - start > 1 {
                        return part[start..i].to_vec();
                    }
                    start = i + 1;
                }
            }
            if part.len() - start > 1 {
                return part[start..].to_vec();
            }
        }
    }
    Vec::new()
}

/// Blocks split into runs that each fit one aligned range of `range` ms; blocks larger than
/// their range are left out.
fn split_by_range<'a>(by_min_time: &[&'a BlockMeta], range: i64) -> Vec<Vec<&'a BlockMeta>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < by_min_time.len() {
        let meta = by_min_time[i];
        let start = meta.min_time.div_euclid(range).saturating_mul(range);
        let end = start.saturating_add(range);
        if meta.max_time > end {
            i += 1;
            continue;
        }
        let mut run = Vec::new();
        while i < by_min_time.len() && by_min_time[i].max_time <= end {
            run.push(by_min_time[i]);
            i += 1;
        }
        if !run.is_empty() {
            out.push(run);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn meta(n: u64, min_hours: i64, max_hours: i64) -> BlockMeta {
        BlockMeta {
            ulid: ulid::Ulid::from_parts(n, 0).to_string(),
            min_time: min_hours * H,
            max_time: max_hours * H,
            version: 1,
            ..Default::default()
        }
    }

    fn planned(blocks: &[BlockMeta], no_compact: &[usize]) -> Vec<String> {
        let refs: Vec<&BlockMeta> = blocks.iter().collect();
        let marked: BTreeSet<String> = no_compact.iter().map(|&i| blocks[i].ulid.clone()).collect();
        plan(&DEFAULT_RANGES, &marked, &refs)
            .into_iter()
            .map(|m| m.ulid.clone())
            .collect()
    }

    fn ids(blocks: &[BlockMeta], which: &[usize]) -> Vec<String> {
        which.iter().map(|&i| blocks[i].ulid.clone()).collect()
    }

    #[test]
    fn levels_fill_before_they_compact() {
        // Three 2h blocks of the first 8h range, the newest one excluded: not yet.
        let b: Vec<BlockMeta> = (0..3)
            .map(|i| meta(i + 1, 2 * i as i64, 2 * i as i64 + 2))
            .collect();
        assert!(planned(&b, &[]).is_empty());
        // A fifth block opens the next range: the first four fill theirs.
        let b: Vec<BlockMeta> = (0..5)
            .map(|i| meta(i + 1, 2 * i as i64, 2 * i as i64 + 2))
            .collect();
        assert_eq!(planned(&b, &[]), ids(&b, &[0, 1, 2, 3]));
        // A gap: a run that does not fill its range waits while it holds the newest block
        // considered (the newest of all is left out first) …
        let b = vec![meta(1, 0, 2), meta(2, 2, 4), meta(3, 10, 12)];
        assert!(planned(&b, &[]).is_empty());
        // … and is compacted once a later block starts after it.
        let b = vec![
            meta(1, 0, 2),
            meta(2, 2, 4),
            meta(3, 10, 12),
            meta(4, 12, 14),
        ];
        assert_eq!(planned(&b, &[]), ids(&b, &[0, 1]));
        // Four 8h blocks and two 2h ones: the 2d range is not full, and the 8h blocks lie
        // before the newest: 8h blocks of 0-32h are compacted into 2d.
        let b = vec![
            meta(1, 0, 8),
            meta(2, 8, 16),
            meta(3, 16, 24),
            meta(4, 24, 32),
            meta(5, 48, 50),
            meta(6, 50, 52),
        ];
        assert_eq!(planned(&b, &[]), ids(&b, &[0, 1, 2, 3]));
    }

    #[test]
    fn todo_counts_every_compaction_still_ahead() {
        // 17 blocks of 2h (0-34h): four 8h compactions; the 2d range holds the newest block,
        // so it waits.
        let b: Vec<BlockMeta> = (0..17)
            .map(|i| meta(i + 1, 2 * i as i64, 2 * i as i64 + 2))
            .collect();
        let refs: Vec<&BlockMeta> = b.iter().collect();
        assert_eq!(todo(&DEFAULT_RANGES, &BTreeSet::new(), &refs), (4, 16));
        // 26 blocks of 2h (0-52h): six 8h compactions (0-48h), then one 2d of those six.
        let b: Vec<BlockMeta> = (0..26)
            .map(|i| meta(i + 1, 2 * i as i64, 2 * i as i64 + 2))
            .collect();
        let refs: Vec<&BlockMeta> = b.iter().collect();
        assert_eq!(todo(&DEFAULT_RANGES, &BTreeSet::new(), &refs), (7, 30));
        // Nothing to do, and the input left as it was.
        let refs: Vec<&BlockMeta> = b[..2].iter().collect();
        assert_eq!(todo(&DEFAULT_RANGES, &BTreeSet::new(), &refs), (0, 0));
    }

    #[test]
    fn a_single_block_or_the_newest_alone_is_left() {
        assert!(planned(&[meta(1, 0, 2)], &[]).is_empty());
        assert!(planned(&[meta(1, 0, 2), meta(2, 2, 4)], &[]).is_empty());
        assert!(planned(&[], &[]).is_empty());
    }

    #[test]
    fn overlaps_come_first() {
        let b = vec![meta(1, 0, 2), meta(2, 1, 3), meta(3, 2, 4), meta(4, 10, 12)];
        assert_eq!(planned(&b, &[]), ids(&b, &[0, 1, 2]));
        // Identical ranges (two replicas of one Prometheus) overlap too.
        let b = vec![meta(1, 0, 2), meta(2, 0, 2)];
        assert_eq!(planned(&b, &[]), ids(&b, &[0, 1]));
    }

    #[test]
    fn no_compact_marks_split_runs_without_moving_ranges() {
        let b: Vec<BlockMeta> = (0..5)
            .map(|i| meta(i + 1, 2 * i as i64, 2 * i as i64 + 2))
            .collect();
        assert_eq!(planned(&b, &[1]), ids(&b, &[2, 3]));
        assert_eq!(planned(&b, &[0]), ids(&b, &[1, 2, 3]));
        assert!(planned(&b, &[2]).len() == 2);
        // A marked overlapping block does not count as an overlap.
        let c = vec![meta(1, 0, 2), meta(2, 1, 3)];
        assert!(planned(&c, &[1]).is_empty());
    }

    #[test]
    fn tombstoned_large_blocks_are_rewritten() {
        let mut b = vec![meta(1, 0, 48), meta(2, 48, 96)];
        b[0].stats.num_series = 100;
        b[0].stats.num_tombstones = 10;
        assert_eq!(planned(&b, &[]), ids(&b, &[0]));
    }

    #[test]
    fn groups_are_resolution_and_labels() {
        let mut a = meta(1, 0, 2);
        a.thanos = Some(rthanos_tsdb::meta::ThanosMeta {
            labels: [("cluster".to_string(), "eu1".to_string())].into(),
            ..Default::default()
        });
        let mut b = a.clone();
        b.ulid = ulid::Ulid::from_parts(2, 0).to_string();
        if let Some(t) = b.thanos.as_mut() {
            t.downsample.resolution = 300_000;
        }
        let key = group_key(&a);
        assert!(key.starts_with("0@"), "{key}");
        assert!(group_key(&b).starts_with("300000@"));
        assert_eq!(groups([&a, &b]).len(), 2);
        // Prometheus's labels.Hash of {cluster="eu1"}: xxhash64 of "cluster\xffeu1\xff".
        let expected = xxhash_rust::xxh64::xxh64(b"cluster\xffeu1\xff", 0);
        assert_eq!(key, format!("0@{expected}"));
    }
}
