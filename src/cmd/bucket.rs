//! `rthanos tools bucket`: Thanos's bucket tools for operators. `ls` and `inspect` list the
//! blocks, `verify` reports overlaps and index problems, `mark` adds or removes a deletion or
//! no-compact mark, and `cleanup`, `retention` and `downsample` run that step of the compactor
//! on its own.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rthanos_block::Marker;
use rthanos_compact::{Compactor, CompactorConfig, Retention};
use rthanos_model::PromDuration;
use rthanos_objstore::Bucket;
use rthanos_runtime::flags::ObjstoreFlags;
use rthanos_tsdb::BlockMeta;

/// Flags of `rthanos tools bucket`.
#[derive(Args, Debug)]
pub(crate) struct BucketArgs {
    #[command(flatten)]
    objstore: ObjstoreFlags,
    #[command(subcommand)]
    command: BucketCommand,
}

#[derive(Subcommand, Debug)]
enum BucketCommand {
    /// List all blocks in the bucket.
    Ls(LsArgs),
    /// Inspect all blocks in the bucket in detailed, table-like way.
    Inspect(InspectArgs),
    /// Verify all blocks in the bucket against specified issues.
    Verify(VerifyArgs),
    /// Mark block for deletion or no-compact in a safe way.
    Mark(MarkArgs),
    /// Cleans up all blocks marked for deletion.
    Cleanup(CleanupArgs),
    /// Retention applies retention policies on the given bucket.
    Retention(RetentionArgs),
    /// Downsamples blocks in an object store bucket.
    Downsample(DownsampleArgs),
}

#[derive(Args, Debug)]
struct LsArgs {
    /// Optional format in which to print each block's information. Options are 'json', 'wide'
    /// or a custom template.
    #[arg(short = 'o', long = "output", default_value = "")]
    output: String,
    /// Exclude blocks marked for deletion.
    #[arg(long = "exclude-delete")]
    exclude_delete: bool,
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// Selects blocks based on label, e.g. '-l key1=\"value1\" -l key2=\"value2\"'. All key
    /// value pairs must match.
    #[arg(short = 'l', long = "selector")]
    selector: Vec<String>,
    /// Sort by columns. It's also possible to sort by multiple columns, e.g. '--sort-by FROM
    /// --sort-by UNTIL'.
    #[arg(long = "sort-by", default_value = "FROM")]
    sort_by: Vec<String>,
    /// Output format for result. Currently supports table, csv, tsv.
    #[arg(long = "output", default_value = "table", value_parser = ["table", "csv", "tsv"])]
    output: String,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// Issues to verify: overlapped_blocks, index_known_issues.
    #[arg(short = 'i', long = "issues", default_values = ["index_known_issues", "overlapped_blocks"], value_parser = ["index_known_issues", "overlapped_blocks"])]
    issues: Vec<String>,
    /// Block IDs to verify (and optionally repair) only. If none is specified, all blocks will
    /// be verified.
    #[arg(long = "id")]
    ids: Vec<String>,
    /// Attempt to repair blocks for which issues were detected (not supported by rthanos).
    #[arg(short = 'r', long = "repair")]
    repair: bool,
    /// Directory for blocks downloaded to check their index.
    #[arg(long = "data-dir", default_value = "./data")]
    data_dir: PathBuf,
}

#[derive(Args, Debug)]
struct MarkArgs {
    /// ID (ULID) of the blocks to be marked (repeated flag).
    #[arg(long = "id", required = true)]
    ids: Vec<String>,
    /// Marker to be put.
    #[arg(long = "marker", value_parser = ["deletion-mark.json", "no-compact-mark.json", "no-downsample-mark.json"])]
    marker: String,
    /// Human readable details to be put into marker.
    #[arg(long = "details", default_value = "")]
    details: String,
    /// Remove the marker.
    #[arg(long = "remove")]
    remove: bool,
}

