//! Blocks written here are read by Prometheus's own tools exactly like their source: each
//! promtool-made block is copied series by series through the writer, then `promtool tsdb dump`
//! of the copies equals that of the sources, and `promtool tsdb analyze` opens them.

use std::collections::BTreeSet;
use std::process::Command;

use rthanos_testkit::openmetrics::{Spec, generate};
use rthanos_testkit::{PromtoolBlocks, promtool, promtool_dump};
use rthanos_tsdb::writer::{BlockWriter, ChunkToWrite};
use rthanos_tsdb::{Block, BlockMeta};

fn copy_block(source: &Block, parent: &std::path::Path) -> BlockMeta {
    let index = source.index();
    let mut symbols = BTreeSet::new();
    for name in index.label_names() {
        symbols.insert(name.to_string());
        for value in index.label_values(name) {
            symbols.insert(value.to_string());
        }
    }
    let mut writer = BlockWriter::create(parent, &symbols).expect("create");
    for id in index.all_postings().expect("postings") {
        let series = index.series(id).expect("series");
        let chunks: Vec<_> = series
            .chunks
            .iter()
            .map(|meta| (meta, source.chunks().chunk(meta.reference).expect("chunk")))
            .collect();
        let to_write: Vec<ChunkToWrite<'_>> = chunks
            .iter()
            .map(|(meta, chunk)| ChunkToWrite {
                min_time: meta.min_time,
                max_time: meta.max_time,
                encoding: chunk.encoding,
                data: chunk.data,
                samples: chunk.num_samples().expect("samples") as u64,
            })
            .collect();
        writer
            .add_series(&series.labels, &to_write)
            .expect("add series");
    }
    writer.finish(None).expect("finish")
}

#[test]
fn written_blocks_read_back_identically_in_promtool() {
    let spec = Spec {
        series: 800,
        samples: 400,
        interval: 30,
        ..Spec::default()
    };
    let made = PromtoolBlocks::create(&generate(&spec), "2h");
    let out = tempfile::tempdir().expect("tmp");
    for dir in &made.blocks {
        let source = Block::open(dir).expect("open source");
        let meta = copy_block(&source, out.path());
        assert_eq!(meta.stats.num_series, source.meta().stats.num_series);
        assert_eq!(meta.stats.num_samples, source.meta().stats.num_samples);
        assert_eq!(meta.stats.num_chunks, source.meta().stats.num_chunks);
        assert_eq!(meta.min_time, source.meta().min_time);
        // Our reader reads our block too.
        let copy = Block::open(&out.path().join(&meta.ulid)).expect("open copy");
        assert_eq!(
            copy.index().all_postings().expect("all").len() as u64,
            meta.stats.num_series
        );

        let analyze = Command::new(promtool())
            .args(["tsdb", "analyze"])
            .arg(out.path())
            .arg(&meta.ulid)
            .output()
            .expect("promtool analyze");
        assert!(
            analyze.status.success(),
            "promtool tsdb analyze failed: {}{}",
            String::from_utf8_lossy(&analyze.stdout),
            String::from_utf8_lossy(&analyze.stderr)
        );
        let text = String::from_utf8_lossy(&analyze.stdout);
        assert!(
            text.contains(&format!("Series: {}", meta.stats.num_series)),
            "{text}"
        );
    }
    assert!(
        out.path().read_dir().expect("dir").all(|e| !e
            .expect("e")
            .file_name()
            .to_string_lossy()
            .contains("tmp"))
    );
    let theirs = promtool_dump(&made.data_dir());
    let ours = promtool_dump(out.path());
    assert_eq!(ours.lines().count(), theirs.lines().count());
    assert!(
        ours == theirs,
        "promtool reads the written blocks differently from their sources"
    );
}
