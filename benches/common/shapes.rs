//! Chunk shapes shared by the XOR benchmarks: 120 samples (Prometheus's target per chunk),
//! 15s scrapes with millisecond jitter; a counter, a gauge and a constant.

/// Samples per chunk.
pub(crate) const SAMPLES: usize = 120;

/// SplitMix64, so the data is the same on every run.
fn rng(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The three shapes, by name.
pub(crate) fn shapes() -> Vec<(&'static str, Vec<(i64, f64)>)> {
    let mut state = 7;
    let mut times = Vec::with_capacity(SAMPLES);
    let mut t = 1_700_000_000_000i64;
    for _ in 0..SAMPLES {
        times.push(t);
        t += 15_000 + (rng(&mut state) % 7) as i64 - 3;
    }
    let mut counter = 1e6;
    let counter: Vec<_> = times
        .iter()
        .map(|&t| {
            counter += (rng(&mut state) % 50) as f64;
            (t, counter)
        })
        .collect();
    let mut gauge = 21.5;
    let gauge: Vec<_> = times
        .iter()
        .map(|&t| {
            gauge += (rng(&mut state) % 1000) as f64 / 1000.0 - 0.5;
            (t, gauge)
        })
        .collect();
    let constant: Vec<_> = times.iter().map(|&t| (t, 1.0)).collect();
    vec![
        ("counter", counter),
        ("gauge", gauge),
        ("constant", constant),
    ]
}
