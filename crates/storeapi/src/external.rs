//! External labels as a store with one TSDB applies them (sidecar, ruler): matchers on them
//! are answered by the store, and they are set over each series' own labels.

use std::collections::HashSet;

use rthanos_model::{Labels, Matcher};
use tonic::Status;

use crate::convert::matchers_from_thanos;
use crate::thanos;

/// The request's matchers less those on external labels; `None` when one of those does not
/// match the external label's value (no series of this store can match).
///
/// # Errors
/// A matcher is invalid (a regex that does not compile).
pub fn split_matchers(
    matchers: &[thanos::LabelMatcher],
    external: &Labels,
) -> Result<Option<Vec<Matcher>>, Status> {
    let matchers =
        matchers_from_thanos(matchers).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let mut rest = Vec::with_capacity(matchers.len());
    for m in matchers {
        match external.get(&m.name) {
            Some(value) if !m.matches(value) => return Ok(None),
            Some(_) => {}
            None => rest.push(m),
        }
    }
    Ok(Some(rest))
}

/// Final labels of a series: its own, the external ones set over them, `strip` removed.
pub fn final_labels(
    own: impl IntoIterator<Item = (String, String)>,
    external: &Labels,
    strip: &HashSet<String>,
) -> Vec<thanos::Label> {
    let mut labels: Vec<thanos::Label> = own
        .into_iter()
        .filter(|(name, _)| external.get(name).is_none() && !strip.contains(name))
        .map(|(name, value)| thanos::Label { name, value })
        .collect();
    labels.extend(
        external
            .iter()
            .filter(|l| !strip.contains(&l.name))
            .map(|l| thanos::Label {
                name: l.name.clone(),
                value: l.value.clone(),
            }),
    );
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    labels
}
