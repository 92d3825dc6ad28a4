//! Generated OpenMetrics text with the shapes real Prometheus data has: counters that reset,
//! gauges with fractional, negative, huge and special values, and classic histograms.
//! Deterministic for a seed, so a failure can be reproduced.

use std::fmt::Write as _;

/// What to generate.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Series per family (counters, gauges; histograms get `series / 10` label sets).
    pub series: usize,
    /// First sample time, Unix seconds.
    pub start: i64,
    /// Samples per series.
    pub samples: usize,
    /// Seconds between samples.
    pub interval: i64,
    /// Seed of the value generator.
    pub seed: u64,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            series: 100,
            // 2023-11-14T22:13:20Z: blocks land on ordinary 2h boundaries.
            start: 1_700_000_000,
            samples: 240,
            interval: 30,
            seed: 42,
        }
    }
}

/// A small deterministic generator (SplitMix64): the same data on every run.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn write_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// The OpenMetrics text, ending with `# EOF`.
pub fn generate(spec: &Spec) -> String {
    let mut rng = Rng(spec.seed);
    let mut out = String::new();
    // Timestamps with a little jitter, as real scrapes have; identical for every series of a
    // family is not required, but each series must be in increasing order.
    let times = |rng: &mut Rng| -> Vec<f64> {
        (0..spec.samples)
            .map(|i| {
                let jitter = rng.below(200) as f64 / 1000.0;
                (spec.start + i as i64 * spec.interval) as f64 + jitter
            })
            .collect()
    };

    out.push_str("# HELP http_requests Requests handled.\n# TYPE http_requests counter\n");
    for s in 0..spec.series {
        let mut total = rng.below(1000) as f64;
        let ts = times(&mut rng);
        for t in ts {
            if rng.below(500) == 0 {
                total = 0.0; // a restart resets the counter
            }
            total += rng.below(20) as f64;
            let _ = write!(
                out,
                "http_requests_total{{code=\"{}\",instance=\"host-{}\",job=\"api\"}} ",
                [200, 404, 500][s % 3],
                s / 3
            );
            write_value(&mut out, total);
            let _ = writeln!(out, " {t:.3}");
        }
    }

    out.push_str("# HELP temperature_celsius A gauge.\n# TYPE temperature_celsius gauge\n");
    for s in 0..spec.series {
        let ts = times(&mut rng);
        let mut v = rng.unit() * 40.0 - 10.0;
        for t in ts {
            v += rng.unit() - 0.5;
            let value = match rng.below(1000) {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => -1e300,
                3 => 0.0,
                _ => (v * 1000.0).round() / 1000.0,
            };
            let _ = write!(
                out,
                "temperature_celsius{{room=\"r{s}\",site=\"{}\"}} ",
                ["a", "b"][s % 2]
            );
            write_value(&mut out, value);
            let _ = writeln!(out, " {t:.3}");
        }
    }

    out.push_str(
        "# HELP request_duration_seconds Latency.\n# TYPE request_duration_seconds histogram\n",
    );
    let buckets = ["0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf"];
    for s in 0..spec.series.div_ceil(10) {
        let ts = times(&mut rng);
        let mut counts = [0u64; 8];
        let mut sum = 0.0;
        for t in ts {
            for _ in 0..rng.below(30) {
                let obs = rng.unit() * rng.unit() * 6.0;
                sum += obs;
                for (i, b) in buckets.iter().enumerate() {
                    let le = if *b == "+Inf" {
                        f64::INFINITY
                    } else {
                        b.parse().unwrap_or(0.0)
                    };
                    if obs <= le {
                        counts[i] += 1;
                    }
                }
            }
            let labels = format!("handler=\"/h{s}\"");
            for (i, b) in buckets.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {} {t:.3}",
                    counts[i]
                );
            }
            let _ = writeln!(out, "request_duration_seconds_sum{{{labels}}} {sum} {t:.3}");
            let _ = writeln!(
                out,
                "request_duration_seconds_count{{{labels}}} {} {t:.3}",
                counts[7]
            );
        }
    }
    out.push_str("# EOF\n");
    out
}
