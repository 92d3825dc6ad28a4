//! Prometheus remote write 1.0 from a write-ahead log, for the ruler's stateless mode
//! (`--remote-write.config`): samples are appended to a log in Prometheus's WAL format (as
//! Prometheus's agent keeps one), and one queue per target tails that log and sends what it
//! reads, in order, retrying until the target takes it. Each queue's position is saved after
//! every acknowledged request, so neither a target that is down nor a restart of the process
//! loses a sample the log holds; segments every queue has passed are checkpointed and
//! deleted.

pub mod config;
mod metrics;
mod positions;
mod queue;
mod store;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rthanos_model::Labels;
use tokio_util::sync::CancellationToken;

pub use config::{ConfigError, QueueConfig, RemoteWriteConfig, parse};
pub use positions::{Positions, PositionsError, QueuePosition};
pub use queue::Queue;
pub use store::{LogPosition, Refusal, Replayed, StoreError, WalStore};

/// Errors of opening the log and its queues.
#[derive(Debug, thiserror::Error)]
pub enum RemoteWriteError {
    /// The log could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The queues' positions could not be read.
    #[error(transparent)]
    Positions(#[from] PositionsError),
    /// The metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// A queue's start could not be decided.
    #[error("remote write queue: {0}")]
    Queue(String),
}

/// How the log is kept.
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// Snappy-compress records.
    pub compress: bool,
    /// Bytes of a segment.
    pub segment_size: usize,
    /// How often sent segments are checkpointed and deleted (Prometheus's agent: 2h).
    pub truncate_interval: Duration,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            compress: true,
            segment_size: rthanos_tsdb::wal::DEFAULT_SEGMENT_SIZE,
            truncate_interval: Duration::from_secs(2 * 3600),
        }
    }
}

/// The log under a data directory and the queues that send it.
pub struct RemoteWrite {
    store: Arc<WalStore>,
    positions: Arc<Positions>,
    queues: Vec<Queue>,
    names: Vec<String>,
    truncate_interval: Duration,
}

/// The file holding the queues' positions, beside the log's segments.
const POSITIONS_FILE: &str = "remote_write_positions.json";

impl RemoteWrite {
    /// Opens the log in `<data_dir>/wal` and a queue per target of `configs`; `external_labels`
    /// are added to every series sent that lacks them.
    ///
    /// # Errors
    /// The log or the positions file cannot be read, or metrics cannot be registered.
    pub fn open(
        data_dir: &Path,
        configs: Vec<RemoteWriteConfig>,
        external_labels: &Labels,
        options: &LogOptions,
        registry: &prometheus::Registry,
    ) -> Result<(RemoteWrite, Replayed), RemoteWriteError> {
        let (store, replayed) =
            WalStore::open(data_dir, options.compress, options.segment_size, registry)?;
        let store = Arc::new(store);
        let names: Vec<String> = configs.iter().map(|c| c.name.clone()).collect();
        let positions = Arc::new(Positions::open(
            &store.wal_dir().join(POSITIONS_FILE),
            &names,
        )?);
        let metrics = metrics::RemoteWriteMetrics::new(registry)?;
        let queues = configs
            .into_iter()
            .map(|config| {
                let queue_metrics = metrics.queue(
                    &config.name,
                    config.url.as_str(),
                    config.queue.capacity,
                    config.queue.max_samples_per_send,
                );
                Queue::new(
                    config,
                    external_labels.clone(),
                    store.wal_dir().to_path_buf(),
                    Arc::clone(&positions),
                    (store.subscribe(), store.subscribe_checkpoints()),
                    queue_metrics,
                )
                .map_err(RemoteWriteError::Queue)
            })
            .collect::<Result<Vec<Queue>, RemoteWriteError>>()?;
        Ok((
            RemoteWrite {
                store,
                positions,
                queues,
                names,
                truncate_interval: options.truncate_interval,
            },
            replayed,
        ))
    }

    /// The log, where samples are appended.
    pub fn store(&self) -> Arc<WalStore> {
        Arc::clone(&self.store)
    }

