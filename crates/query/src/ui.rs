//! The querier's web UI: one self-contained page (HTML, CSS and script, no external assets)
//! compiled into the binary. `/graph` runs PromQL (table for instant queries, graph for range
//! queries, dedup, partial-response and resolution switches, state kept in the URL as
//! Prometheus's `g0.*` parameters); `/stores` shows the endpoints with their health, label
//! sets and time ranges. All its requests are relative, so it works under a path prefix.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;

const PAGE: &str = include_str!("ui/index.html");

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}

/// The UI's routes: `/` redirects to `<route_prefix>/graph`.
pub fn router<S: Clone + Send + Sync + 'static>(route_prefix: &str) -> Router<S> {
    let graph = format!("{route_prefix}/graph");
    Router::new()
        .route("/", get(move || async move { Redirect::to(&graph) }))
        .route("/graph", get(page))
        .route("/stores", get(page))
}
