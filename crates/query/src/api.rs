//! The Prometheus HTTP API over the engine: `/api/v1/query` and `/api/v1/query_range` (GET and
//! POST form), `/api/v1/series`, `/api/v1/labels` and `/api/v1/label/<name>/values`, answering with Prometheus 2.42's JSON (values as strings, times as seconds,
//! `warnings` when there are some) and its errors (`errorType` and status code), plus Thanos's
//! parameters `dedup`, `partial_response` and `replicaLabels[]`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rthanos_promql::{Engine, QueryError, Value};
use serde_json::{Map, json};

use crate::proxy::ProxyOptions;
pub use crate::proxy::StoreSource;
use crate::queryable::ProxyQueryable;

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
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
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

impl From<crate::params::InvalidParam> for ApiError {
    fn from(e: crate::params::InvalidParam) -> Self {
        Self::bad_data(e.to_string())
    }
}

/// A duration parameter (`max_source_resolution`) in ms.
fn parse_duration_ms(name: &str, value: &str) -> Result<i64, ApiError> {
    Ok(crate::params::parse_duration(name, value)? / 1_000_000)
}

type Params = Vec<(String, String)>;

/// A request's parameters: its form body for a POST, then its query string (Go's
/// `Request.Form` order: the body's values win), so one handler serves GET and POST. Values
/// are percent-decoded as Go's `url.ParseQuery` decodes them (an invalid escape or a `;` is
/// an error); the names of those that are not UTF-8 are kept apart ([`AllParams::not_utf8`]),
/// since Prometheus refuses such a query or selector.
struct AllParams(Params, Vec<String>);

impl AllParams {
    /// Whether the value of `name` was not UTF-8 (it holds U+FFFD instead).
    fn not_utf8(&self, name: &str) -> bool {
        self.1.iter().any(|n| n == name)
    }
}

/// Go's `url.ParseQuery` into `params`: `+` is a space, `%XX` a byte; an invalid escape or a
/// `;` makes the whole form an error, as `Request.ParseForm` reports it.
fn parse_form(raw: &[u8], params: &mut Params, not_utf8: &mut Vec<String>) -> Result<(), ApiError> {
    fn decode(part: &[u8]) -> Result<Vec<u8>, ApiError> {
        let mut out = Vec::with_capacity(part.len());
        let mut i = 0;
        while i < part.len() {
            match part[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = |k: usize| part.get(k).and_then(|c| (*c as char).to_digit(16));
                    let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                        let escape = String::from_utf8_lossy(&part[i..part.len().min(i + 3)]);
                        return Err(ApiError::bad_data(format!(
                            "error parsing form values: invalid URL escape \"{escape}\""
                        )));
                    };
                    out.push((hi * 16 + lo) as u8);
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        Ok(out)
    }
    for pair in raw.split(|&b| b == b'&') {
        if pair.is_empty() {
            continue;
        }
        if pair.contains(&b';') {
            return Err(ApiError::bad_data(
                "error parsing form values: invalid semicolon separator in query",
            ));
        }
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &b""[..]),
        };
        let key = String::from_utf8_lossy(&decode(key)?).into_owned();
        let value = decode(value)?;
        let value = match String::from_utf8(value) {
            Ok(v) => v,
            Err(e) => {
                not_utf8.push(key.clone());
                String::from_utf8_lossy(e.as_bytes()).into_owned()
            }
        };
        params.push((key, value));
    }
    Ok(())
}

/// Largest form body read, as Go's `ParseForm` caps it (10 MB).
const MAX_FORM_BYTES: usize = 10 << 20;

