//! Values over a query's steps, stored only where present, and the query's sample budget.
//!
//! An instant vector over the steps of a range query is, per series, the values at the steps
//! where the series has one. A dense vector (one slot per step) makes a 30-day range over
//! short-lived series cost series × steps; Prometheus's matrices cost the present points only.
//! [`StepValues`] keeps runs of consecutive present steps, so a series present at every step
//! costs 8 bytes per step and a short-lived one only its present steps. [`Gather`] walks the
//! steps in order giving each step's present values, at a cost in the present values (not
//! series × steps), as Prometheus's range evaluation gathers one instant vector per step.
//! [`SampleBudget`] is `--query.max-samples`: the samples a query holds at once, taken before
//! they are kept.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::QueryError;

/// A series' values at the steps where it has one, in step order.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct StepValues {
    /// One per run of consecutive steps: its first step and the index of its first value.
    runs: Vec<(u32, u32)>,
    values: Vec<f64>,
    /// One past the last step with a value (0: none), so that `push` need not work it out.
    end: u32,
}

/// Two series with a value at the same step, where only one may have it.
#[derive(Debug)]
pub(crate) struct StepConflict;

impl StepValues {
    /// No values.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The number of steps with a value.
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no step has a value.
    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn run_end(&self, run: usize) -> usize {
        self.runs
            .get(run + 1)
            .map_or(self.values.len(), |&(_, at)| at as usize)
    }

    /// The last step with a value.
    pub(crate) fn last_step(&self) -> Option<usize> {
        (!self.values.is_empty()).then(|| self.end as usize - 1)
    }

    /// Adds the value at `step`, which comes after every step it has. Steps fit in `u32`: the
    /// engine refuses more steps than that before evaluating.
    pub(crate) fn push(&mut self, step: usize, v: f64) {
        debug_assert!(self.last_step().is_none_or(|last| step > last));
        let step = u32::try_from(step).unwrap_or(u32::MAX);
        if self.values.is_empty() || self.end != step {
            self.runs
                .push((step, u32::try_from(self.values.len()).unwrap_or(u32::MAX)));
        }
        self.values.push(v);
        self.end = step.saturating_add(1);
    }

    /// Adds `delta` to the value at `step` (0 if it has none), where `step` is its last step
    /// or after it.
    pub(crate) fn add_at(&mut self, step: usize, delta: f64) {
        if self.last_step() == Some(step)
            && let Some(last) = self.values.last_mut()
        {
            *last += delta;
            return;
        }
        self.push(step, delta);
    }

    /// The value at `step`.
    pub(crate) fn get(&self, step: usize) -> Option<f64> {
        let run = self
            .runs
            .partition_point(|&(first, _)| first as usize <= step)
            .checked_sub(1)?;
        let (first, at) = self.runs[run];
        let index = at as usize + (step - first as usize);
        (index < self.run_end(run)).then(|| self.values[index])
    }

    /// The steps with a value and their values, in step order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.runs
            .iter()
            .enumerate()
            .flat_map(move |(run, &(first, at))| {
                self.values[at as usize..self.run_end(run)]
                    .iter()
                    .enumerate()
                    .map(move |(i, &v)| (first as usize + i, v))
            })
    }

    /// The values, in step order.
    pub(crate) fn values_mut(&mut self) -> &mut [f64] {
        &mut self.values
    }

    /// `f` of each value (`None` drops it), keeping its step.
    pub(crate) fn filter_map(&self, mut f: impl FnMut(usize, f64) -> Option<f64>) -> StepValues {
        let mut out = StepValues::new();
        for (step, v) in self.iter() {
            if let Some(v) = f(step, v) {
                out.push(step, v);
            }
        }
        out
    }

    /// Both series' values as one; a step that both have is a conflict.
    pub(crate) fn merge(self, other: StepValues) -> Result<StepValues, StepConflict> {
        if other.is_empty() {
            return Ok(self);
        }
        if self.is_empty() {
            return Ok(other);
        }
        let mut out = StepValues::new();
        let (mut a, mut b) = (self.iter().peekable(), other.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 == y.0 => return Err(StepConflict),
                (Some(x), Some(y)) if x.0 < y.0 => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => return Ok(out),
            };
            if let Some((step, v)) = next {
                out.push(step, v);
            }
        }
    }
}

/// Values in step order, one item per step (`None`: no value at that step).
impl FromIterator<Option<f64>> for StepValues {
    fn from_iter<I: IntoIterator<Item = Option<f64>>>(iter: I) -> Self {
        let mut out = StepValues::new();
        for (step, v) in iter.into_iter().enumerate() {
            if let Some(v) = v {
                out.push(step, v);
            }
        }
        out
    }
}

