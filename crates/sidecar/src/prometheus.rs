//! The sidecar's view of its Prometheus, over Prometheus's own HTTP API: readiness, external
//! labels (from the loaded config), the oldest sample time, remote read with streamed XOR
//! chunks, and the series / label APIs.

use std::collections::BTreeMap;
use std::time::Duration;

use std::collections::VecDeque;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use prost::Message;
use rthanos_model::{Labels, Matcher};
use rthanos_storeapi::convert::matcher_to_prometheus;
use rthanos_storeapi::prometheus::{ChunkedReadResponse, Query, ReadRequest, read_request};
use serde::Deserialize;

use crate::SidecarError;
use rthanos_httpclient::HttpClientConfig;

/// What the sidecar reads from Prometheus's loaded configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrometheusConfig {
    /// `global.external_labels`.
    pub external_labels: Labels,
    /// `storage.tsdb.out_of_order_time_window` is set: the head may hold samples older than
    /// its first in-order one, below the newest block's end.
    pub out_of_order: bool,
}

impl PrometheusConfig {
    fn parse(yaml: &str) -> Result<Self, SidecarError> {
        #[derive(Deserialize, Default)]
        struct Global {
            #[serde(default)]
            external_labels: BTreeMap<String, String>,
        }
        #[derive(Deserialize, Default)]
        struct Tsdb {
            #[serde(default)]
            out_of_order_time_window: Option<String>,
        }
        #[derive(Deserialize, Default)]
        struct Storage {
            #[serde(default)]
            tsdb: Option<Tsdb>,
        }
        #[derive(Deserialize)]
        struct Config {
            #[serde(default)]
            global: Option<Global>,
            #[serde(default)]
            storage: Option<Storage>,
        }
        let config: Config = serde_yaml::from_str(yaml).map_err(|e| {
            SidecarError::Prometheus(format!("parsing the config Prometheus returned: {e}"))
        })?;
        let window = config
            .storage
            .and_then(|s| s.tsdb)
            .and_then(|t| t.out_of_order_time_window);
        // A window that does not read as zero counts as set: the safe side.
        let out_of_order = window.is_some_and(|w| {
            w.parse::<rthanos_model::PromDuration>()
                .map_or(true, |d| !d.as_std().is_zero())
        });
        Ok(Self {
            external_labels: Labels::from_pairs(config.global.unwrap_or_default().external_labels),
            out_of_order,
        })
    }
}

/// Times Prometheus's TSDB reports about itself (ms).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TsdbTimes {
    /// The oldest sample, in a block or the head.
    pub lowest: Option<i64>,
    /// The head's oldest sample.
    pub head_min: Option<i64>,
}

impl TsdbTimes {
    fn from_metrics(text: &str) -> Self {
        let gauge = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        // An empty TSDB or head reports MaxInt64 (as a float, so compare loosely).
        let time = |v: f64| (v < 9.0e18).then_some(v as i64);
        match gauge("prometheus_tsdb_head_min_time") {
            Some(head) => Self {
                lowest: gauge("prometheus_tsdb_lowest_timestamp").and_then(time),
                head_min: time(head),
            },
            // Without the head's time nothing can be said of the blocks: as if empty.
            None => Self::default(),
        }
    }
}

/// Largest remote-read frame accepted: Prometheus cuts frames at 1 MiB of chunks, one series'
/// chunks included, so anything far beyond is a broken stream.
const MAX_FRAME_BYTES: usize = 64 << 20;

/// A Prometheus server.
#[derive(Clone)]
pub struct PrometheusClient {
    base: reqwest::Url,
    http: reqwest::Client,
    auth: rthanos_httpclient::Auth,
}

impl PrometheusClient {
    /// A client for the Prometheus at `url` (`--prometheus.url`), with the HTTP client
    /// configuration of `--prometheus.http-client`.
    pub fn new(url: &str, config: &HttpClientConfig) -> Result<Self, SidecarError> {
        let mut base = reqwest::Url::parse(url)
            .map_err(|e| SidecarError::Config(format!("--prometheus.url {url:?}: {e}")))?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let (http, auth) = config
            .build("--prometheus.http-client")
            .map_err(|e| SidecarError::Config(e.to_string()))?;
        Ok(Self { base, http, auth })
    }

    /// The address, for logs.
    pub fn url(&self) -> &reqwest::Url {
        &self.base
    }

