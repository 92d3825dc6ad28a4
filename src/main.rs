//! `rthanos`: one binary whose subcommands are Thanos's components, with Thanos's flags. This
//! file only parses flags and hands each subcommand to its `cmd` module, which wires libraries.

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Version facts recorded by build.rs.
pub(crate) const BUILD: rthanos_runtime::BuildInfo = rthanos_runtime::BuildInfo {
    version: env!("CARGO_PKG_VERSION"),
    revision: env!("RTHANOS_REVISION"),
    branch: env!("RTHANOS_BRANCH"),
    compiler: env!("RTHANOS_COMPILER"),
};

const LONG_VERSION: &str = concat!(
    "version ",
    env!("CARGO_PKG_VERSION"),
    " (branch: ",
    env!("RTHANOS_BRANCH"),
    ", revision: ",
    env!("RTHANOS_REVISION"),
    ")\n  compiler: ",
    env!("RTHANOS_COMPILER"),
);

/// A block storage based long-term storage for Prometheus.
#[derive(Parser, Debug)]
#[command(
    name = "rthanos",
    version,
    long_version = LONG_VERSION,
    about = "A block storage based long-term storage for Prometheus (Thanos, in Rust).",
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Sidecar for Prometheus server.
    Sidecar(Box<cmd::sidecar::SidecarArgs>),
    /// Ruler evaluating Prometheus rules against given Query nodes, exposing Store API and
    /// storing old blocks in bucket.
    Rule(Box<cmd::rule::RuleArgs>),
    /// Query node exposing PromQL enabled Query API with data retrieved from multiple store nodes.
    Query(Box<cmd::query::QueryArgs>),
    /// Store node giving access to blocks in a bucket provider. Now supported GCS, S3, Azure,
    /// and Filesystem.
    Store(Box<cmd::store::StoreArgs>),
    /// Continuously compacts blocks in an object store bucket.
    Compact(Box<cmd::compact::CompactArgs>),
    /// Tools utility commands.
    Tools(cmd::tools::ToolsArgs),
}

fn main() -> ExitCode {
    // clap exits with status 2 on a usage error (unknown flag, bad value), naming the flag.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rthanos: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Sidecar(args) => cmd::sidecar::run(*args).await,
            Command::Rule(args) => cmd::rule::run(*args).await,
            Command::Query(args) => cmd::query::run(*args).await,
            Command::Store(args) => cmd::store::run(*args).await,
            Command::Compact(args) => cmd::compact::run(*args).await,
            Command::Tools(args) => cmd::tools::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A no-op when the command already set up logging from its flags.
            rthanos_runtime::logging::init(
                rthanos_runtime::logging::LogLevel::Info,
                rthanos_runtime::logging::LogFormat::Logfmt,
            );
            tracing::error!(err = format!("{e:#}"), "running command failed");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests;
