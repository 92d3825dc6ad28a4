//! Aggregations (`sum by (…)`, `topk`, …) and `histogram_quantile`, which groups like one.

use std::collections::HashMap;

use promql_parser::parser::{AggregateExpr, LabelModifier};
use rthanos_model::Labels;

use crate::context::{Ctx, StepSeries, Val, drop_name, labels_by_modifier};
use crate::engine::eval;
use crate::error::{QueryError, exec_err};
use crate::quantile::quantile;
use crate::steps::{Gather, StepValues};
use crate::value::format_value;

/// The labels a series is grouped by.
fn group_labels(labels: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    modifier
        .as_ref()
        .map_or_else(Labels::default, |m| labels_by_modifier(labels, m))
}

#[derive(Clone, Copy)]
struct Acc {
    value: f64,
    mean: f64,
    count: f64,
}

/// Adds `v` to a group's accumulator at one step, as Prometheus's aggregation does.
fn accumulate(op: &str, slot: &mut Option<Acc>, v: f64) {
    let Some(a) = slot else {
        *slot = Some(Acc {
            value: if op == "stddev" || op == "stdvar" {
                0.0
            } else {
                v
            },
            mean: v,
            count: 1.0,
        });
        return;
    };
    a.count += 1.0;
    match op {
        "sum" => a.value += v,
        "max" if (a.value < v || a.value.is_nan()) => a.value = v,
        "min" if (a.value > v || a.value.is_nan()) => a.value = v,
        "avg" => {
            if a.mean.is_infinite() {
                if v.is_infinite() && (a.mean > 0.0) == (v > 0.0) {
                    return;
                }
                if !v.is_infinite() && !v.is_nan() {
                    return;
                }
            }
            a.mean += v / a.count - a.mean / a.count;
        }
        "stddev" | "stdvar" => {
            let delta = v - a.mean;
            a.mean += delta / a.count;
            a.value += delta * (v - a.mean);
        }
        _ => {}
    }
}

/// A group's value at one step from its accumulator.
fn finish(op: &str, a: &Acc) -> f64 {
    match op {
        "avg" => a.mean,
        "count" => a.count,
        "group" => 1.0,
        "stdvar" => a.value / a.count,
        "stddev" => (a.value / a.count).sqrt(),
        _ => a.value,
    }
}

/// Step by step, each group's values at the step (in series order) turned into the group's
/// value by `f`: memory for one step's values, whatever the number of groups and steps.
fn per_group_and_step(
    input: &[StepSeries],
    member: &[usize],
    groups: usize,
    steps: usize,
    mut f: impl FnMut(usize, &mut [f64]) -> f64,
) -> Vec<StepValues> {
    let mut out = vec![StepValues::new(); groups];
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); groups];
    let mut touched: Vec<usize> = Vec::new();
    let mut walk = Gather::new(input.iter().map(|s| &s.values), steps);
    while let Some((step, present)) = walk.next_step() {
        for &(i, v) in present {
            let g = member[i];
            if values[g].is_empty() {
                touched.push(g);
            }
            values[g].push(v);
        }
        for &g in &touched {
            out[g].push(step, f(step, &mut values[g]));
            values[g].clear();
        }
        touched.clear();
    }
    out
}

/// The groups with their values over the steps.
fn grouped(groups: Vec<Labels>, values: Vec<StepValues>) -> Val {
    Val::Vector(
        groups
            .into_iter()
            .zip(values)
            .map(|(labels, values)| StepSeries { labels, values })
            .collect(),
    )
}

