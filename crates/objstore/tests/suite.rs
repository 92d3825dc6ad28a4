//! One behavioural suite that every backend passes: FILESYSTEM on a temporary directory, and S3
//! against `moto_server` (a real S3 API) started on 127.0.0.1.

use bytes::Bytes;
use prometheus::Registry;
use rthanos_objstore::Bucket;
use rthanos_testkit::Moto;

/// The behaviour every backend must show.
async fn suite(bucket: &Bucket, registry: &Registry) {
    // Upload and get.
    bucket
        .upload("01A/meta.json", Bytes::from_static(b"{\"version\":1}"))
        .await
        .expect("upload");
    bucket
        .upload("01A/index", Bytes::from(vec![7u8; 1000]))
        .await
        .expect("upload index");
    bucket
        .upload("01A/chunks/000001", Bytes::from_static(b"0123456789"))
        .await
        .expect("upload chunks");
    bucket
        .upload("01B/meta.json", Bytes::from_static(b"{}"))
        .await
        .expect("upload b");
    bucket
        .upload("debug/notes", Bytes::from_static(b"x"))
        .await
        .expect("upload debug");
    assert_eq!(
        &bucket.get("01A/meta.json").await.expect("get")[..],
        b"{\"version\":1}"
    );

    // Replacing an object.
    bucket
        .upload("01B/meta.json", Bytes::from_static(b"{\"v\":2}"))
        .await
        .expect("overwrite");
    assert_eq!(
        &bucket.get("01B/meta.json").await.expect("get")[..],
        b"{\"v\":2}"
    );

    // Ranged get, including a range running past the end and an empty range.
    let chunks = "01A/chunks/000001";
    assert_eq!(
        &bucket.get_range(chunks, 2..5).await.expect("range")[..],
        b"234"
    );
    assert_eq!(
        &bucket.get_range(chunks, 8..100).await.expect("tail")[..],
        b"89"
    );
    assert!(
        bucket
            .get_range(chunks, 4..4)
            .await
            .expect("empty")
            .is_empty()
    );
    // Several ranges of one object: one piece each, in the order asked, cut at the end.
    let pieces = bucket
        .get_ranges(chunks, &[8..100, 0..2, 3..3, 5..7])
        .await
        .expect("ranges");
    let pieces: Vec<&[u8]> = pieces.iter().map(|p| &p[..]).collect();
    assert_eq!(pieces, [&b"89"[..], b"01", b"", b"56"]);

    // Listing, with the delimiter (one level, directories end in '/') and without (recursive).
    assert_eq!(
        bucket.iter("", false).await.expect("iter root"),
        ["01A/", "01B/", "debug/"]
    );
    assert_eq!(
        bucket.iter("01A", false).await.expect("iter block"),
        ["01A/chunks/", "01A/index", "01A/meta.json"]
    );
    assert_eq!(
        bucket.iter("01A/", false).await.expect("trailing slash"),
        bucket.iter("01A", false).await.expect("same")
    );
    assert_eq!(
        bucket.iter("01A", true).await.expect("iter recursive"),
        ["01A/chunks/000001", "01A/index", "01A/meta.json"]
    );
    assert!(
        bucket
            .iter("missing", false)
            .await
            .expect("iter missing")
            .is_empty()
    );

    // Exists and attributes.
    assert!(bucket.exists("01A/index").await.expect("exists"));
    assert!(
        !bucket
            .exists("01A/deletion-mark.json")
            .await
            .expect("not exists")
    );
    assert_eq!(
        bucket
            .attributes("01A/index")
            .await
            .expect("attributes")
            .size,
        1000
    );

    // Not found, for every read.
    assert!(
        bucket
            .get("nope/meta.json")
            .await
            .expect_err("get missing")
            .is_not_found()
    );
    assert!(
        bucket
            .get_range("nope/index", 0..4)
            .await
            .expect_err("range missing")
            .is_not_found()
    );
    assert!(
        bucket
            .attributes("nope/index")
            .await
            .expect_err("attrs missing")
            .is_not_found()
    );
    assert!(
        bucket
            .delete("nope/index")
            .await
            .expect_err("delete missing")
            .is_not_found()
    );

    // Large files go up in parts and come back whole.
    let dir = tempfile::tempdir().expect("tmp");
    let big: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let src = dir.path().join("big");
    std::fs::write(&src, &big).expect("write big");
    bucket
        .upload_file("01C/chunks/000001", &src)
        .await
        .expect("upload file");
    let dst = dir.path().join("back");
    let n = bucket
        .download_file("01C/chunks/000001", &dst)
        .await
        .expect("download");
    assert_eq!(n, big.len() as u64);
    assert!(
        std::fs::read(&dst).expect("read back") == big,
        "round trip differs"
    );
    assert_eq!(
        &bucket
            .get_range("01C/chunks/000001", 5_000_000..5_000_004)
            .await
            .expect("range big")[..],
        &big[5_000_000..5_000_004]
    );

    // Delete: meta.json first, as Thanos does; the block disappears from listings once empty.
    for name in ["01A/meta.json", "01A/index", "01A/chunks/000001"] {
        bucket.delete(name).await.expect("delete");
    }
    assert!(!bucket.exists("01A/index").await.expect("deleted"));
    assert_eq!(
        bucket.iter("", false).await.expect("iter after delete"),
        ["01B/", "01C/", "debug/"]
    );

    // Every operation was counted under Thanos's names; not-found answers are not failures.
    let text = {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut buf)
            .expect("encode");
        String::from_utf8(buf).expect("utf8")
    };
    for op in [
        "get",
        "get_range",
        "upload",
        "delete",
        "iter",
        "exists",
        "attributes",
    ] {
        let line = format!("operation=\"{op}\"}} ");
        let count = text
            .lines()
            .find(|l| {
                l.starts_with("thanos_objstore_bucket_operations_total{") && l.contains(&line)
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no operations_total for {op} in\n{text}"));
        assert!(count > 0.0, "{op} not counted");
        let failures = text
            .lines()
            .find(|l| {
                l.starts_with("thanos_objstore_bucket_operation_failures_total{")
                    && l.contains(&line)
            })
            .unwrap_or_else(|| panic!("no failures_total for {op}"));
        assert!(failures.ends_with(" 0"), "unexpected failure: {failures}");
    }
    assert!(text.contains(&format!(
        "thanos_objstore_bucket_last_successful_upload_time{{bucket=\"{}\"}}",
        bucket.name()
    )));
}

#[tokio::test]
async fn filesystem_bucket() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("bucket");
    let yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        root.display()
    );
    let registry = Registry::new();
    let bucket = Bucket::from_yaml(&yaml, &registry).expect("open");
    assert_eq!(bucket.name(), format!("fs: {}", root.display()));
    suite(&bucket, &registry).await;
    // Deleted blocks leave no empty directory behind.
    assert!(!root.join("01A").exists());
}

