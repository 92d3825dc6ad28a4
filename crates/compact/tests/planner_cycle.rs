//! The compaction planner over every phase of a 14-day cycle, checked against Thanos's planner
//! rules (`pkg/compact/planner.go`, after Prometheus's leveled compactor): the newest block is
//! left out; for each level above the first (8h, 2d, 14d) the blocks are split into aligned
//! ranges, a block longer than its range belonging to none; the first range, lowest level
//! first, whose run holds more than one block and either fills the range or ends before the
//! newest block left in starts, is compacted; groups of one are skipped.
//!
//! The rules are written here a second time, over plain intervals, as the reference the
//! planner is compared with plan by plan. Histories are placed at every 2h phase of a 14d
//! range, so the ones that straddle a 14d boundary are among them: the test of the stack
//! (tests/stack.rs) relies on what this one pins down.

use std::collections::BTreeSet;

use rthanos_compact::plan::{DEFAULT_RANGES, plan};
use rthanos_tsdb::BlockMeta;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2026-12-03T00:00Z, a 14d boundary (ranges are aligned to the Unix epoch).
const CYCLE: i64 = 1_796_256_000_000;

/// A block as the reference sees it: its time range and compaction level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    min: i64,
    max: i64,
    level: u32,
}

/// Thanos's rules for blocks that neither overlap nor carry marks: the indices of the blocks
/// to compact, and the range that chose them.
fn thanos_rules(by_min_time: &[Span]) -> Option<(i64, Vec<usize>)> {
    // The newest block is left alone.
    let considered = by_min_time.len().checked_sub(1)?;
    let considered = &by_min_time[..considered];
    let high_time = considered.last()?.min;
    for &range in &DEFAULT_RANGES[1..] {
        // Runs of consecutive blocks that end inside the aligned range their first one
        // starts in.
        let mut i = 0;
        while i < considered.len() {
            let start = considered[i].min.div_euclid(range) * range;
            let end = start + range;
            if considered[i].max > end {
                i += 1;
                continue;
            }
            let run: Vec<usize> = (i..considered.len())
                .take_while(|&j| considered[j].max <= end)
                .collect();
            i += run.len();
            let (first, last) = (considered[run[0]], considered[run[run.len() - 1]]);
            let full = last.max - first.min == range;
            if run.len() > 1 && (full || last.max <= high_time) {
                return Some((range, run));
            }
        }
    }
    None
}

fn meta(id: u64, span: Span) -> BlockMeta {
    let mut meta = BlockMeta {
        ulid: ulid::Ulid::from_parts(id, 0).to_string(),
        min_time: span.min,
        max_time: span.max,
        version: 1,
        ..Default::default()
    };
    meta.compaction.level = span.level;
    meta
}

/// The planner's choice for `spans`, as indices.
fn planned(spans: &[Span]) -> Vec<usize> {
    let metas: Vec<BlockMeta> = (0..).zip(spans).map(|(i, s)| meta(i + 1, *s)).collect();
    let refs: Vec<&BlockMeta> = metas.iter().collect();
    let chosen: BTreeSet<String> = plan(&DEFAULT_RANGES, &BTreeSet::new(), &refs)
        .into_iter()
        .map(|m| m.ulid.clone())
        .collect();
    (0..spans.len())
        .filter(|&i| chosen.contains(&metas[i].ulid))
        .collect()
}

/// Compacts `spans` until nothing is planned, checking each plan against the rules: the
/// planner and the reference choose the same blocks, the newest block is never among them,
/// and the result lies inside one range of the level that chose it.
fn compact_to_the_end(mut spans: Vec<Span>, context: &str) -> Vec<Span> {
    for step in 0..spans.len() {
        let want = thanos_rules(&spans);
        let got = planned(&spans);
        let Some((range, chosen)) = want else {
            assert!(
                got.is_empty(),
                "{context}, step {step}: planned {got:?} of {spans:?}"
            );
            return spans;
        };
        assert_eq!(got, chosen, "{context}, step {step}: {spans:?}");
        assert!(chosen.len() > 1, "{context}: a group of one");
        assert!(
            !chosen.contains(&(spans.len() - 1)),
            "{context}: the newest block"
        );
        let merged = Span {
            min: spans[chosen[0]].min,
            max: spans[chosen[chosen.len() - 1]].max,
            level: chosen.iter().map(|&i| spans[i].level).max().unwrap_or(1) + 1,
        };
        let start = merged.min.div_euclid(range) * range;
        assert!(
            merged.max <= start + range,
            "{context}: {merged:?} outside its {}h range",
            range / HOUR
        );
        spans.splice(chosen[0]..=chosen[chosen.len() - 1], [merged]);
    }
    panic!("{context}: the planner does not converge");
}

/// Contiguous 2h blocks over `[from, to)`.
fn two_hour_blocks(from: i64, to: i64) -> Vec<Span> {
    (from / (2 * HOUR)..to / (2 * HOUR))
        .map(|k| Span {
            min: k * 2 * HOUR,
            max: (k + 1) * 2 * HOUR,
            level: 1,
        })
        .collect()
}

