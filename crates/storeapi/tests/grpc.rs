//! The server adapter and the client, over a real gRPC connection on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rthanos_model::Labels;
use rthanos_storeapi::thanos::{
    self, AggrChunk, Chunk, Label, LabelNamesRequest, LabelNamesResponse, LabelValuesRequest,
    LabelValuesResponse, Series, SeriesRequest, SeriesResponse, series_response::Result as Frame,
};
use rthanos_storeapi::{
    ClientOptions, Component, GrpcStore, SeriesStream, Store, StoreInfo, StoreServer,
};
use tonic::Status;

/// A store holding `n` series of one large chunk each.
struct Fixed {
    series: usize,
    chunk_bytes: usize,
}

#[tonic::async_trait]
impl Store for Fixed {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            serving: true,
            component: Component::Sidecar,
            label_sets: vec![Labels::from_pairs([("cluster", "eu1"), ("replica", "0")])],
            min_time: 1000,
            max_time: i64::MAX,
            supports_sharding: true,
            supports_without_replica_labels: true,
        }
    }

    async fn series(&self, request: SeriesRequest) -> Result<SeriesStream, Status> {
        if request.matchers.is_empty() {
            return Err(Status::invalid_argument("no matchers"));
        }
        let chunk_bytes = self.chunk_bytes;
        Ok(Box::pin(futures::stream::iter((0..self.series).map(
            move |i| {
                Ok(SeriesResponse {
                    result: Some(Frame::Series(Series {
                        labels: vec![Label {
                            name: "i".into(),
                            value: format!("{i:06}"),
                        }],
                        chunks: (0..3)
                            .map(|c| AggrChunk {
                                min_time: c,
                                max_time: c,
                                raw: Some(Chunk {
                                    r#type: 0,
                                    data: vec![c as u8; chunk_bytes].into(),
                                    hash: 0,
                                }),
                                ..Default::default()
                            })
                            .collect(),
                    })),
                })
            },
        ))))
    }

    async fn label_names(&self, _: LabelNamesRequest) -> Result<LabelNamesResponse, Status> {
        Ok(LabelNamesResponse {
            names: vec!["i".into()],
            ..Default::default()
        })
    }

    async fn label_values(&self, r: LabelValuesRequest) -> Result<LabelValuesResponse, Status> {
        Ok(LabelValuesResponse {
            values: vec![r.label],
            ..Default::default()
        })
    }
}

async fn serve(routes: tonic::service::Routes) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming(tokio_stream_listener(listener)),
    );
    addr.to_string()
}

fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(s, _)| s);
        Some((accepted, listener))
    })
}

fn options() -> ClientOptions {
    ClientOptions {
        response_timeout: Some(Duration::from_secs(10)),
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn series_labels_and_info_cross_the_wire() {
    let store = Arc::new(Fixed {
        series: 200,
        chunk_bytes: 100,
    });
    let addr = serve(StoreServer::new(store).routes()).await;
    let client = GrpcStore::connect(&addr, &options()).expect("client");

    let info = client.fetch_info().await.expect("info");
    assert_eq!(info.component, Component::Sidecar);
    assert_eq!(
        info.label_sets[0].to_string(),
        r#"{cluster="eu1", replica="0"}"#
    );
    assert_eq!((info.min_time, info.max_time), (1000, i64::MAX));
    assert!(info.supports_without_replica_labels);
    assert_eq!(client.info(), info, "the answer is remembered");

    let request = SeriesRequest {
        matchers: vec![thanos::LabelMatcher {
            r#type: 0,
            name: "i".into(),
            value: "x".into(),
        }],
        ..Default::default()
    };
    let frames: Vec<_> = client
        .series(request.clone())
        .await
        .expect("series")
        .collect()
        .await;
    assert_eq!(frames.len(), 200);

    // Batched, as v0.41+ queriers ask.
    let frames: Vec<_> = client
        .series(SeriesRequest {
            response_batch_size: 64,
            ..request
        })
        .await
        .expect("series")
        .collect()
        .await;
    let sizes: Vec<usize> = frames
        .into_iter()
        .map(|f| match f.expect("frame").result {
            Some(Frame::Batch(b)) => b.series.len(),
            other => panic!("batch expected, got {other:?}"),
        })
        .collect();
    assert_eq!(sizes, [64, 64, 64, 8]);

    let status = match client.series(SeriesRequest::default()).await {
        Ok(_) => panic!("an invalid request must fail"),
        Err(status) => status,
    };
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    let names = client
        .label_names(LabelNamesRequest::default())
        .await
        .expect("names");
    assert_eq!(names.names, ["i"]);
    let values = client
        .label_values(LabelValuesRequest {
            label: "job".into(),
            ..Default::default()
        })
        .await
        .expect("values");
    assert_eq!(values.values, ["job"]);
}

#[tokio::test]
async fn a_series_larger_than_the_default_limit_arrives_in_frames_under_it() {
    // 3 chunks of 2 MiB: 6 MiB for one series, more than gRPC's 4 MiB default.
    let store = Arc::new(Fixed {
        series: 1,
        chunk_bytes: 2 << 20,
    });
    let addr = serve(StoreServer::new(store).routes()).await;
    let client = GrpcStore::connect(&addr, &options()).expect("client");
    let request = SeriesRequest {
        matchers: vec![thanos::LabelMatcher::default()],
        ..Default::default()
    };
    let frames: Vec<SeriesResponse> = client
        .series(request)
        .await
        .expect("series")
        .map(|f| f.expect("frame"))
        .collect()
        .await;
    assert!(frames.len() >= 2);
    for frame in &frames {
        assert!(prost::Message::encoded_len(frame) < 4 << 20);
    }
    let chunks: usize = frames
        .iter()
        .map(|f| match &f.result {
            Some(Frame::Series(s)) => s.chunks.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(chunks, 3);
}

#[tokio::test]
async fn info_falls_back_to_store_info_for_old_servers() {
    let store = Arc::new(Fixed {
        series: 0,
        chunk_bytes: 0,
    });
    // Only thanos.Store, as a v0.3x server without the Info service.
    let only_store = thanos::store_server::StoreServer::new(StoreServer::new(store));
    let addr = serve(tonic::service::Routes::new(only_store)).await;
    let client = GrpcStore::connect(&addr, &options()).expect("client");
    let info = client.fetch_info().await.expect("info");
    assert_eq!(info.component, Component::Sidecar);
    assert_eq!(info.label_sets.len(), 1);
}

#[tokio::test]
async fn an_unreachable_store_is_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let client =
        GrpcStore::connect(&format!("127.0.0.1:{port}"), &options()).expect("client is lazy");
    let status = client.fetch_info().await.expect_err("nobody listens");
    assert_eq!(status.code(), tonic::Code::Unavailable);
}
