//! The ruler's queries, through the querier's Prometheus HTTP API, as Thanos's ruler sends
//! them: an instant query (`POST /api/v1/query` by default) with `dedup=true` and
//! `partial_response` from the group's strategy, to each discovered querier in random order
//! until one answers. Queriers come from `--query` (with `dns+` / `dnssrv+`),
//! `--query.sd-files`, or `--query.config` (Thanos's format: `http_config`, `static_configs`,
//! `file_sd_configs`, `scheme`, `path_prefix`).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rthanos_discovery::{AddressSpec, DnsProvider, FileSd};
use rthanos_httpclient::{Auth, HttpClientConfig};
use rthanos_model::Labels;
use serde::Deserialize;

use crate::group::{QueryOutcome, RuleQuerier};
use crate::rulefmt::PartialResponseStrategy;

/// A query API configuration that is not valid.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct QueryConfigError(String);

/// One entry of `--query.config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryEndpointsConfig {
    /// How to reach them.
    #[serde(default)]
    pub http_config: HttpClientConfig,
    /// Addresses (which may use the DNS prefixes).
    #[serde(default)]
    pub static_configs: Vec<String>,
    /// File-SD files whose targets are addresses.
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// `http` (default) or `https`.
    #[serde(default)]
    pub scheme: String,
    /// A path the API sits under.
    #[serde(default)]
    pub path_prefix: String,
}

/// A `file_sd_configs` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// File globs.
    #[serde(default)]
    pub files: Vec<String>,
    /// How often to read them again (Prometheus duration; default 5m).
    #[serde(default)]
    pub refresh_interval: Option<rthanos_model::PromDuration>,
}

/// Parses `--query.config` (a YAML list; empty text: none).
///
/// # Errors
/// The YAML does not parse or has unknown fields.
pub fn parse_query_config(text: &str) -> Result<Vec<QueryEndpointsConfig>, QueryConfigError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de)
        .map_err(|e| QueryConfigError(format!("--query.config: {e}")))
}

struct Client {
    http: reqwest::Client,
    auth: Auth,
    scheme: String,
    path_prefix: String,
    specs: Vec<AddressSpec>,
    file_sd: Vec<FileSd>,
    /// Addresses as last resolved.
    addresses: RwLock<Vec<String>>,
}

/// The queriers, discovered and asked in random order.
pub struct HttpQuerier {
    clients: Vec<Client>,
    dns: DnsProvider,
    method: reqwest::Method,
    add_thanos_params: bool,
    timeout: Duration,
}

/// How [`HttpQuerier`] asks.
#[derive(Clone, Debug)]
pub struct QuerierOptions {
    /// `--query.http-method`: `GET` or `POST`.
    pub method: String,
    /// Whether `dedup` and `partial_response` are sent (hidden
    /// `--query.only-prometheus-params` turns them off).
    pub add_thanos_params: bool,
    /// How long one query may take.
    pub timeout: Duration,
    /// `--query.sd-interval`: how often file-SD files are read again at least.
    pub file_sd_interval: Duration,
}

