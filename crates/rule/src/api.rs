//! What the ruler tells about its rules: Thanos's Rules gRPC API (`thanos.Rules/Rules`, which
//! a querier fans out), and `/api/v1/rules` and `/api/v1/alerts` in the JSON Thanos's ruler
//! serves (Prometheus's, with each group's and alert's partial-response strategy).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use rthanos_model::{Labels, Matcher};
use rthanos_storeapi::rules::{alerts_json, rule_groups_json, timestamp_ms};
use rthanos_storeapi::thanos::{
    self, AlertInstance, AlertState as ProtoState, RuleGroup, RulesRequest, RulesResponse,
    ZLabelSet, rule, rules_request, rules_response, rules_server,
};
use serde_json::json;

use crate::alerting::{Alert, AlertState};
use crate::group::{Group, RuleState};
use crate::manager::Manager;
use crate::rulefmt::PartialResponseStrategy;

fn strategy(s: PartialResponseStrategy) -> i32 {
    match s {
        PartialResponseStrategy::Warn => thanos::PartialResponseStrategy::Warn as i32,
        PartialResponseStrategy::Abort => thanos::PartialResponseStrategy::Abort as i32,
    }
}

fn state(s: AlertState) -> ProtoState {
    match s {
        AlertState::Inactive => ProtoState::Inactive,
        AlertState::Pending => ProtoState::Pending,
        AlertState::Firing => ProtoState::Firing,
    }
}

