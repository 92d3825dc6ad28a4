//! gRPC request metrics under the names and labels of go-grpc-middleware's Prometheus
//! interceptors, which Thanos uses and its dashboards and alerts read:
//! `grpc_{server,client}_started_total`, `_handled_total` (with `grpc_code`),
//! `_msg_received_total`, `_msg_sent_total` and the `_handling_seconds` histogram, labelled
//! by `grpc_service`, `grpc_method` and `grpc_type`.
//!
//! [`GrpcMetrics`] is a tower layer for a tonic server (`Server::builder().layer(…)`) or a
//! client channel. It sees HTTP/2 requests only: the method comes from the path, the status
//! from the `grpc-status` header or trailer, and messages are counted from the gRPC
//! length-prefixed framing of the bodies, so it needs no knowledge of the services.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Thanos's buckets for gRPC handling time (seconds).
const HANDLING_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.1, 0.3, 0.6, 1.0, 3.0, 6.0, 9.0, 20.0, 30.0, 60.0, 90.0, 120.0, 240.0, 360.0,
    720.0,
];

/// Methods that stream their answers; every other method is unary. The table holds the
/// services rthanos serves and calls.
const SERVER_STREAMS: &[&str] = &[
    "/thanos.Store/Series",
    "/thanos.Exemplars/Exemplars",
    "/thanos.Metadata/MetricMetadata",
    "/thanos.Rules/Rules",
    "/thanos.Targets/Targets",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Which end of the calls the metrics describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Server,
    Client,
}

struct Metrics {
    side: Side,
    started: IntCounterVec,
    handled: IntCounterVec,
    received: IntCounterVec,
    sent: IntCounterVec,
    handling: HistogramVec,
}

/// The metrics of one side (server or client), and the tower layer that records them.
#[derive(Clone)]
pub struct GrpcMetrics(Arc<Metrics>);

impl std::fmt::Debug for GrpcMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("GrpcMetrics").field(&self.0.side).finish()
    }
}

impl GrpcMetrics {
    /// Server metrics (`grpc_server_*`), registered in `registry`.
    pub fn server(registry: &Registry) -> Result<Self, prometheus::Error> {
        Self::new(registry, Side::Server)
    }

    /// Client metrics (`grpc_client_*`), registered in `registry`.
    pub fn client(registry: &Registry) -> Result<Self, prometheus::Error> {
        Self::new(registry, Side::Client)
    }

    fn new(registry: &Registry, side: Side) -> Result<Self, prometheus::Error> {
        let (prefix, whom) = match side {
            Side::Server => ("grpc_server", "server"),
            Side::Client => ("grpc_client", "client"),
        };
        let call = ["grpc_type", "grpc_service", "grpc_method"];
        let counter = |name: &str, help: String, labels: &[&str]| {
            let vec = IntCounterVec::new(Opts::new(format!("{prefix}_{name}"), help), labels)?;
            registry.register(Box::new(vec.clone()))?;
            Ok::<_, prometheus::Error>(vec)
        };
        let started = counter(
            "started_total",
            format!("Total number of RPCs started on the {whom}."),
            &call,
        )?;
        let handled = counter(
            "handled_total",
            format!(
                "Total number of RPCs completed on the {whom}, regardless of success or failure."
            ),
            &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
        )?;
        let (received_help, sent_help) = match side {
            Side::Server => (
                "Total number of RPC stream messages received on the server.",
                "Total number of gRPC stream messages sent by the server.",
            ),
            Side::Client => (
                "Total number of RPC stream messages received by the client.",
                "Total number of gRPC stream messages sent by the client.",
            ),
        };
        let received = counter("msg_received_total", received_help.into(), &call)?;
        let sent = counter("msg_sent_total", sent_help.into(), &call)?;
        let handling_help = match side {
            Side::Server => {
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server."
            }
            Side::Client => {
                "Histogram of response latency (seconds) of the gRPC until it is finished by the application."
            }
        };
        let handling = HistogramVec::new(
            HistogramOpts::new(format!("{prefix}_handling_seconds"), handling_help)
                .buckets(HANDLING_BUCKETS.to_vec()),
            &call,
        )?;
        registry.register(Box::new(handling.clone()))?;
        Ok(Self(Arc::new(Metrics {
            side,
            started,
            handled,
            received,
            sent,
            handling,
        })))
    }
}