    fn url_for(&self, path: &str) -> Result<reqwest::Url, SidecarError> {
        self.base
            .join(path)
            .map_err(|e| SidecarError::Config(format!("--prometheus.url: {e}")))
    }

    fn get(&self, path: &str) -> Result<reqwest::RequestBuilder, SidecarError> {
        Ok(self.auth.apply(self.http.get(self.url_for(path)?)))
    }

    /// What the sidecar needs of the loaded configuration: its external labels, and whether
    /// out-of-order samples are accepted.
    pub async fn config(&self, timeout: Duration) -> Result<PrometheusConfig, SidecarError> {
        #[derive(Deserialize)]
        struct ConfigData {
            yaml: String,
        }
        let data: ConfigData = self
            .api(self.get("api/v1/status/config")?.timeout(timeout))
            .await?;
        PrometheusConfig::parse(&data.yaml)
    }

    /// Prometheus's command-line flags (`/api/v1/status/flags`).
    pub async fn flags(&self, timeout: Duration) -> Result<BTreeMap<String, String>, SidecarError> {
        self.api(self.get("api/v1/status/flags")?.timeout(timeout))
            .await
    }

    /// The oldest sample time Prometheus holds and the head's first sample time (ms), from
    /// its `prometheus_tsdb_lowest_timestamp` and `prometheus_tsdb_head_min_time` metrics;
    /// `None` for an empty TSDB or head.
    pub async fn tsdb_times(&self, timeout: Duration) -> Result<TsdbTimes, SidecarError> {
        let response = self
            .get("metrics")?
            .timeout(timeout)
            .send()
            .await
            .map_err(unreachable)?;
        let text = checked(response).await?.text().await.map_err(unreachable)?;
        Ok(TsdbTimes::from_metrics(&text))
    }

