//! The fan-out storage under the PromQL engine, with in-process stores as two HA replicas and
//! a real gRPC client for a store that is down.

use std::sync::Arc;

use rthanos_model::Labels;
use rthanos_promql::{Engine, Sample, Value};
use rthanos_query::proxy::{NamedStore, ProxyOptions};
use rthanos_query::queryable::ProxyQueryable;
use rthanos_storeapi::convert::{labels_to_thanos, matchers_from_thanos};
use rthanos_storeapi::thanos::{
    self, AggrChunk, Chunk, LabelNamesRequest, LabelNamesResponse, LabelValuesRequest,
    LabelValuesResponse, SeriesRequest, SeriesResponse, series_response::Result as Frame,
};
use rthanos_storeapi::{ClientOptions, Component, GrpcStore, SeriesStream, Store, StoreInfo};
use tonic::Status;

/// A store over fixed series: one XOR chunk per series.
struct Fixed {
    external: Labels,
    series: Vec<(Labels, Vec<(i64, f64)>)>,
    /// The requests received, for tests of what the querier asks.
    requests: std::sync::Mutex<Vec<SeriesRequest>>,
}

#[tonic::async_trait]
impl Store for Fixed {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            serving: true,
            component: Component::Sidecar,
            label_sets: vec![self.external.clone()],
            min_time: 0,
            max_time: i64::MAX,
            supports_sharding: false,
            supports_without_replica_labels: false,
        }
    }

    async fn series(&self, request: SeriesRequest) -> Result<SeriesStream, Status> {
        if let Ok(mut seen) = self.requests.lock() {
            seen.push(request.clone());
        }
        let matchers = matchers_from_thanos(&request.matchers)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut frames = Vec::new();
        for (labels, points) in &self.series {
            let mut all = labels.iter().cloned().collect::<Vec<_>>();
            all.extend(self.external.iter().cloned());
            let labels = Labels::from_pairs(all.into_iter().map(|l| (l.name, l.value)));
            if !matchers
                .iter()
                .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
            {
                continue;
            }
            let points: Vec<(i64, f64)> = points
                .iter()
                .copied()
                .filter(|(t, _)| *t >= request.min_time && *t <= request.max_time)
                .collect();
            let (Some(first), Some(last)) = (points.first(), points.last()) else {
                continue;
            };
            let data = rthanos_chunkenc::xor::encode(points.iter().copied())
                .map_err(|e| Status::internal(e.to_string()))?;
            frames.push(Ok(SeriesResponse {
                result: Some(Frame::Series(thanos::Series {
                    labels: labels_to_thanos(&labels),
                    chunks: vec![AggrChunk {
                        min_time: first.0,
                        max_time: last.0,
                        raw: Some(Chunk {
                            r#type: 0,
                            data: data.into(),
                            hash: 0,
                        }),
                        ..Default::default()
                    }],
                })),
            }));
        }
        Ok(Box::pin(futures::stream::iter(frames)))
    }

    async fn label_names(&self, _: LabelNamesRequest) -> Result<LabelNamesResponse, Status> {
        Ok(LabelNamesResponse::default())
    }

    async fn label_values(&self, _: LabelValuesRequest) -> Result<LabelValuesResponse, Status> {
        Ok(LabelValuesResponse::default())
    }
}

/// A counter scraped every 15 s, missing [gap.0, gap.1), shifted by `offset`.
fn replica(name: &str, gap: (i64, i64), offset: i64) -> NamedStore {
    let points = (0..240)
        .map(|k| k * 15_000)
        .filter(|t| *t < gap.0 || *t >= gap.1)
        .map(|t| (t + offset, t as f64))
        .collect();
    NamedStore {
        name: name.into(),
        store: Arc::new(Fixed {
            external: Labels::from_pairs([("cluster", "eu1"), ("replica", name)]),
            series: vec![(
                Labels::from_pairs([("__name__", "up_total"), ("job", "api")]),
                points,
            )],
            requests: std::sync::Mutex::default(),
        }),
    }
}

