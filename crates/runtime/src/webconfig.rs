//! `--http.config`: Prometheus's web configuration file (exporter-toolkit format), which puts the
//! HTTP endpoints behind TLS and basic auth. Relative file paths are resolved against the
//! directory of the configuration file, as exporter-toolkit does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
        (!self.basic_auth_users.is_empty()).then(|| BasicAuth::new(self.basic_auth_users.clone()))
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

/// Checks `Authorization: Basic` credentials against bcrypt hashes, which are deliberately
/// slow, without letting clients turn that into a way to burn CPU or to find user names:
/// - each distinct credential is verified once and its outcome, success or failure, cached
///   (up to [`BasicAuth::CACHE_CAPACITY`] credentials, by a SHA-256 digest, never in clear);
/// - verifications run one at a time, off the async threads, however many clients try;
/// - an unknown user is verified against a hash of the same cost as the configured users'.
#[derive(Clone)]
pub struct BasicAuth {
    users: Arc<BTreeMap<String, String>>,
    outcomes: moka::sync::Cache<[u8; 32], bool>,
    verifying: Arc<tokio::sync::Semaphore>,
    dummy_hash: Arc<std::sync::OnceLock<String>>,
    /// Verifications run, and the most that ran at once (for tests of the above).
    verifications: Arc<std::sync::atomic::AtomicU64>,
    running: Arc<std::sync::atomic::AtomicI64>,
    most_running: Arc<std::sync::atomic::AtomicI64>,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// How many credentials' outcomes are remembered.
    pub const CACHE_CAPACITY: u64 = 4096;

    fn new(users: BTreeMap<String, String>) -> Self {
        Self {
            users: Arc::new(users),
            outcomes: moka::sync::Cache::new(Self::CACHE_CAPACITY),
            verifying: Arc::new(tokio::sync::Semaphore::new(1)),
            dummy_hash: Arc::new(std::sync::OnceLock::new()),
            verifications: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            running: Arc::new(std::sync::atomic::AtomicI64::new(0)),
            most_running: Arc::new(std::sync::atomic::AtomicI64::new(0)),
        }
    }

    /// Whether `user` with `password` may pass.
    pub async fn allows(&self, user: &str, password: &str) -> bool {
        let key = self.key(user, password);
        if let Some(ok) = self.outcomes.get(&key) {
            return ok;
        }
        let Ok(_turn) = self.verifying.acquire().await else {
            return false;
        };
        // Another request may have verified the same credential while this one waited.
        if let Some(ok) = self.outcomes.get(&key) {
            return ok;
        }
        let auth = self.clone();
        let (user, password) = (user.to_string(), password.to_string());
        let ok = tokio::task::spawn_blocking(move || auth.verify(&user, &password))
            .await
            .unwrap_or(false);
        self.outcomes.insert(key, ok);
        ok
    }

    /// bcrypt on a credential, against the dummy hash for an unknown user.
    fn verify(&self, user: &str, password: &str) -> bool {
        use std::sync::atomic::Ordering;
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_running.fetch_max(running, Ordering::SeqCst);
        let ok = match self.users.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(password, self.dummy_hash());
                false
            }
        };
        self.running.fetch_sub(1, Ordering::SeqCst);
        ok
    }

    /// A hash to check unknown users against, at the highest cost among the users' hashes
    /// (made once, when first needed), so that an unknown user costs what a known one does.
    fn dummy_hash(&self) -> &str {
        self.dummy_hash.get_or_init(|| {
            let cost = self
                .users
                .values()
                .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
                .map(|p| p.get_cost())
                .max()
                .unwrap_or(bcrypt::DEFAULT_COST);
            bcrypt::hash("rthanos: no such user", cost).unwrap_or_default()
        })
    }

    /// The cache key of a credential: a digest of the user, the password and the user's
    /// hash (so a changed configuration never meets an old outcome).
    fn key(&self, user: &str, password: &str) -> [u8; 32] {
        let hash = self.users.get(user).map_or("", String::as_str);
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [user, password, hash] {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part.as_bytes());
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(context.finish().as_ref());
        key
    }
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

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    }

    fn alice(cost: u32) -> BasicAuth {
        let hash = bcrypt::hash("secret", cost).expect("hash");
        let config =
            WebConfig::parse(&format!("basic_auth_users:\n  alice: '{hash}'\n")).expect("parse");
        config.basic_auth().expect("auth on")
    }

    fn verifications(auth: &BasicAuth) -> u64 {
        auth.verifications
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    #[test]
    fn basic_auth_checks_bcrypt() {
        let auth = alice(4);
        runtime().block_on(async {
            assert!(auth.allows("alice", "secret").await);
            assert!(!auth.allows("alice", "wrong").await);
            assert!(!auth.allows("bob", "secret").await);
            assert!(!auth.allows("", "").await);
        });
    }

    #[test]
    fn each_credential_is_verified_once_success_or_failure() {
        let auth = alice(4);
        runtime().block_on(async {
            for _ in 0..5 {
                assert!(auth.allows("alice", "secret").await);
                assert!(!auth.allows("alice", "wrong").await);
                assert!(!auth.allows("mallory", "guess").await);
            }
        });
        assert_eq!(verifications(&auth), 3);
    }

    #[test]
    fn verifications_run_one_at_a_time() {
        let auth = alice(6);
        runtime().block_on(async {
            // Distinct wrong passwords from many clients at once.
            let tasks: Vec<_> = (0..16)
                .map(|i| {
                    let auth = auth.clone();
                    tokio::spawn(async move { auth.allows("alice", &format!("guess {i}")).await })
                })
                .collect();
            for task in tasks {
                assert!(!task.await.expect("task"));
            }
        });
        assert_eq!(verifications(&auth), 16);
        assert_eq!(
            auth.most_running.load(std::sync::atomic::Ordering::SeqCst),
            1
        );
    }

    #[test]
    fn an_unknown_user_costs_what_a_known_one_does() {
        for cost in [4, 5] {
            let auth = alice(cost);
            let dummy: bcrypt::HashParts = auth.dummy_hash().parse().expect("a bcrypt hash");
            assert_eq!(dummy.get_cost(), cost);
        }
    }

    #[test]
    fn empty_file_means_no_tls_no_auth() {
        let config = WebConfig::parse("").expect("parse");
        assert!(config.basic_auth().is_none());
        assert!(config.rustls_config().expect("ok").is_none());
    }
}
