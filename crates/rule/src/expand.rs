//! Alert labels and annotations expanded with Prometheus's template language, as the ruler
//! does it: `$labels` are the series' (with `__name__`), `$externalLabels` the `--label`
//! labels, `$externalURL` is `--alert.query-url` (Thanos's ruler passes it as Prometheus's
//! external URL), and the template's `query` asks the querier at the evaluation time with the
//! group's partial-response strategy. A failed expansion gives Prometheus's
//! `<error expanding template: …>` text and a log line.

use std::collections::BTreeMap;
use std::sync::Arc;

use rthanos_model::Labels;

use crate::group::{AlertTemplater, RuleQuerier};
use crate::rulefmt::PartialResponseStrategy;
use crate::template::{QueryFunc, QuerySample, TemplateData, expand_alert_template};

/// Expands with the template language, queries through `querier`.
pub struct PrometheusTemplates {
    querier: Arc<dyn RuleQuerier>,
    external_labels: BTreeMap<String, String>,
    external_url: String,
}

impl PrometheusTemplates {
    /// Templates seeing `external_labels` and `external_url`, querying `querier`.
    pub fn new(
        querier: Arc<dyn RuleQuerier>,
        external_labels: &Labels,
        external_url: String,
    ) -> Self {
        PrometheusTemplates {
            querier,
            external_labels: external_labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect(),
            external_url,
        }
    }
}

/// The template's `query`, answered by the async querier from the evaluation's thread.
struct Queries<'a> {
    querier: &'a dyn RuleQuerier,
    strategy: PartialResponseStrategy,
}

impl QueryFunc for Queries<'_> {
    fn query(&mut self, expr: &str, timestamp_ms: i64) -> Result<Vec<QuerySample>, String> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| "queries need the ruler's runtime".to_string())?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return Err("queries need a multi-threaded runtime".to_string());
        }
        // The group's evaluation waits for the answer, as Prometheus's does.
        let outcome = tokio::task::block_in_place(|| {
            handle.block_on(self.querier.query(expr, timestamp_ms, self.strategy))
        })?;
        Ok(outcome
            .samples
            .into_iter()
            .map(|(labels, value)| QuerySample {
                labels: labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect(),
                value,
            })
            .collect())
    }
}

impl AlertTemplater for PrometheusTemplates {
    fn expand(
        &self,
        rule: &str,
        text: &str,
        labels: &Labels,
        value: f64,
        ts: i64,
        strategy: PartialResponseStrategy,
    ) -> String {
        // No template action, nothing to expand (most label values).
        if !text.contains("{{") {
            return text.to_string();
        }
        let data = TemplateData {
            labels: labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect(),
            external_labels: self.external_labels.clone(),
            external_url: self.external_url.clone(),
            value,
        };
        let mut queries = Queries {
            querier: self.querier.as_ref(),
            strategy,
        };
        match expand_alert_template(rule, text, &data, ts, &mut queries) {
            Ok(out) => out,
            Err(e) => {
                tracing::warn!(err = %e, rule, "Expanding alert template failed");
                e.expansion_failure_text()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::QueryOutcome;

    struct OneSample;

    #[async_trait::async_trait]
    impl RuleQuerier for OneSample {
        async fn query(
            &self,
            expr: &str,
            ts: i64,
            _: PartialResponseStrategy,
        ) -> Result<QueryOutcome, String> {
            Ok(QueryOutcome {
                samples: vec![(Labels::from_pairs([("instance", expr)]), ts as f64 / 1000.0)],
                warnings: Vec::new(),
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn templates_see_the_series_the_external_labels_and_the_querier() {
        let templates = PrometheusTemplates::new(
            Arc::new(OneSample),
            &Labels::from_pairs([("cluster", "eu1")]),
            "http://thanos.example".into(),
        );
        let series = Labels::from_pairs([("__name__", "up"), ("job", "api")]);
        let out = templates.expand(
            "Down",
            "{{ $labels.__name__ }}/{{ $labels.job }} in {{ $externalLabels.cluster }} ({{ $value }}) {{ $externalURL }} {{ with query \"q\" }}{{ . | first | label \"instance\" }}={{ . | first | value }}{{ end }}",
            &series,
            0.5,
            42_000,
            PartialResponseStrategy::Abort,
        );
        assert_eq!(out, "up/api in eu1 (0.5) http://thanos.example q=42");
        let failed = templates.expand(
            "Down",
            "{{ nosuch }}",
            &series,
            0.0,
            0,
            PartialResponseStrategy::Abort,
        );
        assert!(
            failed.starts_with("<error expanding template: error parsing template __alert_Down: "),
            "{failed}"
        );
        assert_eq!(
            templates.expand(
                "Down",
                "plain",
                &series,
                0.0,
                0,
                PartialResponseStrategy::Abort
            ),
            "plain"
        );
    }
}