    /// Sends until `shutdown`, truncating the log every truncation interval. Returns once
    /// every queue has stopped; the log is synced.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut running = tokio::task::JoinSet::new();
        for queue in self.queues {
            running.spawn(queue.run(shutdown.clone()));
        }
        let mut truncation = tokio::time::interval(self.truncate_interval);
        truncation.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = truncation.tick() => {
                    let Some(lowest) = self.positions.lowest_segment(&self.names) else {
                        continue;
                    };
                    let store = Arc::clone(&self.store);
                    match tokio::task::spawn_blocking(move || store.truncate(lowest)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::error!(err = %e, "truncating the remote-write WAL failed"),
                        Err(e) => tracing::error!(err = %e, "truncating the remote-write WAL panicked"),
                    }
                }
            }
        }
        while running.join_next().await.is_some() {}
        if let Err(e) = self.store.sync() {
            tracing::error!(err = %e, "syncing the remote-write WAL failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use rthanos_storeapi::prometheus::WriteRequest;
    use std::sync::Mutex;

    /// One received sample: its series' labels (`name=value,…`), timestamp and value.
    type Received = (String, i64, f64);

    /// A remote-write receiver on loopback: it decodes every request it is sent and answers
    /// with the status the test sets (503 while "down").
    #[derive(Clone, Default)]
    struct Receiver {
        status: Arc<Mutex<u16>>,
        /// Accepted requests: (series labels, timestamp, value) of each sample.
        accepted: Arc<Mutex<Vec<Vec<Received>>>>,
        refused: Arc<Mutex<usize>>,
    }

    impl Receiver {
        async fn start() -> (Receiver, String) {
            let receiver = Receiver {
                status: Arc::new(Mutex::new(200)),
                ..Receiver::default()
            };
            let state = receiver.clone();
            let app = axum::Router::new().route(
                "/api/v1/write",
                axum::routing::post(
                    move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                        let state = state.clone();
                        async move {
                            assert_eq!(headers["content-encoding"], "snappy");
                            assert_eq!(headers["x-prometheus-remote-write-version"], "0.1.0");
                            let status = *state.status.lock().expect("lock");
                            if status != 200 {
                                *state.refused.lock().expect("lock") += 1;
                                return axum::http::StatusCode::from_u16(status)
                                    .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
                            }
                            let raw = snap::raw::Decoder::new()
                                .decompress_vec(&body)
                                .expect("snappy");
                            let request = WriteRequest::decode(raw.as_slice()).expect("proto");
                            let samples = request
                                .timeseries
                                .iter()
                                .flat_map(|ts| {
                                    let labels: Vec<String> = ts
                                        .labels
                                        .iter()
                                        .map(|l| format!("{}={}", l.name, l.value))
                                        .collect();
                                    ts.samples
                                        .iter()
                                        .map(move |s| (labels.join(","), s.timestamp, s.value))
                                })
                                .collect();
                            state.accepted.lock().expect("lock").push(samples);
                            axum::http::StatusCode::NO_CONTENT
                        }
                    },
                ),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            tokio::spawn(async move { axum::serve(listener, app).await });
            (receiver, format!("http://127.0.0.1:{port}/api/v1/write"))
        }

        fn set_status(&self, status: u16) {
            *self.status.lock().expect("lock") = status;
        }

        /// The samples received, each once: a request in flight when the queue stopped is
        /// sent again after a restart (a Prometheus receiver takes such exact duplicates).
        /// Per series, no sample arrives older than one before it.
        fn samples(&self) -> Vec<(String, i64, f64)> {
            let mut newest: std::collections::HashMap<String, i64> = Default::default();
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::new();
            for sample in self.accepted.lock().expect("lock").iter().flatten() {
                let last = newest.entry(sample.0.clone()).or_insert(i64::MIN);
                assert!(sample.1 >= *last, "{sample:?} after {last}: out of order");
                *last = sample.1;
                if seen.insert((sample.0.clone(), sample.1)) {
                    out.push(sample.clone());
                }
            }
            out
        }

        async fn wait_for(&self, n: usize) {
            for _ in 0..500 {
                if self.samples().len() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("{} of {n} samples arrived", self.samples().len());
        }
    }

    fn config(url: &str) -> Vec<RemoteWriteConfig> {
        parse(&format!(
            "remote_write:\n- url: {url}\n  name: test\n  queue_config: {{batch_send_deadline: 50ms, min_backoff: 10ms, max_backoff: 20ms, max_samples_per_send: 3}}\n  write_relabel_configs:\n  - {{source_labels: [__name__], regex: dropped, action: drop}}\n"
        ))
        .expect("config")
    }

    fn series(name: &str) -> Labels {
        Labels::from_pairs([("__name__", name)])
    }

    fn start(
        dir: &Path,
        url: &str,
        options: &LogOptions,
    ) -> (
        Arc<WalStore>,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        let registry = prometheus::Registry::new();
        let (rw, _) = RemoteWrite::open(
            dir,
            config(url),
            &Labels::from_pairs([("ruler", "r1"), ("__name__", "never_added")]),
            options,
            &registry,
        )
        .expect("open");
        let store = rw.store();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(rw.run(shutdown.clone()));
        (store, shutdown, running)
    }

    #[tokio::test]
    async fn every_sample_arrives_once_in_order_through_an_outage_and_a_restart() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (receiver, url) = Receiver::start().await;
        let options = LogOptions {
            segment_size: 32 * 1024,
            ..LogOptions::default()
        };
        let (store, shutdown, running) = start(tmp.path(), &url, &options);
        let (a, b, dropped) = (series("a"), series("b"), series("dropped"));
        let mut expected = Vec::new();
        let mut t = 1000;
        let mut commit = |store: &WalStore, expected: &mut Vec<(String, i64, f64)>| {
            t += 1000;
            let out = store
                .append([(&a, t, 1.0), (&b, t, 2.0), (&dropped, t, 3.0)])
                .expect("append");
            assert_eq!(out, [None, None, None]);
            expected.push(("__name__=a,ruler=r1".to_string(), t, 1.0));
            expected.push(("__name__=b,ruler=r1".to_string(), t, 2.0));
        };
        for _ in 0..5 {
            commit(&store, &mut expected);
        }
        receiver.wait_for(expected.len()).await;
        // Down: nothing is dropped, it waits in the log.
        receiver.set_status(503);
        for _ in 0..5 {
            commit(&store, &mut expected);
        }
        while *receiver.refused.lock().expect("lock") < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        receiver.set_status(200);
        receiver.wait_for(expected.len()).await;
        // Stopped, more written while stopped, started again from the saved position.
        shutdown.cancel();
        running.await.expect("run");
        for _ in 0..3 {
            commit(&store, &mut expected);
        }
        drop(store);
        let (store, shutdown, running) = start(tmp.path(), &url, &options);
        commit(&store, &mut expected);
        receiver.wait_for(expected.len()).await;
        assert_eq!(receiver.samples(), expected);
        // One sample per series per request, at most three.
        for request in receiver.accepted.lock().expect("lock").iter() {
            assert!(request.len() <= 3, "{request:?}");
            let mut names: Vec<&String> = request.iter().map(|s| &s.0).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), request.len(), "{request:?}");
        }
        // An out-of-order sample is refused as the agent refuses it.
        assert_eq!(
            store.append([(&a, 1500, 0.0)]).expect("append"),
            [Some(Refusal::OutOfOrder)]
        );
        shutdown.cancel();
        running.await.expect("run");
    }

    #[tokio::test]
    async fn refused_requests_are_dropped_and_the_queue_goes_on() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (receiver, url) = Receiver::start().await;
        let (store, shutdown, running) = start(tmp.path(), &url, &LogOptions::default());
        let a = series("a");
        receiver.set_status(400);
        store.append([(&a, 1000, 1.0)]).expect("append");
        while *receiver.refused.lock().expect("lock") < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        receiver.set_status(200);
        store.append([(&a, 2000, 2.0)]).expect("append");
        receiver.wait_for(1).await;
        assert_eq!(
            receiver.samples(),
            [("__name__=a,ruler=r1".to_string(), 2000, 2.0)]
        );
        shutdown.cancel();
        running.await.expect("run");
    }

    #[tokio::test]
    async fn too_many_requests_is_retried_only_when_configured() {
        for retry in [false, true] {
            let tmp = tempfile::tempdir().expect("tmp");
            let (receiver, url) = Receiver::start().await;
            let registry = prometheus::Registry::new();
            let configs = parse(&format!(
                "remote_write:\n- url: {url}\n  queue_config: {{batch_send_deadline: 10ms, min_backoff: 10ms, max_backoff: 20ms, retry_on_http_429: {retry}}}\n"
            ))
            .expect("config");
            let (rw, _) = RemoteWrite::open(
                tmp.path(),
                configs,
                &Labels::default(),
                &LogOptions::default(),
                &registry,
            )
            .expect("open");
            let store = rw.store();
            let shutdown = CancellationToken::new();
            let running = tokio::spawn(rw.run(shutdown.clone()));
            let a = series("a");
            receiver.set_status(429);
            store.append([(&a, 1000, 1.0)]).expect("append");
            // Retried, it is refused again; not retried, once.
            let refusals = if retry { 2 } else { 1 };
            while *receiver.refused.lock().expect("lock") < refusals {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            receiver.set_status(200);
            store.append([(&a, 2000, 2.0)]).expect("append");
            let expected: Vec<Received> = if retry {
                vec![
                    ("__name__=a".to_string(), 1000, 1.0),
                    ("__name__=a".to_string(), 2000, 2.0),
                ]
            } else {
                vec![("__name__=a".to_string(), 2000, 2.0)]
            };
            receiver.wait_for(expected.len()).await;
            assert_eq!(receiver.samples(), expected, "retry_on_http_429: {retry}");
            shutdown.cancel();
            running.await.expect("run");
        }
    }

    #[tokio::test]
    async fn sent_segments_are_checkpointed_and_deleted_and_series_survive_them() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (receiver, url) = Receiver::start().await;
        let options = LogOptions {
            segment_size: 32 * 1024,
            truncate_interval: Duration::from_millis(100),
            ..LogOptions::default()
        };
        let (store, shutdown, running) = start(tmp.path(), &url, &options);
        let (a, b) = (series("a"), series("b"));
        store
            .append([(&a, 1000, 1.0), (&b, 1000, 1.0)])
            .expect("append");
        receiver.wait_for(2).await;
        let wal = tmp.path().join("wal");
        // Truncations move the log to new segments and delete the sent ones.
        let first = rthanos_tsdb::wal::segments(&wal).expect("segments")[0];
        let mut n = 2;
        for t in 2..40 {
            store.append([(&a, t * 1000, 1.0)]).expect("append");
            n += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        receiver.wait_for(n).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while rthanos_tsdb::wal::segments(&wal).expect("segments")[0] <= first + 1 {
            assert!(std::time::Instant::now() < deadline, "never truncated");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            rthanos_tsdb::wal::checkpoint::last_checkpoint(&wal)
                .expect("read")
                .is_some(),
            "a checkpoint holds the series"
        );
        shutdown.cancel();
        running.await.expect("run");
        // Written while no queue runs: kept for the next start.
        store.append([(&a, 40_000, 1.0)]).expect("append");
        n += 1;
        drop(store);
        // Reopened on the checkpoint: `a` is known (and keeps its order check); `b`, whose
        // samples are all sent, was forgotten and is a new series again.
        let (store, shutdown, running) = start(tmp.path(), &url, &options);
        assert_eq!(
            store.append([(&a, 1500, 0.0)]).expect("append"),
            [Some(Refusal::OutOfOrder)]
        );
        store.append([(&b, 50_000, 5.0)]).expect("append");
        receiver.wait_for(n + 1).await;
        assert_eq!(receiver.samples().len(), n + 1, "every sample");
        assert_eq!(
            receiver.samples().last(),
            Some(&("__name__=b,ruler=r1".to_string(), 50_000, 5.0))
        );
        shutdown.cancel();
        running.await.expect("run");
    }
}
