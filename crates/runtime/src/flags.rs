//! Flags that several components share, named and defaulted as Thanos names them, grouped so each
//! component flattens in the groups it has.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::Args;

use crate::RuntimeError;
use crate::logging::{LogFormat, LogLevel};
use rthanos_model::PromDuration;

/// Logging and tracing flags, common to every component.
#[derive(Args, Clone, Debug)]
pub struct LogFlags {
    /// Log filtering level.
    #[arg(
        id = "log.level",
        long = "log.level",
        value_enum,
        default_value = "info"
    )]
    pub level: LogLevel,
    /// Log format to use.
    #[arg(
        id = "log.format",
        long = "log.format",
        value_enum,
        default_value = "logfmt"
    )]
    pub format: LogFormat,
}

/// The HTTP server flags.
#[derive(Args, Clone, Debug)]
pub struct HttpFlags {
    /// Listen host:port for HTTP endpoints.
    #[arg(
        id = "http-address",
        long = "http-address",
        default_value = "0.0.0.0:10902",
        value_name = "\"<host>:<port>\""
    )]
    pub address: String,
    /// Time to wait after an interrupt received for HTTP Server.
    #[arg(
        id = "http-grace-period",
        long = "http-grace-period",
        default_value = "2m",
        value_name = "DURATION"
    )]
    pub grace_period: PromDuration,
    /// [EXPERIMENTAL] Path to the configuration file that can enable TLS or authentication for
    /// all HTTP endpoints.
    #[arg(
        id = "http.config",
        long = "http.config",
        default_value = "",
        value_name = "FILE"
    )]
    pub config: String,
}

/// The gRPC server flags of components that serve the StoreAPI.
#[derive(Args, Clone, Debug)]
pub struct GrpcServerFlags {
    /// Listen ip:port address for gRPC endpoints (StoreAPI). Make sure this address is routable
    /// from other components.
    #[arg(
        id = "grpc-address",
        long = "grpc-address",
        default_value = "0.0.0.0:10901",
        value_name = "\"<host>:<port>\""
    )]
    pub address: String,
    /// Time to wait after an interrupt received for GRPC Server.
    #[arg(
        id = "grpc-grace-period",
        long = "grpc-grace-period",
        default_value = "2m",
        value_name = "DURATION"
    )]
    pub grace_period: PromDuration,
    /// TLS Certificate for gRPC server, leave blank to disable TLS.
    #[arg(
        id = "grpc-server-tls-cert",
        long = "grpc-server-tls-cert",
        default_value = "",
        value_name = "PATH"
    )]
    pub tls_cert: String,
    /// TLS Key for the gRPC server, leave blank to disable TLS.
    #[arg(
        id = "grpc-server-tls-key",
        long = "grpc-server-tls-key",
        default_value = "",
        value_name = "PATH"
    )]
    pub tls_key: String,
    /// TLS CA to verify clients against. If no client CA is specified, there is no client
    /// verification on server side (tls.NoClientCert).
    #[arg(
        id = "grpc-server-tls-client-ca",
        long = "grpc-server-tls-client-ca",
        default_value = "",
        value_name = "PATH"
    )]
    pub tls_client_ca: String,
    /// The grpc server max connection age. This controls how often to re-establish connections
    /// and redo TLS handshakes.
    #[arg(
        id = "grpc-server-max-connection-age",
        long = "grpc-server-max-connection-age",
        default_value = "60m",
        value_name = "DURATION"
    )]
    pub max_connection_age: PromDuration,
}

impl GrpcServerFlags {
    /// The TLS material named by the flags.
    pub fn tls(&self) -> crate::grpc::GrpcTls {
        let path = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
        crate::grpc::GrpcTls {
            cert: path(&self.tls_cert),
            key: path(&self.tls_key),
            client_ca: path(&self.tls_client_ca),
        }
    }
}

/// The object storage flags: the `objstore.yml` content, from a file or inline.
#[derive(Args, Clone, Debug, Default)]
pub struct ObjstoreFlags {
    /// Path to YAML file that contains object store configuration. See format details:
    /// https://thanos.io/tip/thanos/storage.md/#configuration
    #[arg(
        id = "objstore.config-file",
        long = "objstore.config-file",
        value_name = "FILE"
    )]
    pub config_file: Option<PathBuf>,
    /// Alternative to 'objstore.config-file' flag (mutually exclusive). Content of YAML file that
    /// contains object store configuration.
    #[arg(
        id = "objstore.config",
        long = "objstore.config",
        value_name = "CONTENT",
        conflicts_with = "objstore.config-file"
    )]
    pub config: Option<String>,
}

