//! Where the engine reads series from.

use rthanos_model::{Labels, Matcher};

use crate::value::{Sample, Series};

/// A storage failure, passed to the caller as the query's error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StorageError(pub String);

/// What the engine will do with the series it asks for (Prometheus's `SelectHints`): stores
/// may use it to send less (downsampled data, sharding), and must send at least the samples
/// of [start, end].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelectHints {
    /// First sample time needed (ms).
    pub start: i64,
    /// Last sample time needed (ms).
    pub end: i64,
    /// Query step (ms); 0 for an instant query.
    pub step: i64,
    /// Range of the matrix selector (ms), 0 for an instant vector.
    pub range: i64,
    /// The function or aggregation around the selection, if any.
    pub func: Option<crate::SelectFunc>,
    /// Labels of the enclosing aggregation.
    pub grouping: Vec<String>,
    /// Whether `grouping` is a `by` (else `without`).
    pub by: bool,
}

/// A source of series.
#[async_trait::async_trait]
pub trait Queryable: Send + Sync {
    /// Series matching every matcher, with their samples in [hints.start, hints.end] (more is
    /// allowed), sorted by labels.
    async fn select(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<Vec<Series>, StorageError>;
}

/// Series held in memory (tests, and the engine's own conformance runner).
#[derive(Clone, Debug, Default)]
pub struct MemoryStorage {
    series: Vec<Series>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds samples to the series `labels` (created if new); samples must come in time order.
    pub fn append(&mut self, labels: Labels, samples: impl IntoIterator<Item = Sample>) {
        let index = match self.series.binary_search_by(|s| s.labels.cmp(&labels)) {
            Ok(i) => i,
            Err(i) => {
                self.series.insert(i, Series::new(labels, Vec::new()));
                i
            }
        };
        self.series[index].samples.extend(samples);
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.series.clear();
    }
}

#[async_trait::async_trait]
impl Queryable for MemoryStorage {
    async fn select(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<Vec<Series>, StorageError> {
        Ok(self
            .series
            .iter()
            .filter(|s| {
                matchers
                    .iter()
                    .all(|m| m.matches(s.labels.get(&m.name).unwrap_or("")))
            })
            .map(|s| {
                Series::new(
                    s.labels.clone(),
                    s.samples
                        .iter()
                        .filter(|p| p.t >= hints.start && p.t <= hints.end)
                        .copied()
                        .collect(),
                )
            })
            .filter(|s| !s.samples.is_empty())
            .collect())
    }
}
