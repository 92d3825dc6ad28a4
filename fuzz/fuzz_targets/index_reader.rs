//! Arbitrary bytes as an index (and as tombstones): every read is an error or an answer, never
//! a panic, a hang or an allocation sized by an unchecked length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rthanos_model::{MatchType, Matcher};
use rthanos_tsdb::index::IndexReader;
use rthanos_tsdb::tombstones::Tombstones;

fuzz_target!(|data: &[u8]| {
    let _ = Tombstones::parse(data);
    let Ok(index) = IndexReader::new(data) else {
        return;
    };
    let names: Vec<String> = index.label_names().map(str::to_string).collect();
    for name in names.iter().take(16) {
        let values: Vec<String> = index.label_values(name).map(str::to_string).collect();
        for value in values.iter().take(16) {
            if let Ok(ids) = index.postings(name, value) {
                for id in ids.into_iter().take(64) {
                    let _ = index.series(id);
                }
            }
        }
        if let Ok(m) = Matcher::new(MatchType::NotRegex, name.as_str(), "a.*") {
            let _ = index.select(&[m]);
        }
    }
    if let Ok(all) = index.all_postings() {
        for id in all.into_iter().take(64) {
            let _ = index.series(id);
        }
    }
});
