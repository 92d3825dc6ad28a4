//! Bit-compatibility with Prometheus, both ways: every XOR chunk in blocks made by Prometheus's
//! own promtool decodes, and re-encoding its samples gives back exactly Prometheus's bytes.

use rthanos_chunkenc::{Chunk, Encoding, xor};
use rthanos_testkit::PromtoolBlocks;
use rthanos_testkit::openmetrics::{Spec, generate};

/// Walks a block chunk segment file: an 8-byte header (magic 0x85BD40DD, version 1, padding),
/// then per chunk: uvarint length, encoding byte, data, CRC32-C of encoding and data.
fn segment_chunks(file: &[u8]) -> Vec<(u8, &[u8])> {
    assert_eq!(&file[..4], &[0x85, 0xBD, 0x40, 0xDD], "segment magic");
    assert_eq!(file[4], 1, "segment version");
    let mut rest = &file[8..];
    let mut chunks = Vec::new();
    while !rest.is_empty() {
        let (len, used) = uvarint(rest);
        let len = len as usize;
        let body = &rest[used..];
        let (encoding, data) = (body[0], &body[1..1 + len]);
        let crc = u32::from_be_bytes(body[1 + len..5 + len].try_into().expect("crc"));
        assert_eq!(crc, crc32c::crc32c(&body[..1 + len]), "chunk CRC");
        chunks.push((encoding, data));
        rest = &body[5 + len..];
    }
    chunks
}

fn uvarint(b: &[u8]) -> (u64, usize) {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate() {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return (v, i + 1);
        }
    }
    panic!("bad uvarint")
}

#[test]
fn promtool_chunks_decode_and_reencode_byte_identical() {
    let spec = Spec {
        series: 1000,
        samples: 300,
        interval: 30,
        ..Spec::default()
    };
    let made = PromtoolBlocks::create(&generate(&spec), "2h");
    let (mut chunks, mut samples) = (0usize, 0u64);
    let mut expected_samples = 0u64;
    for block in &made.blocks {
        let meta = std::fs::read_to_string(block.join("meta.json")).expect("meta");
        let meta: serde_json::Value = serde_json::from_str(&meta).expect("meta.json");
        let num = meta["stats"]["numSamples"].as_u64().expect("numSamples");
        expected_samples += num;
        let mut segments: Vec<_> = std::fs::read_dir(block.join("chunks"))
            .expect("chunks")
            .map(|e| e.expect("entry").path())
            .collect();
        segments.sort();
        for segment in segments {
            let file = std::fs::read(&segment).expect("segment");
            for (encoding, data) in segment_chunks(&file) {
                assert_eq!(Encoding::try_from(encoding), Ok(Encoding::Xor));
                let decoded: Vec<(i64, f64)> = Chunk::new(Encoding::Xor, data)
                    .xor_samples()
                    .expect("iterator")
                    .collect::<Result<_, _>>()
                    .expect("Prometheus's chunk decodes");
                let again = xor::encode(decoded.iter().copied()).expect("encode");
                assert_eq!(again, data, "re-encoded chunk differs from Prometheus's");
                chunks += 1;
                samples += decoded.len() as u64;
            }
        }
    }
    assert!(chunks > 2000, "only {chunks} chunks checked");
    assert_eq!(
        samples, expected_samples,
        "every sample of the blocks was decoded"
    );
}
