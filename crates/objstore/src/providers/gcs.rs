//! Google Cloud Storage. `service_account` holds the key JSON inline; when empty, Google's
//! default credentials are used (GOOGLE_APPLICATION_CREDENTIALS, metadata server).

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::gcp::GoogleCloudStorageBuilder;
use serde::Deserialize;

use super::http::{HttpConfig, retry_config};
use super::{required, unsupported};
use crate::ConfigError;

/// Thanos's GCS `config`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcsConfig {
    /// Bucket name.
    pub bucket: String,
    /// Service account key, as JSON text.
    pub service_account: String,
    /// The gRPC API (not supported: the JSON API is used).
    pub use_grpc: bool,
    /// Connection pool of the gRPC API (not used).
    pub grpc_conn_pool_size: u32,
    /// HTTP client settings.
    pub http_config: HttpConfig,
    /// Accepted; uploads choose their own chunking.
    pub chunk_size_bytes: u64,
    /// Retries per request (0 keeps the default).
    pub max_retries: u32,
}

impl GcsConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.bucket.is_empty() {
            return Err(required("config.bucket"));
        }
        if self.use_grpc {
            return Err(unsupported(
                "config.use_grpc",
                "the gRPC API is not supported by rthanos (the JSON API is used)",
            ));
        }
        self.http_config.validate()
    }

    pub(crate) fn build(&self) -> Result<Arc<dyn ObjectStore>, ConfigError> {
        let mut builder = GoogleCloudStorageBuilder::from_env()
            .with_client_options(self.http_config.client_options()?)
            .with_retry(retry_config(self.max_retries))
            .with_bucket_name(&self.bucket);
        if !self.service_account.is_empty() {
            builder = builder.with_service_account_key(&self.service_account);
        }
        let store = builder.build().map_err(|e| ConfigError::Build {
            provider: "GCS",
            message: e.to_string(),
        })?;
        Ok(Arc::new(store))
    }
}
