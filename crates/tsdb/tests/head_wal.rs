//! The write path against Prometheus 2.42: a database written here (head, WAL with
//! checkpoints, blocks cut from the head) is opened by `promtool tsdb dump` and by a real
//! Prometheus, which see every sample; reopened here, it replays to the same samples; a
//! writer killed with SIGKILL loses no committed sample; a torn WAL is repaired.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use rthanos_model::Labels;
use rthanos_tsdb::db::{Db, DbOptions};
use rthanos_tsdb::dump::{DumpOptions, dump, format_go_g};
use rthanos_tsdb::head::AppendError;

const HOUR: i64 = 3_600_000;
/// A start aligned to 2h (the data's place in time is fixed: no clock is consulted).
const BASE: i64 = 1_700_006_400_000;
const SCRAPE: i64 = 15_000;

fn series_labels(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", "rule_recorded".to_string()),
        ("instance", format!("host-{i}")),
        ("job", "ruler".to_string()),
    ])
}

fn value(i: usize, t: i64) -> f64 {
    // Counters, gauges with fractions, and a staleness marker now and then.
    if i % 7 == 3 && (t / SCRAPE) % 97 == 0 {
        f64::from_bits(rthanos_chunkenc::STALE_NAN_BITS)
    } else if i % 2 == 0 {
        ((t - BASE) / SCRAPE) as f64
    } else {
        (t % 1_000_003) as f64 / 7.0
    }
}

fn line(out: &mut BTreeSet<String>, labels: &Labels, t: i64, v: f64) {
    let mut s = labels.to_string();
    s.push(' ');
    format_go_g(&mut s, v);
    s.push(' ');
    s.push_str(&t.to_string());
    out.insert(s);
}

/// Every sample of the database, blocks and head, as promtool dump lines.
fn our_lines(db: &Db) -> BTreeSet<String> {
    let mut text = Vec::new();
    dump(db.dir(), &DumpOptions::default(), &mut text).expect("dump blocks");
    let mut out: BTreeSet<String> = String::from_utf8(text)
        .expect("utf8")
        .lines()
        .map(str::to_string)
        .collect();
    for (labels, chunks) in db.head().series_in(i64::MIN, i64::MAX) {
        for chunk in chunks {
            let mut it = rthanos_chunkenc::XorIterator::new(&chunk.data).expect("chunk");
            while let Some((t, v)) = it.next_sample().expect("sample") {
                line(&mut out, &labels, t, v);
            }
        }
    }
    out
}

fn promtool_lines(dir: &Path) -> BTreeSet<String> {
    let copy = tempfile::tempdir().expect("tmp");
    rthanos_testkit::copy_dir(dir, copy.path());
    rthanos_testkit::promtool_dump(copy.path())
        .lines()
        .map(str::to_string)
        .collect()
}

fn small_wal() -> DbOptions {
    DbOptions {
        // Small segments, so that a few hours make many and checkpoints happen.
        wal_segment_size: 2 * rthanos_tsdb::wal::PAGE_SIZE,
        ..DbOptions::default()
    }
}

/// Writes `series` series every 15s over `[from, to)`, one commit a scrape, compacting every
/// half hour of data; returns the expected dump lines.
fn write(db: &Db, series: usize, from: i64, to: i64, expected: &mut BTreeSet<String>) {
    let mut t = from;
    while t < to {
        let mut app = db.appender();
        for i in 0..series {
            let v = value(i, t);
            app.append(&series_labels(i), t, v).expect("append");
            line(expected, &series_labels(i), t, v);
        }
        app.commit().expect("commit");
        if (t - from) % (HOUR / 2) == 0 {
            db.compact().expect("compact");
        }
        t += SCRAPE;
    }
}

