//! SIGTERM stops a component gracefully: the work sees the shutdown token, `run` returns Ok.
//! Its own test binary, because a signal handler is process-wide.

use std::net::SocketAddr;
use std::time::Duration;

use rthanos_runtime::{BoxError, BuildInfo, HttpOptions, Runtime};

#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    // Registering a listener first means SIGTERM can never take the default action (exit)
    // here, even before the runtime has installed its own.
    let _guard =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("listen");
    let build = BuildInfo {
        version: "0",
        revision: "r",
        branch: "b",
        compiler: "c",
    };
    let runtime = Runtime::new("sidecar", &build).expect("runtime");
    let token = runtime.shutdown_token();
    let prober = runtime.prober().clone();
    let bound = runtime
        .bind(
            HttpOptions::new(SocketAddr::from(([127, 0, 0, 1], 0))),
            None,
            axum::Router::new(),
            None,
        )
        .await
        .expect("bind");
    let (saw_tx, saw_rx) = tokio::sync::oneshot::channel();
    let serving = tokio::spawn(bound.run(async move {
        prober.ready();
        token.cancelled().await;
        let _ = saw_tx.send(prober.is_ready());
        Ok::<(), BoxError>(())
    }));
    let pid = std::process::id().to_string();
    for _ in 0..100 {
        if serving.is_finished() {
            break;
        }
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let result = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("stopped in time")
        .expect("join");
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        saw_rx.await.ok(),
        Some(false),
        "not ready once shutdown began"
    );
}
