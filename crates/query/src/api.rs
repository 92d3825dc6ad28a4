//! The Prometheus HTTP API over the engine: `/api/v1/query` and `/api/v1/query_range` (GET and
//! POST form), `/api/v1/series`, `/api/v1/labels` and `/api/v1/label/<name>/values`, answering with Prometheus 2.42's JSON (values as strings, times as seconds,
//! `warnings` when there are some) and its errors (`errorType` and status code), plus Thanos's
//! parameters `dedup`, `partial_response` and `replicaLabels[]`.

use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rthanos_promql::{Engine, QueryError, Value, format_value};
use serde_json::{Map, json};

use crate::proxy::{NamedStore, ProxyOptions, ProxyQueryable};

/// Where the API gets its stores and defaults.
pub trait StoreSource: Send + Sync + 'static {
    /// The stores known now.
    fn stores(&self) -> Vec<NamedStore>;

    /// When each store was last asked for its Info, and the error if it failed
    /// (`/api/v1/stores`); `None` when never asked.
    fn last_check(&self, _name: &str) -> Option<(String, Option<String>)> {
        None
    }

    /// The endpoints' metadata and exemplars APIs (`/api/v1/metadata`,
    /// `/api/v1/query_exemplars`).
    fn metadata_apis(&self) -> Vec<crate::metadata::NamedMetadataApi> {
        Vec::new()
    }
}

/// The API's state.
pub struct ApiState {
    /// The engine.
    pub engine: Engine,
    /// The stores.
    pub stores: Arc<dyn StoreSource>,
    /// `--query.replica-label`.
    pub replica_labels: Vec<String>,
    /// `--query.partial-response`.
    pub partial_response: bool,
    /// `--query.auto-downsampling`.
    pub auto_downsampling: bool,
    /// `--web.route-prefix` (empty or `/prefix`): where the UI's redirect leads.
    pub route_prefix: String,
    /// `--query.metadata.default-time-range` in ms (0: all time).
    pub metadata_default_range_ms: i64,
    /// Clock, in ms (tests fix it).
    pub now_ms: fn() -> i64,
    /// `/api/v1/status/buildinfo`'s data (version, revision, branch, …).
    pub build_info: serde_json::Value,
}

/// The API's and UI's routes, under `state.route_prefix` when it is set.
pub fn router(state: Arc<ApiState>) -> Router {
    let prefix = state.route_prefix.clone();
    let routes = routes(state);
    if prefix.is_empty() {
        return routes;
    }
    let graph = format!("{prefix}/graph");
    Router::new()
        .nest(&prefix, routes)
        // `/prefix/` as well as `/prefix` leads to the UI.
        .route(
            &format!("{prefix}/"),
            get(move || async move { axum::response::Redirect::to(&graph) }),
        )
}

fn routes(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/stores", get(stores))
        .route("/api/v1/metadata", get(metadata))
        .route(
            "/api/v1/query_exemplars",
            get(query_exemplars).post(query_exemplars),
        )
        .merge(crate::ui::router(&state.route_prefix))
        .with_state(state)
}

/// An API error: Prometheus's `errorType` and HTTP status.
struct ApiError {
    kind: &'static str,
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad_data(message: impl Into<String>) -> Self {
        Self {
            kind: "bad_data",
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let (kind, status) = match &e {
            QueryError::Parse(_) => ("bad_data", StatusCode::BAD_REQUEST),
            QueryError::Execution(_) | QueryError::TooManySamples(_) => {
                ("execution", StatusCode::UNPROCESSABLE_ENTITY)
            }
            QueryError::Timeout(_) => ("timeout", StatusCode::SERVICE_UNAVAILABLE),
            QueryError::Storage(_) => ("execution", StatusCode::UNPROCESSABLE_ENTITY),
        };
        Self {
            kind,
            status,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"status": "error", "errorType": self.kind, "error": self.message})),
        )
            .into_response()
    }
}

