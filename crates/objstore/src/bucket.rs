//! [`Bucket`]: the object storage every component reads and writes, with Thanos's operation
//! vocabulary (get, get_range, upload, delete, iter, exists, attributes) and its metrics.
//! Names are `/`-separated paths relative to the bucket (and its `prefix`).

use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use prometheus::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::metrics::{BucketMetrics, Operation};
use crate::{BucketError, ConfigError, ObjstoreConfig};

/// Files at least this large are uploaded in parts, so memory stays bounded (chunk segment
/// files are up to 512MiB).
const MULTIPART_THRESHOLD: u64 = 64 * 1024 * 1024;

/// Size and modification time of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectAttributes {
    /// Size in bytes.
    pub size: u64,
    /// When the object was last written.
    pub last_modified: SystemTime,
}

/// An instrumented bucket. Cheap to clone; clones share the store and the metrics.
#[derive(Clone, Debug)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    name: Arc<str>,
    metrics: BucketMetrics,
    part_size: u64,
    /// The local directory of a FILESYSTEM bucket (prefix included).
    local_root: Option<std::path::PathBuf>,
}

impl Bucket {
    /// Opens the bucket an `objstore.yml` describes, registering its metrics in `registry`.
    pub fn from_yaml(text: &str, registry: &Registry) -> Result<Self, ConfigError> {
        let config = ObjstoreConfig::parse(text)?;
        let store = config.build()?;
        let mut bucket = Self::new(store, &config.bucket_name(), registry)
            .map_err(|e| ConfigError::Metrics(e.to_string()))?;
        if let crate::ProviderConfig::Filesystem(fs) = &config.provider {
            bucket.local_root = Some(
                fs.absolute_directory()
                    .join(config.prefix.trim_matches('/')),
            );
        }
        if let crate::ProviderConfig::S3(s3) = &config.provider {
            bucket.part_size = if s3.disable_multipart {
                u64::MAX
            } else {
                s3.part_size.max(5 * 1024 * 1024)
            };
        }
        Ok(bucket)
    }

