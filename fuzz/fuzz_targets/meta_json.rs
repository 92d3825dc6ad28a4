//! Arbitrary bytes as meta.json: parsed or refused, and a parsed one re-serialises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rthanos_tsdb::BlockMeta;

fuzz_target!(|data: &[u8]| {
    if let Ok(meta) = BlockMeta::parse(data) {
        let json = meta.to_json().expect("a parsed meta.json serialises");
        let again = BlockMeta::parse(&json).expect("and parses back");
        assert_eq!(again.ulid, meta.ulid);
    }
});
