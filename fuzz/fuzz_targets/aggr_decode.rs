//! Arbitrary bytes as a Thanos AggrChunk: every aggregate decodes or errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rthanos_chunkenc::{AggrType, Chunk, Encoding};

fuzz_target!(|data: &[u8]| {
    let chunk = Chunk::new(Encoding::Aggr, data);
    let _ = chunk.num_samples();
    if let Ok(aggr) = chunk.aggregates() {
        for kind in AggrType::ALL {
            if let Some((encoding, bytes)) = aggr.get(kind)
                && let Ok(it) = Chunk::new(encoding, bytes).xor_samples()
            {
                for sample in it {
                    if sample.is_err() {
                        break;
                    }
                }
            }
        }
    }
});
