//! Arbitrary bytes as a WAL segment (a torn write, a bad disk, a hostile file): reading it
//! record by record, decompressing snappy records and decoding each record is an error or
//! an answer, never a panic, a hang or an allocation sized by an unchecked length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rthanos_tsdb::wal::{read_segment_bytes, record};

fuzz_target!(|data: &[u8]| {
    let _ = read_segment_bytes(data, |r| record::decode(r).map(|_| ()));
});
