//! A recording rule's results (Prometheus 2.42's `RecordingRule.Eval`): each series of the
//! expression's result renamed to the rule's name, the rule's labels set over its own (an
//! empty value removes the label); two series that end up alike are an error, as are more
//! than the group's limit. And the staleness of recorded series (`Group.Eval`): a series
//! recorded at the previous evaluation and not at this one gets a staleness marker.

use std::collections::{BTreeMap, HashSet};

use rthanos_model::Labels;

/// Why a recording rule's evaluation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Two series give the same recorded series.
    #[error("vector contains metrics with the same labelset after applying rule labels")]
    DuplicateLabels,
    /// More series than the group's `limit`.
    #[error("exceeded limit of {limit} with {series} series")]
    Limit {
        /// The group's limit.
        limit: usize,
        /// Series produced.
        series: usize,
    },
}

/// The recorded series of `result` for the rule `name` with `labels`.
///
/// # Errors
/// Two series end up with the same labels, or there are more than `limit` (0: no limit).
pub fn record(
    name: &str,
    labels: &BTreeMap<String, String>,
    result: &[(Labels, f64)],
    limit: usize,
) -> Result<Vec<(Labels, f64)>, RecordError> {
    let mut out = Vec::with_capacity(result.len());
    let mut seen = HashSet::with_capacity(result.len());
    for (series, value) in result {
        let mut pairs: Vec<(&str, &str)> = series
            .iter()
            .filter(|l| l.name != "__name__" && !labels.contains_key(&l.name))
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        pairs.push(("__name__", name));
        pairs.extend(
            labels
                .iter()
                // Rule files refuse a `__name__` label; the rule's name stands.
                .filter(|(n, v)| !v.is_empty() && n.as_str() != "__name__")
                .map(|(n, v)| (n.as_str(), v.as_str())),
        );
        let recorded = Labels::from_pairs(pairs);
        if !seen.insert(recorded.clone()) {
            return Err(RecordError::DuplicateLabels);
        }
        out.push((recorded, *value));
    }
    if limit > 0 && out.len() > limit {
        return Err(RecordError::Limit {
            limit,
            series: out.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_renamed_and_relabelled() {
        let result = [
            (
                Labels::from_pairs([("__name__", "up"), ("job", "a"), ("env", "x")]),
                1.0,
            ),
            (Labels::from_pairs([("job", "b"), ("env", "y")]), 0.0),
        ];
        let labels = BTreeMap::from([
            ("team".to_string(), "db".to_string()),
            ("env".to_string(), String::new()),
        ]);
        let out = record("job:up:sum", &labels, &result, 0).expect("record");
        assert_eq!(
            out[0].0,
            Labels::from_pairs([("__name__", "job:up:sum"), ("job", "a"), ("team", "db")])
        );
        assert_eq!(out[1].0.get("job"), Some("b"));
        assert_eq!(
            out[1].0.get("env"),
            None,
            "an empty label value removes the label"
        );
        // Removing env makes two series alike.
        let alike = [
            (Labels::from_pairs([("job", "a"), ("env", "x")]), 1.0),
            (Labels::from_pairs([("job", "a"), ("env", "y")]), 1.0),
        ];
        assert_eq!(
            record("r", &labels, &alike, 0),
            Err(RecordError::DuplicateLabels)
        );
        assert_eq!(
            record("r", &BTreeMap::new(), &alike, 1),
            Err(RecordError::Limit {
                limit: 1,
                series: 2
            })
        );
    }
}
