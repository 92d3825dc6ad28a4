//! The querier's metric metadata and exemplars: asked of every endpoint that announces them,
//! at once, and merged. Metadata entries are joined per metric; exemplars are grouped by
//! series, with the replica labels dropped when deduplicating, so HA replicas' exemplars
//! merge into one series (equal exemplars once, in time order).

use std::collections::BTreeMap;
use std::sync::Arc;

use rthanos_storeapi::MetadataApi;
use rthanos_storeapi::metadata::merge_metadata;
use rthanos_storeapi::thanos::{
    Exemplar, ExemplarData, ExemplarsRequest, Label, MetricMetadata, MetricMetadataRequest,
};
use tonic::Status;

/// An endpoint's metadata APIs and its name (address).
#[derive(Clone)]
pub struct NamedMetadataApi {
    /// Address, for warnings.
    pub name: String,
    /// The APIs.
    pub api: Arc<dyn MetadataApi>,
}

/// A failed endpoint: a warning with partial responses, else the error.
fn failed(
    name: &str,
    status: &Status,
    partial_response: bool,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let message = format!("endpoint {name}: {}", status.message());
    if partial_response {
        warnings.push(message);
        Ok(())
    } else {
        Err(message)
    }
}

/// Metadata of `request.metric` (all metrics when empty), at most `request.limit` metrics
/// when positive, from every endpoint that serves it; and warnings.
pub async fn metric_metadata(
    endpoints: &[NamedMetadataApi],
    request: MetricMetadataRequest,
    partial_response: bool,
) -> Result<(MetricMetadata, Vec<String>), String> {
    let limit = usize::try_from(request.limit).unwrap_or(0);
    let asked: Vec<&NamedMetadataApi> = endpoints
        .iter()
        .filter(|e| e.api.support().metric_metadata)
        .collect();
    let answers =
        futures::future::join_all(asked.iter().map(|e| e.api.metric_metadata(request.clone())))
            .await;
    let (mut merged, mut warnings) = (MetricMetadata::default(), Vec::new());
    for (endpoint, answer) in asked.iter().zip(answers) {
        match answer {
            Ok((metadata, their_warnings)) => {
                merge_metadata(&mut merged, metadata);
                warnings.extend(their_warnings);
            }
            Err(status) => failed(&endpoint.name, &status, partial_response, &mut warnings)?,
        }
    }
    if limit > 0 && merged.metadata.len() > limit {
        let keep: Vec<String> = {
            let mut names: Vec<&String> = merged.metadata.keys().collect();
            names.sort();
            names.into_iter().take(limit).cloned().collect()
        };
        merged.metadata.retain(|name, _| keep.contains(name));
    }
    Ok((merged, warnings))
}

/// Exemplars of the series `request.query` selects in [start, end], from every endpoint
/// whose exemplars overlap that range; series labels without `replica_labels`.
pub async fn exemplars(
    endpoints: &[NamedMetadataApi],
    request: ExemplarsRequest,
    replica_labels: &[String],
    partial_response: bool,
) -> Result<(Vec<ExemplarData>, Vec<String>), String> {
    let asked: Vec<&NamedMetadataApi> = endpoints
        .iter()
        .filter(|e| {
            e.api
                .support()
                .exemplars
                .is_some_and(|(min, max)| min <= request.end && max >= request.start)
        })
        .collect();
    let answers =
        futures::future::join_all(asked.iter().map(|e| e.api.exemplars(request.clone()))).await;
    let mut series: BTreeMap<Vec<(String, String)>, Vec<Exemplar>> = BTreeMap::new();
    let mut warnings = Vec::new();
    for (endpoint, answer) in asked.iter().zip(answers) {
        match answer {
            Ok((data, their_warnings)) => {
                warnings.extend(their_warnings);
                for d in data {
                    let mut labels: Vec<(String, String)> = d
                        .series_labels
                        .map(|set| set.labels)
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|l| !replica_labels.contains(&l.name))
                        .map(|l| (l.name, l.value))
                        .collect();
                    labels.sort();
                    series.entry(labels).or_default().extend(d.exemplars);
                }
            }
            Err(status) => failed(&endpoint.name, &status, partial_response, &mut warnings)?,
        }
    }
    let data = series
        .into_iter()
        .map(|(labels, mut exemplars)| {
            exemplars.sort_by(|a, b| a.ts.cmp(&b.ts).then(a.value.total_cmp(&b.value)));
            exemplars.dedup_by(|a, b| {
                a.ts == b.ts && a.value.to_bits() == b.value.to_bits() && a.labels == b.labels
            });
            ExemplarData {
                series_labels: Some(rthanos_storeapi::thanos::LabelSet {
                    labels: labels
                        .into_iter()
                        .map(|(name, value)| Label { name, value })
                        .collect(),
                }),
                exemplars,
            }
        })
        .collect();
    Ok((data, warnings))
}