#[derive(Args, Debug)]
struct CleanupArgs {
    /// Time before a block marked for deletion is deleted from bucket.
    #[arg(long = "delete-delay", default_value = "48h")]
    delete_delay: PromDuration,
    /// Minimum age of a partial upload's last write before it is deleted.
    #[arg(long = "consistency-delay", default_value = "30m")]
    consistency_delay: PromDuration,
}

#[derive(Args, Debug)]
struct RetentionArgs {
    /// How long to retain raw samples in bucket (0d keeps them forever).
    #[arg(long = "retention.resolution-raw", default_value = "0d")]
    raw: PromDuration,
    /// How long to retain samples of resolution 1 (5 minutes) in bucket.
    #[arg(long = "retention.resolution-5m", default_value = "0d")]
    five_minutes: PromDuration,
    /// How long to retain samples of resolution 2 (1 hour) in bucket.
    #[arg(long = "retention.resolution-1h", default_value = "0d")]
    one_hour: PromDuration,
    /// Minimum age of fresh (non-compacted) blocks before they are considered.
    #[arg(long = "consistency-delay", default_value = "30m")]
    consistency_delay: PromDuration,
}

#[derive(Args, Debug)]
struct DownsampleArgs {
    /// Data directory in which to cache blocks and process downsamplings.
    #[arg(long = "data-dir", default_value = "./data")]
    data_dir: PathBuf,
    /// Number of goroutines to use when downsampling blocks.
    #[arg(long = "downsample.concurrency", default_value_t = 1)]
    concurrency: u32,
    /// Keep running: downsample again every --wait-interval.
    #[arg(long = "wait")]
    wait: bool,
    /// Interval between downsampling runs with --wait.
    #[arg(long = "wait-interval", default_value = "1m")]
    wait_interval: PromDuration,
    /// Minimum age of fresh (non-compacted) blocks before they are considered.
    #[arg(long = "consistency-delay", default_value = "30m")]
    consistency_delay: PromDuration,
}

/// Runs a bucket tool.
pub(crate) async fn run(args: BucketArgs) -> anyhow::Result<()> {
    rthanos_runtime::logging::init(
        rthanos_runtime::logging::LogLevel::Info,
        rthanos_runtime::logging::LogFormat::Logfmt,
    );
    let yaml = args
        .objstore
        .content()?
        .context("--objstore.config or --objstore.config-file is required")?;
    let registry = prometheus::Registry::new();
    let bucket = Bucket::from_yaml(&yaml, &registry).context("--objstore.config")?;
    let mut out = String::new();
    match args.command {
        BucketCommand::Ls(ls) => list(&bucket, &ls, &mut out).await?,
        BucketCommand::Inspect(inspect) => inspect_blocks(&bucket, &inspect, &mut out).await?,
        BucketCommand::Verify(verify) => verify_blocks(&bucket, &verify, &mut out).await?,
        BucketCommand::Mark(mark) => mark_blocks(&bucket, &mark).await?,
        BucketCommand::Cleanup(cleanup) => {
            let mut config = CompactorConfig::with_defaults(PathBuf::from("./data"));
            config.delete_delay = cleanup.delete_delay.as_std();
            config.consistency_delay = cleanup.consistency_delay.as_std();
            Compactor::new(bucket, config, &registry)?.cleanup().await?;
        }
        BucketCommand::Retention(retention) => {
            let mut config = CompactorConfig::with_defaults(PathBuf::from("./data"));
            config.retention = Retention {
                raw: retention.raw.as_std(),
                five_minutes: retention.five_minutes.as_std(),
                one_hour: retention.one_hour.as_std(),
            };
            config.consistency_delay = retention.consistency_delay.as_std();
            Compactor::new(bucket, config, &registry)?
                .apply_retention()
                .await?;
        }
        BucketCommand::Downsample(downsample) => {
            let mut config = CompactorConfig::with_defaults(downsample.data_dir.clone());
            config.downsample_concurrency = downsample.concurrency.max(1) as usize;
            config.consistency_delay = downsample.consistency_delay.as_std();
            let compactor = Compactor::new(bucket, config, &registry)?;
            loop {
                // Two passes: 5m blocks made by the first can be due for 1h.
                compactor.downsample_all().await?;
                compactor.downsample_all().await?;
                if !downsample.wait {
                    break;
                }
                tokio::time::sleep(downsample.wait_interval.as_std()).await;
            }
        }
    }
    print!("{out}");
    Ok(())
}