impl HttpQuerier {
    /// Queriers from `configs`; DNS metrics go to `registry` as
    /// `thanos_rule_query_apis_dns_*`.
    ///
    /// # Errors
    /// An address or HTTP configuration is invalid, or the metrics cannot be registered.
    pub fn new(
        configs: Vec<QueryEndpointsConfig>,
        options: &QuerierOptions,
        registry: &prometheus::Registry,
    ) -> Result<Self, QueryConfigError> {
        let method = match options.method.as_str() {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            other => {
                return Err(QueryConfigError(format!(
                    "--query.http-method: {other:?} is neither GET nor POST"
                )));
            }
        };
        let mut clients = Vec::with_capacity(configs.len());
        let mut seen = std::collections::HashSet::new();
        for config in configs {
            let (http, auth) = config
                .http_config
                .build("--query.config http_config")
                .map_err(|e| QueryConfigError(e.to_string()))?;
            let mut specs = Vec::with_capacity(config.static_configs.len());
            for address in &config.static_configs {
                if !seen.insert(address.clone()) {
                    return Err(QueryConfigError(format!(
                        "Address {address} is duplicated for --query flag."
                    )));
                }
                specs.push(
                    AddressSpec::parse(address).map_err(|e| QueryConfigError(e.to_string()))?,
                );
            }
            let file_sd = config
                .file_sd_configs
                .into_iter()
                .map(|sd| {
                    let interval = sd
                        .refresh_interval
                        .map_or(options.file_sd_interval, |d| d.as_std());
                    FileSd::new(sd.files, interval)
                })
                .collect();
            let scheme = if config.scheme.is_empty() {
                "http".to_string()
            } else {
                config.scheme
            };
            clients.push(Client {
                http,
                auth,
                scheme,
                path_prefix: config.path_prefix.trim_end_matches('/').to_string(),
                specs,
                file_sd,
                addresses: RwLock::new(Vec::new()),
            });
        }
        let dns = DnsProvider::new(registry, "thanos_rule_query_apis")
            .map_err(|e| QueryConfigError(format!("metrics: {e}")))?;
        Ok(HttpQuerier {
            clients,
            dns,
            method,
            add_thanos_params: options.add_thanos_params,
            timeout: options.timeout,
        })
    }

    /// Resolves every client's addresses again (DNS names, file-SD targets).
    pub async fn resolve(&self) {
        for client in &self.clients {
            let mut specs = client.specs.clone();
            for sd in &client.file_sd {
                for target in sd.targets() {
                    match AddressSpec::parse(&target) {
                        Ok(spec) => specs.push(spec),
                        Err(e) => tracing::warn!(err = %e, "query API file SD target skipped"),
                    }
                }
            }
            let mut found = self.dns.resolve(&specs).await;
            found.dedup();
            if let Ok(mut addresses) = client.addresses.write() {
                *addresses = found;
            }
        }
    }

    /// Resolves every `interval` until the process ends.
    pub async fn run_discovery(self: Arc<Self>, interval: Duration) {
        loop {
            self.resolve().await;
            tokio::time::sleep(interval).await;
        }
    }

    /// One request to `endpoint` (e.g. `/api/v1/query`) of the querier at `address`.
    async fn request(
        &self,
        client: &Client,
        address: &str,
        endpoint: &str,
        params: &[(&str, &str)],
    ) -> Result<(String, reqwest::StatusCode, bytes::Bytes), String> {
        let url = format!(
            "{}://{address}{}{endpoint}",
            client.scheme, client.path_prefix
        );
        let request = client
            .http
            .request(self.method.clone(), &url)
            .timeout(self.timeout);
        let request = if self.method == reqwest::Method::GET {
            request.query(params)
        } else {
            request.form(params)
        };
        let response = client
            .auth
            .apply(request)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("{url}: reading the response: {e}"))?;
        Ok((url, status, body))
    }

    async fn ask(
        &self,
        client: &Client,
        address: &str,
        expr: &str,
        ts: i64,
        strategy: PartialResponseStrategy,
    ) -> Result<QueryOutcome, String> {
        let time = format_time(ts);
        let mut params: Vec<(&str, &str)> = vec![("query", expr), ("time", &time)];
        if self.add_thanos_params {
            params.push(("dedup", "true"));
            params.push((
                "partial_response",
                if strategy == PartialResponseStrategy::Warn {
                    "true"
                } else {
                    "false"
                },
            ));
        }
        let (url, status, body) = self
            .request(client, address, "/api/v1/query", &params)
            .await?;
        parse_query_response(&body).map_err(|e| format!("{url}: {status}: {e}"))
    }

    /// A range query of `expr` over `[start, end]` (ms) every `step`, deduplicated, from the
    /// first querier that answers (Thanos's stateless ruler asks so to restore `for` state).
    ///
    /// # Errors
    /// No querier answered with a matrix; the text is the last error.
    pub async fn query_range(
        &self,
        expr: &str,
        start: i64,
        end: i64,
        step: Duration,
    ) -> Result<Matrix, String> {
        let (start, end) = (format_time(start), format_time(end));
        let step = format_time(i64::try_from(step.as_millis()).unwrap_or(i64::MAX).max(1));
        let mut params: Vec<(&str, &str)> = vec![
            ("query", expr),
            ("start", &start),
            ("end", &end),
            ("step", &step),
        ];
        // Always deduplicated, as Thanos's restore query is (whatever
        // --query.only-prometheus-params says).
        params.push(("dedup", "true"));
        let mut last_error = None;
        for (client, address) in self.candidates() {
            let answer = self
                .request(client, &address, "/api/v1/query_range", &params)
                .await
                .and_then(|(url, status, body)| {
                    parse_matrix_response(&body).map_err(|e| format!("{url}: {status}: {e}"))
                });
            match answer {
                Ok(matrix) => return Ok(matrix),
                Err(err) => {
                    tracing::error!(err = %err, query = %expr, "range query failed");
                    last_error = Some(err);
                }
            }
        }
        Err(none_reachable(last_error))
    }

    /// Every querier address, clients and their addresses in random order: asked in turn
    /// until one answers.
    fn candidates(&self) -> Vec<(&Client, String)> {
        let mut out = Vec::new();
        for c in shuffled(self.clients.len()) {
            let client = &self.clients[c];
            let addresses = client
                .addresses
                .read()
                .map(|a| a.clone())
                .unwrap_or_default();
            for a in shuffled(addresses.len()) {
                out.push((client, addresses[a].clone()));
            }
        }
        out
    }
}

