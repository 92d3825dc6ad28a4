//! Binary operators: arithmetic, comparison (with and without `bool`), set operators, and
//! vector matching (`on`, `ignoring`, `group_left`, `group_right`) with Prometheus's errors.

use std::collections::HashMap;

use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};
use rthanos_model::Labels;

use crate::context::{Ctx, StepSeries, Val, drop_name, labels_by_modifier, merge_same_labels};
use crate::engine::eval;
use crate::error::{QueryError, exec_err};
use crate::steps::{Gather, StepValues};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl Op {
    fn parse(s: &str) -> Result<Op, QueryError> {
        Ok(match s {
            "+" => Op::Add,
            "-" => Op::Sub,
            "*" => Op::Mul,
            "/" => Op::Div,
            "%" => Op::Mod,
            "^" => Op::Pow,
            "atan2" => Op::Atan2,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            "<" => Op::Lt,
            ">=" => Op::Ge,
            "<=" => Op::Le,
            "and" => Op::And,
            "or" => Op::Or,
            "unless" => Op::Unless,
            other => return exec_err(format!("unknown binary operator {other:?}")),
        })
    }

    fn is_comparison(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Gt | Op::Lt | Op::Ge | Op::Le)
    }

    /// Arithmetic results lose the metric name (not `atan2`, as in Prometheus 2.x).
    fn drops_name(self) -> bool {
        matches!(
            self,
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Mod | Op::Pow
        )
    }

    /// Prometheus's `vectorElemBinop`: the value, and whether a comparison keeps it.
    fn apply(self, l: f64, r: f64) -> (f64, bool) {
        match self {
            Op::Add => (l + r, true),
            Op::Sub => (l - r, true),
            Op::Mul => (l * r, true),
            Op::Div => (l / r, true),
            Op::Mod => (l % r, true),
            Op::Pow => (l.powf(r), true),
            Op::Atan2 => (l.atan2(r), true),
            Op::Eq => (l, l == r),
            Op::Ne => (l, l != r),
            Op::Gt => (l, l > r),
            Op::Lt => (l, l < r),
            Op::Ge => (l, l >= r),
            Op::Le => (l, l <= r),
            Op::And | Op::Or | Op::Unless => (l, true),
        }
    }
}

fn bool_value(keep: bool) -> f64 {
    if keep { 1.0 } else { 0.0 }
}

/// The labels two series are matched on: all but `__name__` when nothing is said.
fn signature(labels: &Labels, matching: &Option<LabelModifier>) -> Labels {
    matching
        .as_ref()
        .map_or_else(|| drop_name(labels), |m| labels_by_modifier(labels, m))
}

/// Evaluates a binary expression.
pub(crate) fn eval_binary(b: &BinaryExpr, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let op = Op::parse(&b.op.to_string())?;
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let lhs = eval(&b.lhs, ctx)?;
    let rhs = eval(&b.rhs, ctx)?;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(
            l.iter()
                .zip(&r)
                .map(|(&l, &r)| {
                    let (v, keep) = op.apply(l, r);
                    if op.is_comparison() {
                        bool_value(keep)
                    } else {
                        v
                    }
                })
                .collect(),
        )),
        (Val::Vector(v), Val::Scalar(s)) => vector_scalar(op, v, &s, false, return_bool),
        (Val::Scalar(s), Val::Vector(v)) => vector_scalar(op, v, &s, true, return_bool),
        (Val::Vector(l), Val::Vector(r)) => {
            let modifier = b.modifier.as_ref();
            let matching = modifier.and_then(|m| m.matching.clone());
            match op {
                Op::And | Op::Or | Op::Unless => set_op(op, l, r, &matching, ctx.steps.len()),
                _ => {
                    let card =
                        modifier.map_or(VectorMatchCardinality::OneToOne, |m| m.card.clone());
                    vector_vector(op, l, r, &matching, &card, return_bool, ctx.steps.len())
                }
            }
        }
        _ => exec_err("binary operators need scalars or instant vectors"),
    }
}

