//! Postings selection on a 1M-series index, and block write throughput.
//! Run: `cargo bench --bench tsdb`. Figures: docs/performance.md.

use std::collections::BTreeSet;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rthanos_chunkenc::{Encoding, xor};
use rthanos_model::{Labels, MatchType, Matcher};
use rthanos_tsdb::index::IndexReader;
use rthanos_tsdb::writer::{BlockWriter, ChunkToWrite};

/// 100 metric names × 1000 instances × 10 codes = 1M series, written without chunks (postings
/// selection reads only the index).
fn million_series_index(dir: &std::path::Path) -> std::path::PathBuf {
    let names: Vec<String> = (0..100).map(|i| format!("metric_{i:03}")).collect();
    let instances: Vec<String> = (0..1000).map(|i| format!("host-{i:04}")).collect();
    let codes: Vec<String> = (0..10).map(|i| format!("{}", 200 + i * 33)).collect();
    let mut symbols = BTreeSet::new();
    for s in ["__name__", "code", "instance", "job", "api"] {
        symbols.insert(s.to_string());
    }
    symbols.extend(names.iter().cloned());
    symbols.extend(instances.iter().cloned());
    symbols.extend(codes.iter().cloned());
    let mut sorted_codes = codes.clone();
    sorted_codes.sort();
    let mut writer = BlockWriter::create(dir, &symbols).expect("writer");
    for name in &names {
        for code in &sorted_codes {
            for instance in &instances {
                let labels = Labels::from_pairs([
                    ("__name__", name.as_str()),
                    ("code", code.as_str()),
                    ("instance", instance.as_str()),
                    ("job", "api"),
                ]);
                writer.add_series(&labels, &[]).expect("series");
            }
        }
    }
    let meta = writer.finish(None).expect("finish");
    dir.join(meta.ulid).join("index")
}

fn postings(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tmp");
    let index = IndexReader::open(&million_series_index(dir.path())).expect("open");
    let m = |kind, name: &str, value: &str| Matcher::new(kind, name, value).expect("matcher");
    let cases = [
        ("name=", vec![m(MatchType::Equal, "__name__", "metric_042")]),
        (
            "name=,instance=",
            vec![
                m(MatchType::Equal, "__name__", "metric_042"),
                m(MatchType::Equal, "instance", "host-0123"),
            ],
        ),
        (
            "name=,code!=",
            vec![
                m(MatchType::Equal, "__name__", "metric_042"),
                m(MatchType::NotEqual, "code", "200"),
            ],
        ),
        (
            "instance=~prefix.*",
            vec![m(MatchType::Regex, "instance", "host-01.*")],
        ),
        (
            "name=~a|b|c,job=",
            vec![
                m(
                    MatchType::Regex,
                    "__name__",
                    "metric_001|metric_050|metric_099",
                ),
                m(MatchType::Equal, "job", "api"),
            ],
        ),
        ("job= (all 1M)", vec![m(MatchType::Equal, "job", "api")]),
    ];
    let mut group = c.benchmark_group("postings_1M_series");
    group.sample_size(20);
    for (name, matchers) in cases {
        let selected = index.select(&matchers).expect("select").len();
        group.bench_function(format!("{name} ({selected} series)"), |b| {
            b.iter(|| index.select(black_box(&matchers)).expect("select").len())
        });
    }
    group.finish();
}

fn block_write(c: &mut Criterion) {
    // 10k series × one 120-sample chunk each: a typical 30 min of 15s scrapes.
    let series = 10_000usize;
    let chunk = xor::encode((0..120).map(|i| (1_700_000_000_000 + i * 15_000, i as f64 * 1.5)))
        .expect("chunk");
    let mut symbols = BTreeSet::new();
    symbols.insert("__name__".to_string());
    symbols.insert("up".to_string());
    symbols.insert("instance".to_string());
    let instances: Vec<String> = (0..series).map(|i| format!("host-{i:06}")).collect();
    symbols.extend(instances.iter().cloned());
    let mut group = c.benchmark_group("block_write");
    group.sample_size(10);
    group.throughput(Throughput::Elements((series * 120) as u64));
    group.bench_function("10k_series_x_120_samples", |b| {
        b.iter(|| {
            let dir = tempfile::tempdir().expect("tmp");
            let mut writer = BlockWriter::create(dir.path(), &symbols).expect("writer");
            for instance in &instances {
                let labels =
                    Labels::from_pairs([("__name__", "up"), ("instance", instance.as_str())]);
                let to_write = ChunkToWrite {
                    min_time: 1_700_000_000_000,
                    max_time: 1_700_000_000_000 + 119 * 15_000,
                    encoding: Encoding::Xor,
                    data: &chunk,
                    samples: 120,
                };
                writer.add_series(&labels, &[to_write]).expect("series");
            }
            writer.finish(None).expect("finish")
        })
    });
    group.finish();
}

criterion_group!(benches, postings, block_write);
criterion_main!(benches);
