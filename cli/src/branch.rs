//! `strata branch` and `strata endpoint`: the control plane of a running `strata up`, found
//! through its data directory, driven over its gRPC API.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use strata_proto::control::control_client::ControlClient;
use strata_proto::control::{
    BranchInfo, CreateBranchRequest, DeleteBranchRequest, EndpointInfo, ListBranchesRequest,
    ListEndpointsRequest, RestoreBranchRequest, StartEndpointRequest, StopEndpointRequest,
};
use tonic::transport::Channel;

use crate::up::RuntimeInfo;

/// Which running system to talk to, and how to answer.
#[derive(Args, Debug)]
pub struct Target {
    /// The data directory of the running `strata up`.
    #[arg(
        long,
        env = "STRATA_DATA_DIR",
        default_value = "./.strata",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Print JSON for scripts instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BranchArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: BranchCommand,
}

#[derive(Subcommand, Debug)]
pub enum BranchCommand {
    /// Create a branch: instant, copies no data. Prints its connection string.
    Create {
        name: String,
        /// The branch to branch from.
        #[arg(long, default_value = "main")]
        parent: String,
        /// A point of the parent's history: a timestamp (`2026-11-24 16:30:00+00`, RFC 3339;
        /// UTC without an offset) or an LSN (`0/16B3748`). Default: the latest commit.
        #[arg(long)]
        at: Option<String>,
    },
    /// List branches as a tree: parent, branch point, creation time, logical size.
    List {
        /// Skip logical sizes (each is a scan of the branch's data).
        #[arg(long)]
        no_sizes: bool,
    },
    /// Delete a branch and its data. Refused while it has branches.
    Delete { name: String },
    /// Reset a branch to a past state; the state it had is kept as a new branch.
    Restore {
        name: String,
        /// A timestamp or an LSN of the branch's history.
        #[arg(long)]
        at: String,
    },
}

#[derive(Args, Debug)]
pub struct EndpointArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: EndpointCommand,
}

#[derive(Subcommand, Debug)]
pub enum EndpointCommand {
    /// Start a compute. `NAME` alone: the read-write primary of branch NAME. With `--at`: a new
    /// read-only endpoint NAME reading `--branch` as it was at that point.
    Start {
        name: String,
        #[arg(long)]
        branch: Option<String>,
        /// A timestamp or an LSN: makes the endpoint read-only, pinned there.
        #[arg(long)]
        at: Option<String>,
    },
    /// Stop an endpoint's compute (the next connection to it starts it again).
    Stop { name: String },
    /// List endpoints and whether their computes run.
    List,
}

async fn client(data_dir: &std::path::Path) -> anyhow::Result<ControlClient<Channel>> {
    let info = RuntimeInfo::read(data_dir)?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", info.control))?
        .connect()
        .await
        .with_context(|| format!("cannot reach the control plane at {}", info.control))?;
    Ok(ControlClient::new(channel))
}

/// A failed call as the user should read it.
fn failed(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", status.message())
}

fn branch_json(b: &BranchInfo) -> serde_json::Value {
    json!({
        "name": b.name,
        "timeline_id": b.timeline_id,
        "parent": (!b.parent.is_empty()).then_some(&b.parent),
        "branch_lsn": (!b.branch_lsn.is_empty()).then_some(&b.branch_lsn),
        "branch_time": (!b.branch_time.is_empty()).then_some(&b.branch_time),
        "created_at": b.created_at,
        "logical_size": b.logical_size,
        "connection_string": b.connection_string,
        "jdbc_url": jdbc_url(&b.connection_string),
    })
}

/// The JDBC form of a `postgres://user@host:port/db?params` connection string (pgjdbc reads
/// only `jdbc:postgresql:` URLs, with the user as a parameter).
fn jdbc_url(connection_string: &str) -> String {
    let rest = connection_string
        .strip_prefix("postgres://")
        .unwrap_or(connection_string);
    let (user, rest) = rest.split_once('@').unwrap_or(("", rest));
    let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
    let mut query: Vec<String> = Vec::new();
    if !user.is_empty() {
        query.push(format!("user={user}"));
    }
    if !params.is_empty() {
        query.push(params.to_string());
    }
    format!("jdbc:postgresql://{path}?{}", query.join("&"))
}

fn endpoint_json(e: &EndpointInfo) -> serde_json::Value {
    json!({
        "name": e.name,
        "branch": e.branch,
        "kind": e.kind,
        "lsn": (!e.lsn.is_empty()).then_some(&e.lsn),
        "running": e.running,
        "compute_address": (!e.compute_address.is_empty()).then_some(&e.compute_address),
        "connection_string": e.connection_string,
        "jdbc_url": jdbc_url(&e.connection_string),
    })
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}

