//! `--prometheus.http-client(-file)`: Thanos's HTTP client configuration (basic auth, bearer
//! token, proxy, TLS) for reaching Prometheus. Unknown fields are errors naming the field.

use std::path::PathBuf;

use serde::Deserialize;

use crate::SidecarError;

/// The YAML document.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpClientConfig {
    #[serde(default)]
    basic_auth: Option<BasicAuth>,
    #[serde(default)]
    bearer_token: String,
    #[serde(default)]
    bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    proxy_url: String,
    #[serde(default)]
    tls_config: TlsConfig,
    /// Connection-pool tuning of Go's transport: accepted, reqwest's defaults apply.
    #[serde(default)]
    transport_config: Option<serde_yaml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BasicAuth {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsConfig {
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default)]
    cert_file: Option<PathBuf>,
    #[serde(default)]
    key_file: Option<PathBuf>,
    #[serde(default)]
    server_name: String,
    #[serde(default)]
    insecure_skip_verify: bool,
}

/// Credentials added to every request.
#[derive(Clone, Debug, Default)]
pub(crate) enum Auth {
    #[default]
    None,
    Basic(String, String),
    Bearer(String),
}

impl Auth {
    pub(crate) fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::None => request,
            Auth::Basic(user, password) => request.basic_auth(user, Some(password)),
            Auth::Bearer(token) => request.bearer_auth(token),
        }
    }
}

impl HttpClientConfig {
    /// Parses the YAML text; empty text is the default (no auth, no TLS settings).
    pub fn parse(text: &str) -> Result<Self, SidecarError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let de = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de)
            .map_err(|e| SidecarError::Config(format!("--prometheus.http-client: {e}")))
    }

    pub(crate) fn build(&self) -> Result<(reqwest::Client, Auth), SidecarError> {
        let read = |what: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| {
                SidecarError::Config(format!(
                    "--prometheus.http-client {what} {}: {e}",
                    path.display()
                ))
            })
        };
        let mut builder = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(std::time::Duration::from_secs(90));
        let tls = &self.tls_config;
        if let Some(ca) = &tls.ca_file {
            let pem = read("tls_config.ca_file", ca)?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                SidecarError::Config(format!("--prometheus.http-client tls_config.ca_file: {e}"))
            })? {
                builder = builder.add_root_certificate(cert);
            }
        }
        match (&tls.cert_file, &tls.key_file) {
            (Some(cert), Some(key)) => {
                let mut pem = read("tls_config.cert_file", cert)?;
                pem.extend(read("tls_config.key_file", key)?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    SidecarError::Config(format!("--prometheus.http-client tls_config: {e}"))
                })?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            _ => {
                return Err(SidecarError::Config(
                    "--prometheus.http-client: tls_config.cert_file and key_file go together"
                        .into(),
                ));
            }
        }
        if !tls.server_name.is_empty() {
            return Err(SidecarError::Config(
                "--prometheus.http-client: tls_config.server_name is not supported by rthanos; use a URL with that host name".into(),
            ));
        }
        if tls.insecure_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        if !self.proxy_url.is_empty() {
            let proxy = reqwest::Proxy::all(&self.proxy_url).map_err(|e| {
                SidecarError::Config(format!("--prometheus.http-client proxy_url: {e}"))
            })?;
            builder = builder.proxy(proxy);
        }
        let auth = if let Some(basic) = &self.basic_auth {
            let password = match &basic.password_file {
                Some(file) => String::from_utf8_lossy(&read("basic_auth.password_file", file)?)
                    .trim()
                    .to_string(),
                None => basic.password.clone(),
            };
            Auth::Basic(basic.username.clone(), password)
        } else if let Some(file) = &self.bearer_token_file {
            Auth::Bearer(
                String::from_utf8_lossy(&read("bearer_token_file", file)?)
                    .trim()
                    .to_string(),
            )
        } else if !self.bearer_token.is_empty() {
            Auth::Bearer(self.bearer_token.clone())
        } else {
            Auth::None
        };
        if self.transport_config.is_some() {
            tracing::debug!(
                "--prometheus.http-client transport_config: reqwest's pool defaults apply"
            );
        }
        let client = builder
            .build()
            .map_err(|e| SidecarError::Config(format!("--prometheus.http-client: {e}")))?;
        Ok((client, auth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thanos_fields_parse_and_unknown_ones_are_named() {
        let config = HttpClientConfig::parse(
            "basic_auth:\n  username: u\n  password: p\ntls_config:\n  insecure_skip_verify: true\ntransport_config:\n  max_idle_conns: 10\n",
        )
        .expect("valid");
        let (_, auth) = config.build().expect("builds");
        assert!(matches!(auth, Auth::Basic(u, p) if u == "u" && p == "p"));
        let err = HttpClientConfig::parse("tls_config:\n  ca: x\n").expect_err("unknown");
        assert!(err.to_string().contains("tls_config"), "{err}");
        assert!(HttpClientConfig::parse("").is_ok());
    }
}