impl GrpcMetrics {
    /// Creates the series of `methods` (full paths, `/package.Service/Method`) at zero, as
    /// go-grpc-middleware's `InitializeMetrics` does, so that rates over them exist before
    /// the first call.
    pub fn initialize(&self, methods: &[&str]) {
        for path in methods {
            let labels = call_labels(path);
            let labels = [labels[0], labels[1], labels[2]];
            self.0.started.with_label_values(&labels);
            self.0.received.with_label_values(&labels);
            self.0.sent.with_label_values(&labels);
            self.0.handling.with_label_values(&labels);
            self.0
                .handled
                .with_label_values(&[labels[0], labels[1], labels[2], "OK"]);
        }
    }
}

/// The `grpc_type`, `grpc_service` and `grpc_method` of a call's path.
fn call_labels(path: &str) -> [&str; 3] {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("unknown", path));
    let kind = if SERVER_STREAMS.contains(&path) {
        "server_stream"
    } else {
        "unary"
    };
    [kind, service, method]
}

impl<S> tower::Layer<S> for GrpcMetrics {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metered {
            inner,
            metrics: self.clone(),
        }
    }
}

/// A gRPC service (server routes or client channel) whose calls are counted.
#[derive(Clone, Debug)]
pub struct Metered<S> {
    inner: S,
    metrics: GrpcMetrics,
}

/// One call being recorded: it is counted as handled once, when its status is known or when
/// it is abandoned.
struct Call {
    metrics: Arc<Metrics>,
    labels: [String; 3],
    started: Instant,
    done: bool,
}

impl Call {
    fn start(metrics: &GrpcMetrics, path: &str) -> Self {
        let call = Call {
            metrics: Arc::clone(&metrics.0),
            labels: call_labels(path).map(str::to_string),
            started: Instant::now(),
            done: false,
        };
        call.metrics.started.with_label_values(&call.labels).inc();
        call
    }

    fn labels(&self) -> [&str; 3] {
        [&self.labels[0], &self.labels[1], &self.labels[2]]
    }

    /// Messages in the request body: received by a server, sent by a client.
    fn request_messages(&self, n: u64) {
        let counter = match self.metrics.side {
            Side::Server => &self.metrics.received,
            Side::Client => &self.metrics.sent,
        };
        counter.with_label_values(&self.labels()).inc_by(n);
    }

    /// Messages in the response body: sent by a server, received by a client.
    fn response_messages(&self, n: u64) {
        let counter = match self.metrics.side {
            Side::Server => &self.metrics.sent,
            Side::Client => &self.metrics.received,
        };
        counter.with_label_values(&self.labels()).inc_by(n);
    }

    fn finish(&mut self, code: tonic::Code) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let [kind, service, method] = self.labels();
        self.metrics
            .handled
            .with_label_values(&[kind, service, method, code_name(code)])
            .inc();
        self.metrics
            .handling
            .with_label_values(&[kind, service, method])
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Call {
    /// A call dropped before its status (the peer went away, or the caller stopped reading)
    /// was cancelled.
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled);
    }
}

/// The status a header map carries, if any.
fn status_of(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
}

/// go-grpc-middleware's spelling of a code (Go's `codes.Code.String()`).
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

/// Counts the messages of a gRPC body: each is a 1-byte flag, a 4-byte big-endian length and
/// that many bytes, and they may be split across or packed into data frames.
#[derive(Debug, Default)]
struct MessageCounter {
    header: [u8; 5],
    header_len: usize,
    payload_left: u64,
}

impl MessageCounter {
    /// Feeds `data`; returns how many messages began in it.
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut began = 0;
        while !data.is_empty() {
            if self.payload_left > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.payload_left).unwrap_or(usize::MAX));
                self.payload_left -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = data.len().min(5 - self.header_len);
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len == 5 {
                began += 1;
                self.header_len = 0;
                let [_, a, b, c, d] = self.header;
                self.payload_left = u64::from(u32::from_be_bytes([a, b, c, d]));
            }
        }
        began
    }
}

