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
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};

/// Thanos's latency buckets (seconds), for gRPC handling time and HTTP request duration.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.1, 0.3, 0.6, 1.0, 3.0, 6.0, 9.0, 20.0, 30.0, 60.0, 90.0, 120.0, 240.0, 360.0,
    720.0,
];

/// The methods rthanos serves and calls, with their `grpc_type`. Calls to any other path are
/// labelled `unknown`, so that a client cannot create series at will (go-grpc-middleware only
/// sees registered methods).
const METHODS: &[(&str, &str)] = &[
    ("/thanos.Store/Info", "unary"),
    ("/thanos.Store/Series", "server_stream"),
    ("/thanos.Store/LabelNames", "unary"),
    ("/thanos.Store/LabelValues", "unary"),
    ("/thanos.info.Info/Info", "unary"),
    ("/thanos.Metadata/MetricMetadata", "server_stream"),
    ("/thanos.Exemplars/Exemplars", "server_stream"),
    ("/thanos.Rules/Rules", "server_stream"),
    ("/thanos.Targets/Targets", "server_stream"),
    ("/grpc.health.v1.Health/Check", "unary"),
    ("/grpc.health.v1.Health/Watch", "server_stream"),
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
                .buckets(LATENCY_BUCKETS.to_vec()),
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

    /// Creates the series of `methods` (full paths, `/package.Service/Method`) at zero, as
    /// go-grpc-middleware's `InitializeMetrics` does, so that rates over them exist before
    /// the first call.
    pub fn initialize(&self, methods: &[&str]) {
        for path in methods {
            let labels = call_labels(path);
            self.0.started.with_label_values(&labels);
            self.0.received.with_label_values(&labels);
            self.0.sent.with_label_values(&labels);
            self.0.handling.with_label_values(&labels);
            let [kind, service, method] = labels;
            self.0
                .handled
                .with_label_values(&[kind, service, method, "OK"]);
        }
    }
}

