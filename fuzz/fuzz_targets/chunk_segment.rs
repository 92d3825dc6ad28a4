//! Arbitrary bytes as a chunk segment file (`chunks/000001`): walking it chunk by chunk from
//! the header, and reading a chunk at any offset, is an error or an answer, never a panic, a
//! hang or an allocation sized by an unchecked length; every chunk read decodes to its end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rthanos_tsdb::chunks::{SEGMENT_HEADER_LEN, chunk_len, read_chunk};

fn decode(chunk: &rthanos_chunkenc::Chunk<'_>) {
    if let Ok(samples) = chunk.xor_samples() {
        for _ in samples.take(1024) {}
    }
    let _ = chunk.num_samples();
}

fuzz_target!(|data: &[u8]| {
    // Sequentially, as the compactor reads a segment.
    let mut offset = SEGMENT_HEADER_LEN;
    for _ in 0..64 {
        let Ok(chunk) = read_chunk(data, offset) else {
            break;
        };
        decode(&chunk);
        let Some(len) = data.get(offset..).and_then(chunk_len) else {
            break;
        };
        offset += len;
    }
    // At offsets a series entry may name (references come from an index as untrusted as this).
    for at in [
        0,
        1,
        7,
        data.len() / 2,
        data.len().saturating_sub(5),
        data.len(),
        usize::MAX,
    ] {
        if let Ok(chunk) = read_chunk(data, at) {
            decode(&chunk);
        }
    }
});
