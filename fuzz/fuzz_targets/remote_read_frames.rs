//! Arbitrary bytes as a streamed remote-read answer (uvarint length, CRC-32C, protobuf
//! `ChunkedReadResponse`), cut into network reads at fuzzer-chosen places: framing is an error
//! or whole frames, never a panic, a hang or an allocation sized by an unchecked length; the
//! XOR chunks of every frame decode to their end.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rthanos_chunkenc::XorIterator;
use rthanos_sidecar::prometheus::FrameBuffer;

fuzz_target!(|data: &[u8]| {
    // The first byte says where reads end; the rest is the stream.
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let piece = usize::from(cut).max(1);
    let mut frames = FrameBuffer::default();
    for part in stream.chunks(piece) {
        frames.push(Bytes::copy_from_slice(part));
        loop {
            match frames.next_frame() {
                Ok(Some(frame)) => {
                    for series in &frame.chunked_series {
                        for chunk in &series.chunks {
                            // Remote read's encoding 1 is XOR; the others pass through as bytes.
                            if chunk.r#type == 1
                                && let Ok(samples) = XorIterator::new(&chunk.data)
                            {
                                for _ in samples.take(1024) {}
                            }
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = frames.is_empty();
});
