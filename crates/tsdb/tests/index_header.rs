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
