//! XOR chunk encode and decode, per sample, on chunks shaped like real scrapes: 120 samples
//! (Prometheus's target), 15s interval with millisecond jitter, and three value shapes.
//! Run: `cargo bench --bench chunkenc`. Figures: docs/performance.md.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rthanos_chunkenc::{XorIterator, xor};

#[path = "common/shapes.rs"]
mod shapes;

use shapes::{SAMPLES, shapes};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("xor");
    group.throughput(Throughput::Elements(SAMPLES as u64));
    for (name, samples) in shapes() {
        let chunk = xor::encode(samples.iter().copied()).expect("encode");
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| xor::encode(black_box(&samples).iter().copied()).expect("encode"))
        });
        group.bench_function(format!("decode_batch/{name}"), |b| {
            let (mut ts, mut vs) = (vec![0i64; SAMPLES], vec![0f64; SAMPLES]);
            b.iter(|| {
                let mut it = XorIterator::new(black_box(&chunk)).expect("header");
                it.decode_batch(&mut ts, &mut vs).expect("decode")
            })
        });
        group.bench_function(format!("iterate/{name}"), |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for s in XorIterator::new(black_box(&chunk)).expect("header") {
                    sum += s.expect("sample").1;
                }
                sum
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