impl<S: Send + Sync> axum::extract::FromRequest<S> for AllParams {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, _state: &S) -> Result<Self, ApiError> {
        let (mut params, mut not_utf8) = (Vec::new(), Vec::new());
        let query = request.uri().query().unwrap_or("").as_bytes().to_vec();
        let form = request.method() == axum::http::Method::POST
            && request
                .headers()
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if form {
            let body = axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES)
                .await
                .map_err(|_| {
                    ApiError::bad_data("error parsing form values: http: POST too large")
                })?;
            parse_form(&body, &mut params, &mut not_utf8)?;
        }
        parse_form(&query, &mut params, &mut not_utf8)?;
        Ok(Self(params, not_utf8))
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
        Some(v) if !v.is_empty() => parse_duration_ms("max_source_resolution", v)?,
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

/// A sample value as Prometheus's JSON writes it (unquoted), for answers built as JSON values.
fn metric(labels: &rthanos_model::Labels) -> serde_json::Value {
    let mut m = Map::new();
    for l in labels {
        m.insert(l.name.clone(), l.value.clone().into());
    }
    serde_json::Value::Object(m)
}

/// The `query` parameter; one that is not UTF-8 is refused as Prometheus's lexer refuses it.
fn query_param(all: &AllParams) -> Result<String, ApiError> {
    if all.not_utf8("query") {
        return Err(ApiError::bad_data(
            "invalid parameter \"query\": 1:1: parse error: invalid UTF-8 rune",
        ));
    }
    Ok(param(&all.0, "query").unwrap_or_default().to_string())
}

/// The engine for one request: `timeout`, when given, shortens `--query.timeout` (Thanos caps
/// it there); zero or negative makes the query time out at once, as in Prometheus.
fn engine_for(state: &ApiState, params: &Params) -> Result<rthanos_promql::Engine, ApiError> {
    match param(params, "timeout") {
        Some(v) if !v.is_empty() => {
            let ns = crate::params::parse_duration("timeout", v)?;
            let timeout = std::time::Duration::from_nanos(u64::try_from(ns).unwrap_or(0));
            Ok(state.engine.with_timeout(timeout))
        }
        _ => Ok(state.engine.clone()),
    }
}

async fn run_query(state: Arc<ApiState>, all: AllParams) -> Result<Response, ApiError> {
    let params = &all.0;
    let now = crate::params::GoTime::from_millis((state.now_ms)());
    let t = crate::params::parse_time_or("time", param(params, "time"), now)?.engine_ms();
    let engine = engine_for(&state, params)?;
    let query = query_param(&all)?;
    let window = max_resolution_window(&state, params, 0)?;
    let storage = proxy(&state, params).with_max_resolution_window(window);
    let value = engine.instant_query(&storage, &query, t).await?;
    Ok(crate::json::success(value, &storage.warnings()))
}

