//! The querier's metric metadata and exemplars: asked of every endpoint that announces them,
//! at once, and merged. Metadata entries are joined per metric; exemplars are grouped by
//! series, with the replica labels dropped when deduplicating, so HA replicas' exemplars
//! merge into one series (equal exemplars once, in time order).

use std::collections::BTreeMap;
use std::sync::Arc;

use rthanos_model::{Labels, MatchType, Matcher};
use rthanos_storeapi::MetadataApi;
use rthanos_storeapi::metadata::merge_metadata;
use rthanos_storeapi::thanos::{
    Exemplar, ExemplarData, ExemplarsRequest, Label, MetricMetadata, MetricMetadataRequest,
};
use tonic::Status;

/// An endpoint's metadata APIs, its name (address) and external label sets.
#[derive(Clone)]
pub struct NamedMetadataApi {
    /// Address, for warnings.
    pub name: String,
    /// The APIs.
    pub api: Arc<dyn MetadataApi>,
    /// The label sets its series carry (from its Info).
    pub label_sets: Vec<Labels>,
}

/// The exemplars query for one endpoint, as Thanos's exemplars proxy writes it: Prometheus's
/// exemplar API knows nothing of external labels, so matchers on them are checked here and
/// left out; selectors whose external-label matchers fail are dropped, and `None` means the
/// endpoint holds nothing the query selects. The selectors are joined with `+`: the answer is
/// the exemplars of every selected series, whatever the query's functions.
fn exemplars_query(selectors: &[Vec<Matcher>], label_sets: &[Labels]) -> Option<String> {
    let mut parts = Vec::new();
    'selectors: for matchers in selectors {
        let mut kept = Vec::new();
        for m in matchers {
            let mut external = false;
            for set in label_sets {
                if let Some(value) = set.get(&m.name) {
                    if !m.matches(value) {
                        continue 'selectors;
                    }
                    external = true;
                }
            }
            if !external {
                kept.push(m.clone());
            }
        }
        if kept.is_empty() {
            // Only external labels were matched: every series of the endpoint.
            kept.push(Matcher::new(MatchType::Regex, "__name__", ".+").ok()?);
        }
        parts.push(rthanos_model::selector(&kept));
    }
    (!parts.is_empty()).then(|| parts.join(" + "))
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
/// unless it is negative, from every endpoint that serves it; and warnings.
pub async fn metric_metadata(
    endpoints: &[NamedMetadataApi],
    request: MetricMetadataRequest,
    partial_response: bool,
) -> Result<(MetricMetadata, Vec<String>), String> {
    // Prometheus's meaning: a negative limit is none; 0 answers nothing.
    let limit = usize::try_from(request.limit).ok();
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
    if let Some(limit) = limit.filter(|&l| merged.metadata.len() > l) {
        let mut names: Vec<String> = merged.metadata.keys().cloned().collect();
        names.sort_unstable();
        let keep: std::collections::HashSet<String> = names.into_iter().take(limit).collect();
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
    let selectors = rthanos_promql::selectors(&request.query).map_err(|e| e.to_string())?;
    let asked: Vec<(&NamedMetadataApi, String)> = endpoints
        .iter()
        .filter(|e| {
            e.api
                .support()
                .exemplars
                .is_some_and(|(min, max)| min <= request.end && max >= request.start)
        })
        .filter_map(|e| Some((e, exemplars_query(&selectors, &e.label_sets)?)))
        .collect();
    let answers = futures::future::join_all(asked.iter().map(|(e, query)| {
        e.api.exemplars(ExemplarsRequest {
            query: query.clone(),
            ..request.clone()
        })
    }))
    .await;
    let mut series: BTreeMap<Vec<(String, String)>, Vec<Exemplar>> = BTreeMap::new();
    let mut warnings = Vec::new();
    for ((endpoint, _), answer) in asked.iter().zip(answers) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exemplar_queries_lose_external_label_matchers_as_in_thanos() -> Result<(), String> {
        let selectors = rthanos_promql::selectors(
            r#"rate(http_requests_total{cluster="eu1", code="500"}[5m]) / up{cluster="us1"}"#,
        )
        .map_err(|e| e.to_string())?;
        let eu1 = [Labels::from_pairs([("cluster", "eu1"), ("replica", "a")])];
        assert_eq!(
            exemplars_query(&selectors, &eu1).as_deref(),
            Some(r#"{__name__="http_requests_total", code="500"}"#)
        );
        let other = [Labels::from_pairs([("cluster", "ap1")])];
        assert_eq!(exemplars_query(&selectors, &other), None);
        let only_external =
            rthanos_promql::selectors(r#"{cluster="eu1"}"#).map_err(|e| e.to_string())?;
        assert_eq!(
            exemplars_query(&only_external, &eu1).as_deref(),
            Some(r#"{__name__=~".+"}"#)
        );
        // Without label sets the selectors pass unchanged.
        assert_eq!(
            exemplars_query(&selectors, &[]).as_deref(),
            Some(
                r#"{__name__="http_requests_total", cluster="eu1", code="500"} + {__name__="up", cluster="us1"}"#
            )
        );
        Ok(())
    }
}
