//! S3 and S3-compatible stores (MinIO, Ceph, moto…). `endpoint` is `host[:port]` without a
//! scheme, as in Thanos; `insecure: true` means plain HTTP. With no keys, credentials come from
//! the standard AWS chain (environment, web identity, ECS/EKS, instance metadata).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use serde::Deserialize;

use super::http::{HttpConfig, retry_config};
use super::{required, unsupported};
use crate::ConfigError;

/// Thanos's S3 `config`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// `host[:port]` of the S3 API, e.g. `s3.amazonaws.com` or `minio:9000`.
    pub endpoint: String,
    /// Region; `us-east-1` when empty.
    pub region: String,
    /// Use the AWS SDK's credential chain (the same chain as when no keys are given).
    pub aws_sdk_auth: bool,
    /// Static access key.
    pub access_key: String,
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// AWS signature version 2 (not supported: version 4 is used).
    pub signature_version2: bool,
    /// Static secret key.
    pub secret_key: String,
    /// Session token for temporary credentials.
    pub session_token: String,
    /// Metadata put on every object (not supported).
    pub put_user_metadata: BTreeMap<String, String>,
    /// HTTP client settings.
    pub http_config: HttpConfig,
    /// Request tracing (not supported).
    pub trace: TraceConfig,
    /// `""`/`v2`, or `v1` (not supported).
    pub list_objects_version: String,
    /// `auto`, `virtual-hosted` or `path`.
    pub bucket_lookup_type: String,
    /// Accepted: object_store sends no Content-MD5.
    pub send_content_md5: bool,
    /// Upload every object in a single request.
    pub disable_multipart: bool,
    /// Part size of multipart uploads, in bytes.
    pub part_size: u64,
    /// Server-side encryption.
    pub sse_config: SseConfig,
    /// STS endpoint for web-identity credentials.
    pub sts_endpoint: String,
    /// Accepted; dual-stack endpoints are not used.
    pub disable_dualstack: bool,
    /// Retries per request (0 keeps the default).
    pub max_retries: u32,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            endpoint: String::new(),
            region: String::new(),
            aws_sdk_auth: false,
            access_key: String::new(),
            insecure: false,
            signature_version2: false,
            secret_key: String::new(),
            session_token: String::new(),
            put_user_metadata: BTreeMap::new(),
            http_config: HttpConfig::default(),
            trace: TraceConfig::default(),
            list_objects_version: String::new(),
            bucket_lookup_type: "auto".into(),
            send_content_md5: true,
            disable_multipart: false,
            part_size: 64 * 1024 * 1024,
            sse_config: SseConfig::default(),
            sts_endpoint: String::new(),
            disable_dualstack: false,
            max_retries: 0,
        }
    }
}

/// Thanos's S3 `trace`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceConfig {
    /// Log every request (not supported).
    pub enable: bool,
}

/// Thanos's S3 `sse_config`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SseConfig {
    /// `SSE-S3`, `SSE-KMS` or `SSE-C`; empty for none.
    #[serde(rename = "type")]
    pub kind: String,
    /// KMS key for `SSE-KMS`.
    pub kms_key_id: String,
    /// KMS encryption context (not supported).
    pub kms_encryption_context: BTreeMap<String, String>,
    /// File holding the 32-byte customer key for `SSE-C`.
    pub encryption_key: String,
}

