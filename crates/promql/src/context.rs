//! The evaluator's vocabulary: values over a query's steps ([`Val`], [`StepSeries`]), where
//! evaluation stands ([`Ctx`]: the steps, the data fetched, the deadline and the sample
//! budget), step arithmetic, and label helpers shared by the operators.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use promql_parser::parser::{AtModifier, LabelModifier, Offset, VectorSelector};
use rthanos_model::Labels;

use crate::engine::EngineOptions;
use crate::error::{QueryError, exec_err};
use crate::steps::{SampleBudget, StepValues};
use crate::value::Series;

/// A series of an instant vector over the query's steps: its values where it has one.
#[derive(Clone, Debug)]
pub(crate) struct StepSeries {
    pub(crate) labels: Labels,
    pub(crate) values: StepValues,
}

/// A value over the query's steps.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    Scalar(Vec<f64>),
    Vector(Vec<StepSeries>),
    String(String),
    /// Only as a query's result (an instant query of a range selector or a subquery).
    Matrix(Vec<Series>),
}

/// Where evaluation is: the steps, and the data fetched for each selector.
pub(crate) struct Ctx<'a> {
    pub(crate) steps: Vec<i64>,
    pub(crate) lookback: i64,
    /// Query start and end, for `@ start()` / `@ end()`.
    pub(crate) query_start: i64,
    pub(crate) query_end: i64,
    pub(crate) data: &'a HashMap<usize, Arc<Vec<Series>>>,
    pub(crate) options: &'a EngineOptions,
    pub(crate) deadline: Instant,
    /// `--query.max-samples`, shared by the whole query (and its threads).
    pub(crate) budget: &'a SampleBudget,
}

pub(crate) fn millis(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => millis(d),
        Some(Offset::Neg(d)) => -millis(d),
    }
}

pub(crate) fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => millis(&d),
        Err(e) => -millis(&e.duration()),
    }
}

impl<'a> Ctx<'a> {
    pub(crate) fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        at.as_ref().map(|at| match at {
            AtModifier::Start => self.query_start,
            AtModifier::End => self.query_end,
            AtModifier::At(t) => system_time_ms(t),
        })
    }

    pub(crate) fn check_deadline(&self) -> Result<(), QueryError> {
        if Instant::now() > self.deadline {
            return Err(QueryError::Timeout("expression evaluation"));
        }
        Ok(())
    }

    /// The data fetched for a selector node.
    pub(crate) fn series_of(&self, vs: &VectorSelector) -> &'a [Series] {
        self.data
            .get(&(vs as *const VectorSelector as usize))
            .map_or(&[], |s| s.as_slice())
    }

    pub(crate) fn with_steps(&self, steps: Vec<i64>) -> Ctx<'a> {
        Ctx {
            steps,
            lookback: self.lookback,
            query_start: self.query_start,
            query_end: self.query_end,
            data: self.data,
            options: self.options,
            deadline: self.deadline,
            budget: self.budget,
        }
    }
}

/// Subqueries step on absolute multiples of their step: the first step at or after `start`.
pub(crate) fn subquery_first_step(start: i64, step: i64) -> i64 {
    let aligned = start.div_euclid(step) * step;
    if aligned < start {
        aligned.saturating_add(step)
    } else {
        aligned
    }
}

/// Whether evaluating every `step` from `start` to `end` passes `max_samples` (a step holds at
/// least one value) or the steps that [`StepValues`] can index.
pub(crate) fn too_many_steps(start: i64, end: i64, step: i64, max_samples: usize) -> bool {
    let count = (end.saturating_sub(start) / step.max(1)).saturating_add(1);
    count > i64::try_from(max_samples).unwrap_or(i64::MAX) || count > i64::from(u32::MAX)
}

/// `start`, `start + step`, … up to `end`, without overflowing near the ends of time.
pub(crate) fn step_times(start: i64, end: i64, step: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut t = start;
    while t <= end {
        out.push(t);
        match t.checked_add(step) {
            Some(next) => t = next,
            None => break,
        }
    }
    out
}

/// The labels a `by (…)` / `on (…)` keeps (`Include`), or that a `without (…)` /
/// `ignoring (…)` leaves (`Exclude`, which also drops `__name__`).
pub(crate) fn labels_by_modifier(labels: &Labels, modifier: &LabelModifier) -> Labels {
    let kept = labels.iter().filter(|l| match modifier {
        LabelModifier::Include(names) => names.labels.contains(&l.name),
        LabelModifier::Exclude(names) => l.name != "__name__" && !names.labels.contains(&l.name),
    });
    Labels::from_sorted(kept.cloned().collect())
}

/// The labels without `__name__`.
pub(crate) fn drop_name(labels: &Labels) -> Labels {
    if labels.get("__name__").is_none() {
        return labels.clone();
    }
    Labels::from_sorted(
        labels
            .iter()
            .filter(|l| l.name != "__name__")
            .cloned()
            .collect(),
    )
}

/// A range function's (or unary minus's) series: Prometheus refuses any two with equal labels,
/// whatever their steps.
pub(crate) fn unique_labels(series: Vec<StepSeries>) -> Result<Val, QueryError> {
    let mut seen = std::collections::HashSet::with_capacity(series.len());
    for s in &series {
        if !seen.insert(&s.labels) {
            return exec_err("vector cannot contain metrics with the same labelset");
        }
    }
    Ok(Val::Vector(series))
}

/// Series with equal labels joined into one; two values at one step are Prometheus's
/// "vector cannot contain metrics with the same labelset" error.
pub(crate) fn merge_same_labels(series: Vec<StepSeries>) -> Result<Val, QueryError> {
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(series.len());
    let mut out: Vec<StepSeries> = Vec::with_capacity(series.len());
    for s in series {
        match index.get(&s.labels) {
            Some(&i) => {
                let target = &mut out[i];
                let values = std::mem::take(&mut target.values);
                target.values = values.merge(s.values).or_else(|_| {
                    exec_err("vector cannot contain metrics with the same labelset")
                })?;
            }
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    Ok(Val::Vector(out))
}