#[test]
fn a_database_written_here_is_read_alike_by_promtool_prometheus_and_a_replay() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let mut expected = BTreeSet::new();
    let (db, _) = Db::open(&dir, small_wal()).expect("open");
    write(&db, 40, BASE, BASE + 8 * HOUR, &mut expected);

    // Blocks of the first three 2h ranges, level 1, their own source; the head holds the rest.
    let blocks = db.blocks();
    let ranges: Vec<(i64, i64)> = blocks.iter().map(|b| (b.min_time, b.max_time)).collect();
    assert_eq!(
        ranges,
        vec![
            (BASE, BASE + 2 * HOUR),
            (BASE + 2 * HOUR, BASE + 4 * HOUR),
            (BASE + 4 * HOUR, BASE + 6 * HOUR)
        ]
    );
    for b in &blocks {
        assert_eq!(b.compaction.level, 1);
        assert_eq!(b.compaction.sources, vec![b.ulid.clone()]);
        assert_eq!(b.stats.num_series, 40);
        assert_eq!(b.stats.num_samples, 40 * 480);
        // 120 samples a chunk, as Prometheus cuts them.
        assert_eq!(b.stats.num_chunks, 40 * 4);
    }
    assert_eq!(db.head().min_time(), BASE + 6 * HOUR);
    // Each block passes promtool's analysis (it reads the index and every chunk).
    for b in &blocks {
        let out = Command::new(rthanos_testkit::promtool())
            .args(["tsdb", "analyze"])
            .arg(&dir)
            .arg(&b.ulid)
            .output()
            .expect("promtool tsdb analyze");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("Series: 40\n"), "{text}");
    }
    // The WAL was checkpointed and its old segments deleted.
    let wal = dir.join("wal");
    let checkpoints = rthanos_tsdb::wal::checkpoint::checkpoints(&wal).expect("checkpoints");
    assert_eq!(checkpoints.len(), 1, "older checkpoints are deleted");
    let segments = rthanos_tsdb::wal::segments(&wal).expect("segments");
    assert!(
        segments[0] > checkpoints[0].0,
        "{segments:?} {checkpoints:?}"
    );

    assert_eq!(our_lines(&db), expected, "what was written");
    // One series selected over blocks and head: every sample, in time order.
    let selected = db
        .select(
            &[rthanos_model::Matcher::equal("instance", "host-3")],
            BASE + HOUR,
            BASE + 7 * HOUR,
        )
        .expect("select");
    assert_eq!(selected.len(), 1);
    assert_eq!(selected[0].0, series_labels(3));
    let mut samples = Vec::new();
    for c in &selected[0].1 {
        let chunk = rthanos_chunkenc::Chunk::new(c.encoding, &c.data);
        for s in chunk.xor_samples().expect("xor") {
            samples.push(s.expect("sample"));
        }
    }
    assert!(samples.windows(2).all(|w| w[0].0 < w[1].0), "in time order");
    assert!(samples[0].0 <= BASE + HOUR && samples.last().expect("some").0 >= BASE + 7 * HOUR);
    // Whole 30-minute chunks: from 1h to the end of the one starting at 7h.
    assert_eq!(
        samples.len(),
        13 * 120,
        "chunks overlapping the range, whole"
    );
    // promtool reads blocks and replays the WAL (checkpoint, then segments) into its head.
    assert_eq!(promtool_lines(&dir), expected, "promtool tsdb dump");

    // Replayed here: the same samples, and appends go on where they stopped.
    drop(db);
    let (db, replayed) = Db::open(&dir, small_wal()).expect("reopen");
    assert!(replayed.repaired.is_none());
    assert_eq!(replayed.samples, 40 * 480, "the head's 2h");
    assert_eq!(our_lines(&db), expected, "after replay");
    let mut app = db.appender();
    assert_eq!(
        app.append(&series_labels(0), BASE + 6 * HOUR - 1, 1.0),
        Err(AppendError::OutOfBounds),
        "before the newest block's end"
    );
    assert_eq!(
        app.append(&series_labels(0), BASE + 8 * HOUR - 2 * SCRAPE, 1.0),
        Err(AppendError::OutOfOrder)
    );
    drop(app);
    write(&db, 40, BASE + 8 * HOUR, BASE + 10 * HOUR, &mut expected);
    assert_eq!(db.blocks().len(), 4);
    assert_eq!(our_lines(&db), expected);
    db.close().expect("close");

    // A real Prometheus on a copy: every series, every sample.
    let copy = tempfile::tempdir().expect("tmp");
    rthanos_testkit::copy_dir(&dir, copy.path());
    let prometheus = rthanos_testkit::Prometheus::start(copy.path(), "global: {}\n");
    let at = (BASE + 10 * HOUR - SCRAPE) as f64 / 1000.0;
    let query = |q: &str| {
        rthanos_testkit::promtool_query(&prometheus.url(), &["instant", &format!("--time={at}"), q])
    };
    let series = query("count(count_over_time(rule_recorded[11h]))");
    assert!(series.contains("=> 40 @"), "{series}");
    // Staleness markers are samples on disk, but no range selection returns them.
    let present = expected.iter().filter(|l| !l.contains(" NaN ")).count();
    let samples = query("sum(count_over_time(rule_recorded[11h]))");
    assert!(
        samples.contains(&format!("=> {present} @")),
        "{samples} (want {present})"
    );
}

