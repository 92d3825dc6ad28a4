//! A Prometheus summary, which the Rust `prometheus` crate does not offer: the ruler's
//! `prometheus_rule_evaluation_duration_seconds` and `prometheus_rule_group_duration_seconds`
//! are summaries in Prometheus. As client_golang's, quantiles are over the observations of
//! the last 10 minutes (`NaN` when there are none), `_sum` and `_count` over all of them.
//! Quantiles are exact here (nearest rank) where client_golang's are within their error.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType, Quantile, Summary};

/// client_golang's default `MaxAge`.
const MAX_AGE: Duration = Duration::from_secs(600);
/// Observations kept per series at most: older ones leave the window early beyond it.
const MAX_KEPT: usize = 100_000;

#[derive(Default)]
struct Window {
    recent: VecDeque<(Instant, f64)>,
    sum: f64,
    count: u64,
}

/// A summary with variable labels.
#[derive(Clone)]
pub struct SummaryVec {
    desc: Desc,
    label_names: Vec<String>,
    objectives: Vec<f64>,
    series: Arc<Mutex<BTreeMap<Vec<String>, Window>>>,
}

impl SummaryVec {
    /// A summary `name` with `help`, labelled by `label_names`, reporting the quantiles
    /// `objectives` (e.g. 0.5, 0.9, 0.99).
    ///
    /// # Errors
    /// The name or a label name is not valid.
    pub fn new(
        name: &str,
        help: &str,
        label_names: &[&str],
        objectives: &[f64],
    ) -> Result<Self, prometheus::Error> {
        let label_names: Vec<String> = label_names.iter().map(|n| n.to_string()).collect();
        let desc = Desc::new(
            name.to_string(),
            help.to_string(),
            label_names.clone(),
            HashMap::new(),
        )?;
        Ok(SummaryVec {
            desc,
            label_names,
            objectives: objectives.to_vec(),
            series: Arc::new(Mutex::new(BTreeMap::new())),
        })
    }

    /// Records `value` for the series with `label_values` (in the order of the names).
    pub fn observe(&self, label_values: &[&str], value: f64) {
        self.observe_at(label_values, value, Instant::now());
    }

    fn observe_at(&self, label_values: &[&str], value: f64, at: Instant) {
        let key: Vec<String> = label_values.iter().map(|v| v.to_string()).collect();
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let window = series.entry(key).or_default();
        window.sum += value;
        window.count += 1;
        window.recent.push_back((at, value));
        if window.recent.len() > MAX_KEPT {
            window.recent.pop_front();
        }
    }

    /// Forgets the series with `label_values`.
    pub fn remove(&self, label_values: &[&str]) {
        let key: Vec<String> = label_values.iter().map(|v| v.to_string()).collect();
        self.series
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
    }

    fn family(&self, now: Instant) -> MetricFamily {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let mut metrics = Vec::with_capacity(series.len());
        for (values, window) in series.iter_mut() {
            while window
                .recent
                .front()
                .is_some_and(|(at, _)| now.saturating_duration_since(*at) > MAX_AGE)
            {
                window.recent.pop_front();
            }
            let mut sorted: Vec<f64> = window.recent.iter().map(|(_, v)| *v).collect();
            sorted.sort_by(f64::total_cmp);
            let quantiles = self
                .objectives
                .iter()
                .map(|&q| {
                    let mut quantile = Quantile::default();
                    quantile.set_quantile(q);
                    quantile.set_value(nearest_rank(&sorted, q));
                    quantile
                })
                .collect();
            let mut summary = Summary::default();
            summary.set_sample_count(window.count);
            summary.set_sample_sum(window.sum);
            summary.set_quantile(quantiles);
            let labels = self
                .label_names
                .iter()
                .zip(values)
                .map(|(name, value)| {
                    let mut pair = LabelPair::default();
                    pair.set_name(name.clone());
                    pair.set_value(value.clone());
                    pair
                })
                .collect();
            let mut metric = Metric::from_label(labels);
            metric.set_summary(summary);
            metrics.push(metric);
        }
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(MetricType::SUMMARY);
        family.set_metric(metrics);
        family
    }
}

/// The `q` quantile of `sorted` by nearest rank; `NaN` of nothing.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Collector for SummaryVec {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        vec![self.family(Instant::now())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_cover_the_last_ten_minutes_and_sum_and_count_everything() {
        let summary = SummaryVec::new("d_seconds", "Durations.", &["strategy"], &[0.5, 0.9, 0.99])
            .expect("new");
        let start = Instant::now();
        for i in 1..=100 {
            summary.observe_at(&["abort"], f64::from(i), start);
        }
        let family = summary.family(start);
        let s = family.get_metric()[0].get_summary();
        assert_eq!(s.sample_count(), 100);
        assert_eq!(s.sample_sum(), 5050.0);
        let values: Vec<f64> = s.get_quantile().iter().map(|q| q.value()).collect();
        assert_eq!(values, [50.0, 90.0, 99.0]);
        // Ten minutes on, the window is empty; the totals stay.
        let family = summary.family(start + MAX_AGE + Duration::from_secs(1));
        let s = family.get_metric()[0].get_summary();
        assert!(s.get_quantile().iter().all(|q| q.value().is_nan()));
        assert_eq!(s.sample_count(), 100);
        // Exposed as Prometheus exposes a summary.
        let registry = prometheus::Registry::new();
        registry
            .register(Box::new(summary.clone()))
            .expect("register");
        summary.observe(&["warn"], 0.25);
        let mut text = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut text,
        )
        .expect("encode");
        let text = String::from_utf8(text).expect("utf-8");
        assert!(text.contains("# TYPE d_seconds summary"), "{text}");
        assert!(
            text.contains("d_seconds{strategy=\"warn\",quantile=\"0.5\"} 0.25"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_count{strategy=\"warn\"} 1"),
            "{text}"
        );
        summary.remove(&["warn"]);
        assert_eq!(summary.family(Instant::now()).get_metric().len(), 1);
    }
}
