//! Moving whole blocks between a local directory and the bucket, in an order that never shows
//! a reader half a block: upload puts meta.json last, delete takes it first.

use std::path::{Path, PathBuf};

use rthanos_objstore::Bucket;
use rthanos_tsdb::BlockMeta;
use rthanos_tsdb::meta::BlockFile;

use crate::marks::Marker;
use crate::{BlockError, object};

fn local(path: &Path) -> impl Fn(std::io::Error) -> BlockError + '_ {
    move |source| BlockError::Local {
        path: path.to_path_buf(),
        source,
    }
}

/// The files of a block directory to upload, relative and sorted: chunk segments, then the
/// index (meta.json and tombstones are not uploaded as files, as Thanos does not).
fn block_files(dir: &Path) -> Result<Vec<(String, u64)>, BlockError> {
    let mut files = Vec::new();
    let chunks = dir.join("chunks");
    // Any unreadable entry fails the upload: a block must never go up without a file.
    let mut segments: Vec<(String, u64)> = Vec::new();
    for entry in std::fs::read_dir(&chunks).map_err(local(&chunks))? {
        let entry = entry.map_err(local(&chunks))?;
        let path = entry.path();
        let meta = entry.metadata().map_err(local(&path))?;
        if meta.is_file() {
            segments.push((
                format!("chunks/{}", entry.file_name().to_string_lossy()),
                meta.len(),
            ));
        }
    }
    segments.sort();
    files.extend(segments);
    let index = dir.join("index");
    let size = std::fs::metadata(&index).map_err(local(&index))?.len();
    files.push(("index".to_string(), size));
    Ok(files)
}

/// Uploads the block in `dir` under its ULID: chunk segments, then the index, then `meta`
/// as its meta.json (with Thanos's `files` and `segment_files` filled in), last, so the block
/// is a partial upload until it is whole. Returns the meta.json written.
pub async fn upload_block(
    bucket: &Bucket,
    dir: &Path,
    mut meta: BlockMeta,
) -> Result<BlockMeta, BlockError> {
    let id: ulid::Ulid = meta.ulid.parse().map_err(|_| BlockError::Malformed {
        id: ulid::Ulid::nil(),
        detail: format!("meta.json ULID {:?} does not parse", meta.ulid),
    })?;
    let files = {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || block_files(&dir))
            .await
            .map_err(|e| BlockError::Local {
                path: PathBuf::new(),
                source: std::io::Error::other(e),
            })??
    };
    for (path, _) in &files {
        bucket
            .upload_file(&object(id, path), &dir.join(path))
            .await?;
    }
    let thanos = meta.thanos.get_or_insert_with(Default::default);
    thanos.segment_files = files
        .iter()
        .filter_map(|(path, _)| path.strip_prefix("chunks/").map(str::to_string))
        .collect();
    thanos.files = files
        .iter()
        .map(|(path, size)| BlockFile {
            rel_path: path.clone(),
            size_bytes: Some(*size),
            hash: None,
        })
        .chain(std::iter::once(BlockFile {
            rel_path: "meta.json".into(),
            size_bytes: None,
            hash: None,
        }))
        .collect();
    let json = meta.to_json().map_err(|e| BlockError::Malformed {
        id,
        detail: e.to_string(),
    })?;
    bucket.upload(&object(id, "meta.json"), json.into()).await?;
    Ok(meta)
}

/// Downloads block `id` into `dir/<ULID>` (replacing what is there): its meta.json, index,
/// chunk segments and tombstones if any; markers and anything else are left in the bucket.
/// Returns its meta.json; a block without one is an error (partial uploads are not read).
pub async fn download_block(
    bucket: &Bucket,
    id: ulid::Ulid,
    dir: &Path,
) -> Result<(PathBuf, BlockMeta), BlockError> {
    let meta = crate::fetch_meta(bucket, id)
        .await?
        .ok_or_else(|| BlockError::Malformed {
            id,
            detail: "no meta.json (a partial upload)".into(),
        })?;
    let block_dir = dir.join(id.to_string());
    if tokio::fs::try_exists(&block_dir).await.unwrap_or(false) {
        tokio::fs::remove_dir_all(&block_dir)
            .await
            .map_err(local(&block_dir))?;
    }
    let chunks = block_dir.join("chunks");
    tokio::fs::create_dir_all(&chunks)
        .await
        .map_err(local(&chunks))?;
    let prefix = format!("{id}/");
    for name in bucket.iter(&prefix, true).await? {
        let Some(rel) = name.strip_prefix(&prefix) else {
            continue;
        };
        let wanted = rel == "index" || rel == "tombstones" || rel.starts_with("chunks/");
        if !wanted || Marker::from_file_name(rel).is_some() {
            continue;
        }
        bucket.download_file(&name, &block_dir.join(rel)).await?;
    }
    let meta_path = block_dir.join("meta.json");
    let json = meta.to_json().map_err(|e| BlockError::Malformed {
        id,
        detail: e.to_string(),
    })?;
    tokio::fs::write(&meta_path, json)
        .await
        .map_err(local(&meta_path))?;
    Ok((block_dir, meta))
}

/// Deletes block `id` from the bucket: meta.json first (readers then see a partial block and
/// leave it), then every other file, and its deletion mark last, so a deletion cut short is
/// still marked and finished by the next cleanup.
pub async fn delete_block(bucket: &Bucket, id: ulid::Ulid) -> Result<(), BlockError> {
    let remove = |name: String| async move {
        match bucket.delete(&name).await {
            Err(e) if !e.is_not_found() => Err(BlockError::from(e)),
            _ => Ok(()),
        }
    };
    remove(object(id, "meta.json")).await?;
    let mark = object(id, Marker::Deletion.file_name());
    for name in bucket.iter(&format!("{id}/"), true).await? {
        if name != mark {
            remove(name).await?;
        }
    }
    remove(mark).await?;
    // What no listing shows (a FILESYSTEM bucket's half-written files, its empty directory).
    bucket.delete_dir(&format!("{id}/")).await?;
    Ok(())
}
