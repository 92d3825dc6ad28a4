//! HTTP request metrics under Thanos's names (its `extprom/http` middleware), which its
//! dashboards and alerts read: `http_requests_total`, the `http_request_duration_seconds`
//! histogram, and `http_request_size_bytes` / `http_response_size_bytes` summaries (count and
//! sum, as client_golang's default summary has no quantiles), labelled by `handler`, `code`
//! and lower-case `method`. The handler is Thanos's name for the API route (`query`,
//! `query_range`, `label_values`, …), or the route's path for the others.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::Frame;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

const LABELS: [&str; 3] = ["code", "handler", "method"];

/// The request metrics of one HTTP server.
#[derive(Clone)]
pub(crate) struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    request_size: SizeSummary,
    response_size: SizeSummary,
}

impl HttpMetrics {
    /// Registers the metrics in `registry`.
    pub(crate) fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "Tracks the number of HTTP requests."),
            &LABELS,
        )?;
        registry.register(Box::new(requests.clone()))?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Tracks the latencies for HTTP requests.",
            )
            .buckets(rthanos_grpcmetrics::LATENCY_BUCKETS.to_vec()),
            &LABELS,
        )?;
        registry.register(Box::new(duration.clone()))?;
        let request_size = SizeSummary::new(
            "http_request_size_bytes",
            "Tracks the size of HTTP requests.",
        )?;
        registry.register(Box::new(request_size.clone()))?;
        let response_size = SizeSummary::new(
            "http_response_size_bytes",
            "Tracks the size of HTTP responses.",
        )?;
        registry.register(Box::new(response_size.clone()))?;
        Ok(Self {
            requests,
            duration,
            request_size,
            response_size,
        })
    }
}

/// Thanos's handler name for a route. Under `--web.route-prefix` the API's routes start
/// with the prefix, which the name leaves out.
fn handler_name(route: Option<&str>) -> String {
    let route = route.map(|r| r.find("/api/v1/").map_or(r, |at| &r[at..]));
    let name = match route {
        Some("/api/v1/query") => "query",
        Some("/api/v1/query_range") => "query_range",
        Some("/api/v1/label/{name}/values") => "label_values",
        Some("/api/v1/series") => "series",
        Some("/api/v1/labels") => "label_names",
        Some("/api/v1/stores") => "stores",
        Some("/api/v1/metadata") => "metadata",
        Some("/api/v1/query_exemplars") => "exemplars",
        Some("/api/v1/rules") => "rules",
        Some("/api/v1/alerts") => "alerts",
        Some("/api/v1/targets") => "targets",
        Some("/api/v1/status/buildinfo") => "status_build",
        Some("/api/v1/status/flags") => "status_flags",
        Some("/api/v1/status/runtimeinfo") => "status_runtime",
        // Route templates are few; a path that matched none is not a label value.
        Some(route) => route,
        None => "not_found",
    };
    name.to_string()
}

/// The lower-case method, as Thanos labels it; methods outside HTTP's own are one value, so
/// that clients cannot create series at will.
fn method_name(method: &axum::http::Method) -> String {
    use axum::http::Method;
    let known = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::CONNECT,
        Method::TRACE,
    ];
    if known.contains(method) {
        method.as_str().to_lowercase()
    } else {
        "other".to_string()
    }
}

/// The size client_golang's `promhttp` reckons for a request: URL, method, protocol, headers,
/// host and declared body length.
fn request_size(req: &Request) -> f64 {
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    let proto = format!("{:?}", req.version()).len();
    let host = req.uri().host().map_or(0, str::len);
    let body = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    (req.uri().to_string().len() + req.method().as_str().len() + proto + headers + host + body)
        as f64
}

