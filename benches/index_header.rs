//! Index-headers of a high-cardinality block (300 000 series, each with its own `pod` value,
//! as a production block of Kubernetes pods): the heap an opened index-header keeps per label
//! value, and the lookups a store makes with it (one value's postings range, every value of a
//! label).
//!
//! Run: `cargo bench --bench index_header`. The block is cached under
//! `$CARGO_TARGET_DIR/bench-data/index-header-300k`. Figures: docs/performance.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicIsize, Ordering};

use criterion::{Criterion, criterion_group};
use rthanos_chunkenc::{Encoding, xor};
use rthanos_model::Labels;
use rthanos_tsdb::index::Toc;
use rthanos_tsdb::index_header::{self, IndexHeader};
use rthanos_tsdb::writer::{BlockWriter, ChunkToWrite};
use std::hint::black_box;

/// Counts the bytes allocated and not yet freed, to weigh what an opened header keeps.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout as asked.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const SERIES: usize = 300_000;
const NAMESPACES: usize = 100;
const METRICS: usize = 10;

fn pod(i: usize) -> String {
    format!(
        "api-{:08x}-{:05}",
        (i as u64).wrapping_mul(2_654_435_761) as u32,
        i
    )
}

/// The block's index-header, written once.
fn header_path() -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let dir = target.join("bench-data/index-header-300k");
    let header = dir.join("index-header");
    if header.exists() {
        return header;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    eprintln!("writing a block of {SERIES} series…");
    let names: Vec<String> = (0..METRICS).map(|i| format!("metric_{i}")).collect();
    let namespaces: Vec<String> = (0..NAMESPACES).map(|i| format!("ns-{i:03}")).collect();
    let mut symbols: BTreeSet<String> = ["__name__", "namespace", "pod"]
        .into_iter()
        .map(str::to_string)
        .collect();
    symbols.extend(names.iter().cloned());
    symbols.extend(namespaces.iter().cloned());
    symbols.extend((0..SERIES / METRICS).map(pod));
    let data = xor::encode([(1_000, 1.0)]).expect("encode");
    let chunk = [ChunkToWrite {
        min_time: 1_000,
        max_time: 1_000,
        encoding: Encoding::Xor,
        data: &data,
        samples: 1,
    }];
    let mut writer = BlockWriter::create(&dir, &symbols).expect("writer");
    let mut series: Vec<Labels> = (0..SERIES)
        .map(|i| {
            let p = i / METRICS;
            Labels::from_pairs([
                ("__name__", names[i % METRICS].as_str()),
                ("namespace", namespaces[p % NAMESPACES].as_str()),
                ("pod", pod(p).as_str()),
            ])
        })
        .collect();
    series.sort();
    for labels in &series {
        writer.add_series(labels, &chunk).expect("series");
    }
    let meta = writer.finish(None).expect("finish");
    let index = std::fs::read(dir.join(&meta.ulid).join("index")).expect("index");
    let toc = Toc::parse(&index[index_header::toc_range(index.len() as u64).start as usize..])
        .expect("toc");
    let [symbols, postings] =
        index_header::ranges_to_fetch(&toc, index.len() as u64).expect("ranges");
    index_header::write(
        &header,
        &toc,
        &index[symbols.start as usize..symbols.end as usize],
        &index[postings.start as usize..postings.end as usize],
    )
    .expect("write header");
    header
}

fn index_header(c: &mut Criterion) {
    let path = header_path();
    let before = LIVE.load(Ordering::Relaxed);
    let header = IndexHeader::open(&path).expect("open");
    let kept = LIVE.load(Ordering::Relaxed) - before;
    let values = SERIES / METRICS + NAMESPACES + METRICS;
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "index-header: {size} bytes on disk; heap kept when open: {kept} bytes ({:.1} bytes per label value, {values} values)",
        kept as f64 / values as f64
    );
    let pods: Vec<String> = (0..1_000)
        .map(|i| pod(i * 29 % (SERIES / METRICS)))
        .collect();
    let mut group = c.benchmark_group("index_header");
    group.bench_function("open", |b| {
        b.iter(|| IndexHeader::open(black_box(&path)).expect("open"))
    });
    group.bench_function("postings_range of 1000 pods", |b| {
        b.iter(|| {
            pods.iter()
                .filter_map(|p| header.postings_range("pod", p))
                .count()
        })
    });
    let refs: Vec<u32> = (0..10_000u32).map(|i| i * 7 % 30_000).collect();
    group.bench_function("symbol of 10000 references", |b| {
        b.iter(|| {
            refs.iter()
                .map(|&r| header.symbol(r).map_or(0, str::len))
                .sum::<usize>()
        })
    });
    // What a store's Series call looks up: every series' labels, whose names and most of
    // whose values repeat from series to series.
    let series_refs: Vec<u32> = (0..10_000u32)
        .map(|i| match i % 4 {
            0 => 0,
            1 => 1,
            2 => 2 + i % 50,
            _ => 100 + (i * 7) % 30_000 / 4,
        })
        .collect();
    group.bench_function("symbol of 2500 series' labels", |b| {
        b.iter(|| {
            series_refs
                .iter()
                .map(|&r| header.symbol(r).map_or(0, str::len))
                .sum::<usize>()
        })
    });
    group.bench_function("label_values pod (30000)", |b| {
        b.iter(|| {
            header
                .label_values(black_box("pod"))
                .map(str::len)
                .sum::<usize>()
        })
    });
    group.bench_function("label_values namespace (100)", |b| {
        b.iter(|| {
            header
                .label_values(black_box("namespace"))
                .map(str::len)
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, index_header);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