/// Bucket reads in flight at once for the whole-bucket tools.
const FETCH_CONCURRENCY: usize = 32;

async fn all_metas(bucket: &Bucket) -> anyhow::Result<BTreeMap<ulid::Ulid, BlockMeta>> {
    let seen = rthanos_block::fetch_metas(bucket, FETCH_CONCURRENCY).await?;
    for (id, why) in seen.malformed.iter().chain(&seen.unsupported) {
        tracing::warn!(block = %id, err = %why, "meta.json cannot be used; block left out");
    }
    Ok(seen.metas)
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

/// A duration as Prometheus prints one (`2d`, `7h59m59s999ms`).
fn duration(ms: i64) -> String {
    PromDuration::new(Duration::from_millis(u64::try_from(ms).unwrap_or(0))).to_string()
}

fn span(meta: &BlockMeta) -> String {
    duration(meta.max_time - meta.min_time)
}

fn labels(meta: &BlockMeta) -> String {
    meta.thanos
        .as_ref()
        .map(|t| {
            t.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

async fn list(bucket: &Bucket, args: &LsArgs, out: &mut String) -> anyhow::Result<()> {
    let metas = all_metas(bucket).await?;
    let marked = if args.exclude_delete {
        rthanos_block::read_deletion_marks(bucket, metas.keys().copied(), FETCH_CONCURRENCY).await?
    } else {
        BTreeMap::new()
    };
    for (id, meta) in metas {
        if marked.contains_key(&id) {
            continue;
        }
        match args.output.as_str() {
            "" => writeln!(out, "{id}")?,
            "json" => writeln!(out, "{}", serde_json::to_string(&meta)?)?,
            "wide" => writeln!(
                out,
                "{id} -- {} - {} Diff: {}, Compaction: {}, Downsample: {}, Source: {}",
                time(meta.min_time),
                time(meta.max_time),
                span(&meta),
                meta.compaction.level,
                meta.resolution(),
                meta.thanos.as_ref().map_or("", |t| t.source.as_str()),
            )?,
            other => bail!("--output {other:?}: rthanos prints '', 'json' or 'wide'"),
        }
    }
    Ok(())
}

const COLUMNS: [&str; 13] = [
    "ULID",
    "FROM",
    "UNTIL",
    "RANGE",
    "UNTIL-DOWN",
    "#SERIES",
    "#SAMPLES",
    "#CHUNKS",
    "COMP-LEVEL",
    "COMP-FAILED",
    "LABELS",
    "RESOLUTION",
    "SOURCE",
];

fn row(id: ulid::Ulid, meta: &BlockMeta) -> Vec<String> {
    let resolution = meta.resolution();
    // Time until the block is due for downsampling, as Thanos shows it.
    let until_down = match resolution {
        0 => 40 * 3_600_000 - (meta.max_time - meta.min_time),
        300_000 => 240 * 3_600_000 - (meta.max_time - meta.min_time),
        _ => 0,
    };
    let until_down = if until_down > 0 && resolution < 3_600_000 {
        duration(until_down)
    } else {
        "-".to_string()
    };
    vec![
        id.to_string(),
        time(meta.min_time),
        time(meta.max_time),
        span(meta),
        until_down,
        meta.stats.num_series.to_string(),
        meta.stats.num_samples.to_string(),
        meta.stats.num_chunks.to_string(),
        meta.compaction.level.to_string(),
        meta.compaction.failed.to_string(),
        labels(meta),
        match resolution {
            0 => "0s".to_string(),
            r => duration(r),
        },
        meta.thanos
            .as_ref()
            .map_or(String::new(), |t| t.source.clone()),
    ]
}

async fn inspect_blocks(
    bucket: &Bucket,
    args: &InspectArgs,
    out: &mut String,
) -> anyhow::Result<()> {
    let selector: Vec<(String, String)> = args
        .selector
        .iter()
        .map(|s| {
            let (k, v) = s
                .split_once('=')
                .with_context(|| format!("--selector {s:?}: want name=value"))?;
            Ok((k.to_string(), v.trim_matches('"').to_string()))
        })
        .collect::<anyhow::Result<_>>()?;
    for column in &args.sort_by {
        if !COLUMNS.contains(&column.as_str()) {
            bail!("--sort-by {column:?}: not one of {}", COLUMNS.join(", "));
        }
    }
    let mut rows: Vec<(Vec<String>, &BlockMeta)> = Vec::new();
    let metas = all_metas(bucket).await?;
    for (id, meta) in &metas {
        let block_labels = meta.thanos.as_ref().map(|t| &t.labels);
        if selector
            .iter()
            .all(|(k, v)| block_labels.and_then(|l| l.get(k)) == Some(v))
        {
            rows.push((row(*id, meta), meta));
        }
    }
    let index = |c: &str| COLUMNS.iter().position(|x| *x == c).unwrap_or(0);
    rows.sort_by(|a, b| {
        args.sort_by.iter().fold(std::cmp::Ordering::Equal, |o, c| {
            o.then_with(|| match c.as_str() {
                // Times and counts sort by value, not by text.
                "FROM" => a.1.min_time.cmp(&b.1.min_time),
                "UNTIL" => a.1.max_time.cmp(&b.1.max_time),
                "#SERIES" => a.1.stats.num_series.cmp(&b.1.stats.num_series),
                "#SAMPLES" => a.1.stats.num_samples.cmp(&b.1.stats.num_samples),
                "#CHUNKS" => a.1.stats.num_chunks.cmp(&b.1.stats.num_chunks),
                _ => a.0[index(c)].cmp(&b.0[index(c)]),
            })
        })
    });
    let rows: Vec<Vec<String>> = rows.into_iter().map(|(r, _)| r).collect();
    match args.output.as_str() {
        "csv" | "tsv" => {
            let sep = if args.output == "csv" { "," } else { "\t" };
            writeln!(out, "{}", COLUMNS.join(sep))?;
            for r in &rows {
                let cells: Vec<String> = r
                    .iter()
                    .map(|c| {
                        if sep == "," && c.contains(',') {
                            format!("\"{c}\"")
                        } else {
                            c.clone()
                        }
                    })
                    .collect();
                writeln!(out, "{}", cells.join(sep))?;
            }
        }
        _ => {
            let widths: Vec<usize> = (0..COLUMNS.len())
                .map(|i| {
                    rows.iter()
                        .map(|r| r[i].len())
                        .chain([COLUMNS[i].len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: &[String]| -> String {
                let inner: Vec<String> = cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!(" {c:<w$} "))
                    .collect();
                format!("|{}|", inner.join("|"))
            };
            let header: Vec<String> = COLUMNS.iter().map(|c| (*c).to_string()).collect();
            writeln!(out, "{}", line(&header))?;
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            writeln!(out, "{}", line(&rule))?;
            for r in &rows {
                writeln!(out, "{}", line(r))?;
            }
        }
    }
    Ok(())
}

async fn verify_blocks(bucket: &Bucket, args: &VerifyArgs, out: &mut String) -> anyhow::Result<()> {
    if args.repair {
        bail!("--repair is not supported by rthanos: verify reports, an operator decides");
    }
    let metas = all_metas(bucket).await?;
    let wanted: Vec<ulid::Ulid> = if args.ids.is_empty() {
        metas.keys().copied().collect()
    } else {
        args.ids
            .iter()
            .map(|s| {
                s.parse()
                    .with_context(|| format!("--id {s:?} is not a ULID"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let mut problems = 0;
    if args.issues.iter().any(|i| i == "overlapped_blocks") {
        // Blocks on their way out (marked, or held whole by a newer block) are not overlaps.
        let marked =
            rthanos_block::read_deletion_marks(bucket, metas.keys().copied(), FETCH_CONCURRENCY)
                .await?;
        let mut live: BTreeMap<ulid::Ulid, BlockMeta> = metas
            .iter()
            .filter(|(id, _)| !marked.contains_key(id))
            .map(|(id, meta)| (*id, meta.clone()))
            .collect();
        for id in rthanos_block::duplicates(&live) {
            live.remove(&id);
        }
        for (key, blocks) in rthanos_compact::plan::groups(live.values()) {
            let mut rest: &[&BlockMeta] = &blocks;
            loop {
                let run = rthanos_compact::plan::overlapping(rest);
                let Some(last) = run.last() else { break };
                problems += 1;
                let ids: Vec<&str> = run.iter().map(|m| m.ulid.as_str()).collect();
                writeln!(out, "overlapped_blocks: group {key}: {}", ids.join(", "))?;
                let after = rest
                    .iter()
                    .position(|m| m.ulid == last.ulid)
                    .map_or(rest.len(), |p| p + 1);
                rest = &rest[after..];
            }
        }
    }
    if args.issues.iter().any(|i| i == "index_known_issues") {
        for id in wanted {
            if !metas.contains_key(&id) {
                writeln!(
                    out,
                    "index_known_issues: block {id}: not in the bucket (or partial)"
                )?;
                problems += 1;
                continue;
            }
            let dir = match rthanos_block::download_block(bucket, id, &args.data_dir).await {
                Ok((dir, _)) => dir,
                Err(e) => {
                    let _ = tokio::fs::remove_dir_all(args.data_dir.join(id.to_string())).await;
                    problems += 1;
                    writeln!(out, "index_known_issues: block {id}: not downloaded: {e}")?;
                    continue;
                }
            };
            let check = {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || rthanos_tsdb::check::check_block(&dir))
                    .await
                    .context("check task")?
            };
            let _ = tokio::fs::remove_dir_all(&dir).await;
            match check {
                Ok(report) if report.issues.is_empty() => {}
                Ok(report) => {
                    problems += 1;
                    for issue in report.issues {
                        writeln!(out, "index_known_issues: block {id}: {issue}")?;
                    }
                }
                Err(e) => {
                    problems += 1;
                    writeln!(out, "index_known_issues: block {id}: {e}")?;
                }
            }
        }
    }
    if problems > 0 {
        print!("{out}");
        out.clear();
        bail!("{problems} issue(s) found");
    }
    writeln!(out, "no issues found")?;
    Ok(())
}

async fn mark_blocks(bucket: &Bucket, args: &MarkArgs) -> anyhow::Result<()> {
    let marker = Marker::from_file_name(&args.marker).context("--marker")?;
    for id in &args.ids {
        let id: ulid::Ulid = id
            .parse()
            .with_context(|| format!("--id {id:?} is not a ULID"))?;
        if rthanos_block::fetch_meta(bucket, id).await?.is_none() {
            bail!("block {id} is not in the bucket (or has no meta.json)");
        }
        let name = rthanos_block::object(id, marker.file_name());
        if args.remove {
            match bucket.delete(&name).await {
                Ok(()) => {
                    tracing::info!(block = %id, marker = marker.file_name(), "marker removed")
                }
                Err(e) if e.is_not_found() => {
                    tracing::info!(block = %id, marker = marker.file_name(), "no marker to remove")
                }
                Err(e) => return Err(e.into()),
            }
            continue;
        }
        let written = match marker {
            Marker::Deletion => rthanos_block::mark_for_deletion(bucket, id, &args.details).await?,
            Marker::NoCompact => {
                rthanos_block::mark_no_compact(bucket, id, "manual", &args.details).await?
            }
            Marker::NoDownsample => {
                rthanos_block::mark_no_downsample(bucket, id, "manual", &args.details).await?
            }
        };
        if written {
            tracing::info!(block = %id, marker = marker.file_name(), "block marked");
        } else {
            tracing::info!(block = %id, marker = marker.file_name(), "block already marked");
        }
    }
    Ok(())
}