/// The middleware recording every request.
pub(crate) async fn instrument(
    State(metrics): State<HttpMetrics>,
    req: Request,
    next: Next,
) -> Response {
    let handler = handler_name(
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    let method = method_name(req.method());
    let size = request_size(&req);
    let started = Instant::now();
    let response = next.run(req).await;
    let labels = [response.status().as_u16().to_string(), handler, method];
    let values = [labels[0].as_str(), labels[1].as_str(), labels[2].as_str()];
    metrics.requests.with_label_values(&values).inc();
    metrics
        .duration
        .with_label_values(&values)
        .observe(started.elapsed().as_secs_f64());
    metrics.request_size.observe(&labels, size);
    // The response's size is known once its body has been sent (or abandoned).
    let (parts, body) = response.into_parts();
    Response::from_parts(
        parts,
        Body::new(CountedBody {
            inner: body,
            bytes: 0,
            record: Some((metrics.response_size, labels)),
        }),
    )
}

/// A response body that records its size in a summary when it is dropped.
struct CountedBody {
    inner: Body,
    bytes: u64,
    record: Option<(SizeSummary, [String; 3])>,
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.bytes += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for CountedBody {
    fn drop(&mut self) {
        if let Some((summary, labels)) = self.record.take() {
            summary.observe(&labels, self.bytes as f64);
        }
    }
}

/// Observations and their total.
type CountAndSum = (u64, f64);

/// A summary without quantiles (count and sum) per label set: the `prometheus` crate has no
/// summary type, and client_golang's default one exposes only these two.
#[derive(Clone)]
struct SizeSummary {
    desc: Arc<Desc>,
    values: Arc<Mutex<HashMap<[String; 3], CountAndSum>>>,
}

impl SizeSummary {
    fn new(name: &str, help: &str) -> Result<Self, prometheus::Error> {
        Ok(Self {
            desc: Arc::new(Desc::new(
                name.to_string(),
                help.to_string(),
                LABELS.iter().map(|l| (*l).to_string()).collect(),
                HashMap::new(),
            )?),
            values: Arc::default(),
        })
    }

    fn observe(&self, labels: &[String; 3], value: f64) {
        let Ok(mut values) = self.values.lock() else {
            return;
        };
        // The labels are copied only for a new series.
        match values.get_mut(labels) {
            Some((count, sum)) => {
                *count += 1;
                *sum += value;
            }
            None => {
                values.insert(labels.clone(), (1, value));
            }
        }
    }
}

impl Collector for SizeSummary {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Ok(values) = self.values.lock() else {
            return Vec::new();
        };
        let mut series: Vec<_> = values.iter().collect();
        series.sort_by(|a, b| a.0.cmp(b.0));
        let metrics = series
            .into_iter()
            .map(|(labels, &(count, sum))| {
                let mut summary = proto::Summary::default();
                summary.set_sample_count(count);
                summary.set_sample_sum(sum);
                let mut metric = proto::Metric::default();
                metric.set_label(
                    LABELS
                        .iter()
                        .zip(labels)
                        .map(|(name, value)| {
                            let mut pair = proto::LabelPair::default();
                            pair.set_name((*name).to_string());
                            pair.set_value(value.clone());
                            pair
                        })
                        .collect(),
                );
                metric.set_summary(summary);
                metric
            })
            .collect();
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(MetricType::SUMMARY);
        family.set_metric(metrics);
        vec![family]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_routes_carry_thanos_handler_names() {
        assert_eq!(handler_name(Some("/api/v1/query")), "query");
        assert_eq!(handler_name(Some("/api/v1/labels")), "label_names");
        assert_eq!(
            handler_name(Some("/api/v1/label/{name}/values")),
            "label_values"
        );
        assert_eq!(handler_name(Some("/metrics")), "/metrics");
        assert_eq!(handler_name(None), "not_found");
        assert_eq!(
            handler_name(Some("/thanos/api/v1/query_range")),
            "query_range"
        );
        assert_eq!(
            handler_name(Some("/api/v1/status/buildinfo")),
            "status_build"
        );
        assert_eq!(method_name(&axum::http::Method::POST), "post");
        let custom = axum::http::Method::from_bytes(b"SCAN1").expect("method");
        assert_eq!(method_name(&custom), "other");
    }
}
