//! FILESYSTEM: a local directory as a bucket (the embedded default, for tests and single hosts).

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use serde::Deserialize;

use super::required;
use crate::ConfigError;

/// Thanos's FILESYSTEM `config`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemConfig {
    /// The bucket's root directory.
    #[serde(default)]
    pub directory: String,
}

impl FilesystemConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.directory.is_empty() {
            return Err(required("config.directory"));
        }
        Ok(())
    }

    /// The directory as an absolute path, as Thanos names the bucket (`fs: <dir>`).
    pub fn absolute_directory(&self) -> PathBuf {
        std::path::absolute(&self.directory).unwrap_or_else(|_| PathBuf::from(&self.directory))
    }

    pub(crate) fn build(&self) -> Result<Arc<dyn ObjectStore>, ConfigError> {
        let dir = self.absolute_directory();
        let invalid = |e: &dyn std::fmt::Display| ConfigError::Invalid {
            field: "config.directory".into(),
            reason: format!("{}: {e}", dir.display()),
        };
        rthanos_durable::create_dir_all(&dir).map_err(|e| invalid(&e))?;
        // Deleting a block's last file removes its now-empty directory, as Thanos's FILESYSTEM
        // bucket does, so a deleted block leaves nothing behind.
        let store = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| invalid(&e))?
            .with_automatic_cleanup(true);
        Ok(Arc::new(store))
    }
}