/// Evaluates an aggregation.
pub(crate) fn eval_aggregate(a: &AggregateExpr, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let op = a.op.to_string();
    let n = ctx.steps.len();
    let param = match &a.param {
        Some(p) => Some(eval(p, ctx)?),
        None => None,
    };
    let Val::Vector(input) = eval(&a.expr, ctx)? else {
        return exec_err(format!("expected an instant vector in {op} aggregation"));
    };
    // Groups: each input series belongs to one, whatever the step.
    let mut group_index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<Labels> = Vec::new();
    let mut member: Vec<usize> = Vec::with_capacity(input.len());
    for s in &input {
        let key = group_labels(&s.labels, &a.modifier);
        let g = *group_index.entry(key.clone()).or_insert_with(|| {
            groups.push(key);
            groups.len() - 1
        });
        member.push(g);
    }
    let scalar_param = |what: &str| -> Result<Vec<f64>, QueryError> {
        match &param {
            Some(Val::Scalar(v)) => Ok(v.clone()),
            _ => exec_err(format!("expected a scalar parameter for {what}")),
        }
    };
    match op.as_str() {
        "topk" | "bottomk" => {
            let k = scalar_param(&op)?;
            let top = op == "topk";
            let mut kept = vec![StepValues::new(); input.len()];
            // An instant query keeps Prometheus's order: groups as first seen, each best first.
            let mut selection_order: Vec<usize> = Vec::new();
            let mut heaps: Vec<ValueHeap> = Vec::new();
            let mut heap_of: Vec<Option<usize>> = vec![None; groups.len()];
            let mut walk = Gather::new(input.iter().map(|s| &s.values), n);
            while let Some((step, present)) = walk.next_step() {
                let k = k[step];
                // Prometheus's `convertibleToInt64`: up to the largest float below 2^63.
                if k.is_nan()
                    || !(-9_223_372_036_854_775_808.0..=9_223_372_036_854_774_784.0).contains(&k)
                {
                    return exec_err(format!("Scalar value {} overflows int64", format_value(k)));
                }
                if k < 1.0 {
                    continue;
                }
                let k = if k > 1e15 { usize::MAX } else { k as usize };
                heaps.clear();
                heap_of.iter_mut().for_each(|h| *h = None);
                for &(i, v) in present {
                    let h = *heap_of[member[i]].get_or_insert_with(|| {
                        heaps.push(ValueHeap::new(top));
                        heaps.len() - 1
                    });
                    heaps[h].offer(k, i, v);
                }
                for heap in &mut heaps {
                    for (i, v) in heap.best_first() {
                        kept[i].push(step, v);
                        if n == 1 {
                            selection_order.push(i);
                        }
                    }
                }
            }
            let series_order: Vec<usize> = if n == 1 {
                selection_order
            } else {
                (0..input.len()).collect()
            };
            let mut kept: Vec<Option<StepValues>> = kept.into_iter().map(Some).collect();
            let out = series_order
                .into_iter()
                .filter_map(|i| {
                    let values = kept[i].take()?;
                    (!values.is_empty()).then(|| StepSeries {
                        labels: input[i].labels.clone(),
                        values,
                    })
                })
                .collect();
            Ok(Val::Vector(out))
        }
        "count_values" => {
            let Some(Val::String(label)) = &param else {
                return exec_err("expected a string parameter for count_values");
            };
            if !label
                .chars()
                .enumerate()
                .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
                || label.is_empty()
            {
                return exec_err(format!("invalid label name {label:?}"));
            }
            // `without` removes its labels after the value label is set, that one too.
            let removed =
                matches!(&a.modifier, Some(LabelModifier::Exclude(l)) if l.labels.contains(label));
            let mut index: HashMap<Labels, usize> = HashMap::new();
            let mut out: Vec<StepSeries> = Vec::new();
            let mut walk = Gather::new(input.iter().map(|s| &s.values), n);
            while let Some((step, present)) = walk.next_step() {
                for &(i, v) in present {
                    let mut pairs: Vec<(String, String)> = groups[member[i]]
                        .iter()
                        .filter(|l| l.name != *label)
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect();
                    if !removed {
                        pairs.push((label.clone(), format_value(v)));
                    }
                    let labels = Labels::from_pairs(pairs);
                    let idx = *index.entry(labels.clone()).or_insert_with(|| {
                        out.push(StepSeries {
                            labels,
                            values: StepValues::new(),
                        });
                        out.len() - 1
                    });
                    out[idx].values.add_at(step, 1.0);
                }
            }
            Ok(Val::Vector(out))
        }
        "quantile" => {
            let q = scalar_param("quantile")?;
            let out = per_group_and_step(&input, &member, groups.len(), n, |step, values| {
                quantile(q[step], values)
            });
            Ok(grouped(groups, out))
        }
        "sum" | "avg" | "count" | "min" | "max" | "group" | "stddev" | "stdvar" => {
            let present: usize = input.iter().map(|s| s.values.len()).sum();
            let out = if groups.len().saturating_mul(n) <= present {
                // Few groups: an accumulator per group and step costs no more than the input
                // holds, and series by series is the fastest walk.
                let mut acc: Vec<Option<Acc>> = vec![None; groups.len() * n];
                for (i, s) in input.iter().enumerate() {
                    let row = &mut acc[member[i] * n..(member[i] + 1) * n];
                    for (step, v) in s.values.iter() {
                        accumulate(&op, &mut row[step], v);
                    }
                }
                acc.chunks(n.max(1))
                    .map(|row| {
                        let mut values = StepValues::new();
                        for (step, a) in row.iter().enumerate() {
                            if let Some(a) = a {
                                values.push(step, finish(&op, a));
                            }
                        }
                        values
                    })
                    .collect()
            } else {
                // Many groups (`sum by (pod)` over short-lived pods): step by step, holding
                // the values of one step.
                per_group_and_step(&input, &member, groups.len(), n, |_, values| {
                    let mut acc = None;
                    for &v in values.iter() {
                        accumulate(&op, &mut acc, v);
                    }
                    acc.map_or(f64::NAN, |a| finish(&op, &a))
                })
            };
            Ok(grouped(groups, out))
        }
        other => exec_err(format!("unknown aggregation {other}")),
    }
}

