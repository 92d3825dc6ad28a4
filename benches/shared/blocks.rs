//! Blocks of 10k counters (100 metrics × 100 instances, scraped every 30s, chunks of 120
//! samples) written with rthanos's block writer, for the sidecar and store benchmarks.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;

use rthanos_chunkenc::{Encoding, xor};
use rthanos_model::Labels;
use rthanos_tsdb::meta::ThanosMeta;
use rthanos_tsdb::writer::{BlockWriter, ChunkToWrite};

pub const METRICS: usize = 100;
pub const INSTANCES: usize = 100;
pub const BLOCK_MS: i64 = 2 * 3600 * 1000;
pub const SCRAPE_MS: i64 = 30_000;
/// 2023-11-15T00:00:00Z, on a 2h boundary.
pub const START: i64 = 1_700_006_400_000;

/// `blocks` consecutive 2h blocks of 10k counters from [`START`], each with `thanos` as its
/// meta.json section when given; returns the number of samples.
pub fn write_blocks(dir: &std::path::Path, blocks: i64, thanos: Option<&ThanosMeta>) -> u64 {
    let names: Vec<String> = (0..METRICS).map(|i| format!("metric_{i:03}")).collect();
    let instances: Vec<String> = (0..INSTANCES).map(|i| format!("host-{i:03}")).collect();
    let mut symbols: BTreeSet<String> = ["__name__", "instance", "job", "node"]
        .into_iter()
        .map(str::to_string)
        .collect();
    symbols.extend(names.iter().cloned());
    symbols.extend(instances.iter().cloned());
    let mut samples = 0;
    let mut state = 1u64;
    for block in 0..blocks {
        let mut writer = BlockWriter::create(dir, &symbols).expect("writer");
        let block_start = START + block * BLOCK_MS;
        for name in &names {
            for instance in &instances {
                let labels = Labels::from_pairs([
                    ("__name__", name.as_str()),
                    ("instance", instance.as_str()),
                    ("job", "node"),
                ]);
                let mut chunks = Vec::new();
                let mut value = 1e6;
                for c in 0..2 {
                    let points: Vec<(i64, f64)> = (0..120)
                        .map(|i| {
                            state = state
                                .wrapping_mul(6_364_136_223_846_793_005)
                                .wrapping_add(1);
                            value += ((state >> 33) % 50) as f64;
                            let jitter = ((state >> 20) % 5) as i64;
                            (block_start + (c * 120 + i) * SCRAPE_MS + jitter, value)
                        })
                        .collect();
                    chunks.push((
                        points[0].0,
                        points[119].0,
                        xor::encode(points.iter().copied()).expect("encode"),
                    ));
                }
                let to_write: Vec<ChunkToWrite<'_>> = chunks
                    .iter()
                    .map(|(min, max, data)| ChunkToWrite {
                        min_time: *min,
                        max_time: *max,
                        encoding: Encoding::Xor,
                        data,
                        samples: 120,
                    })
                    .collect();
                samples += 240;
                writer.add_series(&labels, &to_write).expect("series");
            }
        }
        writer.finish(thanos.cloned()).expect("finish");
    }
    samples
}
