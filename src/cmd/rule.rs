//! `rthanos rule`: Thanos's ruler flags, wired to the rule crate: rule files evaluated through
//! the querier's HTTP API, results in a Prometheus TSDB under `--data-dir` (compacted into
//! blocks, retention applied), `/-/reload` and SIGHUP re-reading the rule files.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rthanos_model::{Labels, PromDuration};
use rthanos_rule::group::EvalEnv;
use rthanos_rule::manager::{Manager, ManagerOptions, RuleMetrics, system_clock};
use rthanos_rule::querier::{
    HttpQuerier, QuerierOptions, QueryEndpointsConfig, parse_query_config,
};
use rthanos_rule::storage::DbStorage;
use rthanos_runtime::flags::{
    GrpcServerFlags, HttpFlags, LogFlags, ObjstoreFlags, path_or_content,
};
use rthanos_tsdb::db::{Db, DbOptions};

use super::{RequestLoggingFlags, StoreLimitFlags, TracingFlags, reject_unsupported};

/// Flags of `rthanos rule`.
#[derive(Args, Debug)]
pub(crate) struct RuleArgs {
    #[command(flatten)]
    pub(crate) log: LogFlags,
    #[command(flatten)]
    pub(crate) tracing: TracingFlags,
    #[command(flatten)]
    pub(crate) http: HttpFlags,
    #[command(flatten)]
    pub(crate) grpc: GrpcServerFlags,
    #[command(flatten)]
    pub(crate) objstore: ObjstoreFlags,
    #[command(flatten)]
    pub(crate) request_logging: RequestLoggingFlags,
    #[command(flatten)]
    pub(crate) limits: StoreLimitFlags,
    #[command(flatten)]
    pub(crate) web: super::query::WebFlags,