/// A directory without objects, as a deletion killed before its last step leaves it (or as
/// an upload whose first file is still being written looks), is not listed, as S3 lists no
/// empty prefix.
#[tokio::test]
async fn filesystem_directories_without_objects_are_not_listed() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("bucket");
    let yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        root.display()
    );
    let bucket = Bucket::from_yaml(&yaml, &Registry::new()).expect("open");
    std::fs::create_dir_all(root.join("01EMPTY/chunks")).expect("dirs");
    std::fs::create_dir_all(root.join("01STAGING/chunks")).expect("dirs");
    std::fs::write(root.join("01STAGING/chunks/000001#1234"), b"half").expect("staging");
    bucket
        .upload("01WHOLE/chunks/000001", bytes::Bytes::from_static(b"x"))
        .await
        .expect("upload");
    assert_eq!(bucket.iter("", false).await.expect("iter"), ["01WHOLE/"]);
    assert_eq!(
        bucket.iter("", true).await.expect("iter"),
        ["01WHOLE/chunks/000001"]
    );
}

#[tokio::test]
async fn filesystem_bucket_with_prefix() {
    let dir = tempfile::tempdir().expect("tmp");
    let yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\nprefix: /tenant-a/\n",
        dir.path().display()
    );
    let registry = Registry::new();
    let bucket = Bucket::from_yaml(&yaml, &registry).expect("open");
    suite(&bucket, &registry).await;
    assert!(dir.path().join("tenant-a/01B/meta.json").is_file());
}

