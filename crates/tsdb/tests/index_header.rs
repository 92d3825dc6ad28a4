//! Index-headers built from ranged reads of promtool-made indexes answer like the index.

use rthanos_testkit::PromtoolBlocks;
use rthanos_testkit::openmetrics::{Spec, generate};
use rthanos_tsdb::Block;
use rthanos_tsdb::index::{Toc, read_postings};
use rthanos_tsdb::index_header::{self, IndexHeader};

#[test]
fn index_header_from_ranged_reads_answers_like_the_index() {
    let spec = Spec {
        series: 400,
        samples: 20,
        interval: 30,
        ..Spec::default()
    };
    let made = PromtoolBlocks::create(&generate(&spec), "2h");
    let block = Block::open(&made.blocks[0]).expect("open");
    let index_bytes = std::fs::read(made.blocks[0].join("index")).expect("index");
    let size = index_bytes.len() as u64;
    // Only ranged reads of the index, as from a bucket.
    let read = |r: std::ops::Range<u64>| index_bytes[r.start as usize..r.end as usize].to_vec();
    let toc = Toc::parse(&read(index_header::toc_range(size))).expect("toc");
    let [symbols, table] = index_header::ranges_to_fetch(&toc, size).expect("ranges");
    let fetched = symbols.end - symbols.start + table.end - table.start;
    assert!(
        fetched < size / 2,
        "index-header needs a fraction of the index: {fetched} of {size}"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("index-header");
    index_header::write(&path, &toc, &read(symbols), &read(table)).expect("write");

    let header = IndexHeader::open(&path).expect("open header");
    let index = block.index();
    assert_eq!(
        header.label_names().collect::<Vec<_>>(),
        index.label_names().collect::<Vec<_>>()
    );
    for name in index.label_names() {
        assert_eq!(
            header.label_values(name).collect::<Vec<_>>(),
            index.label_values(name).collect::<Vec<_>>()
        );
        for value in index.label_values(name) {
            let range = header.postings_range(name, value).expect("range");
            let bytes = read(range);
            assert_eq!(
                read_postings(&bytes, 0).expect("postings"),
                index.postings(name, value).expect("index postings")
            );
        }
    }
    assert!(header.postings_range("code", "nope").is_none());

    // A corrupt header is an error, never a panic.
    let mut bytes = std::fs::read(&path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let broken = dir.path().join("broken");
    std::fs::write(&broken, &bytes).expect("write");
    assert!(IndexHeader::open(&broken).is_err());
    std::fs::write(&broken, &bytes[..10]).expect("write");
    assert!(IndexHeader::open(&broken).is_err());
}

/// Names with many values (more than the 32 entries kept per sample): every value is found,
/// values around and between them are not, and each list is the series with that value. The
/// label indices section and the series entries, read apart from the postings offset table,
/// are the reference.
#[test]
fn sampled_postings_offsets_find_every_value() {
    use rthanos_chunkenc::{Encoding, xor};
    use rthanos_model::Labels;
    use rthanos_tsdb::writer::{BlockWriter, ChunkToWrite};
    let dir = tempfile::tempdir().expect("tmp");
    // `many` has 1000 values, `some` 33 (one past a sample boundary), `one` a single value.
    let many: Vec<String> = (0..1000).map(|i| format!("v{:04}", i * 3)).collect();
    let some: Vec<String> = (0..33).map(|i| format!("s{i:02}")).collect();
    let mut symbols: std::collections::BTreeSet<String> = ["many", "one", "some", "x"]
        .into_iter()
        .map(str::to_string)
        .collect();
    symbols.extend(many.iter().cloned());
    symbols.extend(some.iter().cloned());
    let data = xor::encode([(1_000, 1.0)]).expect("encode");
    let chunk = [ChunkToWrite {
        min_time: 1_000,
        max_time: 1_000,
        encoding: Encoding::Xor,
        data: &data,
        samples: 1,
    }];
    let mut writer = BlockWriter::create(dir.path(), &symbols).expect("writer");
    let mut series: Vec<Labels> = many
        .iter()
        .enumerate()
        .map(|(i, v)| {
            Labels::from_pairs([
                ("many", v.as_str()),
                ("one", "x"),
                ("some", some[i % some.len()].as_str()),
            ])
        })
        .collect();
    series.sort();
    for labels in &series {
        writer.add_series(labels, &chunk).expect("series");
    }
    let meta = writer.finish(None).expect("finish");
    let block_dir = dir.path().join(&meta.ulid);
    let index_bytes = std::fs::read(block_dir.join("index")).expect("index");
    let size = index_bytes.len() as u64;
    let read = |r: std::ops::Range<u64>| index_bytes[r.start as usize..r.end as usize].to_vec();
    let toc = Toc::parse(&read(index_header::toc_range(size))).expect("toc");
    let [symbols_range, table] = index_header::ranges_to_fetch(&toc, size).expect("ranges");
    let path = dir.path().join("index-header");
    index_header::write(&path, &toc, &read(symbols_range), &read(table)).expect("write");
    let header = IndexHeader::open(&path).expect("open header");
    let block = Block::open(&block_dir).expect("open");
    let index = block.index();

    let label_indices = index.label_indices().expect("label indices");
    assert_eq!(label_indices.len(), 3);
    let all: Vec<u64> = index.all_postings().expect("all");
    for (name, values) in &label_indices {
        assert_eq!(
            header.label_values(name).collect::<Vec<_>>(),
            values.iter().map(String::as_str).collect::<Vec<_>>(),
            "{name}"
        );
        for value in values {
            let expected: Vec<u64> = all
                .iter()
                .copied()
                .filter(|&id| {
                    index
                        .series(id)
                        .expect("series")
                        .labels
                        .get(name)
                        .is_some_and(|v| v == value)
                })
                .collect();
            assert_eq!(index.postings(name, value).expect("postings"), expected);
            let range = header
                .postings_range(name, value)
                .unwrap_or_else(|| panic!("{name}={value} not found"));
            assert_eq!(
                read_postings(&read(range), 0).expect("postings"),
                expected,
                "{name}={value}"
            );
            // Just before and just after the value: absent.
            for absent in [format!("{value}0"), value[..value.len() - 1].to_string()] {
                if !values.contains(&absent) {
                    assert!(header.postings_range(name, &absent).is_none(), "{absent}");
                    assert!(index.postings(name, &absent).expect("none").is_empty());
                }
            }
        }
    }
    for absent in ["", "a", "zzz", "v0001", "v9999", "s"] {
        assert!(header.postings_range("many", absent).is_none(), "{absent}");
    }
    assert!(header.postings_range("nope", "v0000").is_none());
}