/// Prometheus's time parameter: Unix seconds (float) or RFC 3339.
fn parse_time(name: &str, value: &str) -> Result<i64, ApiError> {
    // Prometheus's clients (promtool, Grafana) send its minimum and maximum times as RFC 3339
    // with years beyond what a date type holds.
    if value.starts_with("-292273086-") {
        return Ok(i64::MIN);
    }
    if value.starts_with("292277025-") {
        return Ok(i64::MAX);
    }
    if let Ok(seconds) = value.parse::<f64>() {
        return Ok((seconds * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"{name}\": cannot parse \"{value}\" to a valid timestamp"
            ))
        })
}

/// A duration parameter: float seconds or a Prometheus duration.
fn parse_duration(name: &str, value: &str) -> Result<i64, ApiError> {
    if let Ok(seconds) = value.parse::<f64>() {
        return Ok((seconds * 1000.0).round() as i64);
    }
    value
        .parse::<rthanos_model::PromDuration>()
        .map(|d| d.as_millis())
        .map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"{name}\": cannot parse \"{value}\" to a valid duration"
            ))
        })
}

type Params = Vec<(String, String)>;

/// A request's parameters: its query string and, for a POST, its form body (Prometheus reads
/// both), so one handler serves GET and POST.
struct AllParams(Params);

impl<S: Send + Sync> axum::extract::FromRequest<S> for AllParams {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let Query(mut params) = Query::<Params>::try_from_uri(request.uri())
            .map_err(|e| ApiError::bad_data(e.to_string()))?;
        if request.method() == axum::http::Method::POST {
            let Form(form) = Form::<Params>::from_request(request, state)
                .await
                .map_err(|e| ApiError::bad_data(e.to_string()))?;
            params.extend(form);
        }
        Ok(Self(params))
    }
}

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Thanos's `max_source_resolution`: a duration, or `auto` (`auto_ms`, a fifth of the step for
/// range queries); with no parameter, `auto_ms` under `--query.auto-downsampling`, else raw.
fn max_resolution_window(state: &ApiState, params: &Params, auto_ms: i64) -> Result<i64, ApiError> {
    let window = match param(params, "max_source_resolution") {
        Some("auto") => auto_ms,
        Some(v) if !v.is_empty() => parse_duration("max_source_resolution", v)?,
        _ if state.auto_downsampling => auto_ms,
        _ => 0,
    };
    if window < 0 {
        return Err(ApiError::bad_data(
            "negative max_source_resolution is not accepted. Try a positive integer",
        ));
    }
    Ok(window)
}

/// A boolean parameter (`true` or `1`), or `default` when absent.
fn proxy_flag(params: &Params, name: &str, default: bool) -> bool {
    param(params, name).map_or(default, |v| matches!(v, "true" | "1"))
}

fn proxy(state: &ApiState, params: &Params) -> ProxyQueryable {
    let flag = |name: &str, default: bool| proxy_flag(params, name, default);
    let mut replica_labels: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "replicaLabels[]")
        .map(|(_, v)| v.clone())
        .collect();
    if replica_labels.is_empty() {
        replica_labels = state.replica_labels.clone();
    }
    ProxyQueryable::new(
        state.stores.stores(),
        ProxyOptions {
            replica_labels,
            dedup: flag("dedup", true),
            partial_response: flag("partial_response", state.partial_response),
            max_resolution_window: 0,
        },
    )
}

/// A sample value as Prometheus's JSON writes it: Go's shortest 'f' format, but 'e' (with a
/// signed two-digit exponent at least) below 1e-6 and from 1e21 in magnitude.
fn json_value(v: f64) -> String {
    let abs = v.abs();
    if v.is_finite() && abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{v:e}");
        if let Some((mantissa, exponent)) = s.split_once('e') {
            let (sign, digits) = exponent
                .strip_prefix('-')
                .map_or(("+", exponent), |d| ("-", d));
            return format!("{mantissa}e{sign}{digits:0>2}");
        }
    }
    format_value(v)
}

fn seconds(ms: i64) -> serde_json::Value {
    // Prometheus prints times as decimal seconds, shortest form.
    let s = format_value(ms as f64 / 1000.0);
    serde_json::from_str(&s).unwrap_or(serde_json::Value::Null)
}