fn samples(value: Value) -> Vec<(Labels, Vec<Sample>)> {
    match value {
        Value::Matrix(m) => m.into_iter().map(|s| (s.labels, s.samples)).collect(),
        other => panic!("matrix expected, got {other:?}"),
    }
}

#[tokio::test]
async fn replicas_are_merged_with_dedup_and_shown_without() {
    let stores = vec![
        replica("a", (600_000, 1_200_000), 0),
        replica("b", (2_400_000, 3_000_000), 2_000),
    ];
    let options = |dedup| ProxyOptions {
        replica_labels: vec!["replica".into()],
        dedup,
        partial_response: true,
        ..ProxyOptions::default()
    };
    let engine = Engine::default();
    let deduped = ProxyQueryable::new(stores.clone(), options(true));
    let got = samples(
        engine
            .instant_query(&deduped, "up_total[1h]", 3_590_000)
            .await
            .expect("query"),
    );
    assert_eq!(got.len(), 1, "one series once replicas are merged");
    assert_eq!(got[0].0.get("replica"), None);
    assert_eq!(got[0].0.get("cluster"), Some("eu1"));
    // Both 10-minute gaps are filled from the other replica. A switch waits out the penalty
    // (twice the last interval), so a hole of up to three scrapes can appear next to it, as
    // in Thanos; sampling is never denser than one replica's.
    for w in got[0].1.windows(2) {
        let gap = w[1].t - w[0].t;
        assert!((13_000..=45_000).contains(&gap), "{w:?}");
    }
    assert!(got[0].1.len() > 200, "{} samples", got[0].1.len());
    assert!(deduped.warnings().is_empty());

    let both = ProxyQueryable::new(stores, options(false));
    let got = samples(
        engine
            .instant_query(&both, "up_total[1h]", 3_590_000)
            .await
            .expect("query"),
    );
    assert_eq!(got.len(), 2, "dedup=false shows both replicas");
}

#[tokio::test]
async fn an_unreachable_store_is_a_warning_or_an_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let address = format!("127.0.0.1:{port}");
    let down = GrpcStore::connect(&address, &ClientOptions::default()).expect("client");
    // The querier knows it from an earlier Info; it is asked and fails.
    let down: Arc<dyn Store> = Arc::new(Known(down));
    let stores = vec![
        replica("a", (0, 0), 0),
        NamedStore {
            name: address.clone(),
            store: down,
        },
    ];
    let engine = Engine::default();
    let partial = ProxyQueryable::new(
        stores.clone(),
        ProxyOptions {
            partial_response: true,
            ..ProxyOptions::default()
        },
    );
    let got = engine
        .instant_query(&partial, "up_total", 3_000_000)
        .await
        .expect("partial answer");
    assert!(matches!(got, Value::Vector(v) if v.len() == 1));
    let warnings = partial.warnings();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains(&address), "{warnings:?}");

    let strict = ProxyQueryable::new(stores, ProxyOptions::default());
    let err = engine
        .instant_query(&strict, "up_total", 3_000_000)
        .await
        .expect_err("no partial response");
    assert!(err.to_string().contains(&address), "{err}");
}

/// A client whose Info is taken as known (serving, every range).
struct Known(GrpcStore);

#[tonic::async_trait]
impl Store for Known {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            serving: true,
            component: Component::Sidecar,
            label_sets: Vec::new(),
            min_time: i64::MIN,
            max_time: i64::MAX,
            supports_sharding: false,
            supports_without_replica_labels: false,
        }
    }
    async fn series(&self, r: SeriesRequest) -> Result<SeriesStream, Status> {
        self.0.series(r).await
    }
    async fn label_names(&self, r: LabelNamesRequest) -> Result<LabelNamesResponse, Status> {
        self.0.label_names(r).await
    }
    async fn label_values(&self, r: LabelValuesRequest) -> Result<LabelValuesResponse, Status> {
        self.0.label_values(r).await
    }
}

struct Static(Vec<NamedStore>);

impl rthanos_query::proxy::StoreSource for Static {
    fn stores(&self) -> Vec<NamedStore> {
        self.0.clone()
    }
}

