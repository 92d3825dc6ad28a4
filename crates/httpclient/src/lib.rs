//! Thanos's HTTP client configuration (basic auth, bearer token, proxy, TLS): the sidecar's
//! `--prometheus.http-client(-file)`, and the `http_config` of the ruler's
//! `--query.config` and `--alertmanagers.config`. Unknown fields are errors naming the field;
//! every error names the flag it came from.

use std::path::PathBuf;

use serde::Deserialize;

/// A configuration that does not parse or cannot be built into a client.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpClientError(String);

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
pub enum Auth {
    /// None.
    #[default]
    None,
    /// Basic auth: user and password.
    Basic(String, String),
    /// A bearer token.
    Bearer(String),
}

impl Auth {
    /// Adds the credentials to `request`.
    pub fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::None => request,
            Auth::Basic(user, password) => request.basic_auth(user, Some(password)),
            Auth::Bearer(token) => request.bearer_auth(token),
        }
    }
}

impl HttpClientConfig {
    /// Parses the YAML text of flag `flag` (named in errors); empty text is the default (no
    /// auth, no TLS settings).
    ///
    /// # Errors
    /// The text is not valid YAML or has unknown fields.
    pub fn parse(flag: &str, text: &str) -> Result<Self, HttpClientError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let de = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| HttpClientError(format!("{flag}: {e}")))
    }

    /// The client and the credentials for its requests; `flag` is named in errors.
    ///
    /// # Errors
    /// A file it names cannot be read, or a certificate or proxy URL is invalid.
    pub fn build(&self, flag: &str) -> Result<(reqwest::Client, Auth), HttpClientError> {
        let config = |message: String| HttpClientError(format!("{flag}{message}"));
        let read = |what: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| config(format!(" {what} {}: {e}", path.display())))
        };
        let mut builder = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(std::time::Duration::from_secs(90));
        let tls = &self.tls_config;
        if let Some(ca) = &tls.ca_file {
            let pem = read("tls_config.ca_file", ca)?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| config(format!(" tls_config.ca_file: {e}")))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        match (&tls.cert_file, &tls.key_file) {
            (Some(cert), Some(key)) => {
                let mut pem = read("tls_config.cert_file", cert)?;
                pem.extend(read("tls_config.key_file", key)?);
                let identity = reqwest::Identity::from_pem(&pem)
                    .map_err(|e| config(format!(" tls_config: {e}")))?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            _ => {
                return Err(config(
                    ": tls_config.cert_file and key_file go together".into(),
                ));
            }
        }
        if !tls.server_name.is_empty() {
            return Err(config(
                ": tls_config.server_name is not supported by rthanos; use a URL with that host name".into(),
            ));
        }
        if tls.insecure_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        if !self.proxy_url.is_empty() {
            let proxy = reqwest::Proxy::all(&self.proxy_url)
                .map_err(|e| config(format!(" proxy_url: {e}")))?;
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
            tracing::debug!(flag, "transport_config: reqwest's pool defaults apply");
        }
        let client = builder.build().map_err(|e| config(format!(": {e}")))?;
        Ok((client, auth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thanos_fields_parse_and_unknown_ones_are_named() {
        let config = HttpClientConfig::parse(
            "--x",
            "basic_auth:\n  username: u\n  password: p\ntls_config:\n  insecure_skip_verify: true\ntransport_config:\n  max_idle_conns: 10\n",
        )
        .expect("valid");
        let (_, auth) = config.build("--x").expect("builds");
        assert!(matches!(auth, Auth::Basic(u, p) if u == "u" && p == "p"));
        let err = HttpClientConfig::parse("--x", "tls_config:\n  ca: x\n").expect_err("unknown");
        assert!(err.to_string().contains("tls_config"), "{err}");
        assert!(HttpClientConfig::parse("--x", "").is_ok());
    }
}