    /// Labels to be applied to all generated metrics (repeated). Similar to external labels
    /// for Prometheus, used to identify ruler and its blocks as unique source.
    #[arg(id = "label", long = "label", value_name = "<name>=\"<value>\"")]
    pub(crate) label: Vec<String>,
    /// Block duration for TSDB block.
    #[arg(
        id = "tsdb.block-duration",
        long = "tsdb.block-duration",
        default_value = "2h"
    )]
    pub(crate) tsdb_block_duration: PromDuration,
    /// Block retention time on local disk.
    #[arg(id = "tsdb.retention", long = "tsdb.retention", default_value = "48h")]
    pub(crate) tsdb_retention: PromDuration,
    /// Do not create lockfile in TSDB data directory. In any case, the lockfiles will be
    /// deleted on next startup (rthanos creates no lockfile: see the operator guide).
    #[arg(id = "tsdb.no-lockfile", long = "tsdb.no-lockfile")]
    pub(crate) tsdb_no_lockfile: bool,
    /// Compress the tsdb WAL.
    #[arg(
        id = "tsdb.wal-compression",
        long = "tsdb.wal-compression",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub(crate) tsdb_wal_compression: bool,
    /// (Deprecated) Enables the ingestion of native histograms; a no-op in Thanos too.
    #[arg(
        id = "tsdb.enable-native-histograms",
        long = "tsdb.enable-native-histograms",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub(crate) tsdb_enable_native_histograms: bool,
    /// data directory
    #[arg(id = "data-dir", long = "data-dir", default_value = "data/")]
    pub(crate) data_dir: PathBuf,
    /// Rule files that should be used by rule manager. Can be in glob format (repeated). Note
    /// that rules are not automatically detected, use SIGHUP or do HTTP POST /-/reload to
    /// re-read them.
    #[arg(id = "rule-file", long = "rule-file", default_value = "rules/")]
    pub(crate) rule_file: Vec<String>,
    /// Minimum amount of time to wait before resending an alert to Alertmanager.
    #[arg(id = "resend-delay", long = "resend-delay", default_value = "1m")]
    pub(crate) resend_delay: PromDuration,
    /// The default evaluation interval to use.
    #[arg(id = "eval-interval", long = "eval-interval", default_value = "1m")]
    pub(crate) eval_interval: PromDuration,
    /// The default rule group query_offset duration to use (not supported by rthanos other
    /// than 0s: Prometheus 2.42's groups have no query offset).
    #[arg(
        id = "rule-query-offset",
        long = "rule-query-offset",
        default_value = "0s"
    )]
    pub(crate) rule_query_offset: PromDuration,
    /// Max time to tolerate prometheus outage for restoring "for" state of alert.
    #[arg(
        id = "for-outage-tolerance",
        long = "for-outage-tolerance",
        default_value = "1h"
    )]
    pub(crate) for_outage_tolerance: PromDuration,
    /// Minimum duration between alert and restored "for" state. This is maintained only for
    /// alerts with configured "for" time greater than grace period.
    #[arg(
        id = "for-grace-period",
        long = "for-grace-period",
        default_value = "10m"
    )]
    pub(crate) for_grace_period: PromDuration,
    /// Label names to be ignored when restoring alerts from the remote storage. This is only
    /// used in stateless mode.
    #[arg(id = "restore-ignored-label", long = "restore-ignored-label")]
    pub(crate) restore_ignored_label: Vec<String>,
    /// How many rules can be evaluated concurrently (only 1 is supported by rthanos).
    #[arg(
        id = "rule-concurrent-evaluation",
        long = "rule-concurrent-evaluation",
        default_value_t = 1
    )]
    pub(crate) rule_concurrent_evaluation: i64,
    /// Addresses of Thanos gRPC query API servers (not supported by rthanos; use --query).
    #[arg(id = "grpc-query-endpoint", long = "grpc-query-endpoint")]
    pub(crate) grpc_query_endpoint: Vec<String>,
    /// Whether to enable extended rate functions (not supported by rthanos).
    #[arg(id = "query.enable-x-functions", long = "query.enable-x-functions")]
    pub(crate) query_enable_x_functions: bool,
    /// Comma separated feature names to enable (none supported by rthanos).
    #[arg(id = "enable-feature", long = "enable-feature", value_delimiter = ',')]
    pub(crate) enable_feature: Vec<String>,

    /// Addresses of statically configured query API servers (repeatable). The scheme may be
    /// prefixed with 'dns+' or 'dnssrv+' to detect query API servers through respective DNS
    /// lookups.
    #[arg(id = "query", long = "query", value_name = "<query>")]
    pub(crate) query: Vec<String>,
    /// Path to YAML file that contains query API servers configuration. If defined, it takes
    /// precedence over the '--query' and '--query.sd-files' flags.
    #[arg(
        id = "query.config-file",
        long = "query.config-file",
        value_name = "FILE"
    )]
    pub(crate) query_config_file: Option<PathBuf>,
    /// Alternative to 'query.config-file' flag (mutually exclusive).
    #[arg(
        id = "query.config",
        long = "query.config",
        value_name = "CONTENT",
        conflicts_with = "query.config-file"
    )]
    pub(crate) query_config: Option<String>,
    /// Path to file that contains addresses of query API servers. The path can be a glob
    /// pattern (repeatable).
    #[arg(id = "query.sd-files", long = "query.sd-files", value_name = "<path>")]
    pub(crate) query_sd_files: Vec<String>,
    /// Refresh interval to re-read file SD files. (used as a fallback)
    #[arg(
        id = "query.sd-interval",
        long = "query.sd-interval",
        default_value = "5m"
    )]
    pub(crate) query_sd_interval: PromDuration,
    /// Interval between DNS resolutions.
    #[arg(
        id = "query.sd-dns-interval",
        long = "query.sd-dns-interval",
        default_value = "30s"
    )]
    pub(crate) query_sd_dns_interval: PromDuration,
    /// HTTP method to use when sending queries. Possible options: [GET, POST]
    #[arg(id = "query.http-method", long = "query.http-method", default_value = "POST", value_parser = ["GET", "POST"])]
    pub(crate) query_http_method: String,
    /// Resolver to use (Go resolvers; rthanos resolves with hickory either way).
    #[arg(
        id = "query.sd-dns-resolver",
        long = "query.sd-dns-resolver",
        default_value = "miekgdns",
        hide = true
    )]
    pub(crate) query_sd_dns_resolver: String,
    /// Default range query step to use. This is only used in stateless Ruler and alert state
    /// restoration.
    #[arg(
        id = "query.default-step",
        long = "query.default-step",
        default_value = "1s"
    )]
    pub(crate) query_default_step: PromDuration,
    /// Disable adding Thanos parameters (e.g dedup, partial_response) when querying metrics.
    #[arg(
        id = "query.only-prometheus-params",
        long = "query.only-prometheus-params",
        hide = true
    )]
    pub(crate) query_only_prometheus_params: bool,

    /// Alertmanager replica URLs to push firing alerts. Ruler claims success if push to at
    /// least one alertmanager from discovered succeeds. The scheme should not be empty e.g
    /// `http` might be used. The scheme may be prefixed with 'dns+' or 'dnssrv+' to detect
    /// Alertmanager IPs through respective DNS lookups. The port defaults to 9093 or the SRV
    /// record's value. The URL path is used as a prefix for the regular Alertmanager API path.
    #[arg(id = "alertmanagers.url", long = "alertmanagers.url")]
    pub(crate) alertmanagers_url: Vec<String>,
    /// Path to YAML file that contains alerting configuration. If defined, it takes
    /// precedence over the '--alertmanagers.url' and '--alertmanagers.send-timeout' flags.
    #[arg(id = "alertmanagers.config-file", long = "alertmanagers.config-file")]
    pub(crate) alertmanagers_config_file: Option<PathBuf>,
    /// Alternative to 'alertmanagers.config-file' flag (mutually exclusive).
    #[arg(
        id = "alertmanagers.config",
        long = "alertmanagers.config",
        conflicts_with = "alertmanagers.config-file"
    )]
    pub(crate) alertmanagers_config: Option<String>,
    /// Timeout for sending alerts to Alertmanager
    #[arg(
        id = "alertmanagers.send-timeout",
        long = "alertmanagers.send-timeout",
        default_value = "10s"
    )]
    pub(crate) alertmanagers_send_timeout: PromDuration,
    /// Interval between DNS resolutions of Alertmanager hosts.
    #[arg(
        id = "alertmanagers.sd-dns-interval",
        long = "alertmanagers.sd-dns-interval",
        default_value = "30s"
    )]
    pub(crate) alertmanagers_sd_dns_interval: PromDuration,
    /// The external Thanos Query URL that would be set in all alerts 'Source' field
    #[arg(id = "alert.query-url", long = "alert.query-url", default_value = "")]
    pub(crate) alert_query_url: String,
    /// Labels by name to drop before sending to alertmanager. This allows alert to be
    /// deduplicated on replica label (repeated). Similar Prometheus alert relabelling
    #[arg(id = "alert.label-drop", long = "alert.label-drop")]
    pub(crate) alert_label_drop: Vec<String>,
    /// Path to YAML file that contains alert relabelling configuration.
    #[arg(id = "alert.relabel-config-file", long = "alert.relabel-config-file")]
    pub(crate) alert_relabel_config_file: Option<PathBuf>,
    /// Alternative to 'alert.relabel-config-file' flag (mutually exclusive).
    #[arg(
        id = "alert.relabel-config",
        long = "alert.relabel-config",
        conflicts_with = "alert.relabel-config-file"
    )]
    pub(crate) alert_relabel_config: Option<String>,
    /// Template to use in alerts source field. Need only include {{.Expr}} parameter
    #[arg(
        id = "alert.query-template",
        long = "alert.query-template",
        default_value = "/graph?g0.expr={{.Expr}}&g0.tab=1"
    )]
    pub(crate) alert_query_template: String,
    /// If true shipper will try to upload compacted blocks as well (the ruler writes level-1
    /// blocks only).
    #[arg(id = "shipper.upload-compacted", long = "shipper.upload-compacted")]
    pub(crate) shipper_upload_compacted: bool,
    /// Specify which hash function to use when calculating the hashes of produced files (not
    /// supported by rthanos).
    #[arg(id = "hash-func", long = "hash-func", default_value = "", value_parser = ["", "SHA256"])]
    pub(crate) hash_func: String,
    /// Path to YAML config for the remote-write configurations, that specify servers where
    /// samples should be sent to (Prometheus's remote_write section). This enables stateless
    /// mode: no series are stored in the ruler's TSDB. If an empty config (or file) is
    /// provided, the flag is ignored and the ruler runs with its own TSDB.
    #[arg(id = "remote-write.config-file", long = "remote-write.config-file")]
    pub(crate) remote_write_config_file: Option<PathBuf>,
    /// Alternative to 'remote-write.config-file' flag (mutually exclusive).
    #[arg(
        id = "remote-write.config",
        long = "remote-write.config",
        conflicts_with = "remote-write.config-file"
    )]
    pub(crate) remote_write_config: Option<String>,
}

