//! Range windows: the samples of each series that a matrix selector or a subquery gives each
//! step, decoded only as far as the last step needs. A subquery's windows come from
//! evaluating its expression over its own steps (the one way back into the evaluator).

use std::borrow::Cow;

use promql_parser::parser::{SubqueryExpr, VectorSelector};
use rthanos_model::Labels;

use crate::context::{
    Ctx, Val, millis, offset_ms, step_times, subquery_first_step, too_many_steps,
};
use crate::engine::eval;
use crate::error::{QueryError, exec_err};
use crate::storage::StorageError;
use crate::value::{Sample, Series, is_stale};

/// The first and last reference times of `steps` (each step, or the @ time, less the
/// offset): the span a selector's samples are read for; `None` without steps.
pub(crate) fn reference_span(steps: &[i64], at: Option<i64>, offset: i64) -> Option<(i64, i64)> {
    let reference = |step: i64| at.unwrap_or(step).saturating_sub(offset);
    Some((reference(*steps.first()?), reference(*steps.last()?)))
}

/// Where a series' windows end: at each step (or at the @ time), less the offset; each window
/// spans `range` back from its end.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WindowEnds {
    pub(crate) at: Option<i64>,
    pub(crate) offset: i64,
    pub(crate) range: i64,
}

/// A range argument's series: its samples are loaded (chunks decoded) only when the series is
/// evaluated, so a query holds one decoded series per thread, not all of them.
pub(crate) struct Windows<'a> {
    pub(crate) labels: Labels,
    source: WindowSource<'a>,
    ends: WindowEnds,
}

enum WindowSource<'a> {
    Stored(&'a Series),
    Owned(Vec<Sample>),
}

/// A series' samples with the steps whose window holds some (`samples[from..to]`): windows
/// overlap, so they index one copy of the data.
pub(crate) struct Loaded<'s> {
    samples: Cow<'s, [Sample]>,
    /// (step index, from, to) of each step whose window is not empty, in step order.
    bounds: Vec<(u32, u32, u32)>,
}

impl Loaded<'_> {
    /// The steps whose window holds samples, and those samples, in step order.
    pub(crate) fn windows(&self) -> impl Iterator<Item = (usize, &[Sample])> + '_ {
        self.bounds
            .iter()
            .map(|&(step, from, to)| (step as usize, &self.samples[from as usize..to as usize]))
    }

    /// The most samples any one window holds.
    pub(crate) fn largest_window(&self) -> usize {
        self.bounds
            .iter()
            .map(|&(_, from, to)| (to - from) as usize)
            .max()
            .unwrap_or(0)
    }
}

impl Windows<'_> {
    /// The samples (staleness markers left out) and each step's window.
    pub(crate) fn load(&self, steps: &[i64]) -> Result<Loaded<'_>, QueryError> {
        let WindowEnds { at, offset, range } = self.ends;
        let samples: Cow<'_, [Sample]> = match &self.source {
            WindowSource::Owned(samples) => Cow::Borrowed(samples),
            WindowSource::Stored(series) => {
                // Only the samples some window holds.
                let (first, last) = reference_span(steps, at, offset).unwrap_or((0, -1));
                let all = series_samples(series, first.saturating_sub(range), last)?;
                if all.iter().any(|s| is_stale(s.v)) {
                    Cow::Owned(all.iter().filter(|s| !is_stale(s.v)).copied().collect())
                } else {
                    all
                }
            }
        };
        let bounds = window_bounds(
            &samples,
            steps,
            |step| at.unwrap_or(step).saturating_sub(offset),
            range,
        );
        Ok(Loaded { samples, bounds })
    }
}

/// A stored series' samples, its chunks decoded.
pub(crate) fn series_samples(
    series: &Series,
    min_t: i64,
    max_t: i64,
) -> Result<Cow<'_, [Sample]>, QueryError> {
    series
        .samples_between(min_t, max_t)
        .map_err(|e| QueryError::Storage(StorageError(e)))
}