async fn run_query_range(state: Arc<ApiState>, all: AllParams) -> Result<Response, ApiError> {
    use crate::params::{parse_duration, parse_time};
    let params = &all.0;
    // Prometheus's order of checks, on Go's times: start, end, their order, step, the
    // points per series, timeout, query.
    let start = parse_time("start", param(params, "start").unwrap_or(""))?;
    let end = parse_time("end", param(params, "end").unwrap_or(""))?;
    if end.before(start) {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = parse_duration("step", param(params, "step").unwrap_or(""))?;
    if step <= 0 {
        return Err(ApiError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    // Prometheus's cap on points per series.
    if end.since(start) / step > 11_000 {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let engine = engine_for(&state, params)?;
    let query = query_param(&all)?;
    let (start, end, step) = (start.engine_ms(), end.engine_ms(), step / 1_000_000);
    if step == 0 {
        // Prometheus's evaluator divides by the step in milliseconds: its query fails.
        return Err(ApiError::from(QueryError::Execution(
            "query resolution step below one millisecond".into(),
        )));
    }
    let window = max_resolution_window(&state, params, step / 5)?;
    let storage = proxy(&state, params).with_max_resolution_window(window);
    let value = if end < start {
        // Times beyond the int64 range of nanoseconds wrap as in Prometheus, whose evaluation
        // then has no step: the query is checked, and answers an empty matrix.
        rthanos_promql::parse_query(&query)?;
        Value::Matrix(Vec::new())
    } else {
        engine
            .range_query(&storage, &query, start, end, step)
            .await?
    };
    Ok(crate::json::success(value, &storage.warnings()))
}

/// `start` / `end` of the metadata APIs (Prometheus's minimum and maximum times when absent
/// or empty), in ms.
fn metadata_range(params: &Params) -> Result<(i64, i64), ApiError> {
    let (start, end) = go_range(params)?;
    Ok((start.from_time_ms(), end.from_time_ms()))
}

fn go_range(params: &Params) -> Result<(crate::params::GoTime, crate::params::GoTime), ApiError> {
    use crate::params::{GoTime, parse_time_or};
    Ok((
        parse_time_or("start", param(params, "start"), GoTime::MIN)?,
        parse_time_or("end", param(params, "end"), GoTime::MAX)?,
    ))
}

/// The labels and series APIs' range: without `start`, the last
/// `--query.metadata.default-time-range` when it is set (else all time).
fn labels_range(state: &ApiState, params: &Params) -> Result<(i64, i64), ApiError> {
    let (mut start, mut end) = metadata_range(params)?;
    let absent = |name: &str| param(params, name).is_none_or(str::is_empty);
    if absent("start") && state.metadata_default_range_ms > 0 {
        let now = (state.now_ms)();
        if absent("end") {
            end = now;
        }
        start = end.saturating_sub(state.metadata_default_range_ms);
    }
    Ok((start, end))
}

/// The `match[]` selectors, parsed (Prometheus's `parseMatchersParam`).
fn selectors(all: &AllParams) -> Result<Vec<Vec<rthanos_model::Matcher>>, ApiError> {
    if all.not_utf8("match[]") {
        return Err(ApiError::bad_data("1:1: parse error: invalid UTF-8 rune"));
    }
    all.0
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
    all: AllParams,
    label: Option<String>,
) -> Result<Response, ApiError> {
    let params = &all.0;
    let (start, end) = labels_range(&state, params)?;
    let mut selectors = selectors(&all)?;
    let storage = proxy(&state, params);
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

async fn labels(State(state): State<Arc<ApiState>>, all: AllParams) -> Result<Response, ApiError> {
    run_list(state, all, None).await
}

async fn label_values(
    State(state): State<Arc<ApiState>>,
    name: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
    all: AllParams,
) -> Result<Response, ApiError> {
    let name = match name {
        Ok(axum::extract::Path(name)) => name,
        // Not UTF-8 once decoded.
        Err(_) => return Err(ApiError::bad_data("invalid label name: \"\\ufffd\"")),
    };
    // An escaped `/` is a path separator to Prometheus's router: no such route.
    if name.contains('/') {
        return Ok(StatusCode::NOT_FOUND.into_response());
    }
    if !rthanos_model::is_valid_label_name(&name) {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    run_list(state, all, Some(name)).await
}

async fn run_series(state: Arc<ApiState>, all: AllParams) -> Result<Response, ApiError> {
    let params = &all.0;
    if !params.iter().any(|(k, _)| k == "match[]") {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = labels_range(&state, params)?;
    let selectors = selectors(&all)?;
    // Every resolution, as Thanos: series only left in downsampled blocks are series too.
    let storage = proxy(&state, params).with_max_resolution_window(i64::MAX);
    let hints = rthanos_promql::SelectHints {
        start,
        end,
        func: Some(rthanos_promql::SelectFunc::Series),
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

async fn series(State(state): State<Arc<ApiState>>, all: AllParams) -> Result<Response, ApiError> {
    run_series(state, all).await
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
    AllParams(params, _): AllParams,
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

/// The Rules API request of `/api/v1/rules` (`type`, `match[]`, `rule_name[]`,
/// `rule_group[]`, `file[]`) and whether partial responses are on.
fn rules_request(
    state: &ApiState,
    params: &Params,
) -> Result<(rthanos_storeapi::thanos::RulesRequest, bool), ApiError> {
    use rthanos_storeapi::thanos::{PartialResponseStrategy, RulesRequest, rules_request::Type};
    let kind = match param(params, "type")
        .unwrap_or_default()
        .to_lowercase()
        .as_str()
    {
        "" => Type::All,
        "alert" => Type::Alert,
        "record" => Type::Record,
        other => {
            return Err(ApiError::bad_data(format!(
                "invalid rule type, must be one of 'alert' or 'record': {other}"
            )));
        }
    };
    let all = |name: &str| -> Vec<String> {
        params
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let partial = proxy_flag(params, "partial_response", state.partial_response);
    Ok((
        RulesRequest {
            r#type: kind as i32,
            partial_response_strategy: if partial {
                PartialResponseStrategy::Warn
            } else {
                PartialResponseStrategy::Abort
            } as i32,
            matcher_string: all("match[]"),
            rule_name: all("rule_name[]"),
            rule_group: all("rule_group[]"),
            file: all("file[]"),
        },
        partial,
    ))
}

/// `/api/v1/rules`: the rulers' groups, merged and deduplicated over the replica labels.
async fn rules(
    State(state): State<Arc<ApiState>>,
    AllParams(params, _): AllParams,
) -> Result<Response, ApiError> {
    let (request, partial) = rules_request(&state, &params)?;
    let (groups, warnings) = crate::rules::rule_groups(
        &state.stores.metadata_apis(),
        request,
        &state.replica_labels,
        partial,
    )
    .await
    .map_err(|e| storage_error(rthanos_promql::StorageError(e)))?;
    Ok(with_warnings(
        json!({"status": "success", "data": rthanos_storeapi::rules::rule_groups_json(&groups)}),
        warnings,
    ))
}

/// `/api/v1/alerts`: the alerts of the rulers' alerting rules.
async fn alerts(
    State(state): State<Arc<ApiState>>,
    AllParams(mut params, _): AllParams,
) -> Result<Response, ApiError> {
    params.retain(|(k, _)| k != "type");
    params.push(("type".into(), "alert".into()));
    let (request, partial) = rules_request(&state, &params)?;
    let (groups, warnings) = crate::rules::rule_groups(
        &state.stores.metadata_apis(),
        request,
        &state.replica_labels,
        partial,
    )
    .await
    .map_err(|e| storage_error(rthanos_promql::StorageError(e)))?;
    let alerts = crate::rules::alerts(&groups);
    Ok(with_warnings(
        json!({"status": "success", "data": rthanos_storeapi::rules::alerts_json(&alerts)}),
        warnings,
    ))
}

/// Prometheus's `/api/v1/query_exemplars` (`query`, `start`, `end`), merged over the
/// endpoints; with dedup, replicas' series are one.
async fn query_exemplars(
    State(state): State<Arc<ApiState>>,
    all: AllParams,
) -> Result<Response, ApiError> {
    // Prometheus's order: the times, their order, then the query.
    let (start, end) = go_range(&all.0)?;
    if end.before(start) {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let (start, end) = (start.from_time_ms(), end.from_time_ms());
    let query = query_param(&all)?;
    // A query without selectors has no exemplars: Prometheus answers 204, no body.
    if rthanos_promql::selectors(&query)?.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let params = all.0;
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
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        crate::json::exemplars(&data, &warnings),
    )
        .into_response())
}

fn with_warnings(mut body: serde_json::Value, warnings: Vec<String>) -> Response {
    if !warnings.is_empty() {
        body["warnings"] = warnings.into();
    }
    Json(body).into_response()
}

async fn query(State(state): State<Arc<ApiState>>, all: AllParams) -> Result<Response, ApiError> {
    run_query(state, all).await
}

async fn query_range(
    State(state): State<Arc<ApiState>>,
    all: AllParams,
) -> Result<Response, ApiError> {
    run_query_range(state, all).await
}
