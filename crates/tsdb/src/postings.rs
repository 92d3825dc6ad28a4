//! Operations on postings lists (ascending series IDs): intersection, union, difference, and
//! the selection of series by label matchers with Prometheus's optimisations. Lists read from
//! an index stay encoded (big-endian 32-bit IDs) and are searched in place: intersecting a
//! short list with a huge one costs the short one's length times a few seeks, not a decode of
//! the huge one.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rthanos_model::Matcher;

use crate::TsdbError;

/// A postings list: series IDs, ascending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Postings<'a> {
    /// Entries as stored in an index: big-endian 32-bit IDs (CRC already checked).
    Encoded(&'a [u8]),
    /// Decoded IDs.
    Decoded(Vec<u64>),
}

impl<'a> Postings<'a> {
    /// Number of IDs.
    pub fn len(&self) -> usize {
        match self {
            Postings::Encoded(b) => b.len() / 4,
            Postings::Decoded(v) => v.len(),
        }
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ID at position `i` (`i < len()`).
    #[inline]
    fn get(&self, i: usize) -> u64 {
        match self {
            Postings::Encoded(b) => {
                let e = &b[i * 4..i * 4 + 4];
                u64::from(u32::from_be_bytes([e[0], e[1], e[2], e[3]]))
            }
            Postings::Decoded(v) => v[i],
        }
    }

    /// Position of the first ID ≥ `target` at or after `from`: exponential then binary
    /// search, cheap when the answer is near `from` (as it is while walking lists together).
    fn seek(&self, from: usize, target: u64) -> usize {
        let len = self.len();
        let mut step = 1;
        let mut lo = from;
        let mut hi = from;
        while hi < len && self.get(hi) < target {
            lo = hi + 1;
            hi = from + step;
            step *= 2;
        }
        let mut hi = hi.min(len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid) < target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Whether `id` is in the list, searching from `*from` and moving it forward.
    #[inline]
    fn contains_from(&self, from: &mut usize, id: u64) -> bool {
        *from = self.seek(*from, id);
        *from < self.len() && self.get(*from) == id
    }

    /// The IDs, decoded.
    pub fn into_vec(self) -> Vec<u64> {
        match self {
            Postings::Decoded(v) => v,
            // Straight over the bytes, so the loop vectorises wherever it is inlined.
            Postings::Encoded(bytes) => bytes
                .chunks_exact(4)
                .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        }
    }
}

/// Series IDs in every list. The shortest list drives; the others are only searched.
pub fn intersect(mut lists: Vec<Postings<'_>>) -> Vec<u64> {
    if lists.is_empty() {
        return Vec::new();
    }
    lists.sort_by_key(Postings::len);
    let mut result = lists.swap_remove(0).into_vec();
    for other in &lists {
        if result.is_empty() {
            break;
        }
        let mut at = 0;
        result.retain(|&id| other.contains_from(&mut at, id));
    }
    result
}

/// Whether two lists share an ID (without building their intersection).
pub fn intersects(a: &Postings<'_>, b: &Postings<'_>) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut at = 0;
    (0..short.len()).any(|i| long.contains_from(&mut at, short.get(i)))
}

/// Series IDs in any list, ascending, without duplicates (k-way merge). A single list is
/// returned as it is, still encoded.
pub fn union(mut lists: Vec<Postings<'_>>) -> Postings<'_> {
    match lists.len() {
        0 => return Postings::Decoded(Vec::new()),
        1 => return lists.swap_remove(0),
        _ => {}
    }
    let total: usize = lists.iter().map(Postings::len).sum();
    let mut out = Vec::with_capacity(total);
    let mut heap: BinaryHeap<Reverse<(u64, usize, usize)>> = lists
        .iter()
        .enumerate()
        .filter(|(_, list)| !list.is_empty())
        .map(|(l, list)| Reverse((list.get(0), l, 0)))
        .collect();
    while let Some(Reverse((id, l, i))) = heap.pop() {
        if out.last() != Some(&id) {
            out.push(id);
        }
        if i + 1 < lists[l].len() {
            heap.push(Reverse((lists[l].get(i + 1), l, i + 1)));
        }
    }
    Postings::Decoded(out)
}

/// Series IDs of `from` that are not in `remove`.
pub fn subtract(mut from: Vec<u64>, remove: &Postings<'_>) -> Vec<u64> {
    let mut at = 0;
    from.retain(|&id| !remove.contains_from(&mut at, id));
    from
}

/// What an index offers to select series: label values and postings lists.
pub trait PostingsSource {
    /// Values of label `name`, sorted.
    fn label_values(&self, name: &str) -> Vec<&str>;
    /// Series IDs with `name="value"`.
    fn postings(&self, name: &str, value: &str) -> Result<Postings<'_>, TsdbError>;
}

/// A postings list by its label: name and value; `("", "")` is the list of all series.
pub type PostingsKey = (String, String);

/// How [`select`] finds the series matching some matchers, as Prometheus's
/// `PostingsForMatchers` does: which postings lists it reads, and how it combines them. A
/// store gateway makes the plan from its index-header, fetches [`SelectPlan::keys`] from the
/// bucket in one go, then [`SelectPlan::execute`]s it.
///
/// A matcher that also matches the empty string (`l=""`, `l!="x"`, `l=~".*"`, `l!~"x"`) also
/// selects series without the label, so it is applied by removing the series it rejects;
/// `=~".*"` is skipped; literal alternations (`a|b|c`) are looked up, not scanned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelectPlan {
    /// Lists to intersect, each the union of its keys.
    keep: Vec<Vec<PostingsKey>>,
    /// Lists to subtract, each the union of its keys.
    remove: Vec<Vec<PostingsKey>>,
}

impl SelectPlan {
    /// The plan for `matchers`, given the sorted values of each label name.
    pub fn new<'v>(
        label_values: impl Fn(&str) -> Vec<&'v str>,
        matchers: &[Matcher],
    ) -> SelectPlan {
        let mut plan = SelectPlan::default();
        for m in matchers {
            if m.matches_everything() {
                continue;
            }
            let matches_empty = m.matches("");
            // Series with a value of the (possibly inverted) matcher's name that it accepts.
            let keys = |m: &Matcher| -> Vec<PostingsKey> {
                let values: Vec<&str> = match m.set_matches() {
                    Some(set) => set,
                    None => label_values(&m.name)
                        .into_iter()
                        .filter(|v| m.matches(v))
                        .collect(),
                };
                values
                    .into_iter()
                    // Stored series never carry an empty value.
                    .filter(|v| !v.is_empty())
                    .map(|v| (m.name.clone(), v.to_string()))
                    .collect()
            };
            if matches_empty {
                // l!="x", l!~"x", l="", l=~"|a": remove the series the matcher rejects.
                plan.remove.push(keys(&m.inverse()));
            } else {
                // l="a", l=~"a.+", l!="", l!~".*": keep the series it accepts.
                plan.keep.push(keys(m));
            }
        }
        plan
    }

