//! `http_config` and `tls_config`, shared by the cloud providers, mapped onto object_store's
//! client options. Fields that only tune Go's transport are accepted and have no effect here.

use object_store::{Certificate, ClientOptions};
use rthanos_model::PromDuration;
use serde::Deserialize;

use super::unsupported;
use crate::ConfigError;

/// Thanos's `http_config`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// How long an idle connection is kept in the pool.
    pub idle_conn_timeout: PromDuration,
    /// How long to wait for response headers; here the longest pause while reading a response.
    pub response_header_timeout: PromDuration,
    /// Skip verification of the server's certificate.
    pub insecure_skip_verify: bool,
    /// Accepted; the TLS handshake is bounded by the connect timeout.
    pub tls_handshake_timeout: PromDuration,
    /// Accepted; not used by this client.
    pub expect_continue_timeout: PromDuration,
    /// Accepted; the pool is bounded per host.
    pub max_idle_conns: u64,
    /// Idle connections kept per host.
    pub max_idle_conns_per_host: u64,
    /// Accepted; connections are not capped per host.
    pub max_conns_per_host: u64,
    /// Accepted; HTTP/2 is negotiated when the server offers it.
    pub force_attempt_http2: bool,
    /// Accepted; responses are not compressed by object stores.
    pub disable_compression: bool,
    /// TLS settings.
    pub tls_config: TlsConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let secs = |s| PromDuration::new(std::time::Duration::from_secs(s));
        Self {
            idle_conn_timeout: secs(90),
            response_header_timeout: secs(120),
            insecure_skip_verify: false,
            tls_handshake_timeout: secs(10),
            expect_continue_timeout: secs(1),
            max_idle_conns: 100,
            max_idle_conns_per_host: 100,
            max_conns_per_host: 0,
            force_attempt_http2: false,
            disable_compression: false,
            tls_config: TlsConfig::default(),
        }
    }
}

/// Thanos's `tls_config`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// CA bundle that server certificates are verified against.
    pub ca_file: String,
    /// Client certificate (not supported).
    pub cert_file: String,
    /// Client key (not supported).
    pub key_file: String,
    /// Server name override (not supported).
    pub server_name: String,
    /// Skip verification of the server's certificate.
    pub insecure_skip_verify: bool,
    /// Add `ca_file` to the system roots instead of replacing them.
    pub trust_root_ca: bool,
}

impl HttpConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let tls = &self.tls_config;
        if !tls.cert_file.is_empty() || !tls.key_file.is_empty() {
            return Err(unsupported(
                "config.http_config.tls_config.cert_file",
                "client certificates for object storage are not supported by rthanos",
            ));
        }
        if !tls.server_name.is_empty() {
            return Err(unsupported(
                "config.http_config.tls_config.server_name",
                "overriding the TLS server name is not supported by rthanos",
            ));
        }
        Ok(())
    }

    /// The object_store client options for these settings.
    pub(crate) fn client_options(&self) -> Result<ClientOptions, ConfigError> {
        let mut options = ClientOptions::new()
            // A whole-request timeout would cut off large downloads (chunk files are up to
            // 512MiB): bound connecting and each pause while reading instead.
            .with_timeout_disabled()
            .with_connect_timeout(std::time::Duration::from_secs(10))
            .with_pool_idle_timeout(self.idle_conn_timeout.as_std())
            .with_pool_max_idle_per_host(
                usize::try_from(self.max_idle_conns_per_host).unwrap_or(usize::MAX),
            )
            .with_allow_invalid_certificates(
                self.insecure_skip_verify || self.tls_config.insecure_skip_verify,
            );
        if !self.response_header_timeout.is_zero() {
            options = options.with_read_timeout(self.response_header_timeout.as_std());
        }
        if !self.tls_config.ca_file.is_empty() {
            let field = "config.http_config.tls_config.ca_file";
            let pem =
                std::fs::read(&self.tls_config.ca_file).map_err(|e| ConfigError::Invalid {
                    field: field.into(),
                    reason: format!("{}: {e}", self.tls_config.ca_file),
                })?;
            let certs = Certificate::from_pem_bundle(&pem).map_err(|e| ConfigError::Invalid {
                field: field.into(),
                reason: format!("{}: {e}", self.tls_config.ca_file),
            })?;
            for cert in certs {
                options = options.with_root_certificate(cert);
            }
            if !self.tls_config.trust_root_ca {
                options = options.with_no_system_certificates(true);
            }
        }
        Ok(options)
    }
}

/// The retry policy: object_store's exponential backoff, with Thanos's `max_retries` when set.
pub(crate) fn retry_config(max_retries: u32) -> object_store::RetryConfig {
    let mut retry = object_store::RetryConfig::default();
    if max_retries > 0 {
        retry.max_retries = max_retries as usize;
    }
    retry
}