pub async fn branch(args: BranchArgs) -> anyhow::Result<()> {
    let mut control = client(&args.target.data_dir).await?;
    match args.command {
        BranchCommand::Create { name, parent, at } => {
            let b = control
                .create_branch(CreateBranchRequest {
                    name,
                    parent,
                    at: at.unwrap_or_default(),
                })
                .await
                .map_err(failed)?
                .into_inner();
            if args.target.json {
                print_json(&branch_json(&b));
            } else {
                println!(
                    "Created branch {} from {} at LSN {}{}.\nConnect with:\n  psql '{}'",
                    b.name,
                    b.parent,
                    b.branch_lsn,
                    if b.branch_time.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", b.branch_time)
                    },
                    b.connection_string
                );
            }
        }
        BranchCommand::List { no_sizes } => {
            let branches = control
                .list_branches(ListBranchesRequest {
                    with_sizes: !no_sizes,
                })
                .await
                .map_err(failed)?
                .into_inner()
                .branches;
            if args.target.json {
                print_json(&json!(branches.iter().map(branch_json).collect::<Vec<_>>()));
            } else {
                print_tree(&branches, !no_sizes);
            }
        }
        BranchCommand::Delete { name } => {
            control
                .delete_branch(DeleteBranchRequest { name: name.clone() })
                .await
                .map_err(failed)?;
            if args.target.json {
                print_json(&json!({ "deleted": name }));
            } else {
                println!("Deleted branch {name}.");
            }
        }
        BranchCommand::Restore { name, at } => {
            let r = control
                .restore_branch(RestoreBranchRequest { name, at })
                .await
                .map_err(failed)?
                .into_inner();
            let (b, backup) = (r.branch.unwrap_or_default(), r.backup.unwrap_or_default());
            if args.target.json {
                print_json(&json!({ "branch": branch_json(&b), "backup": branch_json(&backup) }));
            } else {
                println!(
                    "Restored branch {} to LSN {}. The state it had is kept as branch {}.",
                    b.name, b.branch_lsn, backup.name
                );
            }
        }
    }
    Ok(())
}

/// Branches come parents first; a branch is indented under its parent.
fn print_tree(branches: &[BranchInfo], sizes: bool) {
    let depth = |b: &BranchInfo| {
        let mut d = 0;
        let mut parent = b.parent.as_str();
        while let Some(p) = branches.iter().find(|x| x.name == parent) {
            d += 1;
            parent = p.parent.as_str();
        }
        d
    };
    let rows: Vec<[String; 5]> = branches
        .iter()
        .map(|b| {
            let d = depth(b);
            let name = if d == 0 {
                b.name.clone()
            } else {
                format!("{}└─ {}", "   ".repeat(d - 1), b.name)
            };
            let point = if b.branch_lsn.is_empty() {
                String::new()
            } else {
                format!("{} {}", b.branch_lsn, b.branch_time)
            };
            let size = if sizes {
                human_bytes(b.logical_size)
            } else {
                String::new()
            };
            [name, b.parent.clone(), point, b.created_at.clone(), size]
        })
        .collect();
    let header = [
        "BRANCH",
        "PARENT",
        "BRANCH POINT (LSN, TIME)",
        "CREATED",
        "LOGICAL SIZE",
    ];
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 5]| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub async fn endpoint(args: EndpointArgs) -> anyhow::Result<()> {
    let mut control = client(&args.target.data_dir).await?;
    match args.command {
        EndpointCommand::Start { name, branch, at } => {
            let e = control
                .start_endpoint(StartEndpointRequest {
                    name,
                    branch: branch.unwrap_or_default(),
                    at: at.unwrap_or_default(),
                })
                .await
                .map_err(failed)?
                .into_inner();
            if args.target.json {
                print_json(&endpoint_json(&e));
            } else {
                let what = if e.kind == "read-only" {
                    format!("read-only endpoint of {} at LSN {}", e.branch, e.lsn)
                } else {
                    format!("primary of branch {}", e.branch)
                };
                println!(
                    "Started {} ({what}).\nConnect with:\n  psql '{}'",
                    e.name, e.connection_string
                );
            }
        }
        EndpointCommand::Stop { name } => {
            control
                .stop_endpoint(StopEndpointRequest { name: name.clone() })
                .await
                .map_err(failed)?;
            if args.target.json {
                print_json(&json!({ "stopped": name }));
            } else {
                println!("Stopped endpoint {name}.");
            }
        }
        EndpointCommand::List => {
            let endpoints = control
                .list_endpoints(ListEndpointsRequest {})
                .await
                .map_err(failed)?
                .into_inner()
                .endpoints;
            if args.target.json {
                print_json(&json!(endpoints
                    .iter()
                    .map(endpoint_json)
                    .collect::<Vec<_>>()));
            } else {
                println!(
                    "{:<24} {:<24} {:<10} {:<12} STATE",
                    "ENDPOINT", "BRANCH", "KIND", "LSN"
                );
                for e in &endpoints {
                    println!(
                        "{:<24} {:<24} {:<10} {:<12} {}",
                        e.name,
                        e.branch,
                        e.kind,
                        e.lsn,
                        if e.running { "running" } else { "idle" }
                    );
                }
            }
        }
    }
    Ok(())
}
