//! `objstore.yml`, as Thanos reads it: `type`, `config` (the provider's fields) and `prefix`.
//! Every field Thanos knows is parsed; a field no provider has is an error naming it, and a field
//! we cannot honour with a non-default value is an error naming it too, rather than a setting
//! silently ignored.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::prefix::PrefixStore;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::ConfigError;
use crate::providers::{azure, filesystem, gcs, s3};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BucketConfig {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    config: serde_yaml::Value,
    #[serde(default)]
    prefix: String,
}

/// A parsed `objstore.yml`: which provider, with which settings.
#[derive(Clone, Debug)]
pub enum ProviderConfig {
    /// Amazon S3 and S3-compatible stores.
    S3(s3::S3Config),
    /// Google Cloud Storage.
    Gcs(gcs::GcsConfig),
    /// Azure Blob Storage.
    Azure(azure::AzureConfig),
    /// A local directory.
    Filesystem(filesystem::FilesystemConfig),
}

/// The whole configuration: provider and key prefix.
#[derive(Clone, Debug)]
pub struct ObjstoreConfig {
    /// The provider and its settings.
    pub provider: ProviderConfig,
    /// Every object name is stored under this prefix (Thanos's top-level `prefix`).
    pub prefix: String,
}

fn provider_config<T: DeserializeOwned>(
    provider: &'static str,
    value: serde_yaml::Value,
) -> Result<T, ConfigError> {
    // An absent `config:` is an empty mapping, so required fields are reported by name.
    let value = if value.is_null() {
        serde_yaml::Value::Mapping(Default::default())
    } else {
        value
    };
    serde_yaml::from_value(value).map_err(|e| ConfigError::Yaml {
        provider,
        message: format!("config: {e}"),
    })
}

impl ObjstoreConfig {
    /// Parses and validates the YAML text of an `objstore.yml`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let raw: BucketConfig = serde_yaml::from_str(text).map_err(|e| ConfigError::Yaml {
            provider: "objstore.yml",
            message: e.to_string(),
        })?;
        let provider = match raw.kind.to_ascii_uppercase().as_str() {
            "S3" => ProviderConfig::S3(provider_config("S3", raw.config)?),
            "GCS" => ProviderConfig::Gcs(provider_config("GCS", raw.config)?),
            "AZURE" => ProviderConfig::Azure(provider_config("AZURE", raw.config)?),
            "FILESYSTEM" => ProviderConfig::Filesystem(provider_config("FILESYSTEM", raw.config)?),
            other => {
                return Err(ConfigError::Invalid {
                    field: "type".into(),
                    reason: format!(
                        "bucket with type {other:?} is not supported (S3, GCS, AZURE, FILESYSTEM)"
                    ),
                });
            }
        };
        match &provider {
            ProviderConfig::S3(c) => c.validate()?,
            ProviderConfig::Gcs(c) => c.validate()?,
            ProviderConfig::Azure(c) => c.validate()?,
            ProviderConfig::Filesystem(c) => c.validate()?,
        }
        Ok(Self {
            provider,
            prefix: raw.prefix.trim_matches('/').to_string(),
        })
    }

    /// The bucket's name as Thanos reports it in the `bucket` metric label.
    pub fn bucket_name(&self) -> String {
        match &self.provider {
            ProviderConfig::S3(c) => c.bucket.clone(),
            ProviderConfig::Gcs(c) => c.bucket.clone(),
            ProviderConfig::Azure(c) => c.container.clone(),
            ProviderConfig::Filesystem(c) => format!("fs: {}", c.absolute_directory().display()),
        }
    }

    /// Builds the object store the configuration describes.
    pub fn build(&self) -> Result<Arc<dyn ObjectStore>, ConfigError> {
        let store: Arc<dyn ObjectStore> = match &self.provider {
            ProviderConfig::S3(c) => c.build()?,
            ProviderConfig::Gcs(c) => c.build()?,
            ProviderConfig::Azure(c) => c.build()?,
            ProviderConfig::Filesystem(c) => c.build()?,
        };
        if self.prefix.is_empty() {
            Ok(store)
        } else {
            Ok(Arc::new(PrefixStore::new(store, self.prefix.as_str())))
        }
    }
}