    /// Wraps any object store; `name` is the `bucket` label of the metrics.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        name: &str,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        Ok(Self {
            store,
            name: name.into(),
            metrics: BucketMetrics::new(name, registry)?,
            part_size: MULTIPART_THRESHOLD,
            local_root: None,
        })
    }

    /// The bucket's name, as in the `bucket` metric label.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `op` on `name`, counting it. A missing object is an expected answer to a read
    /// (meta.json and marker probes), so it is not counted as a failure; a missing bucket is.
    async fn observe<T>(
        &self,
        op: Operation,
        name: &str,
        fut: impl Future<Output = Result<T, object_store::Error>>,
        fetched: impl Fn(&T) -> u64,
    ) -> Result<T, BucketError> {
        self.metrics.started(op);
        let start = Instant::now();
        match fut.await {
            Ok(value) => {
                self.metrics
                    .succeeded(op, start.elapsed().as_secs_f64(), fetched(&value));
                Ok(value)
            }
            Err(object_store::Error::NotFound { source, .. })
                if op.reads_object() && !is_missing_bucket(&*source) =>
            {
                Err(BucketError::NotFound {
                    name: name.to_string(),
                })
            }
            Err(source) => {
                self.metrics.failed(op);
                Err(BucketError::Store {
                    op: op.as_str(),
                    name: name.to_string(),
                    source,
                })
            }
        }
    }

    /// Reads a whole object.
    pub async fn get(&self, name: &str) -> Result<Bytes, BucketError> {
        let path = Path::from(name);
        self.observe(
            Operation::Get,
            name,
            async { self.store.get(&path).await?.bytes().await },
            |b| b.len() as u64,
        )
        .await
    }

    /// Reads bytes `range` of an object. A range past the end is cut at the end.
    pub async fn get_range(&self, name: &str, range: Range<u64>) -> Result<Bytes, BucketError> {
        let path = Path::from(name);
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        self.observe(
            Operation::GetRange,
            name,
            async {
                // A FILESYSTEM bucket's objects are local files, mostly in the page cache: a
                // positioned read here costs microseconds, where object_store's hop to the
                // blocking pool and back costs two thread wake-ups (a store gateway reads
                // several ranges per block for each request). Anything unusual (a missing
                // file, a range past the end) takes object_store's path and its errors.
                if let Some(bytes) = self.local_range(name, &range) {
                    return Ok(bytes);
                }
                self.store.get_range(&path, range).await
            },
            |b| b.len() as u64,
        )
        .await
    }

    /// Reads byte ranges of one object, one piece per range and in the same order (each cut
    /// at the object's end). A FILESYSTEM bucket opens the file once and reads each range in
    /// place; other providers read the ranges concurrently. Each range counts as one
    /// `get_range` operation in the metrics, as with [`Bucket::get_range`].
    pub async fn get_ranges(
        &self,
        name: &str,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Bytes>, BucketError> {
        let Some((file, size)) = self.local_file(name) else {
            return futures::future::try_join_all(
                ranges.iter().map(|r| self.get_range(name, r.clone())),
            )
            .await;
        };
        let path = Path::from(name);
        let mut pieces = Vec::with_capacity(ranges.len());
        for range in ranges {
            if range.is_empty() {
                pieces.push(Bytes::new());
                continue;
            }
            let piece = self
                .observe(
                    Operation::GetRange,
                    name,
                    async {
                        if let Some(bytes) = read_in_place(&file, size, range) {
                            return Ok(bytes);
                        }
                        self.store.get_range(&path, range.clone()).await
                    },
                    |b| b.len() as u64,
                )
                .await?;
            pieces.push(piece);
        }
        Ok(pieces)
    }

    /// Whether the bucket's objects are local files (FILESYSTEM), read in place: reading a
    /// few bytes more or one range more then costs little, unlike a request to a server.
    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    /// Bytes `range` of a FILESYSTEM bucket's object read in place, cut at the file's end;
    /// `None` when the bucket is not local or the read does not simply succeed.
    fn local_range(&self, name: &str, range: &Range<u64>) -> Option<Bytes> {
        let (file, size) = self.local_file(name)?;
        read_in_place(&file, size, range)
    }

    /// A FILESYSTEM bucket's object opened, with its size; `None` when the bucket is not
    /// local or the file cannot simply be opened.
    fn local_file(&self, name: &str) -> Option<(std::fs::File, u64)> {
        let root = self.local_root.as_ref()?;
        // Names are bucket paths: a component that could leave the root is object_store's
        // to refuse.
        if name
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return None;
        }
        let file = std::fs::File::open(root.join(name)).ok()?;
        let size = file.metadata().ok()?.len();
        Some((file, size))
    }

    /// Writes an object whole, replacing any object of that name. On a FILESYSTEM bucket the
    /// object is on disk, under its name, when this returns.
    pub async fn upload(&self, name: &str, data: Bytes) -> Result<(), BucketError> {
        if let Some(root) = &self.local_root {
            let target = root.join(name);
            let write = async move {
                tokio::task::spawn_blocking(move || {
                    let staging = local_staging(&target);
                    if let Some(parent) = target.parent() {
                        rthanos_durable::create_dir_all(parent)?;
                    }
                    rthanos_durable::write_synced(&staging, &data)?;
                    rthanos_durable::rename(&staging, &target)
                })
                .await
                .map_err(|e| local_error(std::io::Error::other(e)))?
                .map_err(|e| local_error(e.into()))
            };
            return self.observe(Operation::Upload, name, write, |_| 0).await;
        }
        let path = Path::from(name);
        self.observe(
            Operation::Upload,
            name,
            async {
                self.store
                    .put(&path, PutPayload::from(data))
                    .await
                    .map(|_| ())
            },
            |_| 0,
        )
        .await
    }

    /// Uploads a local file, in parts when it is large, so memory does not grow with its size.
    pub async fn upload_file(&self, name: &str, file: &FsPath) -> Result<(), BucketError> {
        let io_err = |source| BucketError::Local {
            path: file.to_path_buf(),
            source,
        };
        let size = tokio::fs::metadata(file).await.map_err(io_err)?.len();
        if let Some(root) = &self.local_root {
            // A FILESYSTEM bucket: the file is copied by the kernel, not through memory, and
            // appears whole (written aside, then renamed).
            let target = root.join(name);
            let file = file.to_path_buf();
            // On disk before it has its name, and its name on disk before the upload is
            // done, so a power cut never shows a short file or loses an acknowledged one.
            let copy = async move {
                tokio::task::spawn_blocking(move || {
                    let staging = local_staging(&target);
                    if let Some(parent) = target.parent() {
                        rthanos_durable::create_dir_all(parent)?;
                    }
                    std::fs::copy(&file, &staging).map_err(|source| {
                        rthanos_durable::DurableError {
                            path: staging.clone(),
                            source,
                        }
                    })?;
                    rthanos_durable::sync_file(&staging)?;
                    rthanos_durable::rename(&staging, &target)
                })
                .await
                .map_err(|e| local_error(std::io::Error::other(e)))?
                .map_err(|e| local_error(e.into()))
            };
            return self.observe(Operation::Upload, name, copy, |_| 0).await;
        }
        if size < self.part_size {
            let data = tokio::fs::read(file).await.map_err(io_err)?;
            return self.upload(name, Bytes::from(data)).await;
        }
        let path = Path::from(name);
        let part = usize::try_from(self.part_size).unwrap_or(usize::MAX);
        let mut reader = tokio::fs::File::open(file).await.map_err(io_err)?;
        let upload = async {
            let mut writer =
                WriteMultipart::new_with_chunk_size(self.store.put_multipart(&path).await?, part);
            let mut buf = vec![0u8; 1024 * 1024];
            loop {
                let n = match reader.read(&mut buf).await {
                    Ok(n) => n,
                    Err(e) => {
                        if let Err(abort) = writer.abort().await {
                            tracing::warn!(object = name, err = %abort, "aborting a failed multipart upload");
                        }
                        return Err(object_store::Error::Generic {
                            store: "local file",
                            source: Box::new(e),
                        });
                    }
                };
                if n == 0 {
                    break;
                }
                // Bounds the parts in flight, so a slow bucket cannot make memory grow. A part
                // that failed ends the upload, aborted so that the bucket keeps no parts
                // (`finish` aborts on its own failures).
                if let Err(e) = writer.wait_for_capacity(4).await {
                    if let Err(abort) = writer.abort().await {
                        tracing::warn!(object = name, err = %abort, "aborting a failed multipart upload");
                    }
                    return Err(e);
                }
                writer.write(&buf[..n]);
            }
            writer.finish().await.map(|_| ())
        };
        self.observe(Operation::Upload, name, upload, |_| 0).await
    }

    /// Streams an object into a local file (created or truncated), without holding it in memory.
    pub async fn download_file(&self, name: &str, file: &FsPath) -> Result<u64, BucketError> {
        let path = Path::from(name);
        let target = file.to_path_buf();
        let download = async {
            let mut stream = self.store.get(&path).await?.into_stream();
            let local = |e: std::io::Error| object_store::Error::Generic {
                store: "local file",
                source: Box::new(e),
            };
            let mut out = tokio::fs::File::create(&target).await.map_err(local)?;
            let mut written = 0u64;
            while let Some(chunk) = stream.try_next().await? {
                out.write_all(&chunk).await.map_err(local)?;
                written += chunk.len() as u64;
            }
            out.flush().await.map_err(local)?;
            out.sync_all().await.map_err(local)?;
            Ok(written)
        };
        self.observe(Operation::Get, name, download, |n| *n).await
    }

    /// Deletes an object. Deleting an object that does not exist is `NotFound`.
    pub async fn delete(&self, name: &str) -> Result<(), BucketError> {
        let path = Path::from(name);
        self.observe(
            Operation::Delete,
            name,
            async {
                // Not every store reports a missing object on delete: ask first.
                self.store.head(&path).await?;
                self.store.delete(&path).await
            },
            |_| 0,
        )
        .await
    }

    /// Deletes every object under `dir`. In a FILESYSTEM bucket the directory goes too, with
    /// what a write cut short left in it (staging files no listing shows).
    pub async fn delete_dir(&self, dir: &str) -> Result<(), BucketError> {
        let dir = dir.trim_end_matches('/');
        for name in self.iter(dir, true).await? {
            match self.delete(&name).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        if let Some(root) = &self.local_root
            && !dir.is_empty()
        {
            let path = root.join(dir);
            match tokio::fs::remove_dir_all(&path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(BucketError::Local { path, source: e });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// When anything under `dir` was last written: its objects' modification times, and in a
    /// FILESYSTEM bucket also the files no listing shows (a write in progress) and the
    /// directories themselves. `None` when there is nothing under `dir`.
    pub async fn last_write(&self, dir: &str) -> Result<Option<SystemTime>, BucketError> {
        let dir = dir.trim_end_matches('/');
        let mut newest: Option<SystemTime> = None;
        if let Some(root) = &self.local_root {
            let mut pending = vec![root.join(dir)];
            while let Some(path) = pending.pop() {
                let Ok(meta) = tokio::fs::metadata(&path).await else {
                    continue;
                };
                if let Ok(modified) = meta.modified() {
                    newest = newest.max(Some(modified));
                }
                if meta.is_dir()
                    && let Ok(mut entries) = tokio::fs::read_dir(&path).await
                {
                    while let Ok(Some(entry)) = entries.next_entry().await {
                        pending.push(entry.path());
                    }
                }
            }
            return Ok(newest);
        }
        for name in self.iter(dir, true).await? {
            let attributes = self.attributes(&name).await?;
            newest = newest.max(Some(attributes.last_modified));
        }
        Ok(newest)
    }

    /// Whether an object exists.
    pub async fn exists(&self, name: &str) -> Result<bool, BucketError> {
        match self.attributes_as(Operation::Exists, name).await {
            Ok(_) => Ok(true),
            Err(BucketError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Size and modification time of an object.
    pub async fn attributes(&self, name: &str) -> Result<ObjectAttributes, BucketError> {
        self.attributes_as(Operation::Attributes, name).await
    }

    async fn attributes_as(
        &self,
        op: Operation,
        name: &str,
    ) -> Result<ObjectAttributes, BucketError> {
        let path = Path::from(name);
        let meta = self
            .observe(op, name, self.store.head(&path), |_| 0)
            .await?;
        Ok(ObjectAttributes {
            size: meta.size,
            last_modified: meta.last_modified.into(),
        })
    }

    /// Lists the names under `dir` (`""` for the root), sorted. Without `recursive`, only direct
    /// children are listed, and a child "directory" is named with a trailing `/`, as Thanos's
    /// `Iter` does (e.g. `01H.../` for each block at the root).
    pub async fn iter(&self, dir: &str, recursive: bool) -> Result<Vec<String>, BucketError> {
        let dir = dir.trim_end_matches('/');
        let prefix = (!dir.is_empty()).then(|| Path::from(dir));
        let list = async {
            let mut names = Vec::new();
            if recursive {
                let mut stream = self.store.list(prefix.as_ref());
                while let Some(meta) = stream.try_next().await? {
                    names.push(meta.location.to_string());
                }
            } else {
                let result = self.store.list_with_delimiter(prefix.as_ref()).await?;
                for p in &result.common_prefixes {
                    // A FILESYSTEM bucket lists as S3 does: a directory that holds no object
                    // (left by a deletion cut short, or with only a write in progress) is no
                    // prefix. Readers would otherwise take it for a partial upload.
                    if let Some(root) = &self.local_root {
                        let path = root.join(p.as_ref());
                        let holds = tokio::task::spawn_blocking(move || holds_objects(&path))
                            .await
                            .unwrap_or(true);
                        if !holds {
                            continue;
                        }
                    }
                    names.push(format!("{p}/"));
                }
                names.extend(result.objects.iter().map(|o| o.location.to_string()));
            }
            names.sort();
            Ok(names)
        };
        self.observe(Operation::Iter, dir, list, |_| 0).await
    }
}

/// Whether a FILESYSTEM bucket directory holds an object: a file anywhere under it other than
/// object_store's staging files (`<name>#<digits>`). An unreadable directory counts as holding
/// one, so that nothing is hidden on an error.
fn holds_objects(dir: &std::path::Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return dir.exists();
    };
    for entry in entries {
        let Ok(entry) = entry else { return true };
        let Ok(kind) = entry.file_type() else {
            return true;
        };
        if kind.is_dir() {
            if holds_objects(&entry.path()) {
                return true;
            }
        } else {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let staging = name
                .rsplit_once('#')
                .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !staging {
                return true;
            }
        }
    }
    false
}

/// Where a FILESYSTEM bucket object is written before it takes its name: `<name>#<digits>`,
/// object_store's own staging name, which listings skip.
/// Bytes `range` of a local file of `size` bytes, cut at its end; `None` when the range
/// starts past the end or the read fails (the caller then takes object_store's path).
fn read_in_place(file: &std::fs::File, size: u64, range: &Range<u64>) -> Option<Bytes> {
    use std::os::unix::fs::FileExt;
    if range.start >= size {
        return None;
    }
    let end = range.end.min(size);
    let mut buf = vec![0u8; usize::try_from(end - range.start).ok()?];
    file.read_exact_at(&mut buf, range.start).ok()?;
    Some(Bytes::from(buf))
}

fn local_staging(target: &std::path::Path) -> std::path::PathBuf {
    let mut staging = target.as_os_str().to_owned();
    staging.push(format!("#{}", std::process::id()));
    std::path::PathBuf::from(staging)
}

fn local_error(e: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "local file",
        source: Box::new(e),
    }
}

/// Whether a not-found error is about the bucket itself (S3's NoSuchBucket, Azure's
/// ContainerNotFound) rather than the object: that is a misconfiguration, not an answer.
fn is_missing_bucket(source: &(dyn std::error::Error + Send + Sync)) -> bool {
    let text = source.to_string();
    text.contains("NoSuchBucket") || text.contains("ContainerNotFound")
}