fn metric(labels: &rthanos_model::Labels) -> serde_json::Value {
    let mut m = Map::new();
    for l in labels {
        m.insert(l.name.clone(), l.value.clone().into());
    }
    serde_json::Value::Object(m)
}

fn data(value: Value) -> serde_json::Value {
    match value {
        Value::Scalar { t, v } => {
            json!({"resultType": "scalar", "result": [seconds(t), json_value(v)]})
        }
        Value::String { t, s } => json!({"resultType": "string", "result": [seconds(t), s]}),
        Value::Vector(samples) => json!({
            "resultType": "vector",
            "result": samples.iter().map(|s| json!({
                "metric": metric(&s.labels),
                "value": [seconds(s.t), json_value(s.v)],
            })).collect::<Vec<_>>(),
        }),
        Value::Matrix(series) => json!({
            "resultType": "matrix",
            "result": series.iter().map(|s| json!({
                "metric": metric(&s.labels),
                "values": s.samples.iter().map(|p| json!([seconds(p.t), json_value(p.v)])).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
    }
}

fn success(value: Value, warnings: Vec<String>) -> Response {
    let mut body = json!({"status": "success", "data": data(value)});
    if !warnings.is_empty() {
        body["warnings"] = warnings.into();
    }
    Json(body).into_response()
}

async fn run_query(state: Arc<ApiState>, params: Params) -> Result<Response, ApiError> {
    let query = param(&params, "query").unwrap_or_default().to_string();
    let t = match param(&params, "time") {
        Some(v) => parse_time("time", v)?,
        None => (state.now_ms)(),
    };
    let window = max_resolution_window(&state, &params, 0)?;
    let storage = proxy(&state, &params).with_max_resolution_window(window);
    let value = state.engine.instant_query(&storage, &query, t).await?;
    Ok(success(value, storage.warnings()))
}

async fn run_query_range(state: Arc<ApiState>, params: Params) -> Result<Response, ApiError> {
    let query = param(&params, "query").unwrap_or_default().to_string();
    let start = parse_time("start", param(&params, "start").unwrap_or(""))?;
    let end = parse_time("end", param(&params, "end").unwrap_or(""))?;
    let step = parse_duration("step", param(&params, "step").unwrap_or(""))?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    if step <= 0 {
        return Err(ApiError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    // Prometheus's cap on points per series.
    if (end - start) / step > 11_000 {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let window = max_resolution_window(&state, &params, step / 5)?;
    let storage = proxy(&state, &params).with_max_resolution_window(window);
    let value = state
        .engine
        .range_query(&storage, &query, start, end, step)
        .await?;
    Ok(success(value, storage.warnings()))
}

/// `start` / `end` of the metadata APIs: all time when absent.
fn metadata_range(params: &Params) -> Result<(i64, i64), ApiError> {
    let start = match param(params, "start") {
        Some(v) => parse_time("start", v)?,
        None => i64::MIN,
    };
    let end = match param(params, "end") {
        Some(v) => parse_time("end", v)?,
        None => i64::MAX,
    };
    Ok((start, end))
}

/// The labels and series APIs' range: without `start`, the last
/// `--query.metadata.default-time-range` when it is set (else all time).
fn labels_range(state: &ApiState, params: &Params) -> Result<(i64, i64), ApiError> {
    let (mut start, mut end) = metadata_range(params)?;
    if param(params, "start").is_none() && state.metadata_default_range_ms > 0 {
        let now = (state.now_ms)();
        if param(params, "end").is_none() {
            end = now;
        }
        start = end.saturating_sub(state.metadata_default_range_ms);
    }
    Ok((start, end))
}

/// The `match[]` selectors, parsed.
fn selectors(params: &Params) -> Result<Vec<Vec<rthanos_model::Matcher>>, ApiError> {
    params
        .iter()
        .filter(|(k, _)| k == "match[]")
        .map(|(_, v)| rthanos_promql::parse_selector(v).map_err(ApiError::from))
        .collect()
}

fn storage_error(e: rthanos_promql::StorageError) -> ApiError {
    ApiError::from(QueryError::Storage(e))
}

fn list(values: &[String], warnings: Vec<String>) -> Response {
    let mut body = json!({"status": "success", "data": values});
    if !warnings.is_empty() {
        body["warnings"] = warnings.into();
    }
    Json(body).into_response()
}

/// Label names, or the values of one label, over the `match[]` selectors (all series when
/// none is given).
async fn run_list(
    state: Arc<ApiState>,
    params: Params,
    label: Option<String>,
) -> Result<Response, ApiError> {
    let (start, end) = labels_range(&state, &params)?;
    let storage = proxy(&state, &params);
    let mut selectors = selectors(&params)?;
    if selectors.is_empty() {
        selectors.push(Vec::new());
    }
    let mut union = std::collections::BTreeSet::new();
    for matchers in selectors {
        let found = match &label {
            None => storage.label_names(&matchers, start, end).await,
            Some(name) => storage.label_values(name, &matchers, start, end).await,
        };
        union.extend(found.map_err(storage_error)?);
    }
    Ok(list(
        &union.into_iter().collect::<Vec<_>>(),
        storage.warnings(),
    ))
}

async fn labels(
    State(state): State<Arc<ApiState>>,
    AllParams(params): AllParams,
) -> Result<Response, ApiError> {
    run_list(state, params, None).await
}

async fn label_values(
    State(state): State<Arc<ApiState>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    AllParams(params): AllParams,
) -> Result<Response, ApiError> {
    run_list(state, params, Some(name)).await
}

async fn run_series(state: Arc<ApiState>, params: Params) -> Result<Response, ApiError> {
    let (start, end) = labels_range(&state, &params)?;
    let selectors = selectors(&params)?;
    if selectors.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    // Every resolution, as Thanos: series only left in downsampled blocks are series too.
    let storage = proxy(&state, &params).with_max_resolution_window(i64::MAX);
    let hints = rthanos_promql::SelectHints {
        start,
        end,
        func: Some("series".into()),
        ..Default::default()
    };
    let mut sets = std::collections::BTreeSet::new();
    for matchers in selectors {
        for s in rthanos_promql::Queryable::select(&storage, &matchers, &hints)
            .await
            .map_err(storage_error)?
        {
            sets.insert(s.labels);
        }
    }
    let data: Vec<serde_json::Value> = sets.iter().map(metric).collect();
    let mut body = json!({"status": "success", "data": data});
    let warnings = storage.warnings();
    if !warnings.is_empty() {
        body["warnings"] = warnings.into();
    }
    Ok(Json(body).into_response())
}

async fn series(
    State(state): State<Arc<ApiState>>,
    AllParams(params): AllParams,
) -> Result<Response, ApiError> {
    run_series(state, params).await
}

async fn buildinfo(State(state): State<Arc<ApiState>>) -> Response {
    Json(json!({"status": "success", "data": state.build_info})).into_response()
}

/// Thanos's `/api/v1/stores`: the endpoints by component type, with their health, label sets
/// and time ranges.
async fn stores(State(state): State<Arc<ApiState>>) -> Response {
    let mut by_type: Map<String, serde_json::Value> = Map::new();
    for named in state.stores.stores() {
        let info = named.store.info();
        let (last_check, last_error) = state
            .stores
            .last_check(&named.name)
            .unwrap_or_else(|| ("0001-01-01T00:00:00Z".into(), None));
        let entry = json!({
            "name": named.name,
            "lastCheck": last_check,
            "lastError": last_error,
            "labelSets": info.label_sets.iter().map(metric).collect::<Vec<_>>(),
            "minTime": info.min_time,
            "maxTime": info.max_time,
        });
        let list = by_type
            .entry(info.component.name().to_string())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(items) = list {
            items.push(entry);
        }
    }
    Json(json!({"status": "success", "data": by_type})).into_response()
}

/// Prometheus's `/api/v1/metadata` (`metric`, `limit`), merged over the endpoints.
async fn metadata(
    State(state): State<Arc<ApiState>>,
    AllParams(params): AllParams,
) -> Result<Response, ApiError> {
    let limit = match param(&params, "limit") {
        Some(v) if !v.is_empty() => v
            .parse::<i32>()
            .map_err(|_| ApiError::bad_data("limit must be a number"))?,
        _ => -1,
    };
    let request = rthanos_storeapi::thanos::MetricMetadataRequest {
        metric: param(&params, "metric").unwrap_or_default().to_string(),
        limit,
        ..Default::default()
    };
    let partial = proxy_flag(&params, "partial_response", state.partial_response);
    let (found, warnings) =
        crate::metadata::metric_metadata(&state.stores.metadata_apis(), request, partial)
            .await
            .map_err(|e| storage_error(rthanos_promql::StorageError(e)))?;
    // By metric name, so answers do not change order from one call to the next.
    let sorted: std::collections::BTreeMap<_, _> = found.metadata.into_iter().collect();
    let data: Map<String, serde_json::Value> = sorted
        .into_iter()
        .map(|(metric, entry)| {
            let metas = entry
                .metas
                .into_iter()
                .map(|m| json!({"type": m.r#type, "help": m.help, "unit": m.unit}))
                .collect();
            (metric, serde_json::Value::Array(metas))
        })
        .collect();
    Ok(with_warnings(
        json!({"status": "success", "data": data}),
        warnings,
    ))
}

/// Prometheus's `/api/v1/query_exemplars` (`query`, `start`, `end`), merged over the
/// endpoints; with dedup, replicas' series are one.
async fn query_exemplars(
    State(state): State<Arc<ApiState>>,
    AllParams(params): AllParams,
) -> Result<Response, ApiError> {
    let query = param(&params, "query").unwrap_or_default().to_string();
    rthanos_promql::parse_query(&query).map_err(ApiError::from)?;
    let (start, end) = metadata_range(&params)?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let request = rthanos_storeapi::thanos::ExemplarsRequest {
        query,
        start,
        end,
        ..Default::default()
    };
    let replica_labels = if proxy_flag(&params, "dedup", true) {
        state.replica_labels.clone()
    } else {
        Vec::new()
    };
    let partial = proxy_flag(&params, "partial_response", state.partial_response);
    let (data, warnings) = crate::metadata::exemplars(
        &state.stores.metadata_apis(),
        request,
        &replica_labels,
        partial,
    )
    .await
    .map_err(|e| storage_error(rthanos_promql::StorageError(e)))?;
    let label_map = |set: Option<rthanos_storeapi::thanos::LabelSet>| -> serde_json::Value {
        let mut m = Map::new();
        for l in set.map(|s| s.labels).unwrap_or_default() {
            m.insert(l.name, l.value.into());
        }
        serde_json::Value::Object(m)
    };
    let data: Vec<serde_json::Value> = data
        .into_iter()
        .map(|d| {
            json!({
                "seriesLabels": label_map(d.series_labels),
                "exemplars": d.exemplars.into_iter().map(|e| json!({
                    "labels": label_map(e.labels),
                    "value": json_value(e.value),
                    "timestamp": seconds(e.ts),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(with_warnings(
        json!({"status": "success", "data": data}),
        warnings,
    ))
}

fn with_warnings(mut body: serde_json::Value, warnings: Vec<String>) -> Response {
    if !warnings.is_empty() {
        body["warnings"] = warnings.into();
    }
    Json(body).into_response()
}

async fn query(
    State(state): State<Arc<ApiState>>,
    AllParams(params): AllParams,
) -> Result<Response, ApiError> {
    run_query(state, params).await
}

async fn query_range(
    State(state): State<Arc<ApiState>>,
    AllParams(params): AllParams,
) -> Result<Response, ApiError> {
    run_query_range(state, params).await
}

#[cfg(test)]
mod tests {
    use super::json_value;

    #[test]
    fn values_are_written_as_prometheus_json() {
        for (v, want) in [
            (1.5, "1.5"),
            (-1e300, "-1e+300"),
            (1e21, "1e+21"),
            (123_456_789_012_345_680_000.0, "123456789012345680000"),
            (1.5e-7, "1.5e-07"),
            (1e-6, "0.000001"),
            (0.0, "0"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(json_value(v), want, "{v}");
        }
    }
}