/// The `grpc_type`, `grpc_service` and `grpc_method` of a call's path.
fn call_labels(path: &str) -> [&'static str; 3] {
    match METHODS.iter().find(|(known, _)| *known == path) {
        Some((known, kind)) => {
            let (service, method) = known[1..].split_once('/').unwrap_or((known, ""));
            [kind, service, method]
        }
        None => ["unary", "unknown", "unknown"],
    }
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

/// One call being recorded, shared by its request and response bodies. It is counted as
/// handled once: when its status is known, or when the last of them is dropped.
struct Call {
    handled: IntCounterVec,
    labels: [&'static str; 3],
    handling: Histogram,
    started: Instant,
    /// When the caller's `grpc-timeout` runs out.
    deadline: Option<Instant>,
    done: AtomicBool,
}

impl Call {
    fn finish(&self, code: tonic::Code) {
        if self.done.swap(true, Ordering::AcqRel) {
            return;
        }
        let [kind, service, method] = self.labels;
        self.handled
            .with_label_values(&[kind, service, method, code_name(code)])
            .inc();
        self.handling.observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Call {
    /// A call dropped before its status was seen was cut short: by its deadline (tonic's
    /// server timeout drops the call), or else cancelled (the peer went away, or the caller
    /// stopped reading).
    fn drop(&mut self) {
        let code = match self.deadline {
            Some(deadline) if Instant::now() >= deadline => tonic::Code::DeadlineExceeded,
            _ => tonic::Code::Cancelled,
        };
        self.finish(code);
    }
}

/// The deadline a `grpc-timeout` header sets (an integer and a unit: H, M, S, m, u, n).
fn deadline_of(headers: &http::HeaderMap, from: Instant) -> Option<Instant> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let unit = value.chars().last()?;
    let amount: u64 = value[..value.len() - unit.len_utf8()].parse().ok()?;
    let timeout = match unit {
        'H' => Duration::from_secs(amount.saturating_mul(3600)),
        'M' => Duration::from_secs(amount.saturating_mul(60)),
        'S' => Duration::from_secs(amount),
        'm' => Duration::from_millis(amount),
        'u' => Duration::from_micros(amount),
        'n' => Duration::from_nanos(amount),
        _ => return None,
    };
    from.checked_add(timeout)
}

/// The status a header map carries, if any.
fn status_of(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
}

/// The status tonic infers from an HTTP status when an answer carries no `grpc-status` (a
/// proxy's error page, say), as the gRPC spec maps them.
fn status_of_http(status: http::StatusCode) -> tonic::Code {
    match status {
        http::StatusCode::BAD_REQUEST => tonic::Code::Internal,
        http::StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
        http::StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
        http::StatusCode::NOT_FOUND => tonic::Code::Unimplemented,
        http::StatusCode::TOO_MANY_REQUESTS
        | http::StatusCode::BAD_GATEWAY
        | http::StatusCode::SERVICE_UNAVAILABLE
        | http::StatusCode::GATEWAY_TIMEOUT => tonic::Code::Unavailable,
        _ => tonic::Code::Unknown,
    }
}

/// The status of a call whose transport failed: a timeout is DeadlineExceeded (as gRPC-Go
/// reports it), anything else Unavailable (tonic's status for connection errors).
fn status_of_error(error: &(dyn std::error::Error + 'static)) -> tonic::Code {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<tonic::TimeoutExpired>() {
            return tonic::Code::DeadlineExceeded;
        }
        if let Some(status) = e.downcast_ref::<tonic::Status>() {
            return status.code();
        }
        cause = e.source();
    }
    tonic::Code::Unavailable
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

/// A request or response body whose messages are counted; the response body also records
/// the call's status from its trailers.
pub struct MeteredBody<B> {
    inner: Pin<Box<B>>,
    messages: MessageCounter,
    /// Where this body's messages are counted (looked up once per call).
    counted_in: IntCounter,
    /// The call, while its status is awaited from this body (response bodies only).
    awaiting_status: Option<Arc<Call>>,
    /// The response's HTTP status, for answers that end without `grpc-status`.
    http_status: http::StatusCode,
    /// Keeps the call alive while this body is, so that a call dropped mid-stream counts.
    _call: Arc<Call>,
}

impl<B> MeteredBody<B> {
    fn finish(&mut self, code: tonic::Code) {
        if let Some(call) = self.awaiting_status.take() {
            call.finish(code);
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
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = this.messages.feed(data.chunk());
                    if n > 0 {
                        this.counted_in.inc_by(n);
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    // Trailers without grpc-status break the protocol: tonic reads them as
                    // Unknown.
                    this.finish(status_of(trailers).unwrap_or(tonic::Code::Unknown));
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(tonic::Code::Unavailable),
            // Ended without trailers: the HTTP status stands for the gRPC one.
            Poll::Ready(None) => {
                let code = status_of_http(this.http_status);
                this.finish(code);
            }
            Poll::Pending => {}
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
    S::Error: std::error::Error + 'static,
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
        let metrics = &self.metrics.0;
        let labels = call_labels(request.uri().path());
        let started = Instant::now();
        metrics.started.with_label_values(&labels).inc();
        let (request_messages, response_messages) = match metrics.side {
            Side::Server => (&metrics.received, &metrics.sent),
            Side::Client => (&metrics.sent, &metrics.received),
        };
        let response_messages = response_messages.with_label_values(&labels);
        let call = Arc::new(Call {
            handled: metrics.handled.clone(),
            labels,
            handling: metrics.handling.with_label_values(&labels),
            started,
            deadline: deadline_of(request.headers(), started),
            done: AtomicBool::new(false),
        });
        let (parts, body) = request.into_parts();
        let body = MeteredBody {
            inner: Box::pin(body),
            messages: MessageCounter::default(),
            counted_in: request_messages.with_label_values(&labels),
            awaiting_status: None,
            http_status: http::StatusCode::OK,
            _call: Arc::clone(&call),
        };
        let response = self.inner.call(http::Request::from_parts(
            parts,
            tonic::body::Body::new(body),
        ));
        Box::pin(async move {
            let response = match response.await {
                Ok(response) => response,
                Err(e) => {
                    call.finish(status_of_error(&e));
                    return Err(e);
                }
            };
            let (parts, body) = response.into_parts();
            // A trailers-only answer (an error before any message) has its status here, as
            // has an HTTP error without any gRPC status.
            let mut awaiting_status = Some(Arc::clone(&call));
            let code = status_of(&parts.headers).or_else(|| {
                (parts.status != http::StatusCode::OK).then(|| status_of_http(parts.status))
            });
            if let Some(code) = code {
                call.finish(code);
                awaiting_status = None;
            }
            let http_status = parts.status;
            Ok(http::Response::from_parts(
                parts,
                MeteredBody {
                    inner: Box::pin(body),
                    messages: MessageCounter::default(),
                    counted_in: response_messages,
                    awaiting_status,
                    http_status,
                    _call: call,
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
    fn only_known_methods_name_their_series() {
        assert_eq!(
            call_labels("/thanos.Store/Series"),
            ["server_stream", "thanos.Store", "Series"]
        );
        assert_eq!(
            call_labels("/thanos.info.Info/Info"),
            ["unary", "thanos.info.Info", "Info"]
        );
        assert_eq!(
            call_labels("/evil.Scanner/Probe123"),
            ["unary", "unknown", "unknown"]
        );
    }

    #[test]
    fn grpc_timeouts_set_deadlines() {
        let now = Instant::now();
        let deadline = |value: &'static str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("grpc-timeout", http::HeaderValue::from_static(value));
            deadline_of(&headers, now).map(|d| d - now)
        };
        assert_eq!(deadline("2S"), Some(Duration::from_secs(2)));
        assert_eq!(deadline("150m"), Some(Duration::from_millis(150)));
        assert_eq!(deadline("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(deadline("5x"), None);
        assert_eq!(deadline("S"), None);
        assert_eq!(deadline_of(&http::HeaderMap::new(), now), None);
        assert_eq!(
            status_of_error(&tonic::TimeoutExpired(())),
            tonic::Code::DeadlineExceeded
        );
        assert_eq!(
            status_of_http(http::StatusCode::BAD_GATEWAY),
            tonic::Code::Unavailable
        );
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