/// Blocks arriving one at a time in time order (as a sidecar ships them), the compactor
/// finishing its work after each one.
fn arriving_one_by_one(blocks: &[Span], context: &str) -> Vec<Span> {
    let mut bucket = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        bucket.push(*block);
        bucket = compact_to_the_end(bucket, &format!("{context}, block {i} arrived"));
    }
    bucket
}

fn level_and_hours(spans: &[Span], origin: i64) -> Vec<(i64, i64, u32)> {
    spans
        .iter()
        .map(|s| ((s.min - origin) / HOUR, (s.max - origin) / HOUR, s.level))
        .collect()
}

#[test]
fn cycle_starts_on_a_14d_boundary() {
    assert_eq!(CYCLE % (14 * DAY), 0);
}

/// The stack test's history, 50h before a 2d boundary and 4h after it, at each of the seven 2d
/// boundaries of a 14d cycle. Only where the 2d boundary is also a 14d one is the range before
/// it not the newest 14d range: the 2d block and the 2h block before it are then compacted
/// into one level-4 block. Everywhere else the 2d block stays at level 3.
#[test]
fn the_stack_history_at_every_2d_boundary_of_a_cycle() {
    for k in 0..7 {
        let boundary = CYCLE + k * 2 * DAY;
        let history = two_hour_blocks(boundary - 50 * HOUR, boundary + 4 * HOUR);
        let context = format!("2d boundary {k} of the cycle");
        let at_once = compact_to_the_end(history.clone(), &context);
        let one_by_one = arriving_one_by_one(&history, &context);
        let want = if k == 0 {
            vec![(-50, 0, 4), (0, 2, 1), (2, 4, 1)]
        } else {
            vec![(-50, -48, 1), (-48, 0, 3), (0, 2, 1), (2, 4, 1)]
        };
        assert_eq!(level_and_hours(&at_once, boundary), want, "{context}");
        assert_eq!(level_and_hours(&one_by_one, boundary), want, "{context}");
    }
}

/// Histories of several lengths starting at every 2h phase of a 14d cycle: every plan, all at
/// once and block by block, is the one the rules give; nothing is left that they would plan;
/// every source block ends up in exactly one block.
#[test]
fn every_phase_of_a_cycle_plans_as_the_rules() {
    for hours in [6, 30, 54, 100, 14 * 24 + 10, 16 * 24] {
        for phase in 0..14 * 12 {
            let from = CYCLE + phase * 2 * HOUR;
            let history = two_hour_blocks(from, from + hours * HOUR);
            let context = format!("{hours}h from phase {phase}");
            let end = compact_to_the_end(history.clone(), &context);
            assert_eq!(
                end.first().map(|s| s.min),
                history.first().map(|s| s.min),
                "{context}"
            );
            assert_eq!(end.last(), history.last(), "{context}: the newest block");
            for pair in end.windows(2) {
                assert_eq!(pair[0].max, pair[1].min, "{context}: a gap or an overlap");
            }
            let one_by_one = arriving_one_by_one(&history, &context);
            assert_eq!(
                one_by_one, end,
                "{context}: arrival order changed the result"
            );
            // Nothing is left that the rules would plan: no range of a level holds more than
            // one block if they end before the newest block considered starts, or fill it.
            let considered = &end[..end.len() - 1];
            let Some(high_time) = considered.last().map(|s| s.min) else {
                continue;
            };
            for &range in &DEFAULT_RANGES[1..] {
                for window in from.div_euclid(range)..=high_time.div_euclid(range) {
                    let (start, stop) = (window * range, (window + 1) * range);
                    let inside: Vec<&Span> = considered
                        .iter()
                        .filter(|s| s.min >= start && s.max <= stop)
                        .collect();
                    let (Some(first), Some(last)) = (inside.first(), inside.last()) else {
                        continue;
                    };
                    let full = first.min == start && last.max == stop;
                    assert!(
                        inside.len() <= 1 || (last.max > high_time && !full),
                        "{context}: the {}h range at {window} holds {inside:?}",
                        range / HOUR
                    );
                }
            }
        }
    }
}

/// A gap in the history: runs that do not fill their range are compacted once a later block
/// starts after them (the rule's "ends before the newest"): the 8h runs, then the 2d range
/// they share; the three blocks after the gap wait, their range holding the newest block.
#[test]
fn a_gap_across_a_14d_boundary() {
    // Six 2h blocks up to the 14d boundary, nothing for a day, then three blocks.
    let mut blocks = two_hour_blocks(CYCLE - 12 * HOUR, CYCLE);
    blocks.extend(two_hour_blocks(CYCLE + DAY, CYCLE + DAY + 6 * HOUR));
    let end = compact_to_the_end(blocks, "gap");
    assert_eq!(
        level_and_hours(&end, CYCLE),
        vec![(-12, 0, 3), (24, 26, 1), (26, 28, 1), (28, 30, 1)]
    );
}
