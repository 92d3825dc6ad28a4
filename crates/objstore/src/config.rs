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
    // The path makes a type error name its field (`config.http_config.idle_conn_timeout`).
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            "config".to_string()
        } else {
            format!("config.{path}")
        };
        ConfigError::Yaml {
            provider,
            message: format!("{at}: {}", e.into_inner()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn field_error(yaml: &str) -> String {
        ObjstoreConfig::parse(yaml)
            .expect_err("must be refused")
            .to_string()
    }

    #[test]
    fn the_shipped_examples_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("config dir") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.starts_with("objstore-") && name.ends_with(".yml") {
                let text = std::fs::read_to_string(&path).expect("read");
                ObjstoreConfig::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                seen += 1;
            }
        }
        assert_eq!(seen, 4, "one example per provider");
    }

    #[test]
    fn the_seed_guide_configs_parse() {
        let s3 = "type: S3\nconfig:\n  bucket: \"prometheus-metrics\"\n  endpoint: \"s3.amazonaws.com\"\n  region: \"us-east-1\"\n  access_key: \"YOUR_ACCESS_KEY\"\n  secret_key: \"YOUR_SECRET_KEY\"\n";
        let config = ObjstoreConfig::parse(s3).expect("s3");
        assert_eq!(config.bucket_name(), "prometheus-metrics");
        let ProviderConfig::S3(c) = &config.provider else {
            panic!("not S3")
        };
        assert_eq!(c.part_size, 64 << 20, "Thanos's default part size");
        assert_eq!(c.http_config.idle_conn_timeout.to_string(), "1m30s");
        let gcs = "type: GCS\nconfig:\n  bucket: \"prometheus-metrics\"\n  service_account: |-\n    {\n      \"type\": \"service_account\",\n      \"project_id\": \"your-project\"\n    }\n";
        let config = ObjstoreConfig::parse(gcs).expect("gcs");
        let ProviderConfig::Gcs(c) = &config.provider else {
            panic!("not GCS")
        };
        assert!(c.service_account.contains("service_account"));
    }

    #[test]
    fn type_is_case_insensitive_and_prefix_trimmed() {
        let config = ObjstoreConfig::parse(
            "type: filesystem\nconfig:\n  directory: /tmp/b\nprefix: /a/b/\n",
        )
        .expect("parse");
        assert_eq!(config.prefix, "a/b");
        assert_eq!(config.bucket_name(), "fs: /tmp/b");
    }

    #[test]
    fn errors_name_the_field() {
        for (yaml, field) in [
            (
                "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  secret_ky: x\n",
                "secret_ky",
            ),
            ("type: S3\nconfig:\n  endpoint: e\n", "config.bucket"),
            (
                "type: S3\nconfig:\n  bucket: b\n  endpoint: https://s3.amazonaws.com\n",
                "config.endpoint",
            ),
            (
                "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  access_key: a\n",
                "config.access_key",
            ),
            (
                "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  insecure: maybe\n",
                "insecure",
            ),
            (
                "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  signature_version2: true\n",
                "config.signature_version2",
            ),
            (
                "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  bucket_lookup_type: dns\n",
                "config.bucket_lookup_type",
            ),
            (
                "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  sse_config:\n    type: SSE-KMS\n",
                "config.sse_config.kms_key_id",
            ),
            (
                "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  http_config:\n    idle_conn_timeout: soon\n",
                "idle_conn_timeout",
            ),
            (
                "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  http_config:\n    tls_config:\n      cert_file: c.pem\n",
                "config.http_config.tls_config.cert_file",
            ),
            (
                "type: GCS\nconfig:\n  bucket: b\n  use_grpc: true\n",
                "config.use_grpc",
            ),
            (
                "type: AZURE\nconfig:\n  container: c\n",
                "config.storage_account",
            ),
            (
                "type: AZURE\nconfig:\n  storage_account: a\n  container: c\n  storage_connection_string: x\n",
                "config.storage_connection_string",
            ),
            ("type: FILESYSTEM\n", "config.directory"),
            (
                "type: FILESYSTEM\nconfig:\n  directory: /x\n  extra: 1\n",
                "extra",
            ),
            ("type: COS\nconfig: {}\n", "type"),
            ("type: S3\nconfig: {}\nprefixx: a\n", "prefixx"),
            ("not: [valid", "objstore.yml"),
        ] {
            let err = field_error(yaml);
            assert!(err.contains(field), "{yaml:?}: {err}");
        }
    }

    #[test]
    fn s3_builds_for_plain_http_endpoints() {
        let yaml = "type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:9000\n  insecure: true\n  access_key: a\n  secret_key: s\n";
        ObjstoreConfig::parse(yaml)
            .expect("parse")
            .build()
            .expect("build");
    }
}