/// Thanos's `--label` parsing: `name="value"`, the value a Go-quoted string.
fn parse_labels(flags: &[String]) -> anyhow::Result<Labels> {
    let mut pairs = Vec::with_capacity(flags.len());
    for flag in flags {
        let Some((name, quoted)) = flag.split_once('=') else {
            anyhow::bail!("unrecognized label {flag:?}");
        };
        if !rthanos_model::is_valid_label_name(name) {
            anyhow::bail!("unsupported format for label {flag}");
        }
        let value = unquote(quoted).with_context(|| format!("unquote label value: {quoted}"))?;
        pairs.push((name.to_string(), value));
    }
    Ok(Labels::from_pairs(pairs))
}

/// Go's `strconv.Unquote` of a double-quoted or back-quoted string.
fn unquote(quoted: &str) -> anyhow::Result<String> {
    if let Some(raw) = quoted
        .strip_prefix('`')
        .and_then(|q| q.strip_suffix('`'))
        .filter(|raw| !raw.contains('`'))
    {
        return Ok(raw.replace('\r', ""));
    }
    let Some(body) = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .filter(|_| quoted.len() >= 2)
    else {
        anyhow::bail!("invalid syntax");
    };
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    let hex = |chars: &mut std::str::Chars<'_>, n: usize| -> anyhow::Result<u32> {
        let digits: String = chars.by_ref().take(n).collect();
        if digits.len() != n {
            anyhow::bail!("invalid syntax");
        }
        u32::from_str_radix(&digits, 16).map_err(|_| anyhow::anyhow!("invalid syntax"))
    };
    while let Some(c) = chars.next() {
        match c {
            '"' | '\n' => anyhow::bail!("invalid syntax"),
            '\\' => {
                let escaped = chars
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("invalid syntax"))?;
                let decoded = match escaped {
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'v' => '\u{b}',
                    '\\' => '\\',
                    '"' => '"',
                    'x' => char::from_u32(hex(&mut chars, 2)?)
                        .ok_or_else(|| anyhow::anyhow!("invalid syntax"))?,
                    'u' => char::from_u32(hex(&mut chars, 4)?)
                        .ok_or_else(|| anyhow::anyhow!("invalid syntax"))?,
                    'U' => char::from_u32(hex(&mut chars, 8)?)
                        .ok_or_else(|| anyhow::anyhow!("invalid syntax"))?,
                    '0'..='7' => {
                        let rest: String = chars.by_ref().take(2).collect();
                        let code = u32::from_str_radix(&format!("{escaped}{rest}"), 8)
                            .ok()
                            .filter(|c| rest.len() == 2 && *c <= 255)
                            .ok_or_else(|| anyhow::anyhow!("invalid syntax"))?;
                        char::from_u32(code).ok_or_else(|| anyhow::anyhow!("invalid syntax"))?
                    }
                    _ => anyhow::bail!("invalid syntax"),
                };
                out.push(decoded);
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

impl RuleArgs {
    fn check_unsupported(&self) -> anyhow::Result<()> {
        reject_unsupported(&[
            (
                "rule-query-offset",
                self.rule_query_offset.as_std() != Duration::ZERO,
            ),
            (
                "rule-concurrent-evaluation",
                self.rule_concurrent_evaluation != 1,
            ),
            ("grpc-query-endpoint", !self.grpc_query_endpoint.is_empty()),
            ("query.enable-x-functions", self.query_enable_x_functions),
            (
                "enable-feature",
                self.enable_feature.iter().any(|f| !f.is_empty()),
            ),
            ("hash-func", !self.hash_func.is_empty()),
        ])
    }

    /// The Alertmanager sets, from `--alertmanagers.config` or `--alertmanagers.url`.
    fn alertmanagers(&self) -> anyhow::Result<Vec<rthanos_rule::notifier::AlertmanagerConfig>> {
        let config = path_or_content(
            "alertmanagers.config",
            self.alertmanagers_config_file.as_deref(),
            self.alertmanagers_config.as_deref(),
        )?
        .unwrap_or_default();
        if !config.trim().is_empty() {
            if !self.alertmanagers_url.is_empty() {
                anyhow::bail!(
                    "--alertmanagers.url and --alertmanagers.config* parameters cannot be defined at the same time"
                );
            }
            return Ok(rthanos_rule::notifier::parse_alerting_config(&config)?);
        }
        let mut out = Vec::with_capacity(self.alertmanagers_url.len());
        for url in &self.alertmanagers_url {
            out.push(rthanos_rule::notifier::alertmanager_from_url(
                url,
                self.alertmanagers_send_timeout.as_std(),
            )?);
        }
        Ok(out)
    }

    /// The remote-write targets of `--remote-write.config(-file)` (environment references
    /// expanded); none when the flags are unset or empty.
    fn remote_write(&self) -> anyhow::Result<Vec<rthanos_remote_write::RemoteWriteConfig>> {
        let Some(text) = path_or_content(
            "remote-write.config",
            self.remote_write_config_file.as_deref(),
            self.remote_write_config.as_deref(),
        )?
        else {
            return Ok(Vec::new());
        };
        let text = rthanos_runtime::flags::expand_env("remote-write.config", &text)?;
        let targets = rthanos_remote_write::parse(&text).context("--remote-write.config")?;
        if targets.is_empty() && !text.trim().is_empty() {
            // Thanos would run stateless and send its results nowhere.
            tracing::warn!("--remote-write.config lists no target: the ruler keeps its own TSDB");
        }
        Ok(targets)
    }

    /// `--alert.relabel-config(-file)`.
    fn alert_relabel(&self) -> anyhow::Result<rthanos_model::relabel::Relabel> {
        let text = path_or_content(
            "alert.relabel-config",
            self.alert_relabel_config_file.as_deref(),
            self.alert_relabel_config.as_deref(),
        )?
        .unwrap_or_default();
        rthanos_model::relabel::Relabel::from_yaml(&text).context("--alert.relabel-config")
    }

    /// The query API servers, from `--query.config` or from `--query` and `--query.sd-files`.
    fn query_endpoints(&self) -> anyhow::Result<Vec<QueryEndpointsConfig>> {
        let config = path_or_content(
            "query.config",
            self.query_config_file.as_deref(),
            self.query_config.as_deref(),
        )?
        .unwrap_or_default();
        let flags_given = !self.query.is_empty() || !self.query_sd_files.is_empty();
        if !config.trim().is_empty() {
            if flags_given {
                anyhow::bail!(
                    "--query/--query.sd-files/--grpc-query-endpoint and --query.config* parameters cannot be defined at the same time"
                );
            }
            return Ok(parse_query_config(&config)?);
        }
        if !flags_given {
            anyhow::bail!("no query configuration parameter was given");
        }
        Ok(vec![QueryEndpointsConfig {
            static_configs: self.query.clone(),
            file_sd_configs: if self.query_sd_files.is_empty() {
                Vec::new()
            } else {
                vec![rthanos_rule::querier::FileSdConfig {
                    files: self.query_sd_files.clone(),
                    refresh_interval: Some(self.query_sd_interval),
                }]
            },
            ..QueryEndpointsConfig::default()
        }])
    }
}

/// How often the head is checked for a block to cut and retention applied: every minute as
/// Prometheus does, or every quarter block for blocks shorter than 4 minutes.
fn compaction_interval(block_range: Duration) -> Duration {
    (block_range / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// How often new blocks are shipped: every 30s as Thanos's ruler does, or every block for
/// blocks shorter than that.
fn shipping_interval(block_range: Duration) -> Duration {
    block_range.clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// Runs the ruler.
pub(crate) async fn run(args: RuleArgs) -> anyhow::Result<()> {
    let prepared = super::prepare(&super::CommonFlags {
        log: &args.log,
        tracing: &args.tracing,
        request_logging: Some(&args.request_logging),
        http: &args.http,
        grpc: Some(&args.grpc),
        objstore: Some(&args.objstore),
    })?;
    args.check_unsupported()?;
    let external_labels = parse_labels(&args.label)?;
    let endpoints = args.query_endpoints()?;
    let rule_files = args.rule_file.clone();
    // Rule files are checked before anything starts: a bad file stops start-up.
    let files = rthanos_rule::manager::rule_files(&rule_files)?;
    rthanos_rule::manager::load_groups(&files, &args.data_dir, args.eval_interval.as_std())
        .context("loading rule files")?;
    let block_range = i64::try_from(args.tsdb_block_duration.as_std().as_millis())
        .context("--tsdb.block-duration")?;
    let db_options = DbOptions {
        block_range,
        // 0 keeps blocks forever, as Prometheus's retention.time of 0.
        retention: Some(
            i64::try_from(args.tsdb_retention.as_std().as_millis()).context("--tsdb.retention")?,
        )
        .filter(|ms| *ms > 0),
        wal_compression: args.tsdb_wal_compression,
        ..DbOptions::default()
    };
    let limits = args.limits.series_limits();
    let route_prefix = super::query::route_prefix(&args.web)?;
    let objstore = args.objstore.content()?;
    let block_duration = args.tsdb_block_duration.as_std();
    let alertmanagers = args.alertmanagers()?;
    let alert_relabel = args.alert_relabel()?;
    let remote_write = args.remote_write()?;
    // Thanos checks the template with a made-up expression before starting.
    rthanos_rule::template::expand_expression_link(&args.alert_query_template, "test_expr")
        .context("--alert.query-template")?;
    prepared
        .serve("rule", move |runtime| {
            let registry = runtime.registry().clone();
            let querier = Arc::new(HttpQuerier::new(
                endpoints,
                &QuerierOptions {
                    method: args.query_http_method.clone(),
                    add_thanos_params: !args.query_only_prometheus_params,
                    timeout: Duration::from_secs(120),
                    file_sd_interval: args.query_sd_interval.as_std(),
                },
                &registry,
            )?);
            let storage = if remote_write.is_empty() {
                open_tsdb(&args, db_options, objstore, &registry)?
            } else {
                open_stateless(&args, remote_write, &external_labels, &querier, objstore.is_some(), &registry)?
            };
            let queue = rthanos_rule::notifier::AlertQueue::new(
                &registry,
                &external_labels,
                args.alert_label_drop.clone(),
                alert_relabel,
            )?;
            let sender = Arc::new(rthanos_rule::notifier::Sender::new(
                alertmanagers,
                args.alertmanagers_send_timeout.as_std(),
                Duration::from_secs(300),
                &registry,
            )?);
            let notifier = Arc::new(rthanos_rule::notifier::RuleNotifier::new(
                Arc::clone(&queue),
                args.alert_query_url.clone(),
                args.alert_query_template.clone(),
            ));
            let metrics = Arc::new(RuleMetrics::new(&registry)?);
            let manager = Arc::new(Manager::new(
                ManagerOptions {
                    data_dir: args.data_dir.clone(),
                    eval_interval: args.eval_interval.as_std(),
                    outage_tolerance: args.for_outage_tolerance.as_std(),
                    for_grace_period: args.for_grace_period.as_std(),
                    clock: system_clock(),
                },
                EvalEnv {
                    querier: Arc::clone(&querier) as _,
                    sink: Arc::clone(&storage.sink),
                    templater: Arc::new(rthanos_rule::expand::PrometheusTemplates::new(
                        Arc::clone(&querier) as _,
                        &external_labels,
                        args.alert_query_url.clone(),
                    )),
                    notifier,
                    observer: Arc::new(rthanos_rule::group::NoObserver),
                    resend_delay_ms: i64::try_from(args.resend_delay.as_std().as_millis())
                        .unwrap_or(i64::MAX),
                },
                Arc::clone(&storage.for_state),
                metrics,
            ));
            let rules_service = rthanos_rule::api::RulesService::new(Arc::clone(&manager)).server();
            // Stateless mode serves rules only, as Thanos's: its series are the target's.
            let grpc = match &storage.db {
                Some(db) => rthanos_storeapi::StoreServer::new(Arc::new(
                    rthanos_rule::store::TsdbStore::new(Arc::clone(db), external_labels.clone()),
                ))
                .with_limits(limits)
                .with_rules_announced()
                .routes(),
                None => rthanos_storeapi::server::RulesOnlyInfo::new(
                    rthanos_storeapi::Component::Rule,
                )
                .routes(),
            }
            .add_service(rules_service);
            let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel::<
                tokio::sync::oneshot::Sender<Result<(), String>>,
            >(1);
            let routes = axum::Router::new()
                .route(
                    "/-/reload",
                    axum::routing::post(move || {
                        let reload_tx = reload_tx.clone();
                        async move { reload_handler(reload_tx).await }
                    }),
                )
                .merge(rthanos_rule::api::routes(Arc::clone(&manager)))
                .merge(rthanos_query::ui::ruler_router(&route_prefix));
            // Under --web.route-prefix, as Thanos serves its API and UI routes.
            let http = if route_prefix.is_empty() {
                routes
            } else {
                axum::Router::new().nest(&route_prefix, routes)
            };
            let shutdown = runtime.shutdown_token();
            let prober = runtime.prober().clone();
            let dns_interval = args.query_sd_dns_interval.as_std();
            let am_dns_interval = args.alertmanagers_sd_dns_interval.as_std();
            let Storage {
                db,
                shipper,
                remote_write,
                remote_log,
                ..
            } = storage;
            let work = async move {
                querier.resolve().await;
                let remote_writing = remote_write
                    .map(|rw| tokio::spawn(rw.run(shutdown.child_token())));
                tokio::spawn(Arc::clone(&querier).run_discovery(dns_interval));
                let sending = tokio::spawn(Arc::clone(&sender).run(
                    queue,
                    am_dns_interval,
                    shutdown.child_token(),
                ));
                manager
                    .update(&rule_files)
                    .await
                    .map_err(|e| format!("initialize rules failed: {e}"))?;
                prober.ready();
                let mut hangup =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                        .map_err(|e| format!("listening for SIGHUP: {e}"))?;
                let mut compaction = tokio::time::interval(compaction_interval(block_duration));
                let mut shipping = tokio::time::interval(shipping_interval(block_duration));
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        _ = hangup.recv() => {
                            if let Err(e) = manager.update(&rule_files).await {
                                tracing::error!(err = %e, "reloading rules failed");
                            }
                        }
                        Some(reply) = reload_rx.recv() => {
                            let result = manager.update(&rule_files).await.map_err(|e| e.to_string());
                            if let Err(e) = &result {
                                tracing::error!(err = %e, "reloading rules failed");
                            }
                            let _ = reply.send(result);
                        }
                        _ = shipping.tick(), if shipper.is_some() => {
                            if let Some(shipper) = &shipper {
                                match shipper.sync(&external_labels).await {
                                    Ok(report) if !report.uploaded.is_empty() => {
                                        tracing::info!(uploaded = report.uploaded.len(), "shipper sync done");
                                    }
                                    Ok(_) => {}
                                    Err(e) => tracing::warn!(err = %e, "shipper sync failed"),
                                }
                            }
                        }
                        _ = compaction.tick(), if db.is_some() => {
                            let Some(db) = db.clone() else { continue };
                            let done = tokio::task::spawn_blocking(move || {
                                db.compact()?;
                                db.apply_retention()?;
                                Ok::<_, rthanos_tsdb::db::DbError>(())
                            })
                            .await;
                            match done {
                                Ok(Ok(())) => {}
                                Ok(Err(e)) => tracing::error!(err = %e, "compaction failed"),
                                Err(e) => tracing::error!(err = %e, "compaction panicked"),
                            }
                        }
                    }
                }
                manager.stop().await;
                drop(manager);
                let _ = sending.await;
                if let Some(remote_writing) = remote_writing {
                    // Unsent samples stay in the log, sent from the saved positions next time.
                    let _ = remote_writing.await;
                }
                // The StoreAPI still serves until the servers stop: the WAL is synced, not
                // closed (every commit is already written out).
                if let Some(db) = &db {
                    db.sync().map_err(|e| format!("syncing the TSDB: {e}"))?;
                }
                if let Some(log) = &remote_log {
                    log.sync()
                        .map_err(|e| format!("syncing the remote-write WAL: {e}"))?;
                }
                Ok::<(), String>(())
            };
            Ok(super::Component {
                http: Some(http),
                grpc: Some(grpc),
                work: Box::pin(async move { work.await.map_err(Into::into) }),
            })
        })
        .await
}

/// Where rule results go, and what serves them.
struct Storage {
    sink: Arc<dyn rthanos_rule::group::SampleSink>,
    for_state: Arc<dyn rthanos_rule::group::ForStateSource>,
    /// The ruler's own TSDB (none in stateless mode).
    db: Option<Arc<Db>>,
    shipper: Option<rthanos_shipper::Shipper>,
    /// Stateless mode's log and queues.
    remote_write: Option<rthanos_remote_write::RemoteWrite>,
    /// Stateless mode's log, synced once the last evaluation is appended.
    remote_log: Option<Arc<rthanos_remote_write::WalStore>>,
}

/// The ruler's own TSDB under `--data-dir`, its blocks shipped with `--objstore.config`.
fn open_tsdb(
    args: &RuleArgs,
    db_options: DbOptions,
    objstore: Option<String>,
    registry: &prometheus::Registry,
) -> anyhow::Result<Storage> {
    let (db, replayed) = Db::open(&args.data_dir, db_options)
        .with_context(|| format!("opening the TSDB in {}", args.data_dir.display()))?;
    tracing::info!(
        series = replayed.series,
        samples = replayed.samples,
        "WAL replayed"
    );
    let db = Arc::new(db);
    let shipper = objstore
        .map(|yaml| -> anyhow::Result<rthanos_shipper::Shipper> {
            let bucket = rthanos_objstore::Bucket::from_yaml(&yaml, registry)
                .context("--objstore.config")?;
            Ok(rthanos_shipper::Shipper::new(
                &args.data_dir,
                bucket,
                args.shipper_upload_compacted,
                "ruler",
                registry,
            )?)
        })
        .transpose()?;
    if shipper.is_none() {
        tracing::info!("no supported bucket was configured, uploads will be disabled");
    }
    let storage = Arc::new(DbStorage::new(Arc::clone(&db)));
    Ok(Storage {
        sink: Arc::clone(&storage) as _,
        for_state: storage,
        db: Some(db),
        shipper,
        remote_write: None,
        remote_log: None,
    })
}

/// Stateless mode: results go into a remote-write log under `--data-dir` and on to the
/// `--remote-write.config` targets; `for` state is read back through the queriers.
fn open_stateless(
    args: &RuleArgs,
    targets: Vec<rthanos_remote_write::RemoteWriteConfig>,
    external_labels: &Labels,
    querier: &Arc<HttpQuerier>,
    objstore: bool,
    registry: &prometheus::Registry,
) -> anyhow::Result<Storage> {
    let options = rthanos_remote_write::LogOptions {
        compress: args.tsdb_wal_compression,
        ..rthanos_remote_write::LogOptions::default()
    };
    let (remote_write, replayed) = rthanos_remote_write::RemoteWrite::open(
        &args.data_dir,
        targets,
        external_labels,
        &options,
        registry,
    )
    .with_context(|| {
        format!(
            "opening the remote-write WAL in {}",
            args.data_dir.display()
        )
    })?;
    tracing::info!(
        series = replayed.series,
        samples = replayed.samples,
        "stateless mode: remote-write WAL replayed"
    );
    if let Some(repaired) = &replayed.repaired {
        tracing::warn!(corruption = %repaired, "remote-write WAL cut at a corruption");
    }
    if objstore {
        // Thanos's stateless ruler runs its shipper over a directory without blocks.
        tracing::info!("stateless mode writes no blocks: --objstore.config has nothing to upload");
    }
    Ok(Storage {
        sink: Arc::new(rthanos_rule::storage::RemoteWriteStorage::new(
            remote_write.store(),
        )),
        for_state: Arc::new(rthanos_rule::querier::QueriedForState::new(
            Arc::clone(querier),
            args.query_default_step.as_std(),
            args.restore_ignored_label.clone(),
        )),
        db: None,
        shipper: None,
        remote_log: Some(remote_write.store()),
        remote_write: Some(remote_write),
    })
}

/// `POST /-/reload`: re-reads the rule files; 500 with the error when they are not valid.
async fn reload_handler(
    reload: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<Result<(), String>>>,
) -> (axum::http::StatusCode, String) {
    let (reply, result) = tokio::sync::oneshot::channel();
    if reload.send(reply).await.is_err() {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "shutting down".to_string(),
        );
    }
    match result.await {
        Ok(Ok(())) => (axum::http::StatusCode::OK, String::new()),
        Ok(Err(e)) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}"),
        ),
        Err(_) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "shutting down".to_string(),
        ),
    }
}
