//! Arbitrary bytes as an index-header, and as an index a store gateway builds its header from
//! (TOC, ranged reads, header written and mapped): every step is an error or an answer, never
//! a panic, a hang or an allocation sized by an unchecked length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rthanos_tsdb::index::{TOC_LEN, Toc};
use rthanos_tsdb::index_header::{IndexHeader, ranges_to_fetch, toc_range, write};

fn exercise(header: &IndexHeader) {
    for reference in [0, 1, 31, 32, 1000, u32::MAX] {
        let _ = header.symbol(reference);
    }
    let names: Vec<String> = header.label_names().take(16).map(str::to_string).collect();
    for name in &names {
        let values: Vec<String> = header
            .label_values(name)
            .take(16)
            .map(str::to_string)
            .collect();
        for value in &values {
            let _ = header.postings_range(name, value);
        }
        let _ = header.postings_range(name, "");
    }
    let _ = header.postings_end();
}

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = IndexHeader::from_bytes(data.to_vec()) {
        exercise(&header);
    }
    let size = data.len() as u64;
    if data.len() < TOC_LEN {
        return;
    }
    let Some(tail) = usize::try_from(toc_range(size).start)
        .ok()
        .and_then(|at| data.get(at..))
    else {
        return;
    };
    let Ok(toc) = Toc::parse(tail) else {
        return;
    };
    let Ok([symbols, postings]) = ranges_to_fetch(&toc, size) else {
        return;
    };
    let slice = |r: std::ops::Range<u64>| {
        data.get(usize::try_from(r.start).ok()?..usize::try_from(r.end).ok()?)
    };
    let (Some(symbols), Some(postings)) = (slice(symbols), slice(postings)) else {
        return;
    };
    let dir =
        std::env::temp_dir().join(format!("rthanos-fuzz-index-header-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("index-header");
    if write(&path, &toc, symbols, postings).is_ok()
        && let Ok(header) = IndexHeader::open(&path)
    {
        exercise(&header);
    }
});
