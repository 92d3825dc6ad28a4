//! `rthanos tools`: operator utilities. `tools tsdb dump` lands with issue #3, `tools bucket`
//! with issue #8.

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
    Bucket(NotBuiltArgs),
    /// TSDB utility commands.
    Tsdb(NotBuiltArgs),
}

/// Placeholder arguments of a tool that has not landed: everything after the tool's name.
#[derive(Args, Debug)]
struct NotBuiltArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// Runs a tool.
pub(crate) async fn run(args: ToolsArgs) -> anyhow::Result<()> {
    match args.command {
        ToolsCommand::Bucket(_) => Err(anyhow::anyhow!(super::not_built("tools bucket", 8))),
        ToolsCommand::Tsdb(_) => Err(anyhow::anyhow!(super::not_built("tools tsdb", 3))),
    }
}
