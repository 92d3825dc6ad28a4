//! Where a component's peers come from, as in Thanos: addresses given on the command line,
//! which may ask for DNS discovery by prefix, and Prometheus file-SD files. The querier finds
//! its endpoints so, the ruler its queriers and Alertmanagers.
//!
//! - `host:port` is used as it is.
//! - `dns+host:port`: the host's A/AAAA records, each with the port.
//! - `dnssrv+_grpc._tcp.name`: the SRV records, each target resolved to its A/AAAA records,
//!   with the record's port.
//! - `dnssrvnoa+_grpc._tcp.name`: the SRV records' `target:port`, not resolved further.
//!
//! A lookup that fails keeps the addresses it last gave, so a DNS hiccup does not drop
//! healthy endpoints; a name that does not exist gives none (and is logged). Neither is fatal: it is logged,
//! counted, and asked again at the next resolution.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::ProtoErrorKind;

/// One `--endpoint` value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AddressSpec {
    /// `host:port`, used as given.
    Static(String),
    /// `dns+host:port`.
    Dns {
        /// Name to look up.
        host: String,
        /// Port of every address.
        port: u16,
    },
    /// `dnssrv+name` (`resolve_targets`) or `dnssrvnoa+name`, optionally `name:port`.
    Srv {
        /// SRV name to look up.
        name: String,
        /// Whether each target is resolved to its IP addresses.
        resolve_targets: bool,
        /// A port given with the name, used instead of the records' ports (as Thanos).
        port: Option<u16>,
    },
}

/// An address the querier cannot use.
#[derive(Debug, thiserror::Error)]
#[error("address {address:?}: {reason}")]
pub struct AddressError {
    address: String,
    reason: &'static str,
}

impl AddressSpec {
    /// Parses an `--endpoint` value.
    pub fn parse(address: &str) -> Result<Self, AddressError> {
        let error = |reason| AddressError {
            address: address.to_string(),
            reason,
        };
        let (scheme, rest) = match address.split_once('+') {
            Some((scheme @ ("dns" | "dnssrv" | "dnssrvnoa"), rest)) => (scheme, rest),
            _ => ("", address),
        };
        if rest.is_empty() {
            return Err(error("empty address"));
        }
        match scheme {
            "dnssrv" | "dnssrvnoa" => {
                let (name, port) = match rest.rsplit_once(':') {
                    Some((name, port)) => (
                        name,
                        Some(port.parse::<u16>().map_err(|_| error("invalid port"))?),
                    ),
                    None => (rest, None),
                };
                Ok(Self::Srv {
                    name: name.to_string(),
                    resolve_targets: scheme == "dnssrv",
                    port,
                })
            }
            _ => {
                let (host, port) = rest
                    .rsplit_once(':')
                    .ok_or_else(|| error("missing port (host:port)"))?;
                let port: u16 = port.parse().map_err(|_| error("invalid port"))?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty() {
                    return Err(error("missing host (host:port)"));
                }
                if scheme == "dns" {
                    Ok(Self::Dns {
                        host: host.to_string(),
                        port,
                    })
                } else {
                    Ok(Self::Static(rest.to_string()))
                }
            }
        }
    }
}