fn vector_scalar(
    op: Op,
    vector: Vec<StepSeries>,
    scalar: &[f64],
    scalar_left: bool,
    return_bool: bool,
) -> Result<Val, QueryError> {
    let drop = op.drops_name() || return_bool;
    let out = vector
        .into_iter()
        .filter_map(|s| {
            let values = s.values.filter_map(|i, v| {
                let (l, r) = if scalar_left {
                    (scalar[i], v)
                } else {
                    (v, scalar[i])
                };
                let (mut value, keep) = op.apply(l, r);
                // A comparison keeps the vector's value, whichever side it is on.
                if op.is_comparison() && scalar_left {
                    value = v;
                }
                if return_bool {
                    Some(bool_value(keep))
                } else {
                    keep.then_some(value)
                }
            });
            (!values.is_empty()).then(|| StepSeries {
                labels: if drop { drop_name(&s.labels) } else { s.labels },
                values,
            })
        })
        .collect();
    merge_same_labels(out)
}

/// `and`, `or`, `unless`, step by step: both sides are walked together, so a step costs the
/// values present at it.
fn set_op(
    op: Op,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    matching: &Option<LabelModifier>,
    steps: usize,
) -> Result<Val, QueryError> {
    let mut ids: HashMap<Labels, usize> = HashMap::new();
    let mut sig_id = |labels: &Labels| {
        let next = ids.len();
        *ids.entry(signature(labels, matching)).or_insert(next)
    };
    let lsig: Vec<usize> = lhs.iter().map(|s| sig_id(&s.labels)).collect();
    let rsig: Vec<usize> = rhs.iter().map(|s| sig_id(&s.labels)).collect();
    let mut seen = vec![usize::MAX; ids.len()];
    let mut lwalk = Gather::new(lhs.iter().map(|s| &s.values), steps);
    let mut rwalk = Gather::new(rhs.iter().map(|s| &s.values), steps);
    let out: Vec<StepSeries> = match op {
        Op::And | Op::Unless => {
            let mut kept = vec![StepValues::new(); lhs.len()];
            while let (Some((step, left)), Some((_, right))) =
                (lwalk.next_step(), rwalk.next_step())
            {
                for &(j, _) in right {
                    seen[rsig[j]] = step;
                }
                for &(i, v) in left {
                    if (seen[lsig[i]] == step) == (op == Op::And) {
                        kept[i].push(step, v);
                    }
                }
            }
            lhs.iter()
                .zip(kept)
                .map(|(s, values)| StepSeries {
                    labels: s.labels.clone(),
                    values,
                })
                .collect()
        }
        _ => {
            let mut added = vec![StepValues::new(); rhs.len()];
            while let (Some((step, left)), Some((_, right))) =
                (lwalk.next_step(), rwalk.next_step())
            {
                for &(i, _) in left {
                    seen[lsig[i]] = step;
                }
                for &(j, v) in right {
                    if seen[rsig[j]] != step {
                        added[j].push(step, v);
                    }
                }
            }
            drop((lwalk, rwalk));
            let added: Vec<StepSeries> = rhs
                .into_iter()
                .zip(added)
                .map(|(s, values)| StepSeries {
                    labels: s.labels,
                    values,
                })
                .collect();
            lhs.into_iter().chain(added).collect()
        }
    };
    // Equal labels on both sides (`x or x offset 1d`) are one series over the steps.
    merge_same_labels(out.into_iter().filter(|s| !s.values.is_empty()).collect())
}

/// The result labels of matching `many` (the side that may repeat) with `one`.
fn result_labels(
    many: &Labels,
    one: &Labels,
    op: Op,
    matching: &Option<LabelModifier>,
    card: &VectorMatchCardinality,
    return_bool: bool,
) -> Labels {
    let mut pairs: Vec<(String, String)> = many
        .iter()
        .filter(|l| !(l.name == "__name__" && (op.drops_name() || return_bool)))
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    if matches!(card, VectorMatchCardinality::OneToOne) {
        match matching {
            Some(LabelModifier::Include(on)) => {
                pairs.retain(|(n, _)| on.labels.iter().any(|o| o == n));
            }
            Some(LabelModifier::Exclude(ignoring)) => {
                pairs.retain(|(n, _)| !ignoring.labels.iter().any(|o| o == n));
            }
            None => {}
        }
    }
    if let Some(include) = card.labels() {
        for name in &include.labels {
            pairs.retain(|(n, _)| n != name);
            if let Some(v) = one.get(name)
                && !v.is_empty()
            {
                pairs.push((name.clone(), v.to_string()));
            }
        }
    }
    Labels::from_pairs(pairs)
}

