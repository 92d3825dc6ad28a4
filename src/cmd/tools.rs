//! `rthanos tools`: operator utilities. `tools rules-check` checks rule files as the ruler
//! does; `tools tsdb dump` prints a TSDB's samples as `promtool tsdb dump` does; `tools
//! bucket` (in `bucket.rs`) works on a bucket's blocks.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

/// Flags of `rthanos tools`.
#[derive(Args, Debug)]
pub(crate) struct ToolsArgs {
    #[command(subcommand)]
    command: ToolsCommand,
}

#[derive(Subcommand, Debug)]
enum ToolsCommand {
    /// Bucket utility commands.
    Bucket(super::bucket::BucketArgs),
    /// TSDB utility commands.
    Tsdb(TsdbArgs),
    /// Check that rule files are valid (Prometheus's format with Thanos's
    /// partial_response_strategy), as the ruler checks them at start-up.
    RulesCheck(RulesCheckArgs),
}

#[derive(Args, Debug)]
struct RulesCheckArgs {
    /// The rule files to check (repeatable).
    #[arg(id = "rules", long = "rules", value_name = "PATH", required = true)]
    rules: Vec<PathBuf>,
}

#[derive(Args, Debug)]
struct TsdbArgs {
    #[command(subcommand)]
    command: TsdbCommand,
}

#[derive(Subcommand, Debug)]
enum TsdbCommand {
    /// Dump samples of the blocks of a TSDB directory, in the format of `promtool tsdb dump`.
    Dump(DumpArgs),
}

#[derive(Args, Debug)]
struct DumpArgs {
    /// Data directory of the TSDB (the directory holding the blocks).
    #[arg(
        id = "storage.tsdb.path",
        long = "storage.tsdb.path",
        default_value = "./data",
        value_name = "PATH"
    )]
    tsdb_path: PathBuf,
    /// Dump only this block (its ULID).
    #[arg(id = "block", long = "block", value_name = "ULID")]
    block: Option<String>,
    /// Minimum timestamp to dump (ms).
    #[arg(id = "min-time", long = "min-time", default_value_t = i64::MIN, allow_hyphen_values = true)]
    min_time: i64,
    /// Maximum timestamp to dump (ms).
    #[arg(id = "max-time", long = "max-time", default_value_t = i64::MAX, allow_hyphen_values = true)]
    max_time: i64,
}

/// Runs a tool.
pub(crate) async fn run(args: ToolsArgs) -> anyhow::Result<()> {
    match args.command {
        ToolsCommand::Bucket(bucket) => super::bucket::run(bucket).await,
        ToolsCommand::RulesCheck(check) => rules_check(&check.rules),
        ToolsCommand::Tsdb(TsdbArgs {
            command: TsdbCommand::Dump(dump),
        }) => {
            let options = rthanos_tsdb::dump::DumpOptions {
                block: dump.block,
                min_time: dump.min_time,
                max_time: dump.max_time,
            };
            let path = dump.tsdb_path;
            // Block reading is blocking file I/O: off the async threads.
            tokio::task::spawn_blocking(move || {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                rthanos_tsdb::dump::dump(&path, &options, &mut out)
                    .with_context(|| format!("dump {}", path.display()))?;
                std::io::Write::flush(&mut out).context("write dump")
            })
            .await
            .context("dump task")?
        }
    }
}

/// Checks each rule file, printing what it found; fails when any file is invalid.
fn rules_check(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut failed = 0;
    for path in files {
        println!("Checking {}", path.display());
        match rthanos_rule::rulefmt::read_file(path) {
            Ok(file) => println!("  SUCCESS: {} rules found", file.rules()),
            Err(e) => {
                failed += 1;
                println!("  FAILED:");
                match e {
                    rthanos_rule::rulefmt::RuleFileError::Invalid { path, problems } => {
                        for problem in problems {
                            println!("{path}: {problem}");
                        }
                    }
                    other => println!("{other}"),
                }
            }
        }
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} rule files are invalid",
        files.len()
    );
    Ok(())
}