/// Thanos's message when no querier answered, with the last querier's error for the rule's
/// status.
fn none_reachable(last_error: Option<String>) -> String {
    match last_error {
        Some(err) => format!("no query API server reachable: {err}"),
        None => "no query API server reachable".to_string(),
    }
}

#[async_trait::async_trait]
impl RuleQuerier for HttpQuerier {
    async fn query(
        &self,
        expr: &str,
        ts: i64,
        strategy: PartialResponseStrategy,
    ) -> Result<QueryOutcome, String> {
        let mut last_error = None;
        for (client, address) in self.candidates() {
            match self.ask(client, &address, expr, ts, strategy).await {
                Ok(outcome) => return Ok(outcome),
                Err(err) => {
                    tracing::error!(err = %err, query = %expr, "rule query failed");
                    last_error = Some(err);
                }
            }
        }
        Err(none_reachable(last_error))
    }
}

fn shuffled(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    fastrand::shuffle(&mut order);
    order
}

/// Seconds with up to millisecond decimals, as Thanos's client formats a query time.
fn format_time(ts: i64) -> String {
    let seconds = ts.div_euclid(1000);
    let millis = ts.rem_euclid(1000);
    if millis == 0 {
        seconds.to_string()
    } else {
        format!("{seconds}.{millis:03}")
            .trim_end_matches('0')
            .to_string()
    }
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct ApiSample {
    #[serde(default)]
    metric: std::collections::BTreeMap<String, String>,
    value: (serde_json::Value, String),
}

/// A successful API answer's data and warnings; an error answer is its `errorType: error`.
fn api_data(body: &[u8]) -> Result<(ApiData, Vec<String>), String> {
    let response: ApiResponse = serde_json::from_slice(body).map_err(|e| {
        let head = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        format!("not a Prometheus API response ({e}): {head}")
    })?;
    if response.status != "success" {
        return Err(format!("{}: {}", response.error_type, response.error));
    }
    let data = response.data.ok_or("success without data")?;
    Ok((data, response.warnings))
}

/// Reads an instant query's answer: a vector, or a scalar as one sample without labels.
fn parse_query_response(body: &[u8]) -> Result<QueryOutcome, String> {
    let (data, warnings) = api_data(body)?;
    let value = |v: &str| -> Result<f64, String> {
        v.parse::<f64>()
            .map_err(|_| format!("sample value {v:?} is not a number"))
    };
    let samples = match data.result_type.as_str() {
        "vector" => {
            let samples: Vec<ApiSample> =
                serde_json::from_value(data.result).map_err(|e| format!("vector: {e}"))?;
            samples
                .into_iter()
                .map(|s| Ok((Labels::from_pairs(s.metric), value(&s.value.1)?)))
                .collect::<Result<Vec<_>, String>>()?
        }
        "scalar" => {
            let (_, v): (serde_json::Value, String) =
                serde_json::from_value(data.result).map_err(|e| format!("scalar: {e}"))?;
            vec![(Labels::default(), value(&v)?)]
        }
        other => {
            return Err(format!("rule result is not a vector or scalar: {other}"));
        }
    };
    Ok(QueryOutcome { samples, warnings })
}

#[derive(Deserialize)]
struct ApiSeries {
    #[serde(default)]
    metric: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(serde_json::Value, String)>,
}

/// A range query's answer: each series with its points (time in ms, value).
pub type Matrix = Vec<(Labels, Vec<(i64, f64)>)>;

/// Reads a range query's answer: a matrix, each point's time in ms.
fn parse_matrix_response(body: &[u8]) -> Result<Matrix, String> {
    let (data, _) = api_data(body)?;
    if data.result_type != "matrix" {
        return Err(format!(
            "range query result is not a matrix: {}",
            data.result_type
        ));
    }
    let series: Vec<ApiSeries> =
        serde_json::from_value(data.result).map_err(|e| format!("matrix: {e}"))?;
    series
        .into_iter()
        .map(|s| {
            let points = s
                .values
                .into_iter()
                .map(|(t, v)| {
                    let t = t
                        .as_f64()
                        .ok_or_else(|| format!("point time {t} is not a number"))?;
                    let v = v
                        .parse::<f64>()
                        .map_err(|_| format!("sample value {v:?} is not a number"))?;
                    Ok(((t * 1000.0).round() as i64, v))
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok((Labels::from_pairs(s.metric), points))
        })
        .collect()
}

/// `for` state read back through the queriers, as Thanos's stateless ruler reads it: a range
/// query of the `ALERTS_FOR_STATE` series' selector over the outage tolerance, every
/// `--query.default-step`, with the `--restore-ignored-label` labels removed from what comes
/// back (the remote-write target's external labels, for one) before the series is matched.
pub struct QueriedForState {
    querier: Arc<HttpQuerier>,
    step: Duration,
    ignored_labels: Vec<String>,
}

impl QueriedForState {
    /// Reads through `querier`.
    pub fn new(querier: Arc<HttpQuerier>, step: Duration, ignored_labels: Vec<String>) -> Self {
        QueriedForState {
            querier,
            step,
            ignored_labels,
        }
    }
}

/// `labels` as a selector of equality matchers, values quoted as Go quotes them.
fn selector(labels: &Labels) -> String {
    let mut out = String::from("{");
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&l.name);
        out.push('=');
        // Writing into a String cannot fail.
        let _ = rthanos_model::write_go_quoted(&mut out, &l.value);
    }
    out.push('}');
    out
}

#[async_trait::async_trait]
impl crate::group::ForStateSource for QueriedForState {
    async fn last_sample(
        &self,
        labels: &Labels,
        min_time: i64,
        max_time: i64,
    ) -> Option<(i64, f64)> {
        let expr = selector(labels);
        let matrix = match self
            .querier
            .query_range(&expr, min_time, max_time, self.step)
            .await
        {
            Ok(matrix) => matrix,
            Err(e) => {
                tracing::warn!(err = %e, series = %labels, "reading 'for' state failed");
                return None;
            }
        };
        newest_of(matrix, labels, &self.ignored_labels)
    }
}

/// The newest point of the series of `matrix` that is `labels` once the `ignored` labels are
/// removed (Prometheus's check that the series found has no more labels than asked for).
fn newest_of(matrix: Matrix, labels: &Labels, ignored: &[String]) -> Option<(i64, f64)> {
    matrix.into_iter().find_map(|(found, points)| {
        let kept = Labels::from_pairs(
            found
                .iter()
                .filter(|l| !ignored.contains(&l.name))
                .map(|l| (l.name.clone(), l.value.clone())),
        );
        (kept == *labels).then(|| points.last().copied()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_times_are_seconds_with_millisecond_decimals() {
        assert_eq!(format_time(1_700_000_000_000), "1700000000");
        assert_eq!(format_time(1_700_000_000_120), "1700000000.12");
        assert_eq!(format_time(-1500), "-2.5");
    }

    #[test]
    fn vectors_scalars_errors_and_warnings_are_read() {
        let out = parse_query_response(
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1.5,"1"]},{"metric":{},"value":[1.5,"NaN"]}]},"warnings":["store down"]}"#,
        )
        .expect("vector");
        assert_eq!(out.samples.len(), 2);
        assert_eq!(out.samples[0].0.get("job"), Some("a"));
        assert!(out.samples[1].1.is_nan());
        assert_eq!(out.warnings, ["store down"]);
        let out = parse_query_response(
            br#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"+Inf"]}}"#,
        )
        .expect("scalar");
        assert_eq!(out.samples, [(Labels::default(), f64::INFINITY)]);
        let err = parse_query_response(
            br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
        )
        .expect_err("error");
        assert_eq!(err, "bad_data: parse error");
        let err = parse_query_response(
            br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
        )
        .expect_err("matrix");
        assert!(err.contains("not a vector or scalar"), "{err}");
        assert!(parse_query_response(b"<html>").is_err());
    }

    #[test]
    fn for_state_is_asked_by_selector_and_matched_without_the_ignored_labels() {
        let wanted = Labels::from_pairs([
            ("__name__", "ALERTS_FOR_STATE"),
            ("alertname", "Disk \"full\""),
        ]);
        assert_eq!(
            selector(&wanted),
            r#"{__name__="ALERTS_FOR_STATE",alertname="Disk \"full\""}"#
        );
        let matrix = parse_matrix_response(
            br#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{"__name__":"ALERTS_FOR_STATE","alertname":"Disk \"full\"","instance":"a","ruler":"r1"},"values":[[100,"50"]]},
                {"metric":{"__name__":"ALERTS_FOR_STATE","alertname":"Disk \"full\"","ruler":"r1","receiver":"rw"},"values":[[100.5,"40"],[101.5,"40"]]}
            ]}}"#,
        )
        .expect("matrix");
        assert_eq!(matrix[1].1, [(100_500, 40.0), (101_500, 40.0)]);
        let ignored = ["ruler".to_string(), "receiver".to_string()];
        // The first series has a label more (`instance`): not the alert's.
        assert_eq!(
            newest_of(matrix.clone(), &wanted, &ignored),
            Some((101_500, 40.0))
        );
        assert_eq!(newest_of(matrix, &wanted, &[]), None, "labels not ignored");
        let err = parse_matrix_response(
            br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
        )
        .expect_err("vector");
        assert!(err.contains("not a matrix"), "{err}");
        let err = parse_matrix_response(
            br#"{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points per timeseries"}"#,
        )
        .expect_err("error");
        assert!(err.starts_with("bad_data: exceeded"), "{err}");
    }

    #[test]
    fn query_config_is_thanos_format() {
        let configs = parse_query_config(
            "- http_config:\n    basic_auth: {username: u, password: p}\n  static_configs: [\"q1:9090\", \"dns+q:9090\"]\n  file_sd_configs:\n  - files: [/etc/q/*.yml]\n    refresh_interval: 1m\n  scheme: https\n  path_prefix: /thanos\n",
        )
        .expect("parses");
        assert_eq!(configs.len(), 1);
        assert_eq!(configs[0].static_configs.len(), 2);
        assert_eq!(configs[0].scheme, "https");
        let err = parse_query_config("- static: [x]\n").expect_err("unknown field");
        assert!(err.to_string().contains("static"), "{err}");
    }
}
