//! `rthanos tools`: operator utilities. `tools tsdb dump` prints a TSDB's samples as
//! `promtool tsdb dump` does; `tools bucket` (in `bucket.rs`) works on a bucket's blocks.

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
