//! The `remote_write` section of a Prometheus configuration, as Thanos's
//! `--remote-write.config` takes it: the fields of Prometheus 2.42's `RemoteWriteConfig`,
//! with its defaults and its checks (reserved headers, one way of authorising). Fields that
//! need what rthanos does not have (`sigv4`, `oauth2`, `azuread`) are refused by name, as
//! are unknown fields.

use std::collections::BTreeMap;
use std::time::Duration;

use md5::{Digest, Md5};
use rthanos_httpclient::{Auth, HttpClientConfig};
use rthanos_model::PromDuration;
use rthanos_model::relabel::{Relabel, RuleConfig};
use serde::Deserialize;

/// A configuration that does not hold; the text names the field.
#[derive(Debug, thiserror::Error)]
#[error("remote write config: {0}")]
pub struct ConfigError(String);

/// Headers Prometheus sets itself or that would break the protocol (`reservedHeaders` in
/// Prometheus 2.42's `config/config.go`).
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
];

/// The queue's tuning, with Prometheus 2.42's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// Samples read ahead of sending (Prometheus: 2500 per shard); at least one request's.
    pub capacity: usize,
    /// Most shards (200). rthanos sends from one shard per target, in WAL order.
    pub max_shards: usize,
    /// Fewest shards (1).
    pub min_shards: usize,
    /// Samples per request at most (500).
    pub max_samples_per_send: usize,
    /// How long a batch that is not full waits for more samples (5s).
    pub batch_send_deadline: Duration,
    /// First retry delay (30ms), doubled on each retry up to `max_backoff` (5s).
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Whether 429 Too Many Requests is retried (false in 2.42) or the batch dropped.
    pub retry_on_http_429: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 2500,
            max_shards: 200,
            min_shards: 1,
            max_samples_per_send: 500,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            retry_on_http_429: false,
        }
    }
}

/// One remote-write target.
#[derive(Debug)]
pub struct RemoteWriteConfig {
    /// Where samples are POSTed.
    pub url: reqwest::Url,
    /// The queue's name: `name`, or a hash of the configuration (Prometheus's 6 hex digits).
    pub name: String,
    /// Timeout of one request (30s).
    pub remote_timeout: Duration,
    /// Headers added to every request.
    pub headers: BTreeMap<String, String>,
    /// Applied to each series (after the external labels) before it is sent.
    pub write_relabel: Relabel,
    /// The queue's tuning.
    pub queue: QueueConfig,
    /// The HTTP client (TLS, proxy).
    pub client: reqwest::Client,
    /// Credentials of every request.
    pub auth: Auth,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    remote_write: Vec<serde_yaml::Mapping>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueYaml {
    capacity: Option<usize>,
    max_shards: Option<usize>,
    min_shards: Option<usize>,
    max_samples_per_send: Option<usize>,
    batch_send_deadline: Option<PromDuration>,
    min_backoff: Option<PromDuration>,
    max_backoff: Option<PromDuration>,
    retry_on_http_429: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Authorization {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    credentials: Option<String>,
    #[serde(default)]
    credentials_file: Option<String>,
}

/// The fields of an entry that are remote write's own; the rest is the HTTP client's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Own {
    url: Option<String>,
    #[serde(default)]
    name: String,
    remote_timeout: Option<PromDuration>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    write_relabel_configs: Vec<RuleConfig>,
    /// The ruler writes no exemplars: accepted, nothing to send.
    #[serde(default)]
    #[allow(dead_code)]
    send_exemplars: bool,
    /// The ruler writes float samples only: accepted, nothing to send.
    #[serde(default)]
    #[allow(dead_code)]
    send_native_histograms: bool,
    #[serde(default)]
    queue_config: QueueYaml,
    /// The ruler has no scrape metadata to send (Thanos's neither): accepted.
    #[serde(default)]
    #[allow(dead_code)]
    metadata_config: Option<serde_yaml::Value>,
}

const OWN_FIELDS: &[&str] = &[
    "url",
    "name",
    "remote_timeout",
    "headers",
    "write_relabel_configs",
    "send_exemplars",
    "send_native_histograms",
    "queue_config",
    "metadata_config",
];

/// Fields of Prometheus's HTTP client configuration that rthanos has no client for.
const REFUSED_FIELDS: &[&str] = &["sigv4", "oauth2", "azuread"];

/// Fields of Go's HTTP client that reqwest's defaults already match when they are true
/// (redirects are followed, HTTP/2 is negotiated when the server offers it); false is
/// refused by name.
const DEFAULTED_FIELDS: &[&str] = &["follow_redirects", "enable_http2"];

/// Parses the YAML document of `--remote-write.config` (`remote_write:` and its list). An
/// empty text is no target, as in Thanos (the ruler then keeps its own TSDB).
///
/// # Errors
/// The text is not such a document, or an entry does not hold (named with its index).
pub fn parse(text: &str) -> Result<Vec<RemoteWriteConfig>, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let document: Document = serde_yaml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
    let mut out: Vec<RemoteWriteConfig> = Vec::with_capacity(document.remote_write.len());
    for (i, entry) in document.remote_write.into_iter().enumerate() {
        let named = entry.contains_key("name");
        let config =
            parse_entry(&entry).map_err(|e| ConfigError(format!("remote_write[{i}]: {e}")))?;
        if out.iter().any(|c| c.name == config.name) {
            // Prometheus's words: the same entry twice, or two entries with one name.
            return Err(ConfigError(if named {
                format!(
                    "found multiple remote write configs with job name {:?}",
                    config.name
                )
            } else {
                format!(
                    "duplicate remote write configs are not allowed, found duplicate for URL: {}",
                    config.url
                )
            }));
        }
        out.push(config);
    }
    Ok(out)
}

