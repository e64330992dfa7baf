//! `strata`: runs the whole system on one machine (`strata up`) or any one component.

use clap::{Parser, Subcommand};
use strata::{branch, checkpoint, components, up};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "Strata: a serverless SQL database that speaks PostgreSQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole system on this machine: three safekeepers, a pageserver and a compute,
    /// with data under --data-dir. Stays in the foreground; Ctrl-C stops everything cleanly.
    Up(up::UpArgs),
    /// Make object storage hold everything the running `strata up` has committed: the
    /// safekeepers offload their WAL, the pageserver uploads its layers. After it, every local
    /// directory is disposable. (A clean stop of `strata up` does the same.)
    Checkpoint(checkpoint::CheckpointArgs),
    /// Branches of the running `strata up`: create (instant, copy-on-write), list, delete,
    /// restore to a past state.
    Branch(branch::BranchArgs),
    /// Endpoints (computes) of the running `strata up`: start a branch's primary or a
    /// read-only compute pinned in the past, stop, list.
    Endpoint(branch::EndpointArgs),
    /// Run one safekeeper of a Raft group.
    Safekeeper(components::SafekeeperArgs),
    /// Run a pageserver.
    Pageserver(components::PageserverArgs),
    /// Run a primary compute for a branch.
    Compute(components::ComputeArgs),
}

fn main() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    // openraft reports every election and vote at info; only its warnings are news to an operator.
    let filter = EnvFilter::try_from_env("STRATA_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => up::run(args).await,
            Command::Checkpoint(args) => checkpoint::run(args).await,
            Command::Branch(args) => branch::branch(args).await,
            Command::Endpoint(args) => branch::endpoint(args).await,
            Command::Safekeeper(args) => components::safekeeper(args).await,
            Command::Pageserver(args) => components::pageserver(args).await,
            Command::Compute(args) => components::compute(args).await,
        }
    })
}
