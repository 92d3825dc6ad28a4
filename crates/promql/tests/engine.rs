//! Engine limits and options: max samples, timeout, lookback delta, concurrency, error kinds.

use std::time::Duration;

use rthanos_model::Labels;
use rthanos_promql::{
    Engine, EngineOptions, MemoryStorage, QueryError, Queryable, Sample, SelectHints, Series,
    StorageError, Value,
};

fn storage(series: usize, samples: usize) -> MemoryStorage {
    let mut s = MemoryStorage::new();
    for i in 0..series {
        s.append(
            Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]),
            (0..samples).map(|k| Sample {
                t: k as i64 * 15_000,
                v: k as f64,
            }),
        );
    }
    s
}

#[tokio::test]
async fn too_many_samples_is_prometheus_error() {
    let engine = Engine::new(EngineOptions {
        max_samples: 30,
        ..EngineOptions::default()
    });
    let data = storage(10, 100);
    // A 10m window holds 41 samples of a series: more than 30 at once.
    let err = engine
        .instant_query(&data, "sum_over_time(m[10m])", 1_000_000)
        .await
        .expect_err("limit");
    assert!(matches!(err, QueryError::TooManySamples(_)));
    assert_eq!(
        err.to_string(),
        "query processing would load too many samples into memory in query execution"
    );
    // A range query holds every step's values: 10 series x 100 steps.
    let engine = Engine::new(EngineOptions {
        max_samples: 100,
        ..EngineOptions::default()
    });
    let err = engine
        .range_query(&data, "m", 0, 1_485_000, 15_000)
        .await
        .expect_err("limit");
    assert!(matches!(err, QueryError::TooManySamples(_)));
    // Under the limit: fine (one series' window at a time, as Prometheus counts).
    assert!(engine.instant_query(&data, "m", 1_000_000).await.is_ok());
    assert!(
        engine
            .instant_query(&data, "sum_over_time(m[10m])", 1_000_000)
            .await
            .is_ok()
    );
    // A subquery whose steps alone pass the limit is refused before they are allocated.
    assert!(matches!(
        engine
            .instant_query(&data, "max_over_time(m[1y:1ms])", 1_000_000)
            .await,
        Err(QueryError::TooManySamples(_))
    ));
}

/// `--query.max-samples` counts what a query holds at once, as Prometheus: both operands of a
/// binary operator while it runs, and a scalar's value at every step.
#[tokio::test]
async fn operands_and_scalars_count_against_max_samples() {
    let engine = Engine::new(EngineOptions {
        max_samples: 700,
        ..EngineOptions::default()
    });
    let data = storage(10, 100);
    // 10 series x 50 steps = 500 values per operand: one fits, both at once do not.
    let range = |query: &'static str| engine.range_query(&data, query, 0, 735_000, 15_000);
    assert!(range("m").await.is_ok());
    assert!(matches!(
        range("m + m").await,
        Err(QueryError::TooManySamples(_))
    ));
    // 500 steps of a scalar, twice: 1000 values held.
    let engine = Engine::new(EngineOptions {
        max_samples: 700,
        ..EngineOptions::default()
    });
    let steps = |query: &'static str| engine.range_query(&data, query, 0, 499_000, 1_000);
    assert!(steps("time()").await.is_ok());
    assert!(matches!(
        steps("time() + time()").await,
        Err(QueryError::TooManySamples(_))
    ));
    // 10^8 steps of a scalar are refused before one is allocated.
    let engine = Engine::new(EngineOptions::default());
    assert!(matches!(
        engine
            .range_query(&data, "1", 0, 100_000_000_000, 1_000)
            .await,
        Err(QueryError::TooManySamples(_))
    ));
}

