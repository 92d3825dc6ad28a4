//! Durable local writes, for everything rthanos keeps on a local disk that a crash or a power
//! cut must not leave half-done: blocks being written, `thanos.shipper.json`, the compactor's
//! records and the objects of a FILESYSTEM bucket. A file is written under a staging name,
//! fsynced, renamed to its name, and its directory fsynced, so that after a crash the name
//! either is absent or holds the whole file; a directory made on the way is fsynced into its
//! parent. The order of these calls is checked on the real system calls, under strace, by the
//! end-to-end tests (`tests/durable.rs`).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` durably: into `<path>.tmp`, synced, renamed to `path`, and the
/// directory synced (with the directories created for it).
///
/// # Errors
/// The first failing file system call, with the path it was made on.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), DurableError> {
    let mut staging = path.as_os_str().to_owned();
    staging.push(".tmp");
    let staging = PathBuf::from(staging);
    create_dir_all(parent(path))?;
    write_synced(&staging, bytes)?;
    rename(&staging, path)
}

/// Writes `bytes` to `path` (created or truncated) and syncs it; its name is not synced (the
/// caller renames it, or syncs its directory).
///
/// # Errors
/// Creating, writing or syncing failed.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), DurableError> {
    let mut file = File::create(path).map_err(|e| DurableError::at(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| DurableError::at(path, e))
}

/// Renames `from` to `to` and syncs the directory of `to` (and of `from`, when another), so
/// the new name survives a crash. `from` must be synced already (a file by [`sync_file`], a
/// directory's files and the directory itself by [`sync_dir`]).
///
/// # Errors
/// The rename or a sync failed.
pub fn rename(from: &Path, to: &Path) -> Result<(), DurableError> {
    std::fs::rename(from, to).map_err(|e| DurableError::at(to, e))?;
    sync_dir(parent(to))?;
    if parent(from) != parent(to) {
        sync_dir(parent(from))?;
    }
    Ok(())
}

/// Syncs a file's data and metadata to disk.
///
/// # Errors
/// Opening or syncing failed.
pub fn sync_file(path: &Path) -> Result<(), DurableError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| DurableError::at(path, e))
}

/// Syncs a directory, so the names in it (files created, renamed or removed) survive a crash.
///
/// # Errors
/// Opening or syncing failed.
pub fn sync_dir(path: &Path) -> Result<(), DurableError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| DurableError::at(path, e))
}

/// Creates `path` and its missing parents, each synced into its parent.
///
/// # Errors
/// Creating or syncing a directory failed.
pub fn create_dir_all(path: &Path) -> Result<(), DurableError> {
    if path.as_os_str().is_empty() || path.is_dir() {
        return Ok(());
    }
    create_dir_all(parent(path))?;
    match std::fs::create_dir(path) {
        Ok(()) => sync_dir(parent(path)),
        // Made by another writer meanwhile: theirs to sync, and it is there.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(DurableError::at(path, e)),
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A file system call that failed, with its path.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct DurableError {
    /// The path the call was made on.
    pub path: PathBuf,
    /// What the system said.
    pub source: std::io::Error,
}

impl DurableError {
    fn at(path: &Path, source: std::io::Error) -> Self {
        Self {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<DurableError> for std::io::Error {
    fn from(e: DurableError) -> Self {
        std::io::Error::new(e.source.kind(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_whole_under_its_name_and_no_staging_file_is_left() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("a/b/state.json");
        write_file(&path, b"{}").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"{}");
        write_file(&path, b"[1]").expect("overwrite");
        assert_eq!(std::fs::read(&path).expect("read"), b"[1]");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().expect("tmp");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").expect("write");
        let err = write_file(&blocker.join("under"), b"x").expect_err("a file is no directory");
        assert!(err.to_string().contains("file"), "{err}");
    }
}
