//! Object storage for rthanos: Thanos's `objstore.yml` (S3, GCS, AZURE, FILESYSTEM, with a
//! `prefix`) turned into an [object_store] backend, and [`Bucket`], the one type every component
//! uses to read and write blocks.
//!
//! Why a `Bucket` and not the `ObjectStore` trait directly? Thanos's metrics and alerts speak of
//! bucket *operations* (`get`, `get_range`, `upload`, `delete`, `iter`, `exists`, `attributes`),
//! and components think in those terms (a block is listed with `iter`, its `meta.json` probed
//! with `exists`). `Bucket` is that vocabulary over any `ObjectStore`, counting
//! `thanos_objstore_bucket_*` per operation. Retries with exponential backoff come from
//! object_store's HTTP client, which every cloud backend shares.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let yaml = format!("type: FILESYSTEM\nconfig:\n  directory: {}\n", dir.path().display());
//! let bucket = rthanos_objstore::Bucket::from_yaml(&yaml, &prometheus::Registry::new())?;
//! bucket.upload("01HX/meta.json", "{}".into()).await?;
//! assert_eq!(bucket.iter("", false).await?, vec!["01HX/".to_string()]);
//! assert!(bucket.exists("01HX/meta.json").await?);
//! # Ok(())
//! # }
//! ```

mod bucket;
mod config;
mod metrics;
pub mod providers;

use std::path::PathBuf;

pub use bucket::{Bucket, ObjectAttributes};
pub use config::{ObjstoreConfig, ProviderConfig};
pub use metrics::Operation;

/// An `objstore.yml` that cannot be used. The message names the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Malformed YAML, an unknown field or a value of the wrong type.
    #[error("objstore config: {provider}: {message}")]
    Yaml {
        /// The provider whose section is wrong (or `objstore.yml` for the top level).
        provider: &'static str,
        /// serde's message, which names the field and its position.
        message: String,
    },
    /// A field has a value that is missing, wrong or not supported.
    #[error("objstore config: {field}: {reason}")]
    Invalid {
        /// The field, as a YAML path such as `config.sse_config.type`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The backend refused the configuration.
    #[error("objstore config: {provider}: {message}")]
    Build {
        /// The provider.
        provider: &'static str,
        /// The backend's message.
        message: String,
    },
    /// The bucket's metrics could not be registered.
    #[error("objstore metrics: {0}")]
    Metrics(String),
}

/// A bucket operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// The object does not exist.
    #[error("object {name}: not found")]
    NotFound {
        /// The object's name.
        name: String,
    },
    /// The store failed (after its retries).
    #[error("bucket {op} {name}: {source}")]
    Store {
        /// The operation.
        op: &'static str,
        /// The object's name.
        name: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A local file could not be read or written.
    #[error("local file {path}: {source}")]
    Local {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl BucketError {
    /// Whether the object did not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, BucketError::NotFound { .. })
    }
}