/// `histogram_quantile(φ, buckets)` over classic histograms: series grouped by their labels
/// without `le`, per step; the result drops the metric name (two metrics' buckets with equal
/// other labels are then Prometheus's duplicate-labelset error).
pub(crate) fn histogram_quantile(
    q: &[f64],
    input: &[StepSeries],
    n: usize,
) -> Result<Val, QueryError> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    for (i, s) in input.iter().enumerate() {
        let Some(le) = s.labels.get("le") else {
            continue;
        };
        let Ok(upper) = parse_go_float(le) else {
            continue;
        };
        let key = Labels::from_sorted(
            s.labels
                .iter()
                .filter(|l| l.name != "le")
                .cloned()
                .collect(),
        );
        let g = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push((upper, i));
    }
    let mut group_of: Vec<Option<(usize, f64)>> = vec![None; input.len()];
    for (g, (_, members)) in groups.iter().enumerate() {
        for &(upper, i) in members {
            group_of[i] = Some((g, upper));
        }
    }
    let mut out = vec![StepValues::new(); groups.len()];
    let mut buckets: Vec<Vec<(f64, f64)>> = vec![Vec::new(); groups.len()];
    let mut touched: Vec<usize> = Vec::new();
    let mut walk = Gather::new(input.iter().map(|s| &s.values), n);
    while let Some((step, present)) = walk.next_step() {
        for &(i, count) in present {
            let Some((g, upper)) = group_of[i] else {
                continue;
            };
            if buckets[g].is_empty() {
                touched.push(g);
            }
            buckets[g].push((upper, count));
        }
        for &g in &touched {
            out[g].push(
                step,
                bucket_quantile(q[step], std::mem::take(&mut buckets[g])),
            );
        }
        touched.clear();
    }
    let out = groups
        .into_iter()
        .zip(out)
        .map(|((labels, _), values)| StepSeries {
            labels: drop_name(&labels),
            values,
        })
        .collect();
    crate::context::merge_same_labels(out)
}