    /// Every postings list the plan reads.
    pub fn keys(&self) -> Vec<PostingsKey> {
        let mut keys: Vec<PostingsKey> = self
            .keep
            .iter()
            .chain(&self.remove)
            .flatten()
            .cloned()
            .collect();
        if self.keep.is_empty() {
            keys.push((String::new(), String::new()));
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// The matching series IDs, ascending, reading lists through `postings`.
    pub fn execute<'a>(
        &self,
        postings: impl Fn(&str, &str) -> Result<Postings<'a>, TsdbError>,
    ) -> Result<Vec<u64>, TsdbError> {
        let union_of = |keys: &[PostingsKey]| -> Result<Postings<'a>, TsdbError> {
            let lists = keys
                .iter()
                .map(|(name, value)| postings(name, value))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(union(lists))
        };
        let base = if self.keep.is_empty() {
            postings("", "")?.into_vec()
        } else {
            intersect(
                self.keep
                    .iter()
                    .map(|keys| union_of(keys))
                    .collect::<Result<_, _>>()?,
            )
        };
        if self.remove.is_empty() {
            return Ok(base);
        }
        let remove = self
            .remove
            .iter()
            .map(|keys| union_of(keys))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(subtract(base, &union(remove)))
    }
}

/// Series IDs matching every matcher (see [`SelectPlan`]).
pub fn select(index: &impl PostingsSource, matchers: &[Matcher]) -> Result<Vec<u64>, TsdbError> {
    SelectPlan::new(|name| index.label_values(name), matchers).execute(|n, v| index.postings(n, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ids: &[u64]) -> Postings<'static> {
        Postings::Decoded(ids.to_vec())
    }

    fn encoded(ids: &[u64]) -> Vec<u8> {
        ids.iter()
            .flat_map(|&id| (id as u32).to_be_bytes())
            .collect()
    }

    #[test]
    fn set_operations() {
        assert_eq!(
            intersect(vec![
                d(&[1, 3, 5, 7, 9]),
                d(&[3, 4, 5, 9, 10]),
                d(&[0, 3, 9])
            ]),
            vec![3, 9]
        );
        assert_eq!(intersect(vec![d(&[1, 2]), d(&[])]), Vec::<u64>::new());
        assert_eq!(
            union(vec![d(&[1, 5]), d(&[2, 5, 8]), d(&[]), d(&[0])]).into_vec(),
            vec![0, 1, 2, 5, 8]
        );
        assert_eq!(subtract(vec![1, 2, 3, 4, 5], &d(&[2, 4, 6])), vec![1, 3, 5]);
        let long: Vec<u64> = (0..10_000).map(|x| x * 3).collect();
        let bytes = encoded(&long);
        let raw = Postings::Encoded(&bytes);
        assert_eq!(raw.len(), long.len());
        assert_eq!(
            intersect(vec![raw.clone(), d(&[3, 29_997, 30_000])]),
            vec![3, 29_997]
        );
        assert_eq!(subtract(long.clone(), &raw), Vec::<u64>::new());
        assert!(intersects(&raw, &d(&[4, 5, 6])));
        assert!(!intersects(&d(&[1, 2, 4]), &d(&[3])));
        assert_eq!(union(vec![raw.clone()]), raw);
        assert_eq!(raw.clone().into_vec(), long);
        for target in [0, 1, 3, 4, 29_997, 29_998, 40_000] {
            let want = long.partition_point(|&x| x < target);
            assert_eq!(raw.seek(0, target), want, "{target}");
            assert_eq!(
                raw.seek(want.saturating_sub(1), target),
                want,
                "{target} from near"
            );
        }
    }
}
