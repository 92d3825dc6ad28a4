//! Merging blocks written by the block writer: series of every source in label order,
//! chunks passed through when they neither overlap nor meet a tombstone, overlapping samples
//! merged one per timestamp, deleted ranges gone; the result passes the block check and has
//! its sources' lineage.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rthanos_chunkenc::{Encoding, xor};
use rthanos_compact::merge::merge_blocks;
use rthanos_model::Labels;
use rthanos_tsdb::meta::ThanosMeta;
use rthanos_tsdb::tombstones::Tombstones;
use rthanos_tsdb::writer::{BlockWriter, ChunkToWrite};
use rthanos_tsdb::{Block, BlockMeta};

type Samples = BTreeMap<Labels, Vec<(i64, f64)>>;

/// A block of `series` (labels → samples), chunks of 120 samples.
fn write(dir: &Path, series: &Samples) -> BlockMeta {
    let mut symbols = BTreeSet::new();
    for labels in series.keys() {
        for l in labels {
            symbols.insert(l.name.clone());
            symbols.insert(l.value.clone());
        }
    }
    let mut writer = BlockWriter::create(dir, &symbols).expect("writer");
    for (labels, samples) in series {
        let encoded: Vec<(i64, i64, Vec<u8>, u64)> = samples
            .chunks(120)
            .map(|run| {
                (
                    run[0].0,
                    run[run.len() - 1].0,
                    xor::encode(run.iter().copied()).expect("encode"),
                    run.len() as u64,
                )
            })
            .collect();
        let chunks: Vec<ChunkToWrite<'_>> = encoded
            .iter()
            .map(|(min, max, data, n)| ChunkToWrite {
                min_time: *min,
                max_time: *max,
                encoding: Encoding::Xor,
                data,
                samples: *n,
            })
            .collect();
        writer.add_series(labels, &chunks).expect("series");
    }
    writer.finish(Some(ThanosMeta::default())).expect("finish")
}

fn read(block: &Block) -> Samples {
    let mut out = Samples::new();
    for id in block.index().all_postings().expect("postings") {
        let series = block.index().series(id).expect("series");
        let mut samples = Vec::new();
        for meta in &series.chunks {
            let chunk = block.chunks().chunk(meta.reference).expect("chunk");
            for s in chunk.xor_samples().expect("xor") {
                samples.push(s.expect("sample"));
            }
        }
        out.insert(series.labels, samples);
    }
    out
}

fn labels(job: &str) -> Labels {
    Labels::from_pairs([("__name__", "up"), ("job", job)])
}

fn samples(from: i64, to: i64, step: i64, value: f64) -> Vec<(i64, f64)> {
    (from..to)
        .step_by(step as usize)
        .map(|t| (t, value + t as f64))
        .collect()
}

#[test]
fn consecutive_blocks_merge_with_chunks_passed_through() {
    let dir = tempfile::tempdir().expect("tmp");
    let first: Samples = [
        (labels("a"), samples(0, 7_200_000, 15_000, 0.0)),
        (labels("b"), samples(0, 7_200_000, 15_000, 1.0)),
    ]
    .into();
    let second: Samples = [
        (labels("b"), samples(7_200_000, 14_400_000, 15_000, 1.0)),
        (labels("c"), samples(7_200_000, 14_400_000, 15_000, 2.0)),
    ]
    .into();
    let m1 = write(dir.path(), &first);
    let m2 = write(dir.path(), &second);
    let sources: Vec<Block> = [&m1, &m2]
        .iter()
        .map(|m| Block::open(&dir.path().join(&m.ulid)).expect("open"))
        .collect();
    let out = tempfile::tempdir().expect("out");
    let thanos = ThanosMeta {
        source: "compactor".into(),
        ..Default::default()
    };
    let meta = merge_blocks(&sources, out.path(), thanos)
        .expect("merge")
        .expect("a block");
    assert_eq!(meta.compaction.level, 2);
    assert_eq!(meta.compaction.sources, {
        let mut s = vec![m1.ulid.clone(), m2.ulid.clone()];
        s.sort();
        s
    });
    assert_eq!(meta.compaction.parents.len(), 2);
    assert_eq!((meta.min_time, meta.max_time), (m1.min_time, m2.max_time));
    let dir_out = out.path().join(&meta.ulid);
    let report = rthanos_tsdb::check::check_block(&dir_out).expect("check");
    assert!(report.issues.is_empty(), "{:?}", report.issues);
    let merged = read(&Block::open(&dir_out).expect("open"));
    let mut expected = first;
    for (l, s) in &second {
        expected
            .entry(l.clone())
            .or_default()
            .extend(s.iter().copied());
    }
    assert_eq!(merged, expected);
    assert_eq!(
        meta.stats.num_chunks,
        m1.stats.num_chunks + m2.stats.num_chunks,
        "chunks passed through, not re-cut"
    );
}