impl ObjstoreFlags {
    /// The configuration text, or `None` when neither flag is set (or both are empty).
    pub fn content(&self) -> Result<Option<String>, RuntimeError> {
        path_or_content(
            "objstore.config",
            self.config_file.as_deref(),
            self.config.as_deref(),
        )?
        .map(|text| expand_env("objstore.config", &text))
        .transpose()
    }
}

/// Replaces every `$(NAME)` in `text` with the environment variable `NAME`, as Thanos's
/// path-or-content flags with environment substitution do (`--objstore.config`,
/// `--remote-write.config`, …); a variable that is not set is an error naming it.
///
/// # Errors
/// A referenced variable is not set.
pub fn expand_env(flag: &str, text: &str) -> Result<String, RuntimeError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("$(") {
        let after = &rest[at + 2..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if name_len == 0 || !after[name_len..].starts_with(')') {
            // Not a reference: copied as it is.
            out.push_str(&rest[..at + 2]);
            rest = after;
            continue;
        }
        let name = &after[..name_len];
        let value = std::env::var(name).map_err(|_| {
            RuntimeError::Config(format!(
                "--{flag}: found reference to unset environment variable {name:?}"
            ))
        })?;
        out.push_str(&rest[..at]);
        out.push_str(&value);
        rest = &after[name_len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads a Thanos "path or content" flag pair: `--X-file` names a file, `--X` holds the text.
pub fn path_or_content(
    flag: &str,
    file: Option<&std::path::Path>,
    content: Option<&str>,
) -> Result<Option<String>, RuntimeError> {
    if let Some(text) = content.filter(|c| !c.trim().is_empty()) {
        return Ok(Some(text.to_string()));
    }
    match file.filter(|p| !p.as_os_str().is_empty()) {
        Some(path) => std::fs::read_to_string(path)
            .map(Some)
            .map_err(|e| RuntimeError::Config(format!("--{flag}-file {}: {e}", path.display()))),
        None => Ok(None),
    }
}

/// Resolves a listen address as Go does: `:10901` and `[::]:10901` bind every interface, a host
/// name is looked up.
pub fn listen_addr(flag: &str, value: &str) -> Result<SocketAddr, RuntimeError> {
    let bad = |why: &str| RuntimeError::Config(format!("--{flag}={value:?}: {why}"));
    let full = if value.starts_with(':') {
        format!("0.0.0.0{value}")
    } else {
        value.to_string()
    };
    full.to_socket_addrs()
        .map_err(|e| bad(&e.to_string()))?
        .next()
        .ok_or_else(|| bad("no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_references_are_expanded_as_thanos_expands_them() {
        // PATH is set in every test environment; the other name in none.
        let path = std::env::var("PATH").expect("PATH");
        assert_eq!(
            expand_env("x", "a: $(PATH)\nb: $(PATH)").expect("set"),
            format!("a: {path}\nb: {path}")
        );
        assert_eq!(
            expand_env("x", "cost: $5 $( $(1x ${PATH}").expect("no references"),
            "cost: $5 $( $(1x ${PATH}"
        );
        let err = expand_env("remote-write.config", "k: $(RTHANOS_SURELY_UNSET_VARIABLE)")
            .expect_err("unset");
        assert!(
            err.to_string()
                .contains("unset environment variable \"RTHANOS_SURELY_UNSET_VARIABLE\""),
            "{err}"
        );
    }

    #[test]
    fn listen_addresses_like_go() {
        assert_eq!(
            listen_addr("a", ":10901").expect("ok").to_string(),
            "0.0.0.0:10901"
        );
        assert_eq!(
            listen_addr("a", "127.0.0.1:1").expect("ok").to_string(),
            "127.0.0.1:1"
        );
        assert_eq!(
            listen_addr("a", "[::]:2").expect("ok").to_string(),
            "[::]:2"
        );
        let err = listen_addr("grpc-address", "nope").expect_err("no port");
        assert!(err.to_string().contains("--grpc-address"), "{err}");
    }

    #[test]
    fn inline_content_wins_and_files_are_read() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("objstore.yml");
        std::fs::write(&file, "type: FILESYSTEM\n").expect("write");
        let got = path_or_content("objstore.config", Some(&file), None).expect("read");
        assert_eq!(got.as_deref(), Some("type: FILESYSTEM\n"));
        let got = path_or_content("objstore.config", None, Some("type: S3")).expect("inline");
        assert_eq!(got.as_deref(), Some("type: S3"));
        assert_eq!(
            path_or_content("objstore.config", None, Some("  ")).expect("none"),
            None
        );
        let missing = dir.path().join("missing.yml");
        assert!(path_or_content("objstore.config", Some(&missing), None).is_err());
    }
}