    /// Remote read of one query, answered as streamed XOR chunks: the frames as they arrive.
    pub async fn remote_read(
        &self,
        query: Query,
    ) -> Result<impl Stream<Item = Result<ChunkedReadResponse, SidecarError>> + use<>, SidecarError>
    {
        let request = ReadRequest {
            queries: vec![query],
            accepted_response_types: vec![read_request::ResponseType::StreamedXorChunks as i32],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .map_err(|e| SidecarError::Prometheus(format!("snappy: {e}")))?;
        let response = self
            .auth
            .apply(self.http.post(self.url_for("api/v1/read")?))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Read-Version", "0.1.0")
            .body(body)
            .send()
            .await
            .map_err(unreachable)?;
        let response = checked(response).await?;
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if !content_type.starts_with("application/x-streamed-protobuf") {
            return Err(SidecarError::Prometheus(format!(
                "remote read answered {content_type:?}, not streamed XOR chunks (Prometheus older than 2.13?)"
            )));
        }
        let mut body = response.bytes_stream();
        Ok(async_stream::try_stream! {
            let mut buffer = FrameBuffer::default();
            let mut done = false;
            loop {
                if let Some(frame) = buffer.next_frame()? {
                    yield frame;
                    continue;
                }
                if done {
                    if !buffer.is_empty() {
                        Err(SidecarError::Prometheus(format!(
                            "remote read stream ends inside a frame ({} bytes left)",
                            buffer.len
                        )))?;
                    }
                    break;
                }
                match body.next().await {
                    Some(bytes) => buffer.push(bytes.map_err(unreachable)?),
                    None => done = true,
                }
            }
        })
    }

    /// Label sets of the series matching `matchers` in [start, end] (ms), from `/api/v1/series`.
    pub async fn series(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<Labels>, SidecarError> {
        let sets: Vec<BTreeMap<String, String>> = self
            .api(
                self.get("api/v1/series")?
                    .query(&time_and_match(matchers, start, end)),
            )
            .await?;
        Ok(sets.into_iter().map(Labels::from_pairs).collect())
    }

    /// Label names over the series matching `matchers` (all series when empty).
    pub async fn label_names(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, SidecarError> {
        self.api(
            self.get("api/v1/labels")?
                .query(&time_and_match(matchers, start, end)),
        )
        .await
    }

    /// Values of `name` over the series matching `matchers` (all series when empty).
    pub async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, SidecarError> {
        let mut url = self.url_for("api/v1/label/")?;
        url.path_segments_mut()
            .map_err(|()| SidecarError::Config("--prometheus.url cannot be a base".into()))?
            .pop_if_empty()
            .push(name)
            .push("values");
        let request = self
            .auth
            .apply(self.http.get(url))
            .query(&time_and_match(matchers, start, end));
        self.api(request).await
    }

    /// `/api/v1/metadata`: per metric name, its metadata entries (type, help, unit).
    pub async fn metadata(
        &self,
        metric: &str,
        limit: i32,
    ) -> Result<BTreeMap<String, Vec<MetricMeta>>, SidecarError> {
        let mut query = Vec::new();
        if !metric.is_empty() {
            query.push(("metric", metric.to_string()));
        }
        // Negative: no limit (Prometheus's -1); 0 answers nothing, as in Prometheus.
        if limit >= 0 {
            query.push(("limit", limit.to_string()));
        }
        let request = self
            .auth
            .apply(self.http.get(self.url_for("api/v1/metadata")?))
            .query(&query);
        self.api(request).await
    }

    /// `/api/v1/query_exemplars` over [start, end] (ms).
    pub async fn query_exemplars(
        &self,
        query: &str,
        start: i64,
        end: i64,
    ) -> Result<Vec<ExemplarSeries>, SidecarError> {
        let request = self
            .auth
            .apply(self.http.get(self.url_for("api/v1/query_exemplars")?))
            .query(&[
                ("query", query.to_string()),
                ("start", format_seconds(start)),
                ("end", format_seconds(end)),
            ]);
        self.api(request).await
    }

    /// Sends a Prometheus API request and returns its `data`.
    async fn api<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, SidecarError> {
        #[derive(Deserialize)]
        struct Envelope<T> {
            status: String,
            data: Option<T>,
            #[serde(default)]
            error: String,
        }
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        let envelope: Envelope<T> = serde_json::from_slice(&body).map_err(|e| {
            if status.is_success() {
                SidecarError::Prometheus(format!("unexpected answer: {e}"))
            } else {
                http_error(status, &body)
            }
        })?;
        match envelope.data {
            Some(data) if envelope.status == "success" => Ok(data),
            _ if status.is_server_error() => Err(SidecarError::Unavailable(envelope.error)),
            _ => Err(SidecarError::BadRequest(envelope.error)),
        }
    }
}

/// `start`, `end` (seconds, as the API takes them) and one `match[]` selector.
fn time_and_match(matchers: &[Matcher], start: i64, end: i64) -> Vec<(&'static str, String)> {
    let mut query = vec![
        ("start", format_seconds(start)),
        ("end", format_seconds(end)),
    ];
    if !matchers.is_empty() {
        query.push(("match[]", selector(matchers)));
    }
    query
}

/// Milliseconds as the decimal seconds Prometheus's API parses. Clamped to ±9e15 ms (year
/// ±287,000): Prometheus converts the seconds back to ms in an int64, which the extremes a
/// querier sends (i64::MIN, i64::MAX) would overflow.
fn format_seconds(ms: i64) -> String {
    const LIMIT: i64 = 9_000_000_000_000_000;
    let ms = ms.clamp(-LIMIT, LIMIT);
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

/// A PromQL selector for `matchers`: `{name="value", other=~"re"}`.
pub fn selector(matchers: &[Matcher]) -> String {
    rthanos_model::selector(matchers)
}

/// A remote-read query for `matchers` over [start, end].
pub fn read_query(matchers: &[Matcher], start: i64, end: i64) -> Query {
    Query {
        start_timestamp_ms: start,
        end_timestamp_ms: end,
        matchers: matchers.iter().map(matcher_to_prometheus).collect(),
        hints: None,
    }
}

/// Bytes of the remote-read answer received and not yet cut into frames, kept as the network
/// gave them: a frame inside one piece is sliced out without a copy, one across pieces is
/// copied once into a buffer of its exact size. Public for the fuzz target of its framing.
#[derive(Default)]
pub struct FrameBuffer {
    pieces: VecDeque<Bytes>,
    len: usize,
}

impl FrameBuffer {
    /// Appends what one read from the network returned.
    pub fn push(&mut self, piece: Bytes) {
        if !piece.is_empty() {
            self.len += piece.len();
            self.pieces.push_back(piece);
        }
    }

    /// Whether no bytes wait to be cut into frames.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the first bytes (up to `out.len()`) without consuming them; returns how many.
    fn peek(&self, out: &mut [u8]) -> usize {
        let mut n = 0;
        for piece in &self.pieces {
            let take = piece.len().min(out.len() - n);
            out[n..n + take].copy_from_slice(&piece[..take]);
            n += take;
            if n == out.len() {
                break;
            }
        }
        n
    }

    /// Removes and returns the first `len` bytes (`len` <= `self.len`).
    fn take(&mut self, len: usize) -> Bytes {
        self.len -= len;
        if let Some(front) = self.pieces.front_mut()
            && front.len() >= len
        {
            let out = front.split_to(len);
            if front.is_empty() {
                self.pieces.pop_front();
            }
            return out;
        }
        let mut out = BytesMut::with_capacity(len);
        while out.len() < len {
            let Some(front) = self.pieces.front_mut() else {
                break;
            };
            let take = front.len().min(len - out.len());
            out.put_slice(&front[..take]);
            front.advance(take);
            if front.is_empty() {
                self.pieces.pop_front();
            }
        }
        out.freeze()
    }

    /// The next whole frame (uvarint length, big-endian CRC-32C, message), if there is one;
    /// consumes it.
    pub fn next_frame(&mut self) -> Result<Option<ChunkedReadResponse>, SidecarError> {
        let mut head = [0u8; 14];
        let got = self.peek(&mut head);
        let mut peek = &head[..got];
        let Ok(len) = prost::encoding::decode_varint(&mut peek) else {
            // Not a whole varint yet (or a broken one, which more bytes will not fix).
            if got >= 10 {
                return Err(SidecarError::Prometheus(
                    "remote read frame: bad length".into(),
                ));
            }
            return Ok(None);
        };
        let header = got - peek.len();
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > MAX_FRAME_BYTES {
            return Err(SidecarError::Prometheus(format!(
                "remote read frame of {len} bytes, over the {MAX_FRAME_BYTES} limit"
            )));
        }
        if self.len < header + 4 + len {
            return Ok(None);
        }
        self.take(header);
        let expected = self.take(4).get_u32();
        // One copy when the frame spans pieces (nearly always: frames are ~1 MiB, pieces are
        // what one read returned). Decoding straight from the pieces avoids it but costs more
        // than it saves (measured with callgrind: +1.6% instructions, slower).
        let message = self.take(len);
        let actual = crc32c::crc32c(&message);
        if actual != expected {
            return Err(SidecarError::Prometheus(format!(
                "remote read frame: CRC32C {actual:08x}, frame says {expected:08x}"
            )));
        }
        ChunkedReadResponse::decode(message)
            .map(Some)
            .map_err(|e| SidecarError::Prometheus(format!("remote read frame: {e}")))
    }
}

fn unreachable(e: impl std::fmt::Display) -> SidecarError {
    SidecarError::Unavailable(e.to_string())
}

async fn checked(response: reqwest::Response) -> Result<reqwest::Response, SidecarError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.unwrap_or_default();
    Err(http_error(status, &body))
}

fn http_error(status: reqwest::StatusCode, body: &[u8]) -> SidecarError {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)])
        .trim()
        .to_string();
    let message = format!("Prometheus answered {status}: {text}");
    if status.is_server_error() {
        SidecarError::Unavailable(message)
    } else {
        SidecarError::BadRequest(message)
    }
}