/// A range selector's windows: samples in [t - range, t] after offset and @, staleness
/// markers left out.
pub(crate) fn matrix_windows<'a>(
    vs: &VectorSelector,
    range: i64,
    ctx: &Ctx<'a>,
) -> Result<Vec<Windows<'a>>, QueryError> {
    let ends = WindowEnds {
        at: ctx.at_ms(&vs.at),
        offset: offset_ms(&vs.offset),
        range,
    };
    Ok(ctx
        .series_of(vs)
        .iter()
        .map(|series| Windows {
            labels: series.labels.clone(),
            source: WindowSource::Stored(series),
            ends,
        })
        .collect())
}

/// The steps whose window [end(step) - range, end(step)] holds samples, with the index range
/// of those samples. Window ends never go back (steps increase; with @ they stay put), so two
/// cursors walk the samples once, and steps before the next sample's window are skipped: a
/// short-lived series costs its samples, not the query's steps.
fn window_bounds(
    samples: &[Sample],
    steps: &[i64],
    end: impl Fn(i64) -> i64,
    range: i64,
) -> Vec<(u32, u32, u32)> {
    let index = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
    // At most one window per step; the bounds live while one series is evaluated.
    let mut out = Vec::with_capacity(steps.len());
    let (mut from, mut to) = (0usize, 0usize);
    let mut i = 0usize;
    while i < steps.len() {
        let hi = end(steps[i]);
        let lo = hi.saturating_sub(range);
        while from < samples.len() && samples[from].t < lo {
            from += 1;
        }
        let Some(next) = samples.get(from) else { break };
        to = to.max(from);
        while to < samples.len() && samples[to].t <= hi {
            to += 1;
        }
        if to > from {
            out.push((index(i), index(from), index(to)));
            i += 1;
        } else {
            // The next sample is after this window: skip to the first window that reaches it.
            i += 1 + steps[i + 1..].partition_point(|&step| end(step) < next.t);
        }
    }
    out
}

/// A subquery's windows: the inner expression evaluated every subquery step over the range,
/// then, per outer step, the points in [t - range, t].
pub(crate) fn subquery_windows<'a>(
    sq: &SubqueryExpr,
    ctx: &Ctx<'a>,
) -> Result<Vec<Windows<'a>>, QueryError> {
    let offset = offset_ms(&sq.offset);
    let at = ctx.at_ms(&sq.at);
    let range = millis(&sq.range);
    let step = sq
        .step
        .as_ref()
        .map_or(millis(&ctx.options.default_subquery_step), millis)
        .max(1);
    let (first_end, last_end) = match at {
        Some(t) => (t.saturating_sub(offset), t.saturating_sub(offset)),
        None => (
            ctx.steps
                .first()
                .copied()
                .unwrap_or(0)
                .saturating_sub(offset),
            ctx.steps
                .last()
                .copied()
                .unwrap_or(0)
                .saturating_sub(offset),
        ),
    };
    let start = subquery_first_step(first_end.saturating_sub(range), step);
    // Every inner step holds at least a scalar's value: refuse before allocating them.
    let held = ctx.budget.held();
    if too_many_steps(
        start,
        last_end,
        step,
        ctx.options.max_samples.saturating_sub(held),
    ) {
        return Err(QueryError::TooManySamples("query execution"));
    }
    let inner_steps = step_times(start, last_end, step);
    let inner = eval(&sq.expr, &ctx.with_steps(inner_steps.clone()))?;
    let series: Vec<(Labels, Vec<Sample>)> = match inner {
        Val::Vector(series) => series
            .into_iter()
            .map(|s| {
                let samples = s
                    .values
                    .iter()
                    .map(|(i, v)| Sample {
                        t: inner_steps[i],
                        v,
                    })
                    .collect();
                (s.labels, samples)
            })
            .collect(),
        Val::Scalar(values) => vec![(
            Labels::default(),
            inner_steps
                .iter()
                .zip(values)
                .map(|(&t, v)| Sample { t, v })
                .collect(),
        )],
        _ => return exec_err("subquery is only allowed on instant vector or scalar"),
    };
    let ends = WindowEnds { at, offset, range };
    Ok(series
        .into_iter()
        .map(|(labels, samples)| Windows {
            labels,
            source: WindowSource::Owned(samples),
            ends,
        })
        .collect())
}
