//! Arbitrary bytes as an XOR chunk: an error or samples, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rthanos_chunkenc::XorIterator;

fuzz_target!(|data: &[u8]| {
    if let Ok(it) = XorIterator::new(data) {
        for sample in it.clone() {
            if sample.is_err() {
                break;
            }
        }
        let mut it = it;
        let (mut ts, mut vs) = ([0i64; 64], [0f64; 64]);
        while let Ok(n) = it.decode_batch(&mut ts, &mut vs) {
            if n == 0 {
                break;
            }
        }
    }
});