impl S3Config {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.bucket.is_empty() {
            return Err(required("config.bucket"));
        }
        if self.endpoint.is_empty() {
            return Err(required("config.endpoint"));
        }
        if self.endpoint.contains("://") || self.endpoint.contains('/') {
            return Err(unsupported(
                "config.endpoint",
                "must be host[:port] without scheme or path; set insecure: true for plain HTTP",
            ));
        }
        if self.access_key.is_empty() != self.secret_key.is_empty() {
            return Err(unsupported(
                "config.access_key",
                "access_key and secret_key must be given together",
            ));
        }
        if self.aws_sdk_auth && !self.access_key.is_empty() {
            return Err(unsupported(
                "config.aws_sdk_auth",
                "cannot be combined with access_key",
            ));
        }
        if self.signature_version2 {
            return Err(unsupported(
                "config.signature_version2",
                "signature version 2 is not supported by rthanos (version 4 is used)",
            ));
        }
        if !self.put_user_metadata.is_empty() {
            return Err(unsupported(
                "config.put_user_metadata",
                "object metadata is not supported by rthanos",
            ));
        }
        if self.trace.enable {
            return Err(unsupported(
                "config.trace.enable",
                "not supported by rthanos",
            ));
        }
        match self.list_objects_version.as_str() {
            "" | "v2" => {}
            "v1" => {
                return Err(unsupported(
                    "config.list_objects_version",
                    "v1 listing is not supported by rthanos (v2 is used)",
                ));
            }
            other => {
                return Err(unsupported(
                    "config.list_objects_version",
                    &format!("{other:?} is not one of v1, v2"),
                ));
            }
        }
        match self.bucket_lookup_type.as_str() {
            "auto" | "path" | "virtual-hosted" => {}
            other => {
                return Err(unsupported(
                    "config.bucket_lookup_type",
                    &format!("{other:?} is not one of auto, virtual-hosted, path"),
                ));
            }
        }
        let sse = &self.sse_config;
        match sse.kind.as_str() {
            "" | "SSE-S3" => {}
            "SSE-KMS" => {
                if sse.kms_key_id.is_empty() {
                    return Err(required("config.sse_config.kms_key_id"));
                }
                if !sse.kms_encryption_context.is_empty() {
                    return Err(unsupported(
                        "config.sse_config.kms_encryption_context",
                        "not supported by rthanos",
                    ));
                }
            }
            "SSE-C" => {
                if sse.encryption_key.is_empty() {
                    return Err(required("config.sse_config.encryption_key"));
                }
            }
            other => {
                return Err(unsupported(
                    "config.sse_config.type",
                    &format!(
                        "Unsupported type {other:?} was provided. Supported types are SSE-S3, SSE-KMS, SSE-C"
                    ),
                ));
            }
        }
        self.http_config.validate()
    }

    pub(crate) fn build(&self) -> Result<Arc<dyn ObjectStore>, ConfigError> {
        let scheme = if self.insecure { "http" } else { "https" };
        let virtual_hosted = self.bucket_lookup_type == "virtual-hosted";
        let endpoint = if virtual_hosted {
            format!("{scheme}://{}.{}", self.bucket, self.endpoint)
        } else {
            format!("{scheme}://{}", self.endpoint)
        };
        // The environment chain first, so that static keys from the file take precedence.
        let mut builder = AmazonS3Builder::from_env()
            .with_client_options(self.http_config.client_options()?)
            .with_retry(retry_config(self.max_retries))
            .with_bucket_name(&self.bucket)
            .with_endpoint(endpoint)
            .with_allow_http(self.insecure)
            .with_virtual_hosted_style_request(virtual_hosted)
            .with_region(if self.region.is_empty() {
                "us-east-1"
            } else {
                &self.region
            });
        if !self.access_key.is_empty() {
            builder = builder
                .with_access_key_id(&self.access_key)
                .with_secret_access_key(&self.secret_key);
            if !self.session_token.is_empty() {
                builder = builder.with_token(&self.session_token);
            }
        }
        if !self.sts_endpoint.is_empty() {
            builder = with_key(builder, "aws_endpoint_url_sts", &self.sts_endpoint)?;
        }
        let sse = &self.sse_config;
        builder = match sse.kind.as_str() {
            "SSE-S3" => with_key(builder, "aws_server_side_encryption", "AES256")?,
            "SSE-KMS" => builder.with_sse_kms_encryption(&sse.kms_key_id),
            "SSE-C" => {
                let key = std::fs::read(&sse.encryption_key).map_err(|e| ConfigError::Invalid {
                    field: "config.sse_config.encryption_key".into(),
                    reason: format!("{}: {e}", sse.encryption_key),
                })?;
                builder.with_ssec_encryption(base64::engine::general_purpose::STANDARD.encode(key))
            }
            _ => builder,
        };
        let store = builder.build().map_err(|e| ConfigError::Build {
            provider: "S3",
            message: e.to_string(),
        })?;
        Ok(Arc::new(store))
    }
}

fn with_key(
    builder: AmazonS3Builder,
    key: &str,
    value: &str,
) -> Result<AmazonS3Builder, ConfigError> {
    let key: AmazonS3ConfigKey =
        key.parse()
            .map_err(|e: object_store::Error| ConfigError::Build {
                provider: "S3",
                message: e.to_string(),
            })?;
    Ok(builder.with_config(key, value))
}
