//! A fixed amount of XOR decoding, for instruction counts that do not vary run to run:
//! `valgrind --tool=callgrind target/release/deps/xor_instructions-* <shape>` then divide the
//! total by 1000 × 120 samples (see docs/performance.md). Not a timing benchmark.

use std::hint::black_box;

use rthanos_chunkenc::{XorIterator, xor};

#[path = "common/shapes.rs"]
mod shapes;

fn main() {
    let wanted = std::env::args().nth(1).unwrap_or_else(|| "counter".into());
    let (_, samples) = shapes::shapes()
        .into_iter()
        .find(|(name, _)| *name == wanted)
        .unwrap_or_else(|| panic!("no shape {wanted}: counter, gauge or constant"));
    let chunk = xor::encode(samples.iter().copied()).expect("encode");
    let (mut ts, mut vs) = (vec![0i64; shapes::SAMPLES], vec![0f64; shapes::SAMPLES]);
    let mut total = 0;
    for _ in 0..1000 {
        let mut it = XorIterator::new(black_box(&chunk)).expect("header");
        total += it.decode_batch(&mut ts, &mut vs).expect("decode");
    }
    assert_eq!(total, 1000 * shapes::SAMPLES);
}
