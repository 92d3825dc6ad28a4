//! Background work that cannot die silently. A component's loops (the sidecar's shipper, the
//! store's block sync, the querier's endpoint refresh, the compactor's cleanup) run under a
//! [`Supervisor`]: a loop that returns or panics before shutdown is logged as an error,
//! counted in `thanos_background_task_failures_total{task, cause}`, and started again after
//! a pause, so a bug in one iteration costs that iteration, not the process's purpose while it
//! still answers its probes. Work done for one request (a producer task feeding a stream)
//! runs under [`Supervisor::catch`]: a panic becomes an error the request's stream ends with,
//! never a shorter answer that looks complete.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use prometheus::{IntCounterVec, Opts, Registry};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why a background task stopped before shutdown (the `cause` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The task panicked.
    Panic,
    /// The loop returned although it should run until shutdown.
    Ended,
}

impl Cause {
    fn label(self) -> &'static str {
        match self {
            Cause::Panic => "panic",
            Cause::Ended => "ended",
        }
    }
}

/// A panic caught by [`Supervisor::catch`], with the panic's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Panicked(pub String);

impl std::fmt::Display for Panicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "panicked: {}", self.0)
    }
}

impl std::error::Error for Panicked {}

/// Runs a component's background loops and counts their failures; cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    failures: IntCounterVec,
    shutdown: CancellationToken,
}

impl Supervisor {
    /// A supervisor whose loops stop when `shutdown` is cancelled, with its metric in
    /// `registry`.
    ///
    /// # Errors
    /// The metric is already registered in `registry`.
    pub fn new(
        registry: &Registry,
        shutdown: CancellationToken,
    ) -> Result<Self, prometheus::Error> {
        let failures = IntCounterVec::new(
            Opts::new(
                "thanos_background_task_failures_total",
                "Background tasks that panicked or ended before shutdown; each is restarted.",
            ),
            &["task", "cause"],
        )?;
        registry.register(Box::new(failures.clone()))?;
        Ok(Self { failures, shutdown })
    }

    /// A supervisor with a metric of its own, for callers without a registry (tests, tools).
    pub fn unregistered(shutdown: CancellationToken) -> Self {
        // The options are constants: creating the vector cannot fail on them.
        let failures = IntCounterVec::new(
            Opts::new("thanos_background_task_failures_total", "unregistered"),
            &["task", "cause"],
        )
        .unwrap_or_else(|_| unreachable!("constant metric options are valid"));
        Self { failures, shutdown }
    }

    /// The token whose cancellation stops the loops.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// How often `task` failed for `cause` (the metric's value).
    pub fn failures(&self, task: &str, cause: Cause) -> u64 {
        self.failures
            .with_label_values(&[task, cause.label()])
            .get()
    }

    /// Runs the loop `start` makes in a task of its own until shutdown. When it returns or
    /// panics before, the failure is logged and counted, and after `restart_after` (cut short
    /// by shutdown) a new loop is started. The handle ends after shutdown.
    pub fn spawn_loop<F, Fut>(
        &self,
        task: &'static str,
        restart_after: Duration,
        start: F,
    ) -> JoinHandle<()>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        // The series exist from the start, so that an alert on their increase sees the first.
        for cause in [Cause::Panic, Cause::Ended] {
            let _ = self.failures.with_label_values(&[task, cause.label()]);
        }
        let supervisor = self.clone();
        tokio::spawn(supervisor.supervise(task, restart_after, start))
    }

    /// [`Supervisor::spawn_loop`], awaited: for a loop that is the component's main work.
    pub async fn run_loop<F, Fut>(&self, task: &'static str, restart_after: Duration, start: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        // The loop runs in a task of its own so that a panic unwinds that task, not the caller.
        let _ = self.spawn_loop(task, restart_after, start).await;
    }

    async fn supervise<F, Fut>(self, task: &'static str, restart_after: Duration, mut start: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        loop {
            let outcome = tokio::spawn(start()).await;
            if self.shutdown.is_cancelled() {
                return;
            }
            let cause = match outcome {
                Ok(()) => {
                    tracing::error!(task, "background task ended before shutdown; restarting it");
                    Cause::Ended
                }
                Err(e) if e.is_panic() => {
                    let message = panic_message(e.into_panic().as_ref());
                    tracing::error!(task, panic = %message, "background task panicked; restarting it");
                    Cause::Panic
                }
                // Cancelled: only the runtime shutting down cancels a task it did not abort.
                Err(_) => return,
            };
            self.failures
                .with_label_values(&[task, cause.label()])
                .inc();
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(restart_after) => {}
            }
        }
    }

    /// Runs `work` for one request, catching a panic: the panic is logged and counted under
    /// `task` and returned as [`Panicked`], for the caller to end its answer with an error.
    pub async fn catch<T>(
        &self,
        task: &'static str,
        work: impl Future<Output = T>,
    ) -> Result<T, Panicked> {
        match AssertUnwindSafe(work).catch_unwind().await {
            Ok(value) => Ok(value),
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                tracing::error!(task, panic = %message, "request task panicked; its answer ends with an error");
                self.failures
                    .with_label_values(&[task, Cause::Panic.label()])
                    .inc();
                Err(Panicked(message))
            }
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_panicking_loop_is_counted_and_restarted() {
        let shutdown = CancellationToken::new();
        let registry = Registry::new();
        let supervisor = Supervisor::new(&registry, shutdown.clone()).expect("supervisor");
        let starts = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&starts);
        let token = shutdown.clone();
        let handle = supervisor.spawn_loop("shipper", Duration::from_secs(5), move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            let token = token.clone();
            async move {
                assert!(n >= 2, "iteration {n} fails");
                token.cancelled().await;
            }
        });
        // Two failures, each followed by a 5 s pause, then a loop that runs.
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        assert_eq!(supervisor.failures("shipper", Cause::Panic), 2);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .expect("encode");
        assert!(
            text.contains(
                r#"thanos_background_task_failures_total{cause="panic",task="shipper"} 2"#
            ),
            "{text}"
        );
        shutdown.cancel();
        handle.await.expect("the supervisor ends at shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_returns_early_is_restarted_but_not_after_shutdown() {
        let shutdown = CancellationToken::new();
        let supervisor = Supervisor::unregistered(shutdown.clone());
        let starts = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&starts);
        let token = shutdown.clone();
        let handle = supervisor.spawn_loop("sync", Duration::from_secs(1), move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            let token = token.clone();
            async move {
                if n == 1 {
                    // The second loop runs until shutdown, then returns: not a failure.
                    token.cancelled().await;
                }
            }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 2);
        assert_eq!(supervisor.failures("sync", Cause::Ended), 1);
        shutdown.cancel();
        handle.await.expect("ends at shutdown");
        assert_eq!(supervisor.failures("sync", Cause::Ended), 1);
        assert_eq!(starts.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_request_task_panic_is_an_error_not_a_short_answer() {
        let supervisor = Supervisor::unregistered(CancellationToken::new());
        let ok = supervisor.catch("remote_read", async { 7 }).await;
        assert_eq!(ok, Ok(7));
        let failed: Result<(), Panicked> = supervisor
            .catch("remote_read", async { panic!("frame {} out of range", 3) })
            .await;
        assert_eq!(failed, Err(Panicked("frame 3 out of range".into())));
        assert_eq!(supervisor.failures("remote_read", Cause::Panic), 1);
    }
}
