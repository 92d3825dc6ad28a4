//! One module per provider, each with the same two parts: the configuration struct as Thanos's
//! YAML names its fields (with `validate`), and `build`, which makes the object_store backend.

pub mod azure;
pub mod filesystem;
pub mod gcs;
mod http;
pub mod s3;

pub use http::{HttpConfig, TlsConfig};

use crate::ConfigError;

/// The error for a field that is set to something we cannot honour.
pub(crate) fn unsupported(field: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

/// The error for a required field that is empty.
pub(crate) fn required(field: &str) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        reason: "is required".to_string(),
    }
}