async fn series_found(engine: &Engine, t: i64) -> usize {
    match engine.instant_query(&storage(1, 1), "m", t).await {
        Ok(Value::Vector(v)) => v.len(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn lookback_delta_is_an_option() {
    let default = Engine::default();
    assert_eq!(series_found(&default, 300_000).await, 1, "5m back: found");
    assert_eq!(series_found(&default, 300_001).await, 0, "beyond 5m: gone");
    let short = Engine::new(EngineOptions {
        lookback_delta: Duration::from_secs(60),
        ..EngineOptions::default()
    });
    assert_eq!(series_found(&short, 60_000).await, 1);
    assert_eq!(series_found(&short, 60_001).await, 0);
}

/// A store that never answers.
struct Stuck;

#[async_trait::async_trait]
impl Queryable for Stuck {
    async fn select(
        &self,
        _: &[rthanos_model::Matcher],
        _: &SelectHints,
    ) -> Result<Vec<Series>, StorageError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn timeout_stops_waiting_for_storage() {
    let engine = Engine::new(EngineOptions {
        timeout: Duration::from_millis(200),
        ..EngineOptions::default()
    });
    let started = std::time::Instant::now();
    let err = engine
        .instant_query(&Stuck, "up", 0)
        .await
        .expect_err("timeout");
    assert!(matches!(err, QueryError::Timeout(_)), "{err}");
    assert!(err.to_string().starts_with("query timed out in "));
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A store that takes a while and records how many selects run at once.
#[derive(Default)]
struct Slow {
    running: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Queryable for Slow {
    async fn select(
        &self,
        _: &[rthanos_model::Matcher],
        _: &SelectHints,
    ) -> Result<Vec<Series>, StorageError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        self.running.fetch_sub(1, SeqCst);
        Ok(Vec::new())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_limited() {
    let engine = Engine::new(EngineOptions {
        max_concurrency: 1,
        ..EngineOptions::default()
    });
    let store = std::sync::Arc::new(Slow::default());
    let mut queries = Vec::new();
    for _ in 0..4 {
        let (engine, store) = (engine.clone(), std::sync::Arc::clone(&store));
        queries.push(tokio::spawn(async move {
            engine.instant_query(store.as_ref(), "up", 0).await
        }));
    }
    for q in queries {
        assert!(q.await.expect("task").is_ok());
    }
    assert_eq!(store.most.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_selects_of_one_query_run_together_up_to_the_limit() {
    for (limit, most) in [(1, 1), (3, 3), (10, 6)] {
        let engine = Engine::new(EngineOptions {
            max_concurrent_select: limit,
            ..EngineOptions::default()
        });
        let store = Slow::default();
        engine
            .instant_query(&store, "a + b + c + d + e + f", 0)
            .await
            .expect("query");
        assert_eq!(
            store.most.load(std::sync::atomic::Ordering::SeqCst),
            most,
            "limit {limit}"
        );
    }
}

#[tokio::test]
async fn errors_say_what_kind_they_are() {
    let engine = Engine::default();
    let data = storage(2, 10);
    assert!(matches!(
        engine.instant_query(&data, "sum(", 0).await,
        Err(QueryError::Parse(_))
    ));
    // Two series lose their only difference: Prometheus's duplicate error.
    let mut dup = MemoryStorage::new();
    for name in ["a", "b"] {
        dup.append(
            Labels::from_pairs([("__name__", name)]),
            [Sample { t: 0, v: 1.0 }],
        );
    }
    let err = engine
        .instant_query(&dup, "-{__name__=~\"a|b\"}", 0)
        .await
        .expect_err("duplicate");
    assert!(matches!(err, QueryError::Execution(_)));
    assert_eq!(
        err.to_string(),
        "vector cannot contain metrics with the same labelset"
    );
    // A range vector for a range query: bad data, as Prometheus checks it before evaluating.
    assert!(matches!(
        engine.range_query(&data, "m[5m]", 0, 60_000, 15_000).await,
        Err(QueryError::Parse(_))
    ));
}

#[tokio::test]
async fn many_series_evaluate_in_parallel_to_the_same_answer() {
    // 200 counters rising by 1 every 15s: each rate is 1/15 per second.
    let data = storage(200, 100);
    let engine = Engine::default();
    let Value::Vector(rates) = engine
        .instant_query(&data, "rate(m[1m])", 600_000)
        .await
        .expect("rate")
    else {
        panic!("vector expected")
    };
    assert_eq!(rates.len(), 200);
    assert!(rates.iter().all(|s| (s.v - 1.0 / 15.0).abs() < 1e-12));
    let Value::Matrix(sums) = engine
        .range_query(&data, "sum(rate(m[1m]))", 120_000, 1_200_000, 60_000)
        .await
        .expect("sum")
    else {
        panic!("matrix expected")
    };
    assert_eq!(sums.len(), 1);
    assert_eq!(sums[0].samples.len(), 19);
    assert!(
        sums[0]
            .samples
            .iter()
            .all(|p| (p.v - 200.0 / 15.0).abs() < 1e-9)
    );
}

/// A store that hands over XOR chunks, two of them overlapping.
struct Chunked;

#[async_trait::async_trait]
impl Queryable for Chunked {
    async fn select(
        &self,
        _: &[rthanos_model::Matcher],
        _: &SelectHints,
    ) -> Result<Vec<Series>, StorageError> {
        let points = |from: i64, to: i64| (from..to).map(|k| (k * 15_000, k as f64));
        let chunk = |from, to| rthanos_promql::XorChunk {
            data: rthanos_chunkenc::xor::encode(points(from, to)).expect("encode"),
        };
        let mut series = Series::new(Labels::from_pairs([("__name__", "m")]), Vec::new());
        series.chunks = vec![chunk(0, 50), chunk(40, 100)];
        Ok(vec![series])
    }
}

#[tokio::test]
async fn chunked_series_answer_as_decoded_ones() {
    let engine = Engine::default();
    for query in [
        "m",
        "rate(m[5m])",
        "count_over_time(m[30m])",
        "changes(m[1h])",
    ] {
        let from_chunks = engine
            .range_query(&Chunked, query, 0, 1_485_000, 60_000)
            .await
            .expect("chunks");
        let from_samples = engine
            .range_query(&storage(1, 100), query, 0, 1_485_000, 60_000)
            .await
            .expect("samples");
        let strip = |v: Value| match v {
            Value::Matrix(m) => m
                .into_iter()
                .map(|s| (s.labels.get("__name__").is_some(), s.samples))
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(strip(from_chunks), strip(from_samples), "{query}");
    }
}

/// A store that records the hints it is given.
#[derive(Default)]
struct Recording(std::sync::Mutex<Vec<SelectHints>>);

#[async_trait::async_trait]
impl Queryable for Recording {
    async fn select(
        &self,
        _: &[rthanos_model::Matcher],
        hints: &SelectHints,
    ) -> Result<Vec<Series>, StorageError> {
        if let Ok(mut seen) = self.0.lock() {
            seen.push(hints.clone());
        }
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn stores_get_prometheus_select_hints() {
    let store = Recording::default();
    let engine = Engine::default();
    engine
        .range_query(
            &store,
            "sum by (job) (rate(m[5m])) / ignoring (x) max_over_time(n[1h] offset 1h) + o",
            3_600_000,
            7_200_000,
            60_000,
        )
        .await
        .expect("query");
    let seen = store.0.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3);
    let rate = &seen[0];
    assert_eq!(
        rate.func.map(rthanos_promql::SelectFunc::name),
        Some("rate")
    );
    assert_eq!(
        (rate.grouping.clone(), rate.by),
        (vec!["job".to_string()], true)
    );
    assert_eq!(
        (rate.start, rate.end, rate.range, rate.step),
        (3_300_000, 7_200_000, 300_000, 60_000)
    );
    let max = &seen[1];
    assert_eq!(
        max.func.map(rthanos_promql::SelectFunc::name),
        Some("max_over_time")
    );
    assert_eq!((max.start, max.end), (-3_600_000, 3_600_000));
    // Under a binary operation and no function: no hint, lookback before the start.
    let plain = &seen[2];
    assert_eq!(plain.func, None);
    assert_eq!(plain.start, 3_600_000 - 300_000);
}

#[tokio::test]
async fn or_with_equal_labels_is_one_series_over_the_steps() {
    let mut data = MemoryStorage::new();
    data.append(
        Labels::from_pairs([("__name__", "c")]),
        (0..5).map(|k| Sample {
            t: k * 60_000,
            v: k as f64,
        }),
    );
    // `c` answers until 9m (lookback), `c offset 5m` from then on: one series, not two.
    let Value::Matrix(m) = Engine::default()
        .range_query(&data, "c or c offset 5m", 480_000, 600_000, 60_000)
        .await
        .expect("query")
    else {
        panic!("matrix expected")
    };
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].samples.len(), 3);
}

#[tokio::test]
async fn range_function_series_must_differ_whatever_their_steps() {
    // `ra` lives in the first minutes, `rb` half an hour later: never at the same step, but
    // equal once the name is dropped. Prometheus refuses the matrix.
    let mut data = MemoryStorage::new();
    for (name, from) in [("ra", 0), ("rb", 30)] {
        data.append(
            Labels::from_pairs([("__name__", name), ("x", "1")]),
            (from..from + 3).map(|m| Sample {
                t: m * 60_000,
                v: 1.0,
            }),
        );
    }
    let err = Engine::default()
        .range_query(
            &data,
            "count_over_time({__name__=~\"ra|rb\"}[1m])",
            0,
            2_400_000,
            60_000,
        )
        .await
        .expect_err("same labelset");
    assert_eq!(
        err.to_string(),
        "vector cannot contain metrics with the same labelset"
    );
}

/// Evaluation runs off the async worker threads: on a runtime with one thread, a task that
/// only waits a moment (as a probe's handler does) finishes while a heavy query is still
/// being evaluated, not after it.
#[test]
fn evaluation_leaves_the_async_threads_free() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let data = storage(2_000, 1_000);
    let engine = Engine::new(EngineOptions::default());
    runtime.block_on(async {
        let probe = tokio::spawn(async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            std::time::Instant::now()
        });
        let value = engine
            .range_query(
                &data,
                "sum by (i) (rate(m[5m])) / on (i) count by (i) (m)",
                0,
                15_000_000,
                15_000,
            )
            .await
            .expect("query");
        let evaluated = std::time::Instant::now();
        assert!(matches!(value, Value::Matrix(ref m) if m.len() == 2_000));
        let answered = probe.await.expect("probe");
        assert!(
            answered < evaluated,
            "the probe waited for the query's evaluation"
        );
    });
}

/// Every kind of nesting, `depth` levels deep.
fn nested_queries(depth: usize) -> Vec<(&'static str, String)> {
    let wrap = |open: &str, inner: &str, close: &str| {
        format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
    };
    vec![
        ("parentheses", wrap("(", "m", ")")),
        ("unary minus", format!("{}m", "-".repeat(depth))),
        ("binary chain", format!("m{}", " + m".repeat(depth))),
        (
            "right-associative power",
            format!("m{}", " ^ 1".repeat(depth)),
        ),
        ("function calls", wrap("abs(", "m", ")")),
        ("aggregations", wrap("sum(", "m", ")")),
        ("subqueries", String::new()),
    ]
}

/// Queries nested thousands deep (Prometheus answers them) evaluate, on threads with small
/// stacks: parsing, walking, evaluating and dropping them never overflow a stack. (Deeper is
/// slow in a debug build: the parser copies an aggregation's argument, and looks through
/// unary and binary operands for their type, once per level.)
#[test]
fn deep_nesting_of_every_kind_evaluates() {
    let depth = 3_000;
    // A thread with a small stack, as the runtime's workers have.
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_stack_size(256 << 10)
                .build()
                .expect("runtime");
            let engine = Engine::default();
            let data = storage(2, 40);
            for (kind, query) in nested_queries(depth) {
                // Subqueries nest 100 deep only: each level multiplies the steps.
                let query = if kind == "subqueries" {
                    format!(
                        "{}m{}",
                        "max_over_time(".repeat(100),
                        "[1m:1m])".repeat(100)
                    )
                } else {
                    query
                };
                let instant = runtime.block_on(engine.instant_query(&data, &query, 300_000));
                assert!(instant.is_ok(), "{kind}: {instant:?}");
                let range = runtime.block_on(engine.range_query(&data, &query, 0, 300_000, 60_000));
                assert!(range.is_ok(), "{kind}: {range:?}");
                // Broken at the end: the whole nest is built, then refused and dropped.
                let broken =
                    runtime.block_on(engine.instant_query(&data, &format!("{query} )"), 0));
                assert!(
                    matches!(broken, Err(QueryError::Parse(_))),
                    "{kind}: {broken:?}"
                );
            }
        })
        .expect("thread")
        .join()
        .expect("no overflow, no panic");
}

/// Past [`rthanos_promql::MAX_DEPTH`] levels a query is refused before it is parsed.
#[tokio::test]
async fn nesting_past_the_limit_is_a_parse_error() {
    let depth = rthanos_promql::MAX_DEPTH + 1;
    let query = format!("{}1{}", "(".repeat(depth), ")".repeat(depth));
    let err = Engine::default()
        .instant_query(&MemoryStorage::new(), &query, 0)
        .await
        .expect_err("too deep");
    assert!(matches!(err, QueryError::Parse(_)), "{err}");
}

/// Aggregations answer the same whether they accumulate per group and step (few groups) or
/// step by step (more groups than the input has values): here each group is one series, so
/// `sum by (i)` and `max by (i)` are the series themselves.
#[tokio::test]
async fn aggregations_with_many_groups_walk_step_by_step_to_the_same_answer() {
    let engine = Engine::default();
    let data = storage(10, 100);
    // 201 steps, each series present at about 120 of them: 10 groups × 201 steps is more.
    let range = |query: &'static str| engine.range_query(&data, query, 0, 3_000_000, 15_000);
    let points = |v: Value| -> Vec<(String, Vec<(i64, f64)>)> {
        let Value::Matrix(m) = v else {
            panic!("matrix expected")
        };
        m.into_iter()
            .map(|s| {
                let i = s.labels.get("i").unwrap_or_default().to_string();
                (i, s.samples.iter().map(|p| (p.t, p.v)).collect())
            })
            .collect()
    };
    let series = points(range("m").await.expect("m"));
    assert_eq!(series.len(), 10);
    for query in ["sum by (i) (m)", "max by (i) (m)", "avg by (i) (m)"] {
        assert_eq!(points(range(query).await.expect(query)), series, "{query}");
    }
    // Few groups: one accumulator per step.
    let Value::Matrix(total) = range("count(m)").await.expect("count") else {
        panic!("matrix expected")
    };
    let want: usize = series.iter().map(|(_, p)| p.len()).sum();
    assert_eq!(
        total[0].samples.iter().map(|p| p.v).sum::<f64>() as usize,
        want
    );
}