#[test]
fn a_torn_wal_tail_is_cut_and_the_samples_before_it_replayed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let mut expected = BTreeSet::new();
    let (db, _) = Db::open(&dir, DbOptions::default()).expect("open");
    write(&db, 5, BASE, BASE + HOUR, &mut expected);
    // One more commit, then its record torn as by a crash in the middle of writing it.
    let mut app = db.appender();
    app.append(&series_labels(0), BASE + HOUR, 1.0)
        .expect("append");
    app.commit().expect("commit");
    drop(db);
    let wal = dir.join("wal");
    let last = *rthanos_tsdb::wal::segments(&wal)
        .expect("segments")
        .last()
        .expect("a segment");
    let path = rthanos_tsdb::wal::segment_path(&wal, last);
    let len = std::fs::metadata(&path).expect("stat").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    file.set_len(len - 4).expect("tear");
    drop(file);

    let (db, replayed) = Db::open(&dir, DbOptions::default()).expect("reopen");
    let repaired = replayed.repaired.expect("the torn record is reported");
    assert!(repaired.contains("torn"), "{repaired}");
    assert_eq!(
        our_lines(&db),
        expected,
        "everything before the torn record"
    );
    drop(db);
    let (_, replayed) = Db::open(&dir, DbOptions::default()).expect("reopen again");
    assert!(replayed.repaired.is_none(), "repaired once for all");
}

#[test]
fn retention_deletes_blocks_far_behind_the_newest() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let options = DbOptions {
        retention: Some(4 * HOUR),
        ..small_wal()
    };
    let (db, _) = Db::open(&dir, options).expect("open");
    let mut expected = BTreeSet::new();
    write(&db, 2, BASE, BASE + 12 * HOUR, &mut expected);
    let before: Vec<String> = db.blocks().iter().map(|b| b.ulid.clone()).collect();
    assert_eq!(before.len(), 5);
    let deleted = db.apply_retention().expect("retention");
    // The newest block ends at 10h: blocks ending before 6h go.
    assert_eq!(deleted, before[..2].to_vec());
    for ulid in &deleted {
        assert!(!dir.join(ulid).exists());
    }
    assert_eq!(db.blocks().len(), 3);
}

/// The writer of the kill test: commits a scrape at a time, printing each committed
/// timestamp once its commit has returned.
fn kill_child(dir: &Path) {
    let (db, _) = Db::open(dir, DbOptions::default()).expect("open");
    let start = db.head().max_time().max(BASE - SCRAPE) + SCRAPE;
    let mut t = start;
    loop {
        let mut app = db.appender();
        for i in 0..20 {
            app.append(&series_labels(i), t, value(i, t))
                .expect("append");
        }
        app.commit().expect("commit");
        println!("committed {t}");
        db.compact().expect("compact");
        t += SCRAPE;
    }
}

