//! Throughput of the replica merge (Thanos's penalty algorithm): two replicas of one series,
//! 1M samples each, scraped every 15s with jittered timestamps offset between replicas, each
//! with gaps the other fills. Run: `cargo bench --bench dedup`. Figures: docs/performance.md.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rthanos_promql::Sample;
use rthanos_query::dedup::merge_pair;
use rthanos_testkit::openmetrics::Rng;

/// One replica: a counter every 15s (±100ms jitter) from `offset`, missing every 50,000th
/// stretch of 40 samples from `gap_phase` on.
fn replica(samples: usize, offset: i64, gap_phase: usize, seed: u64) -> Vec<Sample> {
    let mut rng = Rng(seed);
    let mut value = 0.0;
    (0..samples)
        .filter(|i| (i + gap_phase) % 50_000 >= 40)
        .map(|i| {
            value += (rng.next_u64() % 10) as f64;
            let jitter = (rng.next_u64() % 200) as i64 - 100;
            Sample {
                t: offset + i as i64 * 15_000 + jitter,
                v: value,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let n = 1_000_000;
    let a = replica(n, 0, 0, 1);
    let b = replica(n, 5_000, 25_000, 2);
    let mut group = c.benchmark_group("dedup_merge_pair");
    group.throughput(Throughput::Elements((a.len() + b.len()) as u64));
    group.bench_function("gauge_2x1M", |bench| {
        bench.iter(|| merge_pair(&a, &b, false));
    });
    group.bench_function("counter_2x1M", |bench| {
        bench.iter(|| merge_pair(&a, &b, true));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