/// Walks steps 0, 1, … in order, giving at each step the series (by index, in index order)
/// that have a value there. The series inside one of their runs of consecutive steps are the
/// active ones, kept in index order; a series whose run ends waits in the list of the step
/// where its next run starts. A walk costs the present values and the steps, not
/// series × steps, and a series present at consecutive steps costs a few instructions a step.
pub(crate) struct Gather<'a> {
    series: Vec<&'a StepValues>,
    /// Per series, the index (in its values) of its next value, and the end of its run.
    next_value: Vec<u32>,
    run_end: Vec<u32>,
    /// Per series, the run its next value is in.
    next_run: Vec<u32>,
    /// The series inside a run at the current step, in index order.
    active: Vec<u32>,
    /// Per step, the first series whose run starts there (`NONE`: none); `link` chains the
    /// others.
    head: Vec<u32>,
    link: Vec<u32>,
    starting: Vec<u32>,
    merged: Vec<u32>,
    step: usize,
    present: Vec<(usize, f64)>,
}

const NONE: u32 = u32::MAX;

fn index32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(NONE)
}

impl<'a> Gather<'a> {
    /// A walk over `steps` steps of `series`.
    pub(crate) fn new(series: impl IntoIterator<Item = &'a StepValues>, steps: usize) -> Self {
        let series: Vec<&StepValues> = series.into_iter().collect();
        let mut walk = Gather {
            next_value: vec![0; series.len()],
            run_end: vec![0; series.len()],
            next_run: vec![0; series.len()],
            active: Vec::new(),
            head: vec![NONE; steps],
            link: vec![NONE; series.len()],
            starting: Vec::new(),
            merged: Vec::new(),
            series,
            step: 0,
            present: Vec::new(),
        };
        for i in 0..walk.series.len() {
            walk.wait_for_run(i, 0);
        }
        walk
    }

    /// Puts series `i` in the list of the step where its run `run` starts, if it has one.
    fn wait_for_run(&mut self, i: usize, run: usize) {
        let values = self.series[i];
        let Some(&(first, at)) = values.runs.get(run) else {
            return;
        };
        self.next_run[i] = index32(run);
        self.next_value[i] = at;
        self.run_end[i] = index32(values.run_end(run));
        if let Some(head) = self.head.get_mut(first as usize) {
            self.link[i] = *head;
            *head = index32(i);
        }
    }

    /// The next step and its present values (series index, value), or `None` after the last
    /// step.
    pub(crate) fn next_step(&mut self) -> Option<(usize, &[(usize, f64)])> {
        let step = self.step;
        if step >= self.head.len() {
            return None;
        }
        self.step += 1;
        // The series whose run starts here join the active ones, in index order.
        let mut waiting = std::mem::replace(&mut self.head[step], NONE);
        if waiting != NONE {
            self.starting.clear();
            while waiting != NONE {
                self.starting.push(waiting);
                waiting = self.link[waiting as usize];
            }
            // Listed newest first: most often exactly the reverse of index order.
            self.starting.reverse();
            if !self.starting.is_sorted() {
                self.starting.sort_unstable();
            }
            self.merged.clear();
            let (mut a, mut b) = (0, 0);
            while a < self.active.len() && b < self.starting.len() {
                if self.active[a] < self.starting[b] {
                    self.merged.push(self.active[a]);
                    a += 1;
                } else {
                    self.merged.push(self.starting[b]);
                    b += 1;
                }
            }
            self.merged.extend_from_slice(&self.active[a..]);
            self.merged.extend_from_slice(&self.starting[b..]);
            std::mem::swap(&mut self.active, &mut self.merged);
        }
        // Series order, as Prometheus's vectors keep it (sums depend on the order).
        self.present.clear();
        let mut kept = 0;
        for k in 0..self.active.len() {
            let i = self.active[k] as usize;
            let at = self.next_value[i];
            self.present.push((i, self.series[i].values[at as usize]));
            if at + 1 < self.run_end[i] {
                self.next_value[i] = at + 1;
                self.active[kept] = self.active[k];
                kept += 1;
            } else {
                let run = self.next_run[i] as usize + 1;
                self.wait_for_run(i, run);
            }
        }
        self.active.truncate(kept);
        Some((step, &self.present))
    }
}

/// `--query.max-samples`: the samples a query holds at once. A node takes what it is about
/// to keep before keeping it; when a node is done, what its inputs held is given back and its
/// own result kept, as Prometheus's `currentSamples` counts.
#[derive(Debug)]
pub(crate) struct SampleBudget {
    max: usize,
    held: AtomicUsize,
}