#[test]
fn a_writer_killed_with_sigkill_loses_no_committed_sample() {
    const CHILD: &str = "RTHANOS_TSDB_KILL_CHILD";
    if let Ok(dir) = std::env::var(CHILD) {
        kill_child(Path::new(&dir));
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let mut committed = Vec::new();
    // Seeded points to kill at, a number of commits into each run.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for run in 0..5 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let after = 50 + (x % 400) as usize;
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "a_writer_killed_with_sigkill_loses_no_committed_sample",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the writer");
        let stdout = child.stdout.take().expect("stdout");
        let mut seen = 0;
        for l in BufReader::new(stdout).lines() {
            let l = l.expect("line");
            if let Some(t) = l.strip_prefix("committed ") {
                committed.push(t.parse::<i64>().expect("timestamp"));
                seen += 1;
                if seen == after {
                    break;
                }
            }
        }
        // SIGKILL: no destructor, no flush.
        child.kill().expect("kill");
        child.wait().expect("wait");
        assert_eq!(seen, after, "run {run}: the writer stopped early");
    }
    let (db, _) = Db::open(&dir, DbOptions::default()).expect("reopen");
    let lines = our_lines(&db);
    let mut present: BTreeSet<(String, i64)> = BTreeSet::new();
    for l in &lines {
        let (series_value, t) = l.rsplit_once(' ').expect("line");
        let (series, _) = series_value.rsplit_once(' ').expect("line");
        present.insert((series.to_string(), t.parse().expect("t")));
    }
    for &t in &committed {
        for i in 0..20 {
            assert!(
                present.contains(&(series_labels(i).to_string(), t)),
                "sample of series {i} at {t} committed and lost"
            );
        }
    }
    // Nothing is doubled either: one sample per series and timestamp is all a set can hold,
    // so count the head and blocks' samples instead.
    let total: u64 = db.blocks().iter().map(|b| b.stats.num_samples).sum::<u64>()
        + db.head()
            .series_in(i64::MIN, i64::MAX)
            .iter()
            .flat_map(|(_, c)| c.iter().map(|c| c.samples as u64))
            .sum::<u64>();
    assert_eq!(total as usize, lines.len(), "no sample stored twice");
}

#[test]
fn a_wal_written_by_prometheus_replays_to_what_promtool_reads() {
    // Prometheus scraping itself four times a second; killed (SIGKILL on drop) mid-stream.
    let data = tempfile::tempdir().expect("tmp");
    let port = rthanos_testkit::free_port();
    let config = format!(
        "global:\n  scrape_interval: 250ms\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    );
    let prometheus = rthanos_testkit::Prometheus::start_with_flags(
        data.path(),
        &config,
        port,
        &["--storage.tsdb.wal-compression"],
    );
    // Until a few scrapes are in its WAL (scraping starts a while after ready).
    let first = rthanos_tsdb::wal::segment_path(&data.path().join("wal"), 0);
    let deadline = rthanos_testkit::time::deadline_after(std::time::Duration::from_secs(60));
    while std::fs::metadata(&first).map_or(0, |m| m.len()) < 40_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus wrote no WAL"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(prometheus);

    let segment = std::fs::read(rthanos_tsdb::wal::segment_path(&data.path().join("wal"), 0))
        .expect("Prometheus's first segment");
    // Walk the fragments of the first page: some are snappy-compressed (asked for:
    // the flag's default differs between builds), so the reader's decompression is tried on Prometheus's bytes.
    let mut pos = 0;
    let mut compressed = 0;
    while pos + 7 <= segment.len().min(rthanos_tsdb::wal::PAGE_SIZE) && segment[pos] != 0 {
        compressed += usize::from(segment[pos] & 0x08 != 0);
        pos += 7 + usize::from(u16::from_be_bytes([segment[pos + 1], segment[pos + 2]]));
    }
    assert!(
        compressed > 0,
        "no compressed record in Prometheus's first page"
    );
    let ours = tempfile::tempdir().expect("tmp");
    rthanos_testkit::copy_dir(data.path(), ours.path());
    let (db, replayed) = Db::open(ours.path(), DbOptions::default()).expect("open");
    // A torn last record is possible (the kill), nothing more.
    let lines = our_lines(&db);
    let want = promtool_lines(data.path());
    assert!(replayed.series > 100, "{replayed:?}");
    assert!(want.len() > 1000, "{} samples", want.len());
    assert_eq!(lines, want);
}
