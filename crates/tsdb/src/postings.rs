//! Operations on postings lists (ascending series IDs): intersection, union, difference, and
//! the selection of series by label matchers with Prometheus's optimisations.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rthanos_model::{MatchType, Matcher};

use crate::TsdbError;

/// Series IDs in every list. Starts from the shortest list and gallops through the others,
/// so a selective matcher keeps the cost low however long the other lists are.
pub fn intersect(mut lists: Vec<Vec<u64>>) -> Vec<u64> {
    if lists.is_empty() {
        return Vec::new();
    }
    lists.sort_by_key(Vec::len);
    let mut result = lists.swap_remove(0);
    for other in &lists {
        if result.is_empty() {
            break;
        }
        let mut rest: &[u64] = other;
        result.retain(|&id| {
            let i = gallop(rest, id);
            rest = &rest[i..];
            rest.first() == Some(&id)
        });
    }
    result
}

/// Whether two ascending lists share an ID (without building their intersection).
pub fn intersects(a: &[u64], b: &[u64]) -> bool {
    let (short, mut long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short.iter().any(|&id| {
        let i = gallop(long, id);
        long = &long[i..];
        long.first() == Some(&id)
    })
}

/// Index of the first element ≥ `target` in ascending `list`: exponential then binary search,
/// cheap when the answer is near the front (as it is while walking two lists together).
fn gallop(list: &[u64], target: u64) -> usize {
    let mut bound = 1;
    while bound < list.len() && list[bound] < target {
        bound *= 2;
    }
    let lo = bound / 2;
    let hi = bound.min(list.len());
    lo + list[lo..hi].partition_point(|&x| x < target)
}

/// Series IDs in any list, ascending, without duplicates (k-way merge).
pub fn union(lists: Vec<Vec<u64>>) -> Vec<u64> {
    match lists.len() {
        0 => return Vec::new(),
        1 => return lists.into_iter().next().unwrap_or_default(),
        _ => {}
    }
    let total: usize = lists.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(total);
    let mut heap: BinaryHeap<Reverse<(u64, usize, usize)>> = lists
        .iter()
        .enumerate()
        .filter_map(|(l, list)| list.first().map(|&id| Reverse((id, l, 0))))
        .collect();
    while let Some(Reverse((id, l, i))) = heap.pop() {
        if out.last() != Some(&id) {
            out.push(id);
        }
        if let Some(&next) = lists[l].get(i + 1) {
            heap.push(Reverse((next, l, i + 1)));
        }
    }
    out
}

/// Series IDs of `from` that are not in `remove`.
pub fn subtract(mut from: Vec<u64>, remove: &[u64]) -> Vec<u64> {
    let mut rest = remove;
    from.retain(|&id| {
        let i = gallop(rest, id);
        rest = &rest[i..];
        rest.first() != Some(&id)
    });
    from
}

/// What an index offers to select series: label values and postings lists.
pub trait PostingsSource {
    /// Values of label `name`, sorted.
    fn label_values(&self, name: &str) -> Vec<&str>;
    /// Series IDs with `name="value"`.
    fn postings(&self, name: &str, value: &str) -> Result<Vec<u64>, TsdbError>;
}

/// Series IDs matching every matcher, as Prometheus's `PostingsForMatchers` selects them:
/// a matcher that also matches the empty string (`l=""`, `l!="x"`, `l=~".*"`, `l!~"x"`) also
/// selects series without the label, so it is applied by removing the series it rejects;
/// `=~".*"` is skipped; literal alternations (`a|b|c`) are looked up, not scanned.
pub fn select(index: &impl PostingsSource, matchers: &[Matcher]) -> Result<Vec<u64>, TsdbError> {
    let mut keep: Vec<Vec<u64>> = Vec::new();
    let mut remove: Vec<Vec<u64>> = Vec::new();
    for m in matchers {
        if m.matches_everything() {
            continue;
        }
        let matches_empty = m.matches("");
        let negative = matches!(m.kind, MatchType::NotEqual | MatchType::NotRegex);
        match (negative, matches_empty) {
            // l!="x", l!~"x": remove the series whose value the positive form accepts.
            (true, true) => remove.push(postings_for(index, &m.inverse())?),
            // l!="", l!~".*" style: keep the series with a value the matcher accepts.
            (true, false) => keep.push(postings_for(index, m)?),
            // l="", l=~"|a": remove the series with a value the matcher rejects.
            (false, true) => remove.push(postings_for(index, &m.inverse())?),
            // l="a", l=~"a.+": keep the series with an accepted value.
            (false, false) => keep.push(postings_for(index, m)?),
        }
    }
    let base = if keep.is_empty() {
        index.postings("", "")?
    } else {
        intersect(keep)
    };
    if remove.is_empty() {
        return Ok(base);
    }
    Ok(subtract(base, &union(remove)))
}

/// Series with a (non-empty) value of `m.name` that `m` accepts.
fn postings_for(index: &impl PostingsSource, m: &Matcher) -> Result<Vec<u64>, TsdbError> {
    let values: Vec<&str> = match m.set_matches() {
        Some(set) => set,
        None => index
            .label_values(&m.name)
            .into_iter()
            .filter(|v| m.matches(v))
            .collect(),
    };
    let mut lists = Vec::with_capacity(values.len());
    for value in values {
        if value.is_empty() {
            continue; // stored series never carry an empty value
        }
        lists.push(index.postings(&m.name, value)?);
    }
    Ok(union(lists))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        assert_eq!(
            intersect(vec![
                vec![1, 3, 5, 7, 9],
                vec![3, 4, 5, 9, 10],
                vec![0, 3, 9]
            ]),
            vec![3, 9]
        );
        assert_eq!(intersect(vec![vec![1, 2], vec![]]), Vec::<u64>::new());
        assert_eq!(
            union(vec![vec![1, 5], vec![2, 5, 8], vec![], vec![0]]),
            vec![0, 1, 2, 5, 8]
        );
        assert_eq!(subtract(vec![1, 2, 3, 4, 5], &[2, 4, 6]), vec![1, 3, 5]);
        let long: Vec<u64> = (0..10_000).map(|x| x * 3).collect();
        assert_eq!(
            intersect(vec![long.clone(), vec![3, 29_997, 30_000]]),
            vec![3, 29_997]
        );
        assert_eq!(subtract(long.clone(), &long), Vec::<u64>::new());
        assert!(intersects(&long, &[4, 5, 6]));
        assert!(!intersects(&[1, 2, 4], &long[1..2]));
    }
}
