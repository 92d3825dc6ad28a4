//! Azure Blob Storage: `https://<storage_account>.<endpoint>/<container>`. With no key, a
//! client secret or managed identity (`user_assigned_id`) is used, else Azure's default chain.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::azure::MicrosoftAzureBuilder;
use serde::Deserialize;

use super::http::{HttpConfig, retry_config};
use super::{required, unsupported};
use crate::ConfigError;

/// Thanos's AZURE `config`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureConfig {
    /// Tenant of the client secret.
    pub az_tenant_id: String,
    /// Client (application) id of the client secret.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// Storage account name.
    pub storage_account: String,
    /// Shared key of the storage account (base64).
    pub storage_account_key: String,
    /// Connection string (not supported).
    pub storage_connection_string: String,
    /// Accepted; the container must exist.
    pub storage_create_container: bool,
    /// Container name.
    pub container: String,
    /// Host suffix of the blob service.
    pub endpoint: String,
    /// Client id of a user-assigned managed identity.
    pub user_assigned_id: String,
    /// Retries per request (0 keeps the default).
    pub max_retries: u32,
    /// Accepted; see `max_retries`.
    pub reader_config: serde_yaml::Value,
    /// Accepted; see `max_retries`.
    pub pipeline_config: serde_yaml::Value,
    /// HTTP client settings.
    pub http_config: HttpConfig,
    /// Deprecated in Thanos; ignored.
    pub msi_resource: String,
}

impl Default for AzureConfig {
    fn default() -> Self {
        Self {
            az_tenant_id: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            storage_account: String::new(),
            storage_account_key: String::new(),
            storage_connection_string: String::new(),
            storage_create_container: true,
            container: String::new(),
            endpoint: "blob.core.windows.net".into(),
            user_assigned_id: String::new(),
            max_retries: 0,
            reader_config: serde_yaml::Value::Null,
            pipeline_config: serde_yaml::Value::Null,
            http_config: HttpConfig::default(),
            msi_resource: String::new(),
        }
    }
}

impl AzureConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.storage_account.is_empty() {
            return Err(required("config.storage_account"));
        }
        if self.container.is_empty() {
            return Err(required("config.container"));
        }
        if !self.storage_connection_string.is_empty() {
            return Err(unsupported(
                "config.storage_connection_string",
                "connection strings are not supported by rthanos; set storage_account and storage_account_key",
            ));
        }
        if !self.storage_account_key.is_empty() && !self.user_assigned_id.is_empty() {
            return Err(unsupported(
                "config.user_assigned_id",
                "cannot be combined with storage_account_key",
            ));
        }
        let secret = [&self.az_tenant_id, &self.client_id, &self.client_secret];
        if secret.iter().any(|s| !s.is_empty()) && secret.iter().any(|s| s.is_empty()) {
            return Err(unsupported(
                "config.client_secret",
                "az_tenant_id, client_id and client_secret must be given together",
            ));
        }
        self.http_config.validate()
    }

    pub(crate) fn build(&self) -> Result<Arc<dyn ObjectStore>, ConfigError> {
        let mut builder = MicrosoftAzureBuilder::from_env()
            .with_client_options(self.http_config.client_options()?)
            .with_retry(retry_config(self.max_retries))
            .with_account(&self.storage_account)
            .with_container_name(&self.container)
            .with_endpoint(format!(
                "https://{}.{}",
                self.storage_account, self.endpoint
            ));
        if !self.storage_account_key.is_empty() {
            builder = builder.with_access_key(&self.storage_account_key);
        } else if !self.client_secret.is_empty() {
            builder = builder.with_client_secret_authorization(
                &self.client_id,
                &self.client_secret,
                &self.az_tenant_id,
            );
        } else if !self.user_assigned_id.is_empty() {
            builder = builder.with_client_id(&self.user_assigned_id);
        }
        let store = builder.build().map_err(|e| ConfigError::Build {
            provider: "AZURE",
            message: e.to_string(),
        })?;
        Ok(Arc::new(store))
    }
}