fn parse_entry(entry: &serde_yaml::Mapping) -> Result<RemoteWriteConfig, String> {
    let mut own = serde_yaml::Mapping::new();
    let mut http = serde_yaml::Mapping::new();
    for (key, value) in entry {
        let name = key.as_str().ok_or("field names are strings")?;
        if REFUSED_FIELDS.contains(&name) {
            return Err(format!("{name} is not supported by rthanos"));
        }
        if DEFAULTED_FIELDS.contains(&name) {
            if value.as_bool() == Some(false) {
                return Err(format!("{name}: false is not supported by rthanos"));
            }
            continue;
        }
        if OWN_FIELDS.contains(&name) {
            own.insert(key.clone(), value.clone());
        } else if name == "authorization" {
            let auth: Authorization =
                serde_yaml::from_value(value.clone()).map_err(|e| format!("authorization: {e}"))?;
            let kind = auth.kind.as_deref().unwrap_or("Bearer");
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(format!(
                    "authorization: type {kind:?} is not supported by rthanos (only Bearer)"
                ));
            }
            if let Some(file) = auth.credentials_file {
                http.insert("bearer_token_file".into(), file.into());
            } else if let Some(credentials) = auth.credentials {
                http.insert("bearer_token".into(), credentials.into());
            }
        } else {
            http.insert(key.clone(), value.clone());
        }
    }
    let own: Own =
        serde_yaml::from_value(serde_yaml::Value::Mapping(own)).map_err(|e| e.to_string())?;
    let url = own.url.as_deref().ok_or("url for remote_write is empty")?;
    let url = reqwest::Url::parse(url).map_err(|e| format!("url {url:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("url {url}: scheme must be http or https"));
    }
    for header in own.headers.keys() {
        let lower = header.to_ascii_lowercase();
        if lower == "authorization" {
            return Err("authorization header must be changed via the basic_auth, authorization, oauth2, or sigv4 parameter".into());
        }
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(format!(
                "{header} is a reserved header. It must not be changed"
            ));
        }
    }
    let http_text =
        serde_yaml::to_string(&serde_yaml::Value::Mapping(http)).map_err(|e| e.to_string())?;
    let http_text = if http_text.trim() == "{}" {
        String::new()
    } else {
        http_text
    };
    let (client, auth) = HttpClientConfig::parse("http client", &http_text)
        .and_then(|c| c.build(""))
        .map_err(|e| e.to_string())?;
    let defaults = QueueConfig::default();
    let q = own.queue_config;
    let queue = QueueConfig {
        capacity: q.capacity.unwrap_or(defaults.capacity),
        max_shards: q.max_shards.unwrap_or(defaults.max_shards),
        min_shards: q.min_shards.unwrap_or(defaults.min_shards),
        max_samples_per_send: match q.max_samples_per_send {
            Some(0) => return Err("queue_config: max_samples_per_send must be positive".into()),
            Some(n) => n,
            None => defaults.max_samples_per_send,
        },
        batch_send_deadline: q
            .batch_send_deadline
            .map_or(defaults.batch_send_deadline, PromDuration::as_std),
        min_backoff: q
            .min_backoff
            .map_or(defaults.min_backoff, PromDuration::as_std),
        max_backoff: q
            .max_backoff
            .map_or(defaults.max_backoff, PromDuration::as_std),
        retry_on_http_429: q.retry_on_http_429.unwrap_or(defaults.retry_on_http_429),
    };
    let write_relabel = Relabel::new(own.write_relabel_configs)
        .map_err(|e| format!("write_relabel_configs: {e}"))?;
    let name = if own.name.is_empty() {
        // Prometheus hashes the whole configuration; the entry's YAML stands in for it.
        let text = serde_yaml::to_string(entry).unwrap_or_default();
        let digest = Md5::digest(text.as_bytes());
        digest.iter().take(3).map(|b| format!("{b:02x}")).collect()
    } else {
        own.name
    };
    Ok(RemoteWriteConfig {
        url,
        name,
        remote_timeout: own
            .remote_timeout
            .map_or(Duration::from_secs(30), PromDuration::as_std),
        headers: own.headers,
        write_relabel,
        queue,
        client,
        auth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_fields_parse_with_prometheus_defaults() {
        let configs = parse(
            "remote_write:\n- url: http://127.0.0.1:9090/api/v1/write\n  name: prom\n  remote_timeout: 10s\n  headers: {X-Scope-OrgID: team}\n  write_relabel_configs:\n  - {source_labels: [__name__], regex: 'drop_.*', action: drop}\n  queue_config: {max_samples_per_send: 100, min_backoff: 1s, retry_on_http_429: true}\n  metadata_config: {send: false}\n  basic_auth: {username: u, password: p}\n  follow_redirects: true\n- url: https://other/push\n",
        )
        .expect("parses");
        assert_eq!(configs.len(), 2);
        let a = &configs[0];
        assert_eq!(a.name, "prom");
        assert_eq!(a.remote_timeout, Duration::from_secs(10));
        assert_eq!(a.queue.max_samples_per_send, 100);
        assert_eq!(a.queue.min_backoff, Duration::from_secs(1));
        assert_eq!(a.queue.max_backoff, Duration::from_secs(5));
        assert!(a.queue.retry_on_http_429);
        assert!(matches!(&a.auth, Auth::Basic(u, p) if u == "u" && p == "p"));
        let dropped = rthanos_model::Labels::from_pairs([("__name__", "drop_me")]);
        assert!(a.write_relabel.process(&dropped).is_none());
        let b = &configs[1];
        assert_eq!(b.queue, QueueConfig::default());
        assert_eq!(b.remote_timeout, Duration::from_secs(30));
        assert_eq!(b.name.len(), 6, "{}", b.name);
        assert!(parse("").expect("empty").is_empty());
    }

    #[test]
    fn what_prometheus_refuses_and_what_rthanos_cannot_do_are_named() {
        for (yaml, needle) in [
            (
                "remote_write:\n- name: x\n",
                "url for remote_write is empty",
            ),
            ("remote_write:\n- url: ftp://x/\n", "scheme"),
            (
                "remote_write:\n- url: http://x/\n  headers: {User-Agent: me}\n",
                "reserved header",
            ),
            (
                "remote_write:\n- url: http://x/\n- url: http://x/\n",
                "found duplicate for URL: http://x/",
            ),
            (
                "remote_write:\n- url: http://x/\n  follow_redirects: false\n",
                "follow_redirects: false",
            ),
            (
                "remote_write:\n- url: http://x/\n  queue_config: {max_samples_per_send: 0}\n",
                "must be positive",
            ),
            (
                "remote_write:\n- url: http://x/\n  headers: {authorization: me}\n",
                "authorization header",
            ),
            (
                "remote_write:\n- url: http://x/\n  sigv4: {region: eu}\n",
                "sigv4 is not supported",
            ),
            (
                "remote_write:\n- url: http://x/\n  queue_config: {max_shard: 1}\n",
                "max_shard",
            ),
            ("remote_write:\n- url: http://x/\n  urll: x\n", "urll"),
            (
                "remote_write:\n- url: http://x/\n  name: a\n- url: http://y/\n  name: a\n",
                "multiple",
            ),
            (
                "remote_write:\n- url: http://x/\n  authorization: {type: Basic, credentials: x}\n",
                "only Bearer",
            ),
        ] {
            let err = parse(yaml).expect_err(yaml).to_string();
            assert!(err.contains(needle), "{yaml}: {err}");
        }
        let configs = parse("remote_write:\n- url: http://x/\n  authorization: {credentials: t}\n")
            .expect("bearer");
        assert!(matches!(&configs[0].auth, Auth::Bearer(t) if t == "t"));
    }
}
