//! The querier's web UI: one self-contained page (HTML, CSS and script, no external assets)
//! compiled into the binary. `/graph` runs PromQL (table for instant queries, graph for range
//! queries, dedup, partial-response and resolution switches, state kept in the URL as
//! Prometheus's `g0.*` parameters); `/stores` shows the endpoints with their health, label
//! sets and time ranges; `/alerts` and `/rules` show the rulers' alerting rules with their
//! alerts, and every group and rule with its health. The ruler serves the same page with only
//! those two. All its requests are relative, so it works under a path prefix.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;

const PAGE: &str = include_str!("ui/index.html");

fn html(page: String) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        page,
    )
}

async fn page() -> impl IntoResponse {
    html(PAGE.to_string())
}

/// The page as the ruler serves it: its Alerts and Rules only.
async fn ruler_page() -> impl IntoResponse {
    html(PAGE.replacen("<body>", "<body data-component=\"rule\">", 1))
}

/// The ruler's UI routes: `/` redirects to `<route_prefix>/alerts`.
pub fn ruler_router<S: Clone + Send + Sync + 'static>(route_prefix: &str) -> Router<S> {
    let alerts = format!("{route_prefix}/alerts");
    Router::new()
        .route("/", get(move || async move { Redirect::to(&alerts) }))
        .route("/alerts", get(ruler_page))
        .route("/rules", get(ruler_page))
}

/// The UI's routes: `/` redirects to `<route_prefix>/graph`.
pub fn router<S: Clone + Send + Sync + 'static>(route_prefix: &str) -> Router<S> {
    let graph = format!("{route_prefix}/graph");
    Router::new()
        .route("/", get(move || async move { Redirect::to(&graph) }))
        .route("/graph", get(page))
        .route("/stores", get(page))
        .route("/alerts", get(page))
        .route("/rules", get(page))
}