/// Which body of a call a [`MeteredBody`] is.
#[derive(Debug, Clone, Copy)]
enum Direction {
    Request,
    Response,
}

/// A request or response body whose messages are counted; the response body also records
/// the call's status from its trailers.
pub struct MeteredBody<B> {
    inner: Pin<Box<B>>,
    direction: Direction,
    messages: MessageCounter,
    call: Option<Arc<std::sync::Mutex<Call>>>,
}

impl<B> MeteredBody<B> {
    fn count(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(call) = &self.call {
            if let Ok(call) = call.lock() {
                match self.direction {
                    Direction::Request => call.request_messages(n),
                    Direction::Response => call.response_messages(n),
                }
            }
        }
    }

    fn finish(&mut self, code: tonic::Code) {
        if let Some(call) = self.call.take() {
            if let Ok(mut call) = call.lock() {
                call.finish(code);
            }
        }
    }
}

impl<B> Body for MeteredBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        // Unpin: the inner body is boxed.
        let this = self.get_mut();
        let polled = this.inner.as_mut().poll_frame(cx);
        let response = matches!(this.direction, Direction::Response);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = this.messages.feed(data.chunk());
                    this.count(n);
                } else if let Some(trailers) = frame.trailers_ref() {
                    if response {
                        // Trailers without grpc-status break the protocol: tonic reads them
                        // as Unknown.
                        this.finish(status_of(trailers).unwrap_or(tonic::Code::Unknown));
                    }
                }
            }
            Poll::Ready(Some(Err(_))) if response => this.finish(tonic::Code::Unavailable),
            // Ended without trailers: the status came in the headers, or never.
            Poll::Ready(None) if response => this.finish(tonic::Code::Unknown),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for Metered<S>
where
    S: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ReqBody: Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<tonic::codegen::StdError>,
    ResBody: Body<Data = Bytes>,
{
    type Response = http::Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let call = Arc::new(std::sync::Mutex::new(Call::start(
            &self.metrics,
            request.uri().path(),
        )));
        let (parts, body) = request.into_parts();
        let body = MeteredBody {
            inner: Box::pin(body),
            direction: Direction::Request,
            messages: MessageCounter::default(),
            call: Some(Arc::clone(&call)),
        };
        let response = self.inner.call(http::Request::from_parts(
            parts,
            tonic::body::Body::new(body),
        ));
        Box::pin(async move {
            let response = match response.await {
                Ok(response) => response,
                Err(e) => {
                    // The transport failed (a client that cannot connect): tonic reports
                    // Unavailable.
                    if let Ok(mut call) = call.lock() {
                        call.finish(tonic::Code::Unavailable);
                    }
                    return Err(e);
                }
            };
            let (parts, body) = response.into_parts();
            // A trailers-only answer (an error before any message) has its status here.
            let mut call = Some(call);
            if let Some(code) = status_of(&parts.headers) {
                if let Some(call) = call.take() {
                    if let Ok(mut call) = call.lock() {
                        call.finish(code);
                    }
                }
            }
            Ok(http::Response::from_parts(
                parts,
                MeteredBody {
                    inner: Box::pin(body),
                    direction: Direction::Response,
                    messages: MessageCounter::default(),
                    call,
                },
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: u32) -> Vec<u8> {
        let mut m = vec![0];
        m.extend(len.to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len as usize));
        m
    }

    #[test]
    fn messages_are_counted_however_frames_split_them() {
        let mut stream = Vec::new();
        for len in [0, 3, 300, 1, 70_000] {
            stream.extend(message(len));
        }
        for chunk in [1, 2, 5, 7, 64, 1000, stream.len()] {
            let mut counter = MessageCounter::default();
            let n: u64 = stream.chunks(chunk).map(|c| counter.feed(c)).sum();
            assert_eq!(n, 5, "chunks of {chunk}");
            assert_eq!((counter.header_len, counter.payload_left), (0, 0));
        }
    }

    #[test]
    fn codes_are_spelled_as_go_spells_them() {
        assert_eq!(code_name(tonic::Code::Cancelled), "Canceled");
        assert_eq!(code_name(tonic::Code::Ok), "OK");
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-status", http::HeaderValue::from_static("14"));
        assert_eq!(status_of(&headers), Some(tonic::Code::Unavailable));
    }
}
