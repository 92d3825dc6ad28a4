//! Putting a store's series back in order after constant labels are added or removed.
//!
//! Prometheus and TSDB blocks sort series by their own labels. Adding a block's or a
//! Prometheus's external labels (or dropping replica labels) can change the order of series
//! that share their first own label, never of two series whose first own labels differ.
//! [`Reorder`] therefore holds one run of series with equal first own label (in practice one
//! metric), sorts it, and lets it go when the next run starts: a stream stays sorted with a
//! bounded buffer, never the whole answer.

use std::collections::HashSet;

use crate::merge::compare_labels;
use crate::thanos::{self, Series};

/// Sorts runs of series that share their first own label (see the module doc): Prometheus
/// sorts by a series' own labels, and two series whose first own labels differ keep their
/// order whatever constant labels are added to or removed from both. `reorder` is false when
/// no external label is added, so Prometheus's order stands.
pub struct Reorder<T = Series> {
    reorder: bool,
    /// Names of the external labels: not a series' own labels.
    external: HashSet<String>,
    run: Vec<T>,
    run_key: Option<Option<thanos::Label>>,
}

/// What [`Reorder`] orders: anything with a series' final labels (a series, or a series
/// entry whose chunks are yet to be read).
pub trait Labeled {
    /// The final labels, sorted by name.
    fn labels(&self) -> &[thanos::Label];
}

impl Labeled for Series {
    fn labels(&self) -> &[thanos::Label] {
        &self.labels
    }
}

impl<T: Labeled> Reorder<T> {
    /// A reorderer; with `reorder` false, series pass as they come. `external` names the
    /// labels that are not a series' own.
    pub fn new(reorder: bool, external: HashSet<String>) -> Self {
        Self {
            reorder,
            external,
            run: Vec::new(),
            run_key: None,
        }
    }

    /// Takes one series; returns the series now ready to go, in order.
    pub fn push(&mut self, series: T) -> Vec<T> {
        if !self.reorder {
            return vec![series];
        }
        let key = series
            .labels()
            .iter()
            .find(|l| !self.external.contains(&l.name))
            .cloned();
        let mut ready = Vec::new();
        if self.run_key.as_ref().is_some_and(|k| *k != key) {
            ready = self.flush();
        }
        self.run_key = Some(key);
        self.run.push(series);
        ready
    }

    /// The series held, sorted; call at the end of the stream.
    pub fn flush(&mut self) -> Vec<T> {
        // Stable: frames of one series stay in their order.
        self.run
            .sort_by(|a, b| compare_labels(a.labels(), b.labels()));
        self.run_key = None;
        std::mem::take(&mut self.run)
    }
}