#[cfg(test)]
mod tests {
    use bytes::BufMut;
    use rthanos_model::MatchType;
    use rthanos_storeapi::prometheus::ChunkedSeries;

    use super::*;

    fn framed(message: &ChunkedReadResponse) -> Vec<u8> {
        let body = message.encode_to_vec();
        let mut out = Vec::new();
        prost::encoding::encode_varint(body.len() as u64, &mut out);
        out.put_u32(crc32c::crc32c(&body));
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn frames_are_read_whole_and_checked() {
        let message = ChunkedReadResponse {
            chunked_series: vec![ChunkedSeries {
                labels: vec![],
                chunks: vec![rthanos_storeapi::prometheus::Chunk {
                    data: vec![7; 300].into(),
                    ..Default::default()
                }],
            }],
            query_index: 0,
        };
        let bytes = [framed(&message), framed(&message), framed(&message)].concat();
        // Delivered in pieces of every size: a frame is returned only once whole, and equal
        // to what was sent.
        for piece in [1, 2, 3, 7, 64, 200, 1000, bytes.len()] {
            let mut buffer = FrameBuffer::default();
            let mut got = Vec::new();
            for chunk in bytes.chunks(piece) {
                buffer.push(Bytes::copy_from_slice(chunk));
                while let Some(frame) = buffer.next_frame().expect("valid") {
                    got.push(frame);
                }
            }
            assert_eq!(got, vec![message.clone(); 3], "pieces of {piece}");
            assert!(buffer.is_empty());
        }

        let mut corrupt = framed(&message);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        let mut buffer = FrameBuffer::default();
        buffer.push(corrupt.into());
        let err = buffer.next_frame().expect_err("bad CRC");
        assert!(err.to_string().contains("CRC32C"), "{err}");
    }

    #[test]
    fn the_config_gives_external_labels_and_the_out_of_order_window() {
        let config = PrometheusConfig::parse(
            "global:\n  scrape_interval: 15s\n  external_labels:\n    cluster: eu1\n    replica: a\nstorage:\n  tsdb:\n    out_of_order_time_window: 30m\n",
        )
        .expect("config");
        assert_eq!(
            config.external_labels,
            Labels::from_pairs([("cluster", "eu1"), ("replica", "a")])
        );
        assert!(config.out_of_order);
        for (yaml, out_of_order) in [
            ("global:\n  scrape_interval: 15s\n", false),
            (
                "storage:\n  tsdb:\n    out_of_order_time_window: 0s\n",
                false,
            ),
            ("storage:\n  exemplars:\n    max_exemplars: 10\n", false),
            (
                "storage:\n  tsdb:\n    out_of_order_time_window: 1h\n",
                true,
            ),
        ] {
            let config = PrometheusConfig::parse(yaml).expect("config");
            assert_eq!(config.out_of_order, out_of_order, "{yaml}");
            assert!(config.external_labels.is_empty());
        }
    }

    #[test]
    fn tsdb_times_come_from_prometheus_s_own_metrics() {
        let text = "# HELP prometheus_tsdb_head_min_time Minimum time bound of the head block.\n\
                    # TYPE prometheus_tsdb_head_min_time gauge\n\
                    prometheus_tsdb_head_min_time 1.7000472e+12\n\
                    prometheus_tsdb_head_min_time_seconds 1.7000472e+09\n\
                    prometheus_tsdb_lowest_timestamp 1700006400000\n";
        assert_eq!(
            TsdbTimes::from_metrics(text),
            TsdbTimes {
                lowest: Some(1_700_006_400_000),
                head_min: Some(1_700_047_200_000),
            }
        );
        // An empty head reports MaxInt64.
        let empty = "prometheus_tsdb_head_min_time 9.223372036854776e+18\n\
                     prometheus_tsdb_lowest_timestamp 9.223372036854776e+18\n";
        assert_eq!(TsdbTimes::from_metrics(empty), TsdbTimes::default());
        // No head metric: nothing is known, not even the lowest timestamp.
        assert_eq!(
            TsdbTimes::from_metrics("prometheus_tsdb_lowest_timestamp 1700006400000\n"),
            TsdbTimes::default()
        );
    }

    #[test]
    fn selectors_quote_as_promql_reads() {
        let matchers = [
            Matcher::new(MatchType::Equal, "__name__", "up").expect("valid"),
            Matcher::new(MatchType::NotRegex, "path", "/a\"b\\.*").expect("valid"),
        ];
        assert_eq!(selector(&matchers), r#"{__name__="up", path!~"/a\"b\\.*"}"#);
        assert_eq!(format_seconds(1_500), "1.500");
        assert_eq!(format_seconds(-1), "-0.001");
        assert_eq!(format_seconds(i64::MIN), "-9000000000000.000");
    }
}

/// One metadata entry of `/api/v1/metadata`.
#[derive(Debug, Deserialize)]
pub struct MetricMeta {
    /// Metric type (`counter`, `gauge`, …).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Help text.
    #[serde(default)]
    pub help: String,
    /// Unit.
    #[serde(default)]
    pub unit: String,
}

/// One series of `/api/v1/query_exemplars`.
#[derive(Debug, Deserialize)]
pub struct ExemplarSeries {
    /// The series' labels.
    #[serde(rename = "seriesLabels")]
    pub series_labels: BTreeMap<String, String>,
    /// Its exemplars.
    #[serde(default)]
    pub exemplars: Vec<ExemplarPoint>,
}

/// One exemplar of `/api/v1/query_exemplars`.
#[derive(Debug, Deserialize)]
pub struct ExemplarPoint {
    /// The exemplar's own labels (e.g. a trace ID).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its value, as Prometheus writes values (a string).
    pub value: String,
    /// Unix seconds.
    pub timestamp: f64,
}