fn vector_vector(
    op: Op,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    matching: &Option<LabelModifier>,
    card: &VectorMatchCardinality,
    return_bool: bool,
    steps: usize,
) -> Result<Val, QueryError> {
    // One-to-many is many-to-one with the sides swapped; values are swapped back below.
    let swapped = matches!(card, VectorMatchCardinality::OneToMany(_));
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    let mut ids: HashMap<Labels, usize> = HashMap::new();
    let mut sig_id = |labels: &Labels| {
        let next = ids.len();
        *ids.entry(signature(labels, matching)).or_insert(next)
    };
    let many_sig: Vec<usize> = many.iter().map(|s| sig_id(&s.labels)).collect();
    let one_sig: Vec<usize> = one.iter().map(|s| sig_id(&s.labels)).collect();
    // Per signature: the step it was last seen on the one side, that series and its value.
    let mut one_at = vec![(usize::MAX, 0usize, 0.0f64); ids.len()];
    let mut matched_at = vec![usize::MAX; ids.len()];
    let mut inserted: HashMap<usize, Vec<Labels>> = HashMap::new();
    let mut out_index: HashMap<(usize, usize), usize> = HashMap::new();
    let mut out: Vec<StepSeries> = Vec::new();
    let one_side = if swapped { "left" } else { "right" };
    let mut many_walk = Gather::new(many.iter().map(|s| &s.values), steps);
    let mut one_walk = Gather::new(one.iter().map(|s| &s.values), steps);
    while let (Some((step, many_present)), Some((_, one_present))) =
        (many_walk.next_step(), one_walk.next_step())
    {
        // Prometheus matches nothing, and checks nothing, at a step where a side is empty.
        if many_present.is_empty() || one_present.is_empty() {
            continue;
        }
        for &(j, ov) in one_present {
            let sig = one_sig[j];
            if one_at[sig].0 == step {
                let other = &one[one_at[sig].1];
                let matched = signature(&one[j].labels, matching);
                return exec_err(format!(
                    "found duplicate series for the match group {matched} on the {one_side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    one[j].labels, other.labels
                ));
            }
            one_at[sig] = (step, j, ov);
        }
        if matches!(
            card,
            VectorMatchCardinality::ManyToOne(_) | VectorMatchCardinality::OneToMany(_)
        ) {
            inserted.clear();
        }
        for &(i, mv) in many_present {
            let sig = many_sig[i];
            let (at, j, ov) = one_at[sig];
            if at != step {
                continue;
            }
            let (l, r) = if swapped { (ov, mv) } else { (mv, ov) };
            let (value, keep) = op.apply(l, r);
            let value = if return_bool {
                bool_value(keep)
            } else if keep {
                value
            } else {
                continue;
            };
            let idx = match out_index.get(&(i, j)) {
                Some(&idx) => idx,
                None => {
                    let labels = result_labels(
                        &many[i].labels,
                        &one[j].labels,
                        op,
                        matching,
                        card,
                        return_bool,
                    );
                    out.push(StepSeries {
                        labels,
                        values: StepValues::new(),
                    });
                    out_index.insert((i, j), out.len() - 1);
                    out.len() - 1
                }
            };
            if matches!(card, VectorMatchCardinality::OneToOne) {
                if matched_at[sig] == step {
                    return exec_err(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                    );
                }
                matched_at[sig] = step;
            } else {
                let seen = inserted.entry(sig).or_default();
                if seen.contains(&out[idx].labels) {
                    return exec_err(
                        "multiple matches for labels: grouping labels must ensure unique matches",
                    );
                }
                seen.push(out[idx].labels.clone());
            }
            out[idx].values.push(step, value);
        }
    }
    merge_same_labels(out)
}