/// The testkit's S3 config, with 5MiB parts so the suite's 12MiB file goes up in parts.
fn s3_yaml(port: u16, bucket: &str, extra: &str) -> String {
    format!(
        "{}  part_size: 5242880\n{extra}",
        rthanos_testkit::s3_objstore_yaml(port, bucket)
    )
}

#[tokio::test]
async fn s3_bucket_on_moto() {
    let moto = Moto::start();
    moto.create_bucket("rthanos");
    let registry = Registry::new();
    let bucket = Bucket::from_yaml(&s3_yaml(moto.port, "rthanos", ""), &registry).expect("open");
    assert_eq!(bucket.name(), "rthanos");
    suite(&bucket, &registry).await;

    // The same bucket with a prefix sees only its own objects.
    let registry = Registry::new();
    let prefixed = Bucket::from_yaml(
        &(s3_yaml(moto.port, "rthanos", "") + "prefix: tenant-b\n"),
        &registry,
    )
    .expect("open prefixed");
    suite(&prefixed, &registry).await;
    assert!(
        bucket
            .exists("tenant-b/01B/meta.json")
            .await
            .expect("under prefix")
    );
}

#[tokio::test]
async fn s3_failures_are_errors_and_counted() {
    let moto = Moto::start();
    // The bucket was never created: every call fails, is an error, and is counted as a failure.
    let registry = Registry::new();
    let extra = "  max_retries: 1\n";
    let bucket = Bucket::from_yaml(&s3_yaml(moto.port, "absent", extra), &registry).expect("open");
    let err = bucket
        .upload("x", Bytes::from_static(b"x"))
        .await
        .expect_err("no bucket");
    assert!(err.to_string().contains("upload"), "{err}");
    let failures = registry
        .gather()
        .into_iter()
        .find(|m| m.name() == "thanos_objstore_bucket_operation_failures_total")
        .expect("failures metric");
    let upload_failures: f64 = failures
        .get_metric()
        .iter()
        .filter(|m| m.get_label().iter().any(|l| l.value() == "upload"))
        .map(|m| m.get_counter().value())
        .sum();
    assert_eq!(upload_failures, 1.0);
}

#[tokio::test]
async fn s3_missing_bucket_is_not_a_missing_object() {
    let moto = Moto::start();
    let bucket = Bucket::from_yaml(
        &s3_yaml(moto.port, "absent", "  max_retries: 1\n"),
        &Registry::new(),
    )
    .expect("open");
    let err = bucket.get("01A/meta.json").await.expect_err("no bucket");
    assert!(
        !err.is_not_found(),
        "a missing bucket must not read as a missing object: {err}"
    );
}

/// A loopback proxy in front of moto that answers the first `failures` requests with
/// 503 Service Unavailable, then forwards everything: transient errors must be retried.
async fn flaky_proxy(
    moto_port: u16,
    failures: usize,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let port = listener.local_addr().expect("addr").port();
    let refused = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&refused);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            if counter.load(Ordering::SeqCst) < failures {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 16 * 1024];
                    let _ = client.read(&mut buf).await;
                    let _ = client
                        .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                });
                continue;
            }
            tokio::spawn(async move {
                if let Ok(mut upstream) =
                    tokio::net::TcpStream::connect(("127.0.0.1", moto_port)).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    (port, refused)
}

#[tokio::test]
async fn s3_transient_errors_are_retried() {
    let moto = Moto::start();
    moto.create_bucket("flaky");
    let (port, refused) = flaky_proxy(moto.port, 2).await;
    let registry = Registry::new();
    let bucket = Bucket::from_yaml(&s3_yaml(port, "flaky", ""), &registry).expect("open");
    bucket
        .upload("01A/meta.json", Bytes::from_static(b"{}"))
        .await
        .expect("upload succeeds after retries");
    assert_eq!(
        refused.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "both failures were seen"
    );
    assert_eq!(&bucket.get("01A/meta.json").await.expect("get")[..], b"{}");
    let failures: f64 = registry
        .gather()
        .into_iter()
        .filter(|m| m.name() == "thanos_objstore_bucket_operation_failures_total")
        .flat_map(|m| {
            m.get_metric()
                .iter()
                .map(|x| x.get_counter().value())
                .collect::<Vec<_>>()
        })
        .sum();
    assert_eq!(
        failures, 0.0,
        "a retried operation that succeeds is not a failure"
    );
}