impl SampleBudget {
    /// A budget of `max` samples.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            held: AtomicUsize::new(0),
        }
    }

    /// The samples held now.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Takes `n` more samples, or fails with Prometheus's error if that passes the limit.
    pub(crate) fn take(&self, n: usize) -> Result<(), QueryError> {
        let before = self.held.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > self.max {
            return Err(QueryError::TooManySamples("query execution"));
        }
        Ok(())
    }

    /// Gives `n` samples back (a window let go).
    pub(crate) fn give_back(&self, n: usize) {
        // Never below zero, whatever the order of takes and gives across threads.
        let _ = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                Some(h.saturating_sub(n))
            });
    }

    /// Sets what is held to `n` (a node done: `before` it plus its result), checking it.
    pub(crate) fn hold(&self, n: usize) -> Result<(), QueryError> {
        self.held.store(n, Ordering::Relaxed);
        if n > self.max {
            return Err(QueryError::TooManySamples("query execution"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dense(v: &StepValues, steps: usize) -> Vec<Option<f64>> {
        (0..steps).map(|s| v.get(s)).collect()
    }

    #[test]
    fn runs_answer_like_a_dense_vector() {
        let pattern = [
            None,
            Some(1.0),
            Some(2.0),
            None,
            None,
            Some(3.0),
            None,
            Some(4.0),
            Some(5.0),
            Some(6.0),
        ];
        let v: StepValues = pattern.iter().copied().collect();
        assert_eq!(dense(&v, pattern.len() + 3)[..pattern.len()], pattern);
        assert_eq!(v.get(pattern.len() + 2), None);
        assert_eq!(v.len(), 6);
        assert_eq!(v.last_step(), Some(9));
        assert_eq!(v.runs.len(), 3, "three runs of consecutive steps");
        let steps: Vec<usize> = v.iter().map(|(s, _)| s).collect();
        assert_eq!(steps, [1, 2, 5, 7, 8, 9]);
        let doubled = v.filter_map(|_, x| (x != 3.0).then_some(x * 2.0));
        assert_eq!(
            doubled.iter().collect::<Vec<_>>(),
            [(1, 2.0), (2, 4.0), (7, 8.0), (8, 10.0), (9, 12.0)]
        );
    }

    #[test]
    fn merge_interleaves_and_refuses_a_shared_step() {
        let a: StepValues = [Some(1.0), None, Some(3.0)].into_iter().collect();
        let b: StepValues = [None, Some(2.0), None, Some(4.0)].into_iter().collect();
        let merged = a.clone().merge(b).expect("disjoint");
        assert_eq!(
            dense(&merged, 4),
            [Some(1.0), Some(2.0), Some(3.0), Some(4.0)]
        );
        assert_eq!(merged.runs.len(), 1);
        assert!(a.clone().merge(a).is_err());
    }

    #[test]
    fn gather_gives_each_steps_values_in_series_order() {
        let series: Vec<StepValues> = vec![
            [Some(1.0), None, Some(3.0), Some(4.0)]
                .into_iter()
                .collect(),
            [None, None, None, None].into_iter().collect(),
            [Some(10.0), Some(20.0), None, Some(40.0)]
                .into_iter()
                .collect(),
        ];
        let mut walk = Gather::new(&series, 4);
        let mut seen = Vec::new();
        while let Some((step, present)) = walk.next_step() {
            seen.push((step, present.to_vec()));
        }
        assert_eq!(
            seen,
            [
                (0, vec![(0, 1.0), (2, 10.0)]),
                (1, vec![(2, 20.0)]),
                (2, vec![(0, 3.0)]),
                (3, vec![(0, 4.0), (2, 40.0)]),
            ]
        );
    }

    #[test]
    fn gather_matches_a_dense_walk_for_any_pattern() {
        let mut state = 7u64;
        let mut coin = |percent: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % 100 < percent
        };
        for percent in [0, 10, 50, 90, 100] {
            let steps = 60;
            let series: Vec<Vec<Option<f64>>> = (0..25)
                .map(|i| {
                    (0..steps)
                        .map(|s| coin(percent).then_some((i * 1000 + s) as f64))
                        .collect()
                })
                .collect();
            let sparse: Vec<StepValues> =
                series.iter().map(|d| d.iter().copied().collect()).collect();
            let mut walk = Gather::new(&sparse, steps);
            for step in 0..steps {
                let want: Vec<(usize, f64)> = series
                    .iter()
                    .enumerate()
                    .filter_map(|(i, d)| d[step].map(|v| (i, v)))
                    .collect();
                let (at, got) = walk.next_step().expect("a step");
                assert_eq!((at, got.to_vec()), (step, want), "{percent}% present");
            }
            assert!(walk.next_step().is_none());
        }
    }

    #[test]
    fn the_budget_counts_what_is_held() {
        let budget = SampleBudget::new(10);
        assert!(budget.take(6).is_ok());
        assert!(budget.take(5).is_err());
        budget.give_back(5);
        assert_eq!(budget.held(), 6);
        assert!(budget.hold(10).is_ok());
        assert!(budget.hold(11).is_err());
    }
}