async fn call(
    app: &axum::Router,
    request: axum::http::Request<axum::body::Body>,
) -> (u16, serde_json::Value) {
    use tower::ServiceExt;
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, serde_json::from_slice(&body).expect("json"))
}

fn get(uri: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::get(uri)
        .body(axum::body::Body::empty())
        .expect("request")
}

#[tokio::test]
async fn the_http_api_answers_as_prometheus() {
    let state = std::sync::Arc::new(rthanos_query::api::ApiState {
        engine: Engine::default(),
        stores: std::sync::Arc::new(Static(vec![
            replica("a", (0, 0), 0),
            replica("b", (0, 0), 2_000),
        ])),
        replica_labels: vec!["replica".into()],
        partial_response: true,
        auto_downsampling: false,
        metadata_default_range_ms: 0,
        route_prefix: String::new(),
        now_ms: || 3_000_000,
        build_info: serde_json::json!({"version": "test"}),
    });
    let app = rthanos_query::api::router(state);

    let (status, body) = call(&app, get("/api/v1/query?query=up_total")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "vector");
    let result = body["data"]["result"].as_array().expect("result");
    assert_eq!(result.len(), 1, "deduplicated: {body}");
    assert_eq!(result[0]["metric"]["cluster"], "eu1");
    assert_eq!(result[0]["value"][0], 3000);
    assert!(result[0]["value"][1].is_string());

    let (_, body) = call(
        &app,
        get("/api/v1/query?query=up_total&dedup=false&time=3000"),
    )
    .await;
    assert_eq!(body["data"]["result"].as_array().map(Vec::len), Some(2));

    let (status, body) = call(
        &app,
        get("/api/v1/query_range?query=sum(up_total)&start=2000&end=3000&step=60"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["resultType"], "matrix");
    let values = body["data"]["result"][0]["values"]
        .as_array()
        .expect("values");
    assert_eq!(values.len(), 17);
    assert_eq!(values[0][0], 2000);

    let form = axum::http::Request::post("/api/v1/query")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from("query=1%2B1&time=10"))
        .expect("request");
    let (status, body) = call(&app, form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["result"], serde_json::json!([10, "2"]));

    let (status, body) = call(&app, get("/api/v1/query?query=sum(")).await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], "bad_data");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("parse error"))
    );

    let (status, body) = call(
        &app,
        get("/api/v1/query?query=-%7B__name__%3D~%22.%2B%22%7D"),
    )
    .await;
    assert_eq!((status, body["errorType"].as_str()), (200, None), "{body}");

    let (_, body) = call(&app, get("/api/v1/stores")).await;
    assert_eq!(
        body["data"]["sidecar"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );
    assert_eq!(body["data"]["sidecar"][0]["labelSets"][0]["cluster"], "eu1");
    let (_, body) = call(&app, get("/api/v1/status/buildinfo")).await;
    assert_eq!(body["data"]["version"], "test");

    let (status, body) = call(
        &app,
        get("/api/v1/query_range?query=up_total&start=0&end=100000000&step=1"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("11,000 points"))
    );
}

