//! `--http.config`: Prometheus's web configuration file (exporter-toolkit format), which puts the
//! HTTP endpoints behind TLS and basic auth. Relative file paths are resolved against the
//! directory of the configuration file, as exporter-toolkit does.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// Error in the web configuration.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The file could not be read.
    #[error("web config {path}: {source}")]
    Read {
        /// The configuration file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML is malformed or names an unknown field.
    #[error("web config: {0}")]
    Parse(#[from] serde_yaml::Error),
    /// A field has a value we cannot honour.
    #[error("web config: {field}: {reason}")]
    Invalid {
        /// The field, as named in the YAML.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// The parsed web configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// TLS for the HTTP server; absent means plain HTTP.
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    /// HTTP server options.
    #[serde(default)]
    pub http_server_config: HttpServerConfig,
    /// Users and their bcrypt password hashes; empty means no authentication.
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, String>,
}

/// `tls_server_config` of the web configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// Server certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Server private key (PEM).
    pub key_file: PathBuf,
    /// One of Go's tls.ClientAuthType names.
    #[serde(default)]
    pub client_auth_type: Option<String>,
    /// CA bundle used to verify client certificates.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Oldest TLS version accepted: TLS12 or TLS13 (rustls has no older versions).
    #[serde(default)]
    pub min_version: Option<String>,
    /// Newest TLS version accepted.
    #[serde(default)]
    pub max_version: Option<String>,
    /// Accepted for compatibility: rustls chooses among modern suites only.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// Accepted for compatibility: rustls chooses among modern curves only.
    #[serde(default)]
    pub curve_preferences: Vec<String>,
    /// Accepted for compatibility; rustls always prefers the server's order.
    #[serde(default)]
    pub prefer_server_cipher_suites: Option<bool>,
}

/// `http_server_config` of the web configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Whether HTTP/2 is offered over TLS (default true).
    #[serde(default)]
    pub http2: Option<bool>,
    /// Headers added to every response.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl WebConfig {
    /// Reads and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text)?;
        if let Some(tls) = &mut config.tls_server_config {
            let dir = path.parent().unwrap_or(Path::new("."));
            tls.cert_file = dir.join(&tls.cert_file);
            tls.key_file = dir.join(&tls.key_file);
            if let Some(ca) = &mut tls.client_ca_file {
                *ca = dir.join(&*ca);
            }
        }
        Ok(config)
    }

    /// Parses and validates configuration text (paths are kept as written).
    pub fn parse(text: &str) -> Result<Self, WebConfigError> {
        let config: Self = if text.trim().is_empty() {
            Self::default()
        } else {
            serde_yaml::from_str(text)?
        };
        for (user, hash) in &config.basic_auth_users {
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(WebConfigError::Invalid {
                    field: "basic_auth_users",
                    reason: format!("user {user:?}: password is not a bcrypt hash"),
                });
            }
        }
        if let Some(tls) = &config.tls_server_config {
            tls.versions()?;
            tls.client_auth()?;
        }
        Ok(config)
    }

    /// Builds the rustls server configuration, if TLS is configured.
    pub fn rustls_config(&self) -> Result<Option<rustls::ServerConfig>, WebConfigError> {
        let Some(tls) = &self.tls_server_config else {
            return Ok(None);
        };
        let certs = load_certs(&tls.cert_file, "tls_server_config.cert_file")?;
        let key =
            PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| WebConfigError::Invalid {
                field: "tls_server_config.key_file",
                reason: format!("{}: {e}", tls.key_file.display()),
            })?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&tls.versions()?)
            .map_err(|e| WebConfigError::Invalid {
                field: "tls_server_config.min_version",
                reason: e.to_string(),
            })?;
        let builder = match tls.client_auth()? {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Verify { required } => {
                let ca_path = tls
                    .client_ca_file
                    .as_deref()
                    .ok_or(WebConfigError::Invalid {
                        field: "tls_server_config.client_ca_file",
                        reason: "required when client_auth_type verifies client certificates"
                            .into(),
                    })?;
                let mut roots = rustls::RootCertStore::empty();
                for cert in load_certs(ca_path, "tls_server_config.client_ca_file")? {
                    roots.add(cert).map_err(|e| WebConfigError::Invalid {
                        field: "tls_server_config.client_ca_file",
                        reason: e.to_string(),
                    })?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                );
                let verifier = if required {
                    verifier.build()
                } else {
                    verifier.allow_unauthenticated().build()
                }
                .map_err(|e| WebConfigError::Invalid {
                    field: "tls_server_config.client_ca_file",
                    reason: e.to_string(),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config =
            builder
                .with_single_cert(certs, key)
                .map_err(|e| WebConfigError::Invalid {
                    field: "tls_server_config.cert_file",
                    reason: e.to_string(),
                })?;
        config.alpn_protocols = if self.http_server_config.http2.unwrap_or(true) {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(Some(config))
    }

    /// The basic-auth checker, if users are configured.
    pub fn basic_auth(&self) -> Option<BasicAuth> {
        (!self.basic_auth_users.is_empty()).then(|| BasicAuth {
            users: Arc::new(self.basic_auth_users.clone()),
            verified: Arc::new(Mutex::new(HashSet::new())),
        })
    }
}

enum ClientAuth {
    None,
    Verify { required: bool },
}

impl TlsServerConfig {
    fn versions(&self) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, WebConfigError> {
        fn rank(field: &'static str, v: Option<&str>, default: u8) -> Result<u8, WebConfigError> {
            match v {
                None | Some("") => Ok(default),
                Some("TLS12") => Ok(12),
                Some("TLS13") => Ok(13),
                Some(other) => Err(WebConfigError::Invalid {
                    field,
                    reason: format!("{other:?} is not supported (TLS12 or TLS13)"),
                }),
            }
        }
        let min = rank(
            "tls_server_config.min_version",
            self.min_version.as_deref(),
            12,
        )?;
        let max = rank(
            "tls_server_config.max_version",
            self.max_version.as_deref(),
            13,
        )?;
        let versions: Vec<_> = [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();
        if versions.is_empty() {
            return Err(WebConfigError::Invalid {
                field: "tls_server_config.min_version",
                reason: "min_version is newer than max_version".into(),
            });
        }
        Ok(versions)
    }

    fn client_auth(&self) -> Result<ClientAuth, WebConfigError> {
        match self.client_auth_type.as_deref() {
            None | Some("") | Some("NoClientCert") => Ok(ClientAuth::None),
            Some("RequireAndVerifyClientCert") => Ok(ClientAuth::Verify { required: true }),
            Some("VerifyClientCertIfGiven") => Ok(ClientAuth::Verify { required: false }),
            Some(other) => Err(WebConfigError::Invalid {
                field: "tls_server_config.client_auth_type",
                reason: format!(
                    "{other:?} is not supported (NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
                ),
            }),
        }
    }
}

fn load_certs(
    path: &Path,
    field: &'static str,
) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| WebConfigError::Invalid {
            field,
            reason: format!("{}: {e}", path.display()),
        })?;
    if certs.is_empty() {
        return Err(WebConfigError::Invalid {
            field,
            reason: format!("{}: no certificate found", path.display()),
        });
    }
    Ok(certs)
}

/// Checks `Authorization: Basic` credentials against bcrypt hashes. Successful checks are
/// remembered, as exporter-toolkit does, because bcrypt is deliberately slow.
#[derive(Clone, Debug)]
pub struct BasicAuth {
    users: Arc<BTreeMap<String, String>>,
    verified: Arc<Mutex<HashSet<(String, String)>>>,
}

impl BasicAuth {
    /// Whether `user` with `password` may pass. Runs bcrypt on a cache miss: call it off the
    /// async threads.
    pub fn check(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user) else {
            // Spend the same time as for a known user, so user names cannot be probed by timing.
            let _ = bcrypt::verify(password, dummy_hash());
            return false;
        };
        let key = (user.to_string(), password.to_string());
        if let Ok(cache) = self.verified.lock()
            && cache.contains(&key)
        {
            return true;
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok && let Ok(mut cache) = self.verified.lock() {
            cache.insert(key);
        }
        ok
    }
}

/// A bcrypt hash at the default cost, made once, to check unknown users against.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| bcrypt::hash("rthanos", bcrypt::DEFAULT_COST).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_is_named() {
        let err =
            WebConfig::parse("tls_server_config:\n  cert_file: a\n  key_file: b\n  bogus: 1\n")
                .expect_err("must fail");
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = WebConfig::parse("basic_auth_users:\n  alice: plaintext\n").expect_err("hash");
        assert!(err.to_string().contains("basic_auth_users"), "{err}");
        let err = WebConfig::parse(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n",
        )
        .expect_err("version");
        assert!(err.to_string().contains("min_version"), "{err}");
    }

    #[test]
    fn basic_auth_checks_bcrypt() {
        let hash = bcrypt::hash("secret", 4).expect("hash");
        let config =
            WebConfig::parse(&format!("basic_auth_users:\n  alice: '{hash}'\n")).expect("parse");
        let auth = config.basic_auth().expect("auth on");
        assert!(auth.check("alice", "secret"));
        assert!(auth.check("alice", "secret"), "cached");
        assert!(!auth.check("alice", "wrong"));
        assert!(!auth.check("bob", "secret"));
    }

    #[test]
    fn empty_file_means_no_tls_no_auth() {
        let config = WebConfig::parse("").expect("parse");
        assert!(config.basic_auth().is_none());
        assert!(config.rustls_config().expect("ok").is_none());
    }
}
