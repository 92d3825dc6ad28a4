//! The shipper over promtool-made blocks and a FILESYSTEM bucket: compaction levels, failures
//! retried at the next sync, the shipped record.

use rthanos_model::Labels;
use rthanos_objstore::Bucket;
use rthanos_shipper::Shipper;
use rthanos_testkit::PromtoolBlocks;
use rthanos_testkit::openmetrics::{Spec, generate};

fn blocks() -> PromtoolBlocks {
    PromtoolBlocks::create(
        &generate(&Spec {
            series: 5,
            samples: 480,
            ..Spec::default()
        }),
        "2h",
    )
}

fn bucket(dir: &std::path::Path) -> Bucket {
    let yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.display()
    );
    Bucket::from_yaml(&yaml, &prometheus::Registry::new()).expect("bucket")
}

fn ids(blocks: &PromtoolBlocks) -> Vec<String> {
    blocks
        .blocks
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .collect()
}

fn set_level(block: &std::path::Path, level: u32) {
    let path = block.join("meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("meta")).expect("json");
    meta["compaction"]["level"] = level.into();
    std::fs::write(&path, serde_json::to_vec(&meta).expect("json")).expect("write");
}

#[tokio::test]
async fn compacted_blocks_wait_for_the_flag_and_failures_are_retried() {
    let blocks = blocks();
    let tsdb = blocks.data_dir();
    let ids = ids(&blocks);
    assert!(ids.len() >= 2);
    set_level(&blocks.blocks[0], 2);
    let labels = Labels::from_pairs([("cluster", "eu1")]);

    let store = tempfile::tempdir().expect("tmp");
    // A file where the second block's directory must go: its upload fails.
    std::fs::write(store.path().join(&ids[1]), b"in the way").expect("write");
    let registry = prometheus::Registry::new();
    let shipper =
        Shipper::new(&tsdb, bucket(store.path()), false, "sidecar", &registry).expect("shipper");
    let err = shipper.sync(&labels).await.expect_err("one block fails");
    assert!(err.to_string().contains(&ids[1]), "{err}");
    assert!(
        !store.path().join(&ids[0]).exists(),
        "level 2 is not shipped"
    );
    // Nothing newer than the failed block is shipped: no gap in the bucket.
    for id in &ids[2..] {
        assert!(!store.path().join(id).exists(), "{id}");
    }
    let metric = |name: &str| {
        registry
            .gather()
            .iter()
            .find(|f| f.name() == name)
            .map(|f| f.get_metric()[0].get_counter().value())
    };
    assert_eq!(metric("thanos_shipper_upload_failures_total"), Some(1.0));
    assert_eq!(metric("thanos_shipper_dir_sync_failures_total"), Some(1.0));

    // Retried at the next sync once the obstacle is gone.
    std::fs::remove_file(store.path().join(&ids[1])).expect("remove");
    let report = shipper.sync(&labels).await.expect("sync");
    assert_eq!(report.uploaded, ids[1..].to_vec());
    assert_eq!(metric("thanos_shipper_dir_syncs_total"), Some(1.0));

    // With --shipper.upload-compacted the level-2 block goes too.
    let shipper = Shipper::new(
        &tsdb,
        bucket(store.path()),
        true,
        "sidecar",
        &prometheus::Registry::new(),
    )
    .expect("shipper");
    let report = shipper.sync(&labels).await.expect("sync");
    assert_eq!(report.uploaded, [ids[0].clone()]);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tsdb.join("thanos.shipper.json")).expect("state"))
            .expect("json");
    assert_eq!(state["uploaded"].as_array().map(Vec::len), Some(ids.len()));

    // A block Prometheus deleted drops out of the record.
    std::fs::remove_dir_all(&blocks.blocks[0]).expect("delete block");
    shipper.sync(&labels).await.expect("sync");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tsdb.join("thanos.shipper.json")).expect("state"))
            .expect("json");
    assert_eq!(
        state["uploaded"].as_array().map(Vec::len),
        Some(ids.len() - 1)
    );
}

#[tokio::test]
async fn a_block_being_written_is_not_shipped() {
    let blocks = blocks();
    let tsdb = blocks.data_dir();
    // Prometheus writes new blocks under a temporary name, meta.json last.
    let partial = tsdb.join("01JZZZZZZZZZZZZZZZZZZZZZZZ.tmp-for-creation");
    rthanos_testkit::copy_dir(&blocks.blocks[0], &partial);
    let no_meta = tsdb.join("01JZZZZZZZZZZZZZZZZZZZZZZY");
    rthanos_testkit::copy_dir(&blocks.blocks[0], &no_meta);
    std::fs::remove_file(no_meta.join("meta.json")).expect("remove");

    let store = tempfile::tempdir().expect("tmp");
    let shipper = Shipper::new(
        &tsdb,
        bucket(store.path()),
        false,
        "sidecar",
        &prometheus::Registry::new(),
    )
    .expect("shipper");
    let report = shipper
        .sync(&Labels::from_pairs([("cluster", "eu1")]))
        .await
        .expect("sync");
    assert_eq!(report.uploaded, ids(&blocks));
    let mut in_bucket: Vec<String> = std::fs::read_dir(store.path())
        .expect("bucket")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    in_bucket.sort();
    assert_eq!(in_bucket, ids(&blocks));
}