/// Formats `ip:port`, with brackets for IPv6.
fn join_host_port(ip: std::net::IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

/// Resolves address specs through the system's resolver (`/etc/resolv.conf`), keeping each
/// name's last good answer.
pub struct DnsProvider {
    resolver: Option<TokioResolver>,
    last: Mutex<HashMap<AddressSpec, Vec<String>>>,
    lookups: prometheus::IntCounter,
    failures: prometheus::IntCounter,
}

impl DnsProvider {
    /// A provider with the system's resolver configuration, its metrics
    /// (`<metric_prefix>_dns_lookups_total`, `<metric_prefix>_dns_failures_total`; the querier's
    /// prefix is `thanos_query_endpoints`) registered in `registry`. A system without a usable
    /// configuration is logged: every DNS address then fails to resolve (and is retried).
    pub fn new(
        registry: &prometheus::Registry,
        metric_prefix: &str,
    ) -> Result<Self, prometheus::Error> {
        let resolver = match TokioResolver::builder_tokio() {
            Ok(mut builder) => {
                // Re-resolution at each interval must see changes: answers are not cached.
                builder.options_mut().cache_size = 0;
                // Both A and AAAA records, as Go's resolver gives Thanos.
                builder.options_mut().ip_strategy =
                    hickory_resolver::config::LookupIpStrategy::Ipv4AndIpv6;
                Some(builder.build())
            }
            Err(e) => {
                tracing::error!(err = %e, "cannot read the system's DNS configuration");
                None
            }
        };
        let counter =
            |name: &str, help: &str| -> Result<prometheus::IntCounter, prometheus::Error> {
                let c = prometheus::IntCounter::new(name, help)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        Ok(Self {
            resolver,
            last: Mutex::new(HashMap::new()),
            lookups: counter(
                &format!("{metric_prefix}_dns_lookups_total"),
                "The number of DNS lookups resolutions attempts",
            )?,
            failures: counter(
                &format!("{metric_prefix}_dns_failures_total"),
                "The number of DNS lookup failures",
            )?,
        })
    }

    /// The addresses `specs` stand for now, sorted and without duplicates.
    pub async fn resolve(&self, specs: &[AddressSpec]) -> Vec<String> {
        // Names no longer asked for (a file-SD target gone) forget their last answer.
        if let Ok(mut last) = self.last.lock() {
            let asked: std::collections::HashSet<&AddressSpec> = specs.iter().collect();
            last.retain(|key, _| asked.contains(key));
        }
        let mut addresses = BTreeSet::new();
        for spec in specs {
            match spec {
                AddressSpec::Static(address) => {
                    addresses.insert(address.clone());
                }
                AddressSpec::Dns { .. } | AddressSpec::Srv { .. } => {
                    addresses.extend(self.resolve_name(spec).await);
                }
            }
        }
        addresses.into_iter().collect()
    }

    async fn resolve_name(&self, spec: &AddressSpec) -> Vec<String> {
        self.lookups.inc();
        match self.lookup(spec).await {
            Ok(found) => {
                if let Ok(mut last) = self.last.lock() {
                    last.insert(spec.clone(), found.clone());
                }
                found
            }
            Err(e) => {
                self.failures.inc();
                let kept = self
                    .last
                    .lock()
                    .ok()
                    .and_then(|last| last.get(spec).cloned())
                    .unwrap_or_default();
                tracing::warn!(address = ?spec, err = %e, kept = kept.len(),
                    "DNS lookup failed; keeping the last addresses it gave");
                kept
            }
        }
    }

    /// One lookup; a name that does not exist or has no records is an empty answer.
    async fn lookup(&self, spec: &AddressSpec) -> Result<Vec<String>, String> {
        let Some(resolver) = &self.resolver else {
            return Err("no DNS resolver configured".into());
        };
        let not_found = |e: &hickory_resolver::ResolveError| {
            let missing = e
                .proto()
                .is_some_and(|p| matches!(p.kind(), ProtoErrorKind::NoRecordsFound { .. }));
            if missing {
                tracing::warn!(address = ?spec, err = %e, "DNS name does not resolve; asking again at the next resolution");
            }
            missing
        };
        match spec {
            AddressSpec::Static(address) => Ok(vec![address.clone()]),
            AddressSpec::Dns { host, port } => {
                if let Ok(ip) = host.parse::<std::net::IpAddr>() {
                    return Ok(vec![join_host_port(ip, *port)]);
                }
                match resolver.lookup_ip(host.as_str()).await {
                    Ok(ips) => Ok(ips.iter().map(|ip| join_host_port(ip, *port)).collect()),
                    Err(e) if not_found(&e) => Ok(Vec::new()),
                    Err(e) => Err(e.to_string()),
                }
            }
            AddressSpec::Srv {
                name,
                resolve_targets,
                port,
            } => {
                let records = match resolver.srv_lookup(name.as_str()).await {
                    Ok(records) => records,
                    Err(e) if not_found(&e) => return Ok(Vec::new()),
                    Err(e) => return Err(e.to_string()),
                };
                let mut found = Vec::new();
                for record in records.iter() {
                    let target = record.target().to_utf8();
                    let target = target.trim_end_matches('.');
                    let target_port = port.unwrap_or(record.port());
                    if !resolve_targets {
                        found.push(format!("{target}:{target_port}"));
                        continue;
                    }
                    match resolver.lookup_ip(record.target().clone()).await {
                        Ok(ips) => {
                            found.extend(ips.iter().map(|ip| join_host_port(ip, target_port)));
                        }
                        Err(e) if not_found(&e) => {}
                        Err(e) => return Err(format!("SRV target {target}: {e}")),
                    }
                }
                Ok(found)
            }
        }
    }
}

/// Prometheus file-SD files (`--store.sd-files`, globs): YAML or JSON lists of target groups,
/// whose `targets` are endpoint addresses (which may use the DNS prefixes). A file is read
/// again when its modification time changes, and every file at least every `interval`; a
/// file that does not parse keeps its last good targets.
pub struct FileSd {
    patterns: Vec<String>,
    interval: Duration,
    files: Mutex<HashMap<PathBuf, ReadFile>>,
    last_full_read: Mutex<Option<Instant>>,
}

/// A file's modification time when read, and its targets.
type ReadFile = (Option<SystemTime>, Vec<String>);

#[derive(serde::Deserialize)]
struct TargetGroup {
    #[serde(default)]
    targets: Vec<String>,
}

impl FileSd {
    /// Discovery over the files matching `patterns`.
    pub fn new(patterns: Vec<String>, interval: Duration) -> Self {
        Self {
            patterns,
            interval,
            files: Mutex::new(HashMap::new()),
            last_full_read: Mutex::new(None),
        }
    }

    /// The targets of every matching file, re-reading the files that changed.
    pub fn targets(&self) -> Vec<String> {
        let full = match self.last_full_read.lock() {
            Ok(mut last) => {
                let due = last.is_none_or(|at| at.elapsed() >= self.interval);
                if due {
                    *last = Some(Instant::now());
                }
                due
            }
            Err(_) => true,
        };
        let mut paths = BTreeSet::new();
        for pattern in &self.patterns {
            match glob::glob(pattern) {
                // As Prometheus: only .json, .yml and .yaml files (not editors' backups).
                Ok(matches) => paths.extend(matches.filter_map(Result::ok).filter(|p| {
                    p.extension()
                        .is_some_and(|e| e == "json" || e == "yml" || e == "yaml")
                })),
                Err(e) => {
                    tracing::warn!(pattern = %pattern, err = %e, "invalid --store.sd-files glob")
                }
            }
        }
        let Ok(mut files) = self.files.lock() else {
            return Vec::new();
        };
        files.retain(|path, _| paths.contains(path));
        let mut targets = BTreeSet::new();
        for path in paths {
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            let cached = files.get(&path);
            let fresh =
                !full && cached.is_some_and(|(at, _)| *at == modified && modified.is_some());
            if !fresh {
                match read_targets(&path) {
                    Ok(read) => {
                        files.insert(path.clone(), (modified, read));
                    }
                    Err(e) => {
                        tracing::warn!(file = %path.display(), err = %e,
                            "file SD: cannot read targets; keeping the last ones");
                    }
                }
            }
            if let Some((_, read)) = files.get(&path) {
                targets.extend(read.iter().cloned());
            }
        }
        targets.into_iter().collect()
    }
}

fn read_targets(path: &std::path::Path) -> Result<Vec<String>, String> {
    let content = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let is_json = path.extension().is_some_and(|e| e == "json");
    let groups: Vec<TargetGroup> = if is_json {
        serde_json::from_str(&content).map_err(|e| e.to_string())?
    } else if content.trim().is_empty() {
        Vec::new()
    } else {
        serde_yaml::from_str(&content).map_err(|e| e.to_string())?
    };
    Ok(groups.into_iter().flat_map(|g| g.targets).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_specs_parse_as_thanos() {
        assert_eq!(
            AddressSpec::parse("localhost:10901").ok(),
            Some(AddressSpec::Static("localhost:10901".into()))
        );
        assert_eq!(
            AddressSpec::parse("dns+sidecars.ns.svc:10901").ok(),
            Some(AddressSpec::Dns {
                host: "sidecars.ns.svc".into(),
                port: 10901
            })
        );
        assert_eq!(
            AddressSpec::parse("dnssrv+_grpc._tcp.store.ns.svc").ok(),
            Some(AddressSpec::Srv {
                name: "_grpc._tcp.store.ns.svc".into(),
                resolve_targets: true,
                port: None
            })
        );
        assert_eq!(
            AddressSpec::parse("dnssrvnoa+_grpc._tcp.store").ok(),
            Some(AddressSpec::Srv {
                name: "_grpc._tcp.store".into(),
                resolve_targets: false,
                port: None
            })
        );
        assert_eq!(
            AddressSpec::parse("dnssrv+_grpc._tcp.store:10905").ok(),
            Some(AddressSpec::Srv {
                name: "_grpc._tcp.store".into(),
                resolve_targets: true,
                port: Some(10905)
            })
        );
        assert_eq!(
            AddressSpec::parse("[::1]:10901").ok(),
            Some(AddressSpec::Static("[::1]:10901".into()))
        );
        for bad in [
            "",
            "dns+",
            "localhost",
            "dns+host",
            "host:http",
            ":10901",
            "dnssrv+x:y",
        ] {
            assert!(AddressSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn ip_addresses_need_no_lookup() {
        let Ok(provider) = DnsProvider::new(&prometheus::Registry::new(), "test") else {
            panic!("metrics")
        };
        let specs = [
            AddressSpec::parse("dns+127.0.0.1:10901"),
            AddressSpec::parse("127.0.0.2:10901"),
        ]
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_default();
        assert_eq!(
            provider.resolve(&specs).await,
            ["127.0.0.1:10901", "127.0.0.2:10901"]
        );
    }

    #[test]
    fn file_sd_reads_yaml_and_json_and_follows_changes() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let yaml = dir.path().join("a.yml");
        let json = dir.path().join("b.json");
        std::fs::write(&yaml, "- targets: ['s1:10901', 'dns+s2:10901']\n")?;
        std::fs::write(
            &json,
            r#"[{"targets": ["s3:10901"], "labels": {"x": "y"}}]"#,
        )?;
        let pattern = dir.path().join("*").display().to_string();
        let sd = FileSd::new(vec![pattern], Duration::from_secs(3600));
        assert_eq!(sd.targets(), ["dns+s2:10901", "s1:10901", "s3:10901"]);

        // A broken file keeps its last targets; a rewritten one gives its new ones.
        std::fs::write(&yaml, "- targets: [oops\n")?;
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&yaml)?
            .set_modified(later)?;
        assert_eq!(sd.targets(), ["dns+s2:10901", "s1:10901", "s3:10901"]);
        std::fs::write(&yaml, "- targets: ['s4:10901']\n")?;
        std::fs::File::options()
            .write(true)
            .open(&yaml)?
            .set_modified(later + Duration::from_secs(5))?;
        assert_eq!(sd.targets(), ["s3:10901", "s4:10901"]);

        // A removed file takes its targets away.
        std::fs::remove_file(&json)?;
        assert_eq!(sd.targets(), ["s4:10901"]);
        Ok(())
    }
}