#[tokio::test]
async fn resolution_and_aggregates_follow_thanos_parameters() {
    let store = Arc::new(Fixed {
        external: Labels::from_pairs([("replica", "a")]),
        series: vec![(
            Labels::from_pairs([("__name__", "up_total")]),
            vec![(0, 1.0)],
        )],
        requests: std::sync::Mutex::default(),
    });
    let app = |auto_downsampling| {
        rthanos_query::api::router(Arc::new(rthanos_query::api::ApiState {
            engine: Engine::default(),
            stores: Arc::new(Static(vec![NamedStore {
                name: "a".into(),
                store: Arc::clone(&store) as Arc<dyn Store>,
            }])),
            replica_labels: Vec::new(),
            partial_response: true,
            auto_downsampling,
            metadata_default_range_ms: 0,
            route_prefix: String::new(),
            now_ms: || 3_000_000,
            build_info: serde_json::json!({}),
        }))
    };
    let last = || {
        store
            .requests
            .lock()
            .ok()
            .and_then(|r| r.last().cloned())
            .map(|r| (r.max_resolution_window, r.aggregates))
            .unwrap_or_default()
    };
    let (counter, count_sum, min) = (
        vec![thanos::Aggr::Counter as i32],
        vec![thanos::Aggr::Count as i32, thanos::Aggr::Sum as i32],
        vec![thanos::Aggr::Min as i32],
    );
    let range = "/api/v1/query_range?start=0&end=3000&step=300";
    for (app, uri, want) in [
        (
            app(false),
            format!("{range}&query=rate(up_total[10m])"),
            (0, counter.clone()),
        ),
        (
            app(true),
            format!("{range}&query=rate(up_total[10m])"),
            (60_000, counter),
        ),
        (
            app(false),
            format!("{range}&query=up_total&max_source_resolution=auto"),
            (60_000, count_sum.clone()),
        ),
        (
            app(true),
            format!("{range}&query=min_over_time(up_total[1h])&max_source_resolution=1h"),
            (3_600_000, min),
        ),
        (
            app(true),
            "/api/v1/query?query=up_total&max_source_resolution=5m".to_string(),
            (300_000, count_sum.clone()),
        ),
        (
            app(true),
            "/api/v1/query?query=up_total".to_string(),
            (0, count_sum),
        ),
    ] {
        let (status, body) = call(&app, get(&uri)).await;
        assert_eq!(status, 200, "{uri}: {body}");
        assert_eq!(last(), want, "{uri}");
    }
    let (status, body) = call(
        &app(false),
        get("/api/v1/query?query=up_total&max_source_resolution=-5m"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errorType"], "bad_data");
}

/// A store that answers every select with a warning only.
struct Warns;

#[tonic::async_trait]
impl Store for Warns {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            serving: true,
            component: Component::Store,
            label_sets: Vec::new(),
            min_time: 0,
            max_time: i64::MAX,
            supports_sharding: false,
            supports_without_replica_labels: false,
        }
    }

    async fn series(&self, _: SeriesRequest) -> Result<SeriesStream, Status> {
        Ok(Box::pin(futures::stream::iter([Ok(SeriesResponse {
            result: Some(Frame::Warning("block 01ABC skipped".to_string())),
        })])))
    }

    async fn label_names(&self, _: LabelNamesRequest) -> Result<LabelNamesResponse, Status> {
        Ok(LabelNamesResponse::default())
    }

    async fn label_values(&self, _: LabelValuesRequest) -> Result<LabelValuesResponse, Status> {
        Ok(LabelValuesResponse::default())
    }
}

#[tokio::test]
async fn without_partial_responses_a_store_warning_or_no_store_is_an_error() {
    let engine = Engine::default();
    let partial = ProxyOptions {
        partial_response: true,
        ..ProxyOptions::default()
    };
    // No store at all: Thanos's "No StoreAPIs available", or an empty answer.
    let err = engine
        .instant_query(
            &ProxyQueryable::new(Vec::new(), ProxyOptions::default()),
            "up",
            0,
        )
        .await
        .expect_err("no store");
    assert!(err.to_string().contains("No StoreAPIs available"), "{err}");
    let none = ProxyQueryable::new(Vec::new(), partial.clone());
    assert!(
        matches!(engine.instant_query(&none, "up", 0).await, Ok(Value::Vector(v)) if v.is_empty())
    );
    // A store's own warning: the query's error, or a warning with the answer.
    let warns = vec![NamedStore {
        name: "store-1".to_string(),
        store: Arc::new(Warns),
    }];
    let err = engine
        .instant_query(
            &ProxyQueryable::new(warns.clone(), ProxyOptions::default()),
            "up",
            0,
        )
        .await
        .expect_err("aborted");
    assert!(err.to_string().contains("block 01ABC skipped"), "{err}");
    let warned = ProxyQueryable::new(warns, partial);
    engine
        .instant_query(&warned, "up", 0)
        .await
        .expect("answer");
    assert_eq!(warned.warnings(), ["block 01ABC skipped"]);
}