fn zlabels<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> Option<ZLabelSet> {
    Some(ZLabelSet {
        labels: pairs
            .into_iter()
            .map(|(name, value)| thanos::Label {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
    })
}

fn labels_z(labels: &Labels) -> Option<ZLabelSet> {
    Some(ZLabelSet {
        labels: rthanos_storeapi::convert::labels_to_thanos(labels),
    })
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`: `1e+00`, `3.14159e+00`, `1.5e-07`.
pub fn format_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let rust = format!("{v:e}");
    let (mantissa, exponent) = rust.split_once('e').unwrap_or((&rust, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

fn alert_instance(alert: &Alert, s: PartialResponseStrategy) -> AlertInstance {
    AlertInstance {
        labels: labels_z(&alert.labels),
        annotations: zlabels(&alert.annotations),
        state: state(alert.state) as i32,
        active_at: Some(timestamp_ms(alert.active_at)),
        value: format_e(alert.value),
        partial_response_strategy: strategy(s),
    }
}

/// The expression as Prometheus prints the parsed rule (`rule.Query().String()`).
fn printed(expr: &str) -> String {
    rthanos_promql::parse_query(expr)
        .map(|parsed| parsed.on_stack(|e| e.to_string()))
        .unwrap_or_else(|_| expr.to_string())
}

/// Which rules a request asks for.
#[derive(Debug, Default)]
pub struct RuleFilter {
    /// Alerting rules.
    pub alerts: bool,
    /// Recording rules.
    pub records: bool,
    /// Series selectors a rule's labels must match one of (none: any).
    pub matchers: Vec<Vec<Matcher>>,
    /// Rule names (none: any).
    pub rule_names: Vec<String>,
    /// Group names (none: any).
    pub rule_groups: Vec<String>,
    /// Files (none: any).
    pub files: Vec<String>,
}

impl RuleFilter {
    /// Every rule.
    pub fn all() -> Self {
        RuleFilter {
            alerts: true,
            records: true,
            ..RuleFilter::default()
        }
    }

    /// The filter of a Rules API request.
    ///
    /// # Errors
    /// A selector does not parse.
    pub fn from_request(request: &RulesRequest) -> Result<Self, String> {
        let kind = rules_request::Type::try_from(request.r#type).unwrap_or_default();
        let mut matchers = Vec::new();
        for selector in &request.matcher_string {
            matchers.push(rthanos_promql::parse_selector(selector).map_err(|e| e.to_string())?);
        }
        Ok(RuleFilter {
            alerts: kind != rules_request::Type::Record,
            records: kind != rules_request::Type::Alert,
            matchers,
            rule_names: request.rule_name.clone(),
            rule_groups: request.rule_group.clone(),
            files: request.file.clone(),
        })
    }

    fn labels_match(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.matchers.is_empty()
            || self.matchers.iter().any(|set| {
                set.iter()
                    .all(|m| m.matches(labels.get(&m.name).map_or("", String::as_str)))
            })
    }
}

/// The groups as Rules API messages; groups keep their place when the filter empties them,
/// as in Prometheus's API.
pub fn rule_groups(groups: &[Group], filter: &RuleFilter) -> Vec<RuleGroup> {
    groups
        .iter()
        .filter(|g| filter.rule_groups.is_empty() || filter.rule_groups.contains(&g.key().name))
        .filter(|g| filter.files.is_empty() || filter.files.iter().any(|f| f == g.original_file()))
        .map(|g| {
            let rules = g
                .rules()
                .iter()
                .filter(|r| {
                    filter.rule_names.is_empty() || filter.rule_names.iter().any(|n| n == r.name())
                })
                .filter_map(|r| {
                    let last_evaluation = r.last_evaluation.map(timestamp_ms);
                    let result = match &r.state {
                        RuleState::Recording { name, labels } => {
                            if !filter.records || !filter.labels_match(labels) {
                                return None;
                            }
                            rule::Result::Recording(thanos::RecordingRule {
                                name: name.clone(),
                                query: printed(&r.expr),
                                labels: zlabels(labels),
                                health: r.health.as_str().to_string(),
                                last_error: r.last_error.clone().unwrap_or_default(),
                                evaluation_duration_seconds: r.evaluation_duration.as_secs_f64(),
                                last_evaluation,
                            })
                        }
                        RuleState::Alerting(alerting) => {
                            if !filter.alerts || !filter.labels_match(alerting.labels()) {
                                return None;
                            }
                            let alerts: Vec<AlertInstance> = alerting
                                .alerts()
                                .into_iter()
                                .filter(|a| a.state != AlertState::Inactive)
                                .map(|a| alert_instance(a, g.strategy()))
                                .collect();
                            // The rule's state is its most severe alert's.
                            let rule_state = alerts
                                .iter()
                                .map(|a| a.state)
                                .max()
                                .unwrap_or(ProtoState::Inactive as i32);
                            rule::Result::Alert(thanos::Alert {
                                state: rule_state,
                                name: alerting.name().to_string(),
                                query: printed(&r.expr),
                                duration_seconds: alerting.hold_ms() as f64 / 1000.0,
                                labels: zlabels(alerting.labels()),
                                annotations: zlabels(alerting.annotations()),
                                alerts,
                                health: r.health.as_str().to_string(),
                                last_error: r.last_error.clone().unwrap_or_default(),
                                evaluation_duration_seconds: r.evaluation_duration.as_secs_f64(),
                                last_evaluation,
                                keep_firing_for_seconds: alerting.keep_firing_for_ms() as f64
                                    / 1000.0,
                            })
                        }
                    };
                    Some(thanos::Rule {
                        result: Some(result),
                    })
                })
                .collect();
            RuleGroup {
                name: g.key().name.clone(),
                file: g.original_file().to_string(),
                rules,
                interval: g.interval().as_secs_f64(),
                evaluation_duration_seconds: g.evaluation_duration().as_secs_f64(),
                last_evaluation: g.last_evaluation().map(timestamp_ms),
                partial_response_strategy: strategy(g.strategy()),
                limit: i64::try_from(g.limit()).unwrap_or(i64::MAX),
            }
        })
        .collect()
}

/// The pending and firing alerts of every alerting rule.
pub fn active_alerts(groups: &[Group]) -> Vec<AlertInstance> {
    let mut out = Vec::new();
    for g in groups {
        for r in g.rules() {
            if let RuleState::Alerting(alerting) = &r.state {
                out.extend(
                    alerting
                        .alerts()
                        .into_iter()
                        .filter(|a| a.state != AlertState::Inactive)
                        .map(|a| alert_instance(a, g.strategy())),
                );
            }
        }
    }
    out
}

/// `thanos.Rules/Rules` over the manager's groups.
pub struct RulesService {
    manager: Arc<Manager>,
}

impl RulesService {
    /// The service over `manager`.
    pub fn new(manager: Arc<Manager>) -> Self {
        RulesService { manager }
    }

    /// The tonic service.
    pub fn server(self) -> rules_server::RulesServer<Self> {
        rules_server::RulesServer::new(self)
    }
}

type RulesStream = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<RulesResponse, tonic::Status>> + Send + 'static>,
>;

#[tonic::async_trait]
impl rules_server::Rules for RulesService {
    type RulesStream = RulesStream;

    async fn rules(
        &self,
        request: tonic::Request<RulesRequest>,
    ) -> Result<tonic::Response<Self::RulesStream>, tonic::Status> {
        let filter =
            RuleFilter::from_request(request.get_ref()).map_err(tonic::Status::invalid_argument)?;
        let groups = rule_groups(&self.manager.groups().await, &filter);
        let frames = groups.into_iter().map(|g| {
            Ok(RulesResponse {
                result: Some(rules_response::Result::Group(g)),
            })
        });
        Ok(tonic::Response::new(Box::pin(futures::stream::iter(
            frames,
        ))))
    }
}

fn api_error(status: axum::http::StatusCode, error_type: &str, error: &str) -> Response {
    (
        status,
        axum::Json(json!({"status": "error", "errorType": error_type, "error": error})),
    )
        .into_response()
}

/// `GET /api/v1/rules` (`type=alert|record`, `match[]`, `rule_name[]`, `rule_group[]`,
/// `file[]`).
pub async fn rules_handler(
    State(manager): State<Arc<Manager>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let mut request = RulesRequest::default();
    for (name, value) in &params {
        match name.as_str() {
            "type" => {
                request.r#type = match value.to_lowercase().as_str() {
                    "" => rules_request::Type::All as i32,
                    "alert" => rules_request::Type::Alert as i32,
                    "record" => rules_request::Type::Record as i32,
                    other => {
                        return api_error(
                            axum::http::StatusCode::BAD_REQUEST,
                            "bad_data",
                            &format!("invalid query parameter type='{other}'"),
                        );
                    }
                };
            }
            "match[]" => request.matcher_string.push(value.clone()),
            "rule_name[]" => request.rule_name.push(value.clone()),
            "rule_group[]" => request.rule_group.push(value.clone()),
            "file[]" => request.file.push(value.clone()),
            _ => {}
        }
    }
    let filter = match RuleFilter::from_request(&request) {
        Ok(filter) => filter,
        Err(e) => return api_error(axum::http::StatusCode::BAD_REQUEST, "bad_data", &e),
    };
    let groups = rule_groups(&manager.groups().await, &filter);
    axum::Json(json!({"status": "success", "data": rule_groups_json(&groups)})).into_response()
}

/// `GET /api/v1/alerts`.
pub async fn alerts_handler(State(manager): State<Arc<Manager>>) -> Response {
    let alerts = active_alerts(&manager.groups().await);
    axum::Json(json!({"status": "success", "data": alerts_json(&alerts)})).into_response()
}

/// The routes, for the ruler's HTTP server.
pub fn routes(manager: Arc<Manager>) -> axum::Router {
    axum::Router::new()
        .route("/api/v1/rules", axum::routing::get(rules_handler))
        .route("/api/v1/alerts", axum::routing::get(alerts_handler))
        .with_state(manager)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_printed_as_go_prints_them_with_e() {
        assert_eq!(format_e(1.0), "1e+00");
        assert_eq!(format_e(2.71), "2.71e+00");
        assert_eq!(format_e(1.5e-7), "1.5e-07");
        assert_eq!(format_e(-2.5e123), "-2.5e+123");
        assert_eq!(format_e(0.0), "0e+00");
        assert_eq!(format_e(f64::INFINITY), "+Inf");
        assert_eq!(format_e(f64::NAN), "NaN");
    }
}