#[test]
fn overlapping_blocks_merge_one_sample_per_timestamp_and_tombstones_apply() {
    let dir = tempfile::tempdir().expect("tmp");
    // Two replicas: a scrapes every 15s from 0, b every 15s from 7.5s, over the same 2h;
    // b also has the 0s-aligned samples of its first 10 minutes (same timestamps as a).
    let a: Samples = [(labels("a"), samples(0, 7_200_000, 15_000, 0.0))].into();
    let mut b_samples = samples(0, 600_000, 15_000, 1_000.0);
    b_samples.extend(samples(7_500, 7_200_000, 15_000, 0.0));
    b_samples.sort_by_key(|s| s.0);
    let b: Samples = [(labels("a"), b_samples.clone())].into();
    let ma = write(dir.path(), &a);
    let mb = write(dir.path(), &b);
    // Delete 1h..1h30 of the series in block b (its only series has ID from its postings).
    let block_b = Block::open(&dir.path().join(&mb.ulid)).expect("open");
    let id = block_b.index().all_postings().expect("postings")[0];
    drop(block_b);
    std::fs::write(
        dir.path().join(&mb.ulid).join("tombstones"),
        Tombstones::encode(&[(id, 3_600_000, 5_400_000)]),
    )
    .expect("tombstones");
    let sources: Vec<Block> = [&ma, &mb]
        .iter()
        .map(|m| Block::open(&dir.path().join(&m.ulid)).expect("open"))
        .collect();
    let out = tempfile::tempdir().expect("out");
    let meta = merge_blocks(&sources, out.path(), ThanosMeta::default())
        .expect("merge")
        .expect("a block");
    let dir_out = out.path().join(&meta.ulid);
    let report = rthanos_tsdb::check::check_block(&dir_out).expect("check");
    assert!(report.issues.is_empty(), "{:?}", report.issues);
    let merged = read(&Block::open(&dir_out).expect("open"));
    let mut expected: BTreeMap<i64, f64> = a[&labels("a")].iter().copied().collect();
    for &(t, v) in &b_samples {
        if !(3_600_000..=5_400_000).contains(&t) {
            // The first source (a) wins on equal timestamps.
            expected.entry(t).or_insert(v);
        }
    }
    let expected: Vec<(i64, f64)> = expected.into_iter().collect();
    assert_eq!(merged[&labels("a")], expected);
    assert!(
        merged[&labels("a")]
            .iter()
            .all(|&(t, v)| t % 15_000 != 0 || v == t as f64),
        "a's values kept where both had a sample"
    );
}

#[test]
fn a_block_with_everything_deleted_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let a: Samples = [(labels("a"), samples(0, 600_000, 15_000, 0.0))].into();
    let ma = write(dir.path(), &a);
    std::fs::write(
        dir.path().join(&ma.ulid).join("tombstones"),
        Tombstones::encode(&[(
            Block::open(&dir.path().join(&ma.ulid))
                .expect("open")
                .index()
                .all_postings()
                .expect("postings")[0],
            i64::MIN,
            i64::MAX,
        )]),
    )
    .expect("tombstones");
    let sources = vec![Block::open(&dir.path().join(&ma.ulid)).expect("open")];
    let out = tempfile::tempdir().expect("out");
    assert!(
        merge_blocks(&sources, out.path(), ThanosMeta::default())
            .expect("merge")
            .is_none()
    );
    assert_eq!(std::fs::read_dir(out.path()).expect("dir").count(), 0);
}
