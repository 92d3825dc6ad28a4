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

/// Prometheus 2.42 serving a written block answers queries exactly as on its source.
#[test]
fn prometheus_answers_the_same_on_written_blocks() {
    use rthanos_testkit::{Prometheus, copy_dir, promtool_query};
    let spec = Spec {
        series: 200,
        samples: 300,
        interval: 30,
        ..Spec::default()
    };
    let made = PromtoolBlocks::create(&generate(&spec), "2h");
    let written = tempfile::tempdir().expect("tmp");
    for dir in &made.blocks {
        copy_block(&Block::open(dir).expect("open"), written.path());
    }
    let source_copy = tempfile::tempdir().expect("tmp");
    copy_dir(&made.data_dir(), source_copy.path());
    let config = "global:\n  scrape_interval: 1h\n";
    let original = Prometheus::start(source_copy.path(), config);
    let ours = Prometheus::start(written.path(), config);
    let (start, end) = (
        spec.start.to_string(),
        (spec.start + spec.samples as i64 * spec.interval).to_string(),
    );
    for expr in [
        "sum by (code) (rate(http_requests_total[5m]))",
        "histogram_quantile(0.9, sum by (le, handler) (rate(request_duration_seconds_bucket[10m])))",
        "max_over_time(temperature_celsius[15m])",
        "count(up) or vector(0)",
    ] {
        let args = [
            "range", expr, "--start", &start, "--end", &end, "--step", "60s",
        ];
        let want = promtool_query(&original.url(), &args);
        let got = promtool_query(&ours.url(), &args);
        assert!(!want.trim().is_empty(), "{expr}: empty answer");
        assert_eq!(got, want, "{expr}");
    }
}