/// Go's `strconv.ParseFloat` for bucket bounds (`+Inf`, `1e3`, …).
fn parse_go_float(s: &str) -> Result<f64, ()> {
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "+inf" | "inf" | "+infinity" | "infinity" => Ok(f64::INFINITY),
        "-inf" | "-infinity" => Ok(f64::NEG_INFINITY),
        "nan" => Ok(f64::NAN),
        _ => s.parse::<f64>().map_err(|_| ()),
    }
}

/// Prometheus 2.42's `bucketQuantile`.
fn bucket_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce buckets with the same bound.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for (upper, count) in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == upper => last.1 += count,
            _ => merged.push((upper, count)),
        }
    }
    // Counts must not decrease.
    let mut max = f64::NEG_INFINITY;
    for b in &mut merged {
        if b.1 > max {
            max = b.1;
        } else if b.1 < max {
            b.1 = max;
        }
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    // As Go's sort.Search on `count >= rank` (false for a NaN count).
    let b = merged[..merged.len() - 1]
        .partition_point(|b| b.1.partial_cmp(&rank).is_none_or(|o| o.is_lt()));
    if b == merged.len() - 1 {
        return merged[merged.len() - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// A group's `topk` / `bottomk` selection at one step, kept exactly as Prometheus 2.42 keeps
/// it: Go's `container/heap` over its value heaps (lowest on top for topk, highest for
/// bottomk, NaN always on top), so that ties are settled as Prometheus settles them.
struct ValueHeap {
    items: Vec<(usize, f64)>,
    top: bool,
}

impl ValueHeap {
    fn new(top: bool) -> ValueHeap {
        ValueHeap {
            items: Vec::new(),
            top,
        }
    }

    /// `vectorByValueHeap.Less` (topk) or `vectorByReverseValueHeap.Less` (bottomk).
    fn less(&self, i: usize, j: usize) -> bool {
        let (a, b) = (self.items[i].1, self.items[j].1);
        a.is_nan() || if self.top { a < b } else { a > b }
    }

    fn up(&mut self, mut j: usize) {
        while j > 0 {
            let parent = (j - 1) / 2;
            if !self.less(j, parent) {
                break;
            }
            self.items.swap(parent, j);
            j = parent;
        }
    }

    fn down(&mut self, mut i: usize, n: usize) {
        loop {
            let left = 2 * i + 1;
            if left >= n {
                break;
            }
            let mut j = left;
            if left + 1 < n && self.less(left + 1, left) {
                j = left + 1;
            }
            if !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            i = j;
        }
    }

    /// Series `i` with value `v` offered to a selection of `k`, as Prometheus's aggregation
    /// loop does.
    fn offer(&mut self, k: usize, i: usize, v: f64) {
        let Some(&(_, worst)) = self.items.first() else {
            self.items.push((i, v));
            return;
        };
        let better = if self.top { worst < v } else { worst > v };
        if self.items.len() < k || better || worst.is_nan() {
            if self.items.len() == k {
                if k == 1 {
                    self.items[0] = (i, v);
                    return;
                }
                // heap.Pop: the top swapped to the end, sifted, removed.
                let last = self.items.len() - 1;
                self.items.swap(0, last);
                self.down(0, last);
                self.items.pop();
            }
            self.items.push((i, v));
            self.up(self.items.len() - 1);
        }
    }

    /// The selection best first: `sort.Sort(sort.Reverse(heap))`. Go sorts up to 12 elements
    /// by insertion, which keeps ties in heap order; so does this, for any length (a larger
    /// k with ties may order them otherwise than Go's pdqsort).
    fn best_first(&mut self) -> impl Iterator<Item = (usize, f64)> + '_ {
        for i in 1..self.items.len() {
            let mut j = i;
            while j > 0 && self.less(j - 1, j) {
                self.items.swap(j, j - 1);
                j -= 1;
            }
        }
        self.items.drain(..)
    }
}
