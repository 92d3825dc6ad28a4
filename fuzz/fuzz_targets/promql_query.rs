//! Arbitrary text as the `query` of `/api/v1/query` and `/api/v1/query_range`, parsed and
//! evaluated as the HTTP API does, over a few in-memory series: an answer or Prometheus's
//! error, never a panic, a hang or memory beyond the sample limit.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rthanos_model::Labels;
use rthanos_promql::{Engine, EngineOptions, MemoryStorage, Sample};

struct Setup {
    runtime: tokio::runtime::Runtime,
    engine: Engine,
    storage: MemoryStorage,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let mut storage = MemoryStorage::new();
        for (name, code) in [
            ("http_requests_total", "200"),
            ("http_requests_total", "500"),
            ("temperature", "x"),
        ] {
            let labels = Labels::from_pairs([("__name__", name), ("code", code), ("job", "a")]);
            storage.append(
                labels,
                (0..240).map(|i| Sample {
                    t: i * 15_000,
                    v: (i % 50) as f64 * 1.5,
                }),
            );
        }
        Setup {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            // Limits small enough that a costly query fails fast instead of timing out.
            engine: Engine::new(EngineOptions {
                max_samples: 100_000,
                timeout: Duration::from_secs(2),
                ..EngineOptions::default()
            }),
            storage,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let s = setup();
    s.runtime.block_on(async {
        let _ = s.engine.instant_query(&s.storage, query, 1_800_000).await;
        let _ = s
            .engine
            .range_query(&s.storage, query, 0, 3_600_000, 60_000)
            .await;
    });
});
