//! Blocks through a FILESYSTEM bucket and an S3 one (moto): upload with meta.json last,
//! download, marks, deletion, and the look at the bucket that tells whole blocks from partial
//! and malformed ones.

use std::collections::BTreeSet;
use std::path::Path;

use bytes::Bytes;
use rthanos_block::{
    Marker, delete_block, download_block, fetch_metas, mark_for_deletion, mark_no_compact, object,
    read_deletion_mark, read_no_compact_mark, upload_block,
};
use rthanos_chunkenc::{Encoding, xor};
use rthanos_model::Labels;
use rthanos_objstore::Bucket;
use rthanos_tsdb::writer::{BlockWriter, ChunkToWrite};
use rthanos_tsdb::{Block, BlockMeta};

fn write_block(dir: &Path) -> BlockMeta {
    let symbols: BTreeSet<String> = ["__name__", "up", "job", "a", "b"]
        .into_iter()
        .map(str::to_string)
        .collect();
    let data = xor::encode([(1_000, 1.0), (2_000, 2.0)]).expect("encode");
    let chunk = [ChunkToWrite {
        min_time: 1_000,
        max_time: 2_000,
        encoding: Encoding::Xor,
        data: &data,
        samples: 2,
    }];
    let mut writer = BlockWriter::create(dir, &symbols).expect("writer");
    for job in ["a", "b"] {
        writer
            .add_series(
                &Labels::from_pairs([("__name__", "up"), ("job", job)]),
                &chunk,
            )
            .expect("series");
    }
    writer.finish(None).expect("finish")
}

async fn round_trip(bucket: &Bucket) {
    let local = tempfile::tempdir().expect("tmp");
    let meta = write_block(local.path());
    let id: ulid::Ulid = meta.ulid.parse().expect("ulid");
    let uploaded = upload_block(bucket, &local.path().join(&meta.ulid), meta.clone())
        .await
        .expect("upload");
    let thanos = uploaded.thanos.as_ref().expect("thanos section");
    assert_eq!(thanos.segment_files, vec!["000001".to_string()]);
    let files: Vec<&str> = thanos.files.iter().map(|f| f.rel_path.as_str()).collect();
    assert_eq!(files, ["chunks/000001", "index", "meta.json"]);

    // A partial upload (no meta.json) and a malformed one beside it.
    let partial = ulid::Ulid::new();
    bucket
        .upload(&object(partial, "index"), Bytes::from_static(b"x"))
        .await
        .expect("partial");
    let malformed = ulid::Ulid::new();
    bucket
        .upload(&object(malformed, "meta.json"), Bytes::from_static(b"{"))
        .await
        .expect("malformed");
    let seen = fetch_metas(bucket, 4).await.expect("metas");
    assert_eq!(seen.metas.keys().copied().collect::<Vec<_>>(), vec![id]);
    assert_eq!(
        seen.partial.iter().copied().collect::<Vec<_>>(),
        vec![partial]
    );
    assert!(seen.malformed.contains_key(&malformed));
    // JSON of another version is somebody's block, not a cut-short write.
    let newer = ulid::Ulid::new();
    bucket
        .upload(
            &object(newer, "meta.json"),
            Bytes::from(format!(
                r#"{{"ulid":"{newer}","minTime":0,"maxTime":1,"version":2}}"#
            )),
        )
        .await
        .expect("newer");
    let seen = fetch_metas(bucket, 4).await.expect("metas");
    assert!(seen.unsupported.contains_key(&newer), "{seen:?}");
    assert!(!seen.malformed.contains_key(&newer));

    // Download: the same block, readable.
    let again = tempfile::tempdir().expect("tmp");
    let (dir, downloaded) = download_block(bucket, id, again.path())
        .await
        .expect("download");
    assert_eq!(downloaded, uploaded);
    let block = Block::open(&dir).expect("open downloaded");
    assert_eq!(block.index().all_postings().expect("postings").len(), 2);

    // Marks: written once, read back.
    assert!(
        read_deletion_mark(bucket, id)
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        mark_no_compact(bucket, id, "manual", "test")
            .await
            .expect("mark")
    );
    let mark = read_no_compact_mark(bucket, id)
        .await
        .expect("read")
        .expect("marked");
    assert_eq!((mark.reason.as_str(), mark.version), ("manual", 1));
    assert!(mark_for_deletion(bucket, id, "test").await.expect("mark"));
    let first = read_deletion_mark(bucket, id)
        .await
        .expect("read")
        .expect("marked");
    assert!(!mark_for_deletion(bucket, id, "again").await.expect("mark"));
    assert_eq!(
        read_deletion_mark(bucket, id).await.expect("read"),
        Some(first)
    );

    // Deletion leaves nothing.
    delete_block(bucket, id).await.expect("delete");
    assert!(
        bucket
            .iter(&format!("{id}/"), true)
            .await
            .expect("iter")
            .is_empty()
    );
    assert!(
        !bucket
            .exists(&object(id, Marker::Deletion.file_name()))
            .await
            .expect("exists")
    );
}

#[tokio::test]
async fn blocks_round_trip_through_a_filesystem_bucket() {
    let dir = tempfile::tempdir().expect("tmp");
    let yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.path().join("bucket").display()
    );
    let bucket = Bucket::from_yaml(&yaml, &prometheus::Registry::new()).expect("bucket");
    round_trip(&bucket).await;
}

#[tokio::test]
async fn blocks_round_trip_through_s3() {
    let moto = rthanos_testkit::Moto::start();
    moto.create_bucket("blocks");
    let bucket = Bucket::from_yaml(&moto.objstore_yaml("blocks"), &prometheus::Registry::new())
        .expect("bucket");
    round_trip(&bucket).await;
}
